"""Mask encodings of annotation files (polygons, COCO RLE), through pycocotools."""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of an annotation's segmentation.

    Accepts a flat polygon ``[x1, y1, x2, y2, ...]``, a list of polygons, COCO RLE (``counts`` as
    a compressed string or an uncompressed list), or such an RLE written as a Python-literal
    string (as some COCOA exports do). Coordinates are pixels of the (H, W) image.
    """
    if isinstance(segmentation, str):
        segmentation = ast.literal_eval(segmentation)
    if isinstance(segmentation, dict):
        if "counts" not in segmentation or "size" not in segmentation:
            raise ValueError(f"RLE segmentation must have 'counts' and 'size'; got keys {sorted(segmentation)}")
        if tuple(segmentation["size"]) != (height, width):
            raise ValueError(f"RLE size {segmentation['size']} differs from the image size {[height, width]}")
        counts = segmentation["counts"]
        if isinstance(counts, list):
            rle = mask_utils.frPyObjects(segmentation, height, width)
        else:
            rle = {"size": segmentation["size"], "counts": counts.encode() if isinstance(counts, str) else counts}
        return mask_utils.decode(rle).astype(bool)
    if isinstance(segmentation, list):
        polygons = [segmentation] if segmentation and not isinstance(segmentation[0], list) else segmentation
        polygons = [list(map(float, p)) for p in polygons if len(p) >= 6]
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        return mask_utils.decode(rle).astype(bool)
    raise ValueError(f"segmentation must be a polygon list or an RLE dict; got {type(segmentation).__name__}")


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of an (H, W) bool mask, with ``counts`` as a string (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def mask_bbox(mask: np.ndarray) -> list:
    """COCO box ``[x, y, width, height]`` of an (H, W) bool mask (zeros for an empty mask)."""
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]
