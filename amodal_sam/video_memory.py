"""Object permanence in video: each object's shape remembered and carried by its motion.

What a per-frame completion cannot know, an earlier frame often showed: the part of a pedestrian
behind the car was visible a second ago. Each object keeps a **shape memory**, the pixels it was
seen to cover, moved from frame to frame by the motion of its visible part; in a new frame the
memory's pixels that are not visible now, and that something can hide (the known occluders in
scene mode; with none known, at most the area the object lost, nearest its visible part, and the
visible part's hull next to them), are its hidden part, joined with the model's own completion of
that frame. Memory holds only what was seen (the model's guesses are not fed back), so errors of
one frame do not compound.

Motion (:func:`object_motion`): a similarity transform (rotation, uniform scale, translation) fitted
with RANSAC to corners of the object's visible part tracked by pyramidal Lucas-Kanade optical flow
(OpenCV); corners that land off the object now (on its occluder) are left out. Where it cannot be
measured (too few corners: the object is wholly or almost wholly hidden) the last measured motion
goes on (constant velocity), so a hidden object keeps moving.

All masks are (H, W) bool in the frame's pixels; transforms are 2 x 3 float64 matrices mapping
(x, y) of one frame to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from amodal_sam.geometry import convex_hull

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
# Pixels on a side of the window Lucas-Kanade matches around each corner: a quarter of the side of
# a square of the object's visible area, within these bounds. Corners lie at least half a window
# inside the visible part: a window reaching past its edge mixes in what lies next to it, often a
# static occluder, and would track that instead.
FLOW_WINDOW = (7, 21)
MAX_FRAME_SCALE = 1.2  # a fit that grows or shrinks the object more than this in one frame is wrong


@dataclass(frozen=True)
class MemoryRule:
    """How shape memory is kept.

    Attributes:
        min_points: tracked corners needed to measure an object's motion (fewer: constant velocity).
        reset_share: when less than this share of an object's visible pixels lies in its carried
            memory, and it shows at least ``reset_area`` of the memory's area (enough of it to
            say where it is), it has reappeared somewhere else: the memory is dropped and starts
            afresh.
        reset_area: see ``reset_share``; a smaller visible part outside the memory (a sliver
            past the occluder's edge, a few pixels of mask noise) leaves the memory as it is.
        sliver: hidden parts thinner than about 2 x this share of the side of a square of the
            memory's area (memory that a deforming object left behind at its edges; at least 1
            pixel, 0: kept) are removed by a morphological opening.
        single_sliver: the same where no occluder is known (single-object mode): there more of
            what memory holds outside the visible part is the object's own deformation.
        single_gap: where no occluder is known, the hidden part also takes the pixels of the
            visible part's convex hull within this share of the memory's size of it: memory moved
            by an imperfect motion leaves a gap between it and the visible part's outline (at least
            1 pixel; 0: none).
        single_min_lost: where no occluder is known, memory shows a hidden part only once the
            object has lost at least this share of the carried memory's area (until then it is
            remembered, not shown): a deforming body's area, and the scale its motion is measured
            with, vary by that much with nothing in front of it.
    """

    min_points: int = 6
    reset_share: float = 0.3
    reset_area: float = 0.5
    sliver: float = 0.015
    single_sliver: float = 0.04
    single_gap: float = 0.05
    single_min_lost: float = 0.35


@dataclass(frozen=True)
class ShapeMemory:
    """One object's memory after a frame: ``shape`` (H, W) bool, the pixels it was seen to cover,
    carried into that frame; ``velocity`` the translation of its centre in the last frame whose
    motion was measured."""

    shape: np.ndarray
    velocity: np.ndarray = field(default_factory=IDENTITY.copy)


def translation(offset: np.ndarray) -> np.ndarray:
    """The 2 x 3 transform moving every point by ``offset`` (dx, dy)."""
    return np.array([[1.0, 0.0, float(offset[0])], [0.0, 1.0, float(offset[1])]])


def centre_shift(mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The translation that moves the centre of ``mask`` (H, W) bool where ``matrix`` moves it:
    the part of a motion that may go on while the object is hidden (a rotation or scale kept up
    frame after frame would spin or shrink it away)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return translation(matrix[:, 2])
    centre = np.array([xs.mean(), ys.mean(), 1.0])
    return translation(matrix @ centre - centre[:2])


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2 x 3 transform."""
    return cv2.invertAffineTransform(matrix)


def warp_mask(mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``mask`` moved by ``matrix``, same (H, W); pixels moved outside the frame are lost."""
    if np.array_equal(matrix, IDENTITY):
        return mask.copy()
    height, width = mask.shape
    moved = cv2.warpAffine(mask.astype(np.float32), matrix, (width, height), flags=cv2.INTER_LINEAR)
    return moved > 0.5


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def object_motion(
    previous_gray: np.ndarray,
    current_gray: np.ndarray,
    previous_visible: np.ndarray,
    current_visible: np.ndarray,
    min_points: int = MemoryRule.min_points,
) -> np.ndarray | None:
    """The similarity transform taking the object from the previous frame to the current one,
    from corners inside its ``previous_visible`` part (at least half a :data:`FLOW_WINDOW` from
    its edge) tracked into ``current_gray`` (uint8 (H, W) frames) and kept where they land as
    far inside ``current_visible``: a window that reaches the occluder arriving in this frame
    tracks the occluder. A similarity needs twice ``min_points`` RANSAC
    inliers; with fewer the motion is the inliers' median translation (a rotation and scale
    from a handful of points, compounded over hidden frames, would wreck the memory). None when
    fewer than ``min_points`` corners survive or the fit scales the object by more than
    :data:`MAX_FRAME_SCALE` (or less than its inverse) in one frame."""
    side = np.sqrt(np.count_nonzero(previous_visible)) / 4
    window = int(np.clip(side, *FLOW_WINDOW)) | 1
    inside = cv2.erode(previous_visible.astype(np.uint8), _disc(window // 2))
    if not inside.any() or not current_visible.any():
        return None
    corners = cv2.goodFeaturesToTrack(previous_gray, maxCorners=300, qualityLevel=0.01, minDistance=4, mask=inside)
    if corners is None or len(corners) < min_points:
        return None
    tracked, status, _ = cv2.calcOpticalFlowPyrLK(
        previous_gray, current_gray, corners, None, winSize=(window, window), maxLevel=2
    )
    landed = cv2.erode(current_visible.astype(np.uint8), _disc(window // 2)).astype(bool)
    xy = np.rint(tracked.reshape(-1, 2)).astype(int)
    in_frame = (xy[:, 0] >= 0) & (xy[:, 0] < landed.shape[1]) & (xy[:, 1] >= 0) & (xy[:, 1] < landed.shape[0])
    keep = status.ravel().astype(bool) & in_frame
    keep[keep] = landed[xy[keep, 1], xy[keep, 0]]
    if keep.sum() < min_points:
        return None
    start, end = corners.reshape(-1, 2)[keep], tracked.reshape(-1, 2)[keep]
    matrix, inliers = cv2.estimateAffinePartial2D(start, end, method=cv2.RANSAC, ransacReprojThreshold=3.0)
    if matrix is None or inliers is None or int(inliers.sum()) < min_points:
        return None
    if int(inliers.sum()) < 2 * min_points:
        chosen = inliers.ravel().astype(bool)
        return translation(np.median(end[chosen] - start[chosen], axis=0))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not 1 / MAX_FRAME_SCALE <= scale <= MAX_FRAME_SCALE:
        return None
    return matrix


def carry(memory: ShapeMemory, motion: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``memory``'s shape carried into the next frame, (H, W) bool, and its velocity after it:
    moved by ``motion`` (its centre's shift becomes the velocity) or, not measured (None), by its
    velocity."""
    if motion is None:
        return warp_mask(memory.shape, memory.velocity), memory.velocity
    return warp_mask(memory.shape, motion), centre_shift(memory.shape, motion)


def reappeared_elsewhere(carried: np.ndarray, visible: np.ndarray, rule: MemoryRule = MemoryRule()) -> bool:
    """The object shows a sizeable ``visible`` part (at least ``rule.reset_area`` of the
    ``carried`` memory's area) of which less than ``rule.reset_share`` lies in the memory: it is
    somewhere else than memory says, and memory starts afresh."""
    seen = int(visible.sum())
    sizeable = seen >= rule.reset_area * np.count_nonzero(carried)
    return bool(seen and sizeable and np.count_nonzero(carried & visible) < rule.reset_share * seen)


def recalled_shape(
    memory: ShapeMemory | None, motion: np.ndarray | None, visible: np.ndarray, rule: MemoryRule = MemoryRule()
) -> np.ndarray | None:
    """What memory says of an object's whole shape in this frame, before it is completed: its
    shape carried by ``motion`` (:func:`carry`), (H, W) bool; None when nothing is remembered or
    the object has reappeared elsewhere (:func:`reappeared_elsewhere`). A model with a memory
    input reads it as a prompt."""
    if memory is None:
        return None
    carried, _ = carry(memory, motion)
    return None if reappeared_elsewhere(carried, visible, rule) else carried


def within_lost_area(hidden: np.ndarray, carried: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """The pixels of ``hidden`` (H, W) bool nearest the ``visible`` part, as many as the object
    lost: the ``carried`` memory's area minus the visible area (none when it lost nothing). An
    object that no occluder hides keeps about its area as it moves and deforms, so memory outside
    its visible part is then deformation, not a hidden part; one that something covers lost area,
    and its hidden part adjoins what is still seen. Ties in distance are taken in raster order."""
    lost = int(np.count_nonzero(carried)) - int(np.count_nonzero(visible))
    if lost <= 0:
        return np.zeros_like(hidden)
    if np.count_nonzero(hidden) <= lost:
        return hidden
    distance = cv2.distanceTransform((~visible).astype(np.uint8), cv2.DIST_L2, 3)
    rows, cols = np.nonzero(hidden)
    nearest = np.argsort(distance[rows, cols], kind="stable")[:lost]
    kept = np.zeros_like(hidden)
    kept[rows[nearest], cols[nearest]] = True
    return kept


def remembered_hidden(
    memory: ShapeMemory | None,
    motion: np.ndarray | None,
    visible: np.ndarray,
    allowed: np.ndarray | None,
    rule: MemoryRule = MemoryRule(),
) -> tuple[np.ndarray, ShapeMemory]:
    """One frame of one object: its hidden part as memory says (H, W) bool, and the memory after
    this frame.

    Arguments:
        memory: the object's memory after the previous frame (None: nothing remembered yet).
        motion: its measured motion from the previous frame (None: not measurable; the memory's
            velocity, the last measured motion of its centre, is used).
        visible: its visible part in this frame (may be empty: wholly hidden, or gone).
        allowed: where a hidden part may lie in this frame (what can hide it: the known
            occluders); None when nothing is known of its occluders (single-object mode): the
            hidden part is then at most the area it lost (:func:`within_lost_area`).
    """
    if memory is None:
        return np.zeros_like(visible), ShapeMemory(visible.copy())
    carried, velocity = carry(memory, motion)
    if reappeared_elsewhere(carried, visible, rule):
        return np.zeros_like(visible), ShapeMemory(visible.copy())
    carried_area = np.count_nonzero(carried)
    candidate = carried & ~visible
    if allowed is not None:
        candidate &= allowed
    sliver = rule.sliver if allowed is not None else rule.single_sliver
    hidden = candidate
    if sliver > 0 and hidden.any():
        radius = max(1, round(sliver * np.sqrt(carried_area)))
        hidden = cv2.morphologyEx(hidden.astype(np.uint8), cv2.MORPH_OPEN, _disc(radius)).astype(bool)
    if allowed is None:
        hidden = within_lost_area(hidden, carried, visible)
        candidate = within_lost_area(candidate, carried, visible)
    # A strip thinner than a sliver everywhere (an occluder starting to cover the object a few
    # pixels a frame) is not shown yet but remembered, so it grows into a hidden part as it advances.
    remembered = hidden if hidden.any() else candidate
    memory_after = ShapeMemory(visible | remembered, velocity=velocity)
    if allowed is None:
        if carried_area - np.count_nonzero(visible) < rule.single_min_lost * carried_area:
            return np.zeros_like(visible), memory_after
        if rule.single_gap > 0 and hidden.any() and visible.any():
            gap = max(1, round(rule.single_gap * np.sqrt(carried_area)))
            near = cv2.dilate(hidden.astype(np.uint8), _disc(gap)).astype(bool)
            hidden = hidden | (convex_hull(visible) & near & ~visible)
    return hidden, memory_after
