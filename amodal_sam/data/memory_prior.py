"""A stand-in for a video's shape memory, made from one image's truth, to train the memory prompt.

In video (:mod:`amodal_sam.video_memory`) an object's memory is the pixels earlier frames showed it
to cover, carried into the current frame by the measured motion of its visible part. It is close
to the object's whole shape, but moved a little (motion is measured on a part of the object, and
the object deforms), its edge off by a few pixels, and it lacks whatever part of the object no
earlier frame showed. :func:`memory_prior` makes such a memory from the true amodal mask of a
training sample, so the decoder learns how far to trust one: where the image agrees with it and
where it does not.

Masks are (H, W) bool arrays in the image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from amodal_sam.mask_noise import moved_boundary


@dataclass(frozen=True)
class PriorNoise:
    """How far a training memory strays from the truth.

    Attributes:
        rotation_deg: standard deviation of its rotation about the object's centre, degrees.
        log_scale: standard deviation of the log of its scale.
        shift: standard deviation of its translation, as a share of sqrt(the object's area).
        boundary_prob: chance its boundary is moved by 1 to about 4 % of sqrt(area) pixels.
        unseen_prob: chance a part of the hidden part was never seen: the hidden pixels on one
            side of a random line through the object are left out of it.
    """

    rotation_deg: float = 4.0
    log_scale: float = 0.05
    shift: float = 0.05
    boundary_prob: float = 0.5
    unseen_prob: float = 0.5


def memory_prior(
    amodal: np.ndarray, visible: np.ndarray, rng: np.random.Generator, noise: PriorNoise = PriorNoise()
) -> np.ndarray:
    """(H, W) bool: a shape memory as video would carry it into this image, made from the true
    ``amodal`` mask and the ``visible`` part (both (H, W) bool): part of the hidden part possibly
    never seen, then moved by a small random similarity transform about the object's centre and
    its boundary possibly moved (empty when ``amodal`` is, or when the move takes it out of the
    image)."""
    if not amodal.any():
        return np.zeros_like(amodal, dtype=bool)
    seen = amodal.copy()
    ys, xs = np.nonzero(amodal)
    centre = np.array([xs.mean(), ys.mean()])
    if rng.random() < noise.unseen_prob:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        rows, cols = np.indices(amodal.shape)
        side = (cols - centre[0]) * np.cos(angle) + (rows - centre[1]) * np.sin(angle) > 0
        seen &= ~(side & ~visible)
    size = np.sqrt(amodal.sum())
    matrix = cv2.getRotationMatrix2D(
        (float(centre[0]), float(centre[1])),
        float(rng.normal(0.0, noise.rotation_deg)),
        float(np.exp(rng.normal(0.0, noise.log_scale))),
    )
    matrix[:, 2] += rng.normal(0.0, noise.shift * size, 2)
    height, width = amodal.shape
    moved = cv2.warpAffine(seen.astype(np.uint8), matrix, (width, height), flags=cv2.INTER_NEAREST) > 0
    if moved.any() and rng.random() < noise.boundary_prob:
        radius = int(rng.integers(1, max(2, round(0.04 * size)) + 1))
        moved = moved_boundary(moved, radius, grow=bool(rng.random() < 0.5))
    return moved
