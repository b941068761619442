"""Pixel counts between two sets of masks of one image, without (N, H * W) products.

Scenes hold tens of objects on images of several megapixels; a dense product of flattened masks
would allocate N x H x W floats. Masks are compared only where their bounding boxes meet, on that
shared crop.
"""

from __future__ import annotations

import numpy as np


def mask_extents(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool -> (N, 4) int (row0, row1, col0, col1), half-open; (0, 0, 0, 0) for an
    empty mask."""
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    height, width = masks.shape[1:]
    extents = np.zeros((len(masks), 4), dtype=np.int64)
    filled = rows.any(axis=1)
    extents[filled, 0] = rows[filled].argmax(axis=1)
    extents[filled, 1] = height - rows[filled, ::-1].argmax(axis=1)
    extents[filled, 2] = cols[filled].argmax(axis=1)
    extents[filled, 3] = width - cols[filled, ::-1].argmax(axis=1)
    return extents


def pairwise_overlap(first: np.ndarray, second: np.ndarray, second_without: np.ndarray | None = None) -> np.ndarray:
    """(N, H, W) and (M, H, W) bool -> (N, M) int64: [i, j] = pixels in both ``first[i]`` and
    ``second[j]``, and not in ``second_without[j]`` when that (M, H, W) bool is given (so that
    ``second & ~second_without`` is never made whole)."""
    counts = np.zeros((len(first), len(second)), dtype=np.int64)
    a, b = mask_extents(first), mask_extents(second)
    row0, row1 = np.maximum(a[:, None, 0], b[None, :, 0]), np.minimum(a[:, None, 1], b[None, :, 1])
    col0, col1 = np.maximum(a[:, None, 2], b[None, :, 2]), np.minimum(a[:, None, 3], b[None, :, 3])
    for i, j in zip(*np.nonzero((row0 < row1) & (col0 < col1))):
        crop = (slice(row0[i, j], row1[i, j]), slice(col0[i, j], col1[i, j]))
        both = first[i][crop] & second[j][crop]
        if second_without is not None:
            both &= ~second_without[j][crop]
        counts[i, j] = np.count_nonzero(both)
    return counts
