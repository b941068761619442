"""Mask encodings of annotation files (polygons, COCO RLE), checked, then decoded by pycocotools.

Every segmentation is checked before pycocotools sees it, because pycocotools trusts its input:
coordinates of 1e9 crash the process, NaN ones exhaust memory, and an RLE whose counts do not
add up to H x W is decoded from uninitialised memory (a different mask on every run). The rules:

* **Polygon** (a flat ``[x1, y1, x2, y2, ...]`` or a list of them): numbers (not strings or
  booleans), finite, an even count of at least 6 (three points), every x within
  ``[-W, 2 W]`` and y within ``[-H, 2 H]`` of the (H, W) image (a polygon may leave the image a
  little; one that far away is a wrong unit or a corrupt file). An empty list is an empty mask.
* **RLE** (``{"size": [H, W], "counts": ...}``): ``size`` equal to the image's (H, W); ``counts``
  non-negative run lengths (an uncompressed list of integers, or COCO's compressed string) that
  add up to exactly H x W.

A failed check raises ``ValueError`` naming ``where`` (the caller says which file, annotation and
field) and what was expected.
"""

from __future__ import annotations

import ast
import math
from numbers import Integral, Real
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

_POLYGON_REACH = 1.0  # how far (in image sizes) a polygon may reach beyond the image's sides


def decode_segmentation(segmentation: Any, height: int, width: int, where: str = "segmentation") -> np.ndarray:
    """(H, W) bool mask of an annotation's segmentation, after the checks of this module.

    Accepts a flat polygon ``[x1, y1, x2, y2, ...]``, a list of polygons, COCO RLE (``counts`` as
    a compressed string or an uncompressed list), or such an RLE written as a Python-literal
    string (as some COCOA exports do). Coordinates are pixels of the (H, W) image. ``where``
    names the segmentation in errors (e.g. ``"'ann.json' annotation 7 field 'visible_mask'"``).
    """
    if isinstance(segmentation, str):
        try:
            segmentation = ast.literal_eval(segmentation)
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"{where}: a string segmentation must be a literal RLE dict; got {error}") from None
    if isinstance(segmentation, dict):
        return mask_utils.decode(_checked_rle(segmentation, height, width, where)).astype(bool)
    if isinstance(segmentation, list):
        polygons = _checked_polygons(segmentation, height, width, where)
        if not polygons:
            return np.zeros((height, width), dtype=bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        return mask_utils.decode(rle).astype(bool)
    raise ValueError(f"{where}: must be a polygon list or an RLE dict; got {type(segmentation).__name__}")


def _checked_polygons(segmentation: list, height: int, width: int, where: str) -> list[list[float]]:
    """The polygons of a flat polygon or a list of polygons, each checked."""
    polygons = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
    checked = []
    for number, polygon in enumerate(p for p in polygons if p):
        name = f"{where} polygon {number}"
        if not isinstance(polygon, list) or not all(_is_number(v) for v in polygon):
            raise ValueError(f"{name}: must be a list of numbers [x1, y1, x2, y2, ...]")
        values = [float(v) for v in polygon]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{name}: has a non-finite coordinate (NaN or infinity)")
        if len(values) % 2 or len(values) < 6:
            raise ValueError(f"{name}: needs an even count of at least 6 coordinates (3 points); got {len(values)}")
        xs, ys = values[0::2], values[1::2]
        if not (-_POLYGON_REACH * width <= min(xs) and max(xs) <= (1 + _POLYGON_REACH) * width):
            raise ValueError(f"{name}: x from {min(xs):g} to {max(xs):g} lies far outside the image's width {width}")
        if not (-_POLYGON_REACH * height <= min(ys) and max(ys) <= (1 + _POLYGON_REACH) * height):
            raise ValueError(f"{name}: y from {min(ys):g} to {max(ys):g} lies far outside the image's height {height}")
        checked.append(values)
    return checked


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _checked_rle(segmentation: dict, height: int, width: int, where: str) -> dict:
    """A COCO RLE ready for ``mask_utils.decode``, its size and run lengths checked."""
    if "counts" not in segmentation or "size" not in segmentation:
        raise ValueError(f"{where}: an RLE must have 'counts' and 'size'; got keys {sorted(segmentation)}")
    size = segmentation["size"]
    if not isinstance(size, list | tuple) or [int(v) if _is_number(v) else v for v in size] != [height, width]:
        raise ValueError(f"{where}: RLE size {size!r} differs from the image size {[height, width]}")
    counts = segmentation["counts"]
    if isinstance(counts, list):
        if not all(isinstance(c, Integral) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ValueError(f"{where}: RLE counts must be non-negative integers")
        runs = counts
    elif isinstance(counts, str | bytes):
        runs = compressed_rle_counts(counts if isinstance(counts, str) else counts.decode("ascii"), where)
    else:
        raise ValueError(f"{where}: RLE counts must be a list of integers or a compressed string")
    if sum(runs) != height * width:
        raise ValueError(f"{where}: RLE counts add up to {sum(runs)} pixels, but the image has {height} x {width}")
    if isinstance(counts, list):
        return mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    return {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def compressed_rle_counts(counts: str, where: str = "RLE counts") -> list[int]:
    """The run lengths of COCO's compressed RLE string (pycocotools' ``rleFrString`` format:
    5 bits per character from ``'0'``, a continuation bit, a sign bit on the last character, and
    every run after the second stored as the difference from the run two before it)."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts):
                raise ValueError(f"{where}: the compressed RLE string ends inside a number")
            code = ord(counts[position]) - 48
            if not 0 <= code < 64:
                raise ValueError(f"{where}: {counts[position]!r} is not a compressed RLE character")
            value |= (code & 0x1F) << shift
            more = bool(code & 0x20)
            position += 1
            shift += 5
            if not more and code & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        if value < 0:
            raise ValueError(f"{where}: the compressed RLE string has a negative run length")
        runs.append(value)
    return runs


def encode_rle(mask: np.ndarray) -> dict:
    """COCO RLE of an (H, W) bool mask, with ``counts`` as a string (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def mask_bbox(mask: np.ndarray) -> list:
    """COCO box ``[x, y, width, height]`` of an (H, W) bool mask (zeros for an empty mask)."""
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask.astype(np.uint8))))]
