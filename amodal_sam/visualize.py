"""Pictures of results: the visible and occluded parts over the image."""

from __future__ import annotations

import cv2
import numpy as np

VISIBLE_COLOR = (40, 200, 80)  # RGB green
OCCLUDED_COLOR = (230, 50, 200)  # RGB magenta


def overlay(image: np.ndarray, visible: np.ndarray, occluded: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture: visible part tinted green, occluded part magenta, and the
    amodal outline drawn in white. Masks are (H, W) bool."""
    picture = image.astype(np.float32)
    for mask, color in ((visible, VISIBLE_COLOR), (occluded, OCCLUDED_COLOR)):
        picture[mask] = (1 - alpha) * picture[mask] + alpha * np.asarray(color, dtype=np.float32)
    picture = picture.round().astype(np.uint8)
    contours, _ = cv2.findContours((visible | occluded).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, (255, 255, 255), max(1, round(max(image.shape[:2]) / 400)))
    return picture
