"""Synthetic truncation: crops of an image that cut a whole object at one border, the truth the
uncut mask on the crop's canvas (:class:`~amodal_sam.canvas.Canvas`).

A crop keeps the image but for the strip beyond one cut line, placed so that a chosen share of
the object's area lies beyond it (``share``: 0.3 cuts 30 % of the object off). The visible
part is the object's mask inside the crop; the truth is the whole mask in the crop's canvas
coordinates, clipped to the canvas (a cut wider than the margin leaves the far end out).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from amodal_sam.atomic import atomic_output
from amodal_sam.canvas import Canvas, check_beyond, image_on_canvas
from amodal_sam.data.masks import encode_rle, mask_bbox
from amodal_sam.data.objects import SourceObject
from amodal_sam.image_io import write_rgb

SIDES = ("left", "right", "top", "bottom")
DEFAULT_SHARES = (0.2, 0.5)
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)  # segment-anything's RGB normalisation mean


@dataclass(frozen=True)
class TruncatedCrop:
    """One object cut by one border of a crop.

    Attributes:
        image: (h, w, 3) uint8 RGB, the crop.
        visible: (h, w) bool, the object's pixels inside the crop.
        truth: (H_c, W_c) bool, the whole object on ``canvas``.
        canvas: the crop's canvas.
        side: the border that cuts the object (``left``, ``right``, ``top``, ``bottom``).
        share: the share of the object's area beyond the cut line (in the source image).
        name: where the object comes from (image file and side).
    """

    image: np.ndarray
    visible: np.ndarray
    truth: np.ndarray
    canvas: Canvas
    side: str
    share: float
    name: str


def cut_line(mask: np.ndarray, side: str, share: float) -> int:
    """Where to cut an (H, W) mask so that at least ``share`` (0..1) of its area lies beyond the
    line on ``side``: the first kept column (``left``) or row (``top``), or the first dropped one
    (``right``, ``bottom``). The line always keeps some of the object."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}; got {side!r}")
    if not 0 < share < 1:
        raise ValueError(f"share must lie strictly between 0 and 1; got {share!r}")
    counts = mask.sum(axis=0 if side in ("left", "right") else 1).astype(np.int64)
    if side in ("right", "bottom"):
        counts = counts[::-1]
    total = int(counts.sum())
    if total == 0:
        raise ValueError("the mask is empty: there is no object to cut")
    beyond = np.cumsum(counts)
    first_kept = int(np.searchsorted(beyond, share * total))  # beyond[first_kept] >= share * total
    first_kept += 1  # the line lies after that column / row: at least share of the area beyond it
    last_with_object = int(np.flatnonzero(counts)[-1])
    first_kept = min(first_kept, last_with_object)  # never the whole object
    return first_kept if side in ("left", "top") else len(counts) - first_kept


def truncate(
    image: np.ndarray, mask: np.ndarray, side: str, share: float, beyond: float, name: str = ""
) -> TruncatedCrop:
    """Crop (H, W, 3) ``image`` at :func:`cut_line` so that ``side`` cuts ``share`` of the (H, W)
    bool ``mask`` off; the truth is ``mask`` on the crop's canvas of margin share ``beyond``."""
    beyond = check_beyond(beyond)
    height, width = mask.shape
    line = cut_line(mask, side, share)
    rows, columns = slice(0, height), slice(0, width)
    if side == "left":
        columns = slice(line, width)
    elif side == "right":
        columns = slice(0, line)
    elif side == "top":
        rows = slice(line, height)
    else:
        rows = slice(0, line)
    crop_top, crop_left = rows.start, columns.start
    visible = mask[rows, columns]
    canvas = Canvas.around(visible.shape, beyond)
    x0, y0 = canvas.origin
    # canvas pixel (cy, cx) is source pixel (cy - y0 + crop_top, cx - x0 + crop_left)
    top, left = crop_top - y0, crop_left - x0
    truth = np.zeros(canvas.size, bool)
    source_rows = slice(max(top, 0), min(top + canvas.size[0], height))
    source_columns = slice(max(left, 0), min(left + canvas.size[1], width))
    truth[
        source_rows.start - top : source_rows.stop - top, source_columns.start - left : source_columns.stop - left
    ] = mask[source_rows, source_columns]
    actual = 1.0 - visible.sum() / mask.sum()
    return TruncatedCrop(
        image=np.ascontiguousarray(image[rows, columns]),
        visible=visible.copy(),
        truth=truth,
        canvas=canvas,
        side=side,
        share=float(actual),
        name=name or side,
    )


def truncated_crops(
    objects: Sequence[SourceObject],
    *,
    beyond: float = 0.5,
    shares: tuple[float, float] = DEFAULT_SHARES,
    per_object: int = 1,
    seed: int = 0,
) -> Iterator[TruncatedCrop]:
    """``per_object`` crops of each whole object of ``objects`` (an object that touches the border
    or another object has no known whole shape, and is skipped), each at a side and a share drawn
    uniformly from ``SIDES`` and ``shares`` by a generator seeded with ``seed``: the same crops
    for the same arguments."""
    low, high = shares
    if not 0 < low <= high < 1:
        raise ValueError(f"shares must be (low, high) with 0 < low <= high < 1; got {shares!r}")
    rng = np.random.default_rng(seed)
    for source in objects:
        if not source.whole:
            continue
        image = cv2.cvtColor(cv2.imread(str(source.image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = source.mask()
        for _ in range(per_object):
            side = SIDES[int(rng.integers(len(SIDES)))]
            share = float(rng.uniform(low, high))
            yield truncate(image, mask, side, share, beyond, name=f"{source.image_path} ({side})")


def write_truncation_dataset(
    crops: Iterable[TruncatedCrop], out_dir: str | Path, fill: tuple[float, float, float] = SAM_PIXEL_MEAN
) -> dict:
    """Write ``crops`` as a COCOA-cls training set that :func:`~amodal_sam.data.readers.load_dataset`
    reads: each crop's canvas image (``out_dir/images/*.jpg``, the crop on its canvas, the margins
    ``fill``, as :mod:`amodal_sam.beyond` draws them at inference with the encoder's mean colour)
    with one object: its visible part and its whole mask on the canvas, the margins as its
    annotated occluder. Each image is ``scene_only``: training gives every sample its known
    occluders (the margins), as completion beyond the frame always has them, and never teaches
    single-object mode to extend where nothing is seen to hide the object. ``annotations.json``
    is written last, under a temporary name. Returns counts."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, shares = [], [], []
    for number, crop in enumerate(crops, start=1):
        file_name = f"images/{number:06d}.jpg"
        canvas = crop.canvas
        write_rgb(out_dir / file_name, image_on_canvas(crop.image, canvas, fill))
        images.append(
            {
                "id": number,
                "file_name": file_name,
                "height": canvas.size[0],
                "width": canvas.size[1],
                "source": crop.name,
                "scene_only": True,  # beyond the frame is scene mode: the margins are always known
            }
        )
        visible = canvas.place(crop.visible)
        annotations.append(
            {
                "id": number,
                "image_id": number,
                "category_id": 1,
                "iscrowd": 0,
                "segmentation": encode_rle(crop.truth),
                "visible_mask": encode_rle(visible),
                "occluder_mask": encode_rle(~canvas.image_region()),
                "bbox": mask_bbox(crop.truth),
                "area": int(crop.truth.sum()),
                "occlude_rate": float(1.0 - visible.sum() / crop.truth.sum()),
                "order": 1,
            }
        )
        shares.append(crop.share)
    content = {
        "info": {"description": "amodal_sam synthetic truncation: objects cut by the image border, on its canvas"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object"}],
    }
    with atomic_output(out_dir / "annotations.json") as temporary:
        temporary.write_text(json.dumps(content))
    return {"written": len(images), "mean_share": float(np.mean(shares)) if shares else float("nan")}
