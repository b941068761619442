"""Boundary noise on masks: what imperfect annotation or segmentation does to a mask's edge.

Real visible masks (human polygons, an instance segmenter's output) miss or overrun an object's
boundary by a few pixels, and the masks of neighbouring objects rarely abut exactly. Training
moves its prompts' boundaries this way (``amodal_sam.train``), and ``benchmarks/mask_noise.py``
measures what such noise costs a model and the baselines. Masks are (H, W) bool arrays.
"""

from __future__ import annotations

import cv2
import numpy as np


def moved_boundary(mask: np.ndarray, radius: int, grow: bool) -> np.ndarray:
    """(H, W) bool ``mask`` with its boundary moved ``radius`` pixels outwards (``grow``) or
    inwards, by a disc (OpenCV's elliptic kernel of side ``2 radius + 1``); an erosion that would
    leave nothing returns the mask unchanged."""
    if radius < 0:
        raise ValueError(f"radius must be a non-negative number of pixels; got {radius!r}")
    if radius == 0:
        return np.asarray(mask, dtype=bool).copy()
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    operation = cv2.dilate if grow else cv2.erode
    moved = operation(np.asarray(mask, dtype=np.uint8), kernel).astype(bool)
    return moved if moved.any() else np.asarray(mask, dtype=bool).copy()
