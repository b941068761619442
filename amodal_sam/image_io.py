"""Reading and writing images and masks as files (RGB order, atomic writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from amodal_sam.atomic import atomic_output

PathLike = Union[str, Path]


def read_rgb(path: PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB image from a file; grayscale files are expanded, alpha is dropped."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image file {str(path)!r} does not exist or is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: PathLike) -> np.ndarray:
    """(H, W) bool mask from an image file: any non-zero pixel is the object."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ValueError(f"mask file {str(path)!r} does not exist or is not a readable image")
    if mask.ndim == 3:
        mask = mask[..., :3].max(axis=2)
    return mask > 0


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as an 8-bit PNG (0 / 255), atomically."""
    _write(path, mask.astype(np.uint8) * 255)


def write_rgb(path: PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image, atomically; the format follows the file suffix."""
    _write(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write(path: PathLike, pixels: np.ndarray) -> None:
    path = Path(path)
    with atomic_output(path) as temporary:
        ok, encoded = cv2.imencode(path.suffix or ".png", pixels)
        if not ok:
            raise ValueError(f"cannot encode an image for {str(path)!r}; use a .png or .jpg name")
        temporary.write_bytes(encoded.tobytes())
