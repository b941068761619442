"""Checks of user input; each failure is a ``ValueError`` naming the argument and what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ArrayLike = Sequence


def check_image(image: object) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"image must be a numpy array of shape (H, W, 3), dtype uint8, RGB; got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be RGB with shape (H, W, 3); got shape {image.shape} "
            "(convert grayscale or RGBA images to RGB first)"
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8 (0..255); got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must not be empty; got shape {image.shape}")
    return image


def check_mask(
    mask: object, image_size: tuple[int, int], name: str = "visible_mask", *, allow_empty: bool = False
) -> np.ndarray:
    """``mask`` as an (H, W) bool array matching ``image_size``; it must not be empty unless
    ``allow_empty`` (an occluder mask may be: nothing lies in front of the object).

    bool masks are taken as they are; uint8 masks count any non-zero pixel as the object.
    """
    if not isinstance(mask, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of shape {image_size}, dtype bool; got {type(mask).__name__}")
    if mask.dtype not in (np.bool_, np.uint8):
        raise ValueError(f"{name} must have dtype bool (or uint8, non-zero = object); got {mask.dtype}")
    if mask.ndim != 2:
        raise ValueError(f"{name} must be 2-D with shape (H, W) = {image_size}; got shape {mask.shape}")
    if mask.shape != tuple(image_size):
        raise ValueError(
            f"{name} has shape {mask.shape} but the image is {tuple(image_size)} (H, W); "
            "masks must match the image size"
        )
    mask = mask.astype(bool, copy=False)
    if not allow_empty and not mask.any():
        raise ValueError(f"{name} is empty: it must mark at least one visible pixel of the object")
    return mask


def check_points(
    point_coords: ArrayLike | None, point_labels: ArrayLike | None, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray] | None:
    """(P, 2) (x, y) pixel coordinates inside the image and (P,) labels in {0, 1}, or None."""
    if point_coords is None and point_labels is None:
        return None
    if point_coords is None or point_labels is None:
        raise ValueError("point_coords and point_labels must be given together")
    coords = np.asarray(point_coords, dtype=np.float64)
    labels = np.asarray(point_labels)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
        raise ValueError(f"point_coords must have shape (P, 2) of (x, y) pixels, P >= 1; got shape {coords.shape}")
    if labels.shape != (len(coords),):
        raise ValueError(f"point_labels must have shape ({len(coords)},), one per point; got shape {labels.shape}")
    if not np.isfinite(coords).all():
        raise ValueError(f"point_coords must be finite pixel coordinates; got {coords.tolist()}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"point_labels must be 1 (object) or 0 (background); got {labels.tolist()}")
    height, width = image_size
    outside = (coords[:, 0] < 0) | (coords[:, 0] >= width) | (coords[:, 1] < 0) | (coords[:, 1] >= height)
    if outside.any():
        raise ValueError(
            f"point_coords {coords[outside].tolist()} lie outside the image (x in [0, {width}), y in [0, {height}))"
        )
    return coords, labels.astype(np.int64)


def check_decoder_batch(decoder_batch: int | None) -> int | None:
    """``decoder_batch`` (instances per decoder call) when it is a positive integer or None."""
    if decoder_batch is not None and (not isinstance(decoder_batch, int) or decoder_batch < 1):
        raise ValueError(f"decoder_batch must be a positive integer or None; got {decoder_batch!r}")
    return decoder_batch


def check_box(box: ArrayLike | None, image_size: tuple[int, int]) -> np.ndarray | None:
    """(4,) box (x0, y0, x1, y1) in pixels with x0 < x1, y0 < y1, inside the image, or None."""
    if box is None:
        return None
    values = np.asarray(box, dtype=np.float64)
    if values.shape != (4,):
        raise ValueError(f"box must be (x0, y0, x1, y1), shape (4,); got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"box must be finite pixel coordinates; got {values.tolist()}")
    x0, y0, x1, y1 = values
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"box must have x0 < x1 and y0 < y1; got {values.tolist()}")
    height, width = image_size
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ValueError(f"box {values.tolist()} lies outside the image (x in [0, {width}], y in [0, {height}])")
    return values
