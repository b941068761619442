"""What hides what in a scene: the rules on visible masks, the occlusion order and depth layers.

Masks are (N, H, W) bool arrays of one image, at its original resolution; every rule here is
plain numpy, shared by scene completion, evaluation and the ``scene`` command.

**Visible masks do not overlap**: a pixel is visible for one object only.
:func:`check_scene_masks` resolves a few pixels of annotation noise quietly (a contested pixel
goes to the smaller mask: a small object drawn over a larger one is usually in front of it) and
refuses real overlaps, naming the two masks. SAM's automatic masks overlap by design (parts
inside wholes); :func:`non_overlapping_masks` turns them into a scene first.

**Order**: object i hides object j when i's visible mask covers more of j's hidden part than j's
covers of i's (:func:`occlusion_order`): a completion only adds hidden pixels under what covers
the object, so whoever's visible pixels hold another's hidden part is in front of it. Claims of
under ``min_share`` of the hidden object's area are noise. Scene mode reads j's hidden part
joined with its visible part's convex hull (``hulls``): a completion's decision leaves out hidden
pixels it is not sure of (it is chosen for AIoU), yet where i's visible pixels lie in j's hull, j
most likely continues behind i; the hull alone is the simple rule "more of my visible part lies
in your hull", and a completion past the hull adds its own claims. :func:`depth_layers` then
numbers the layers front to back; a cycle is broken at its weakest edge and reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amodal_sam.mask_overlap import pairwise_overlap

NOISE_SHARE = 0.05  # overlaps up to this share of the smaller mask are annotation noise
MOSTLY_INSIDE = 0.5  # a mask with more than this share inside another is a part of it
MIN_ORDER_SHARE = 0.01  # an occlusion claim must cover this share of the hidden object's area


def check_scene_masks(masks: np.ndarray, labels: list[str] | None = None) -> np.ndarray:
    """(N, H, W) bool visible masks of one scene -> the same masks with no pixel in two of them.

    Overlaps of at most :data:`NOISE_SHARE` of the smaller mask are resolved quietly: each
    contested pixel stays with the smaller mask (fewer pixels; the lower index on a tie) and
    leaves the other. Larger overlaps raise ``ValueError`` naming the two masks (a mask lying
    mostly inside another, more than :data:`MOSTLY_INSIDE` of it, is called a part of the other),
    as does an empty mask; mask k is named ``labels[k]``, by default ``visible_masks[k]``.
    """
    masks = np.asarray(masks, dtype=bool)
    if len(masks) == 0:
        return masks
    names = labels or [f"visible_masks[{k}]" for k in range(len(masks))]
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    for i in np.flatnonzero(areas == 0):
        raise ValueError(f"{names[i]} is empty: every object needs at least one visible pixel")
    shared = pairwise_overlap(masks, masks)  # (N, N) pixels in both masks
    np.fill_diagonal(shared, 0)
    for i, j in zip(*np.nonzero(np.triu(shared))):
        small, large = (i, j) if (areas[i], i) < (areas[j], j) else (j, i)
        share = shared[i, j] / areas[small]
        if share > MOSTLY_INSIDE:
            raise ValueError(
                f"{names[small]} lies mostly inside {names[large]} ({share:.0%} of its pixels): a part of "
                "a whole? Visible masks of a scene must not overlap (for SAM's automatic masks, use "
                "non_overlapping_masks)"
            )
        if share > NOISE_SHARE:
            raise ValueError(
                f"{names[i]} and {names[j]} overlap on {int(shared[i, j])} pixels ({share:.0%} of the "
                f"smaller): a pixel is visible for one object only (up to {NOISE_SHARE:.0%} is resolved as noise)"
            )
    if not shared.any():
        return masks
    owner = _smallest_owner(masks, areas)
    return owner[None] == np.arange(len(masks))[:, None, None]


def _smallest_owner(masks: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """(H, W) int: at each pixel the smallest mask covering it (lower index on a tie), -1 none."""
    owner = np.full(masks.shape[1:], -1, dtype=np.int64)
    for index in sorted(range(len(masks)), key=lambda k: (-areas[k], -k)):  # largest first, smallest on top
        owner[masks[index]] = index
    return owner


def non_overlapping_masks(masks: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping masks (SAM's automatic ones) -> (M, H, W) non-overlapping masks and the (M,)
    indices of the masks kept.

    A mask lying mostly inside a larger kept one (more than :data:`MOSTLY_INSIDE` of its
    pixels) is a part of that whole and is dropped: scenes complete objects, not their parts.
    The remaining overlaps go to the smaller mask, as in :func:`check_scene_masks`; masks left
    with fewer than ``min_area`` pixels are dropped.
    """
    masks = np.asarray(masks, dtype=bool)
    areas = masks.sum(axis=(1, 2))
    kept: list[int] = []
    for index in sorted(range(len(masks)), key=lambda k: (-areas[k], k)):
        if areas[index] == 0:
            continue
        inside = [(masks[index] & masks[whole]).sum() / areas[index] for whole in kept]
        if not inside or max(inside) <= MOSTLY_INSIDE:
            kept.append(index)
    if not kept:
        return masks[:0], np.zeros(0, dtype=np.int64)
    owner = _smallest_owner(masks[kept], areas[kept])
    resolved = owner[None] == np.arange(len(kept))[:, None, None]
    large_enough = resolved.sum(axis=(1, 2)) >= max(1, min_area)
    order = np.argsort(np.asarray(kept)[large_enough], kind="stable")  # back to the input order
    return resolved[large_enough][order], np.asarray(kept)[large_enough][order]


def occlusion_strengths(
    others_visible: np.ndarray,
    amodal: np.ndarray,
    visible: np.ndarray | None = None,
    hulls: np.ndarray | None = None,
) -> np.ndarray:
    """(N, M) int: [i, j] = pixels of j's hidden part (``amodal[j] & ~visible[j]``, joined with
    ``hulls[j] & ~visible[j]`` when the (M, H, W) convex hulls are given) that lie in
    ``others_visible[i]``. ``others_visible``: (N, H, W) bool, a scene's visible masks;
    ``amodal`` and ``visible``: (M, H, W) bool, its completions and their visible masks, all of
    them (``visible`` None: ``others_visible``) or a chunk of them."""
    evidence = amodal if hulls is None else amodal | hulls
    return pairwise_overlap(others_visible, evidence, second_without=others_visible if visible is None else visible)


def order_from_strengths(
    strengths: np.ndarray, amodal_areas: np.ndarray, min_share: float = MIN_ORDER_SHARE
) -> np.ndarray:
    """(N, N) bool ``occludes`` from (N, N) :func:`occlusion_strengths` and the (N,) amodal areas:
    [i, j] when ``strengths[i, j] > strengths[j, i]`` and it is at least ``min_share`` of j's
    area (and one pixel). At most one direction per pair."""
    floor = np.maximum(1, min_share * np.asarray(amodal_areas))[None, :]
    return (strengths > strengths.T) & (strengths >= floor)


def occlusion_order(
    visible: np.ndarray, amodal: np.ndarray, min_share: float = MIN_ORDER_SHARE, hulls: np.ndarray | None = None
) -> np.ndarray:
    """(N, N) bool ``occludes``: [i, j] when i lies in front of j and hides part of it.

    i hides j when i's visible mask holds more of j's hidden part than j's holds of i's, and at
    least ``min_share`` of j's amodal area (and one pixel). At most one direction per pair.
    ``hulls``: (N, H, W) convex hulls of the visible masks, joined with the hidden parts as
    evidence (scene mode; see the module docstring).
    """
    strengths = occlusion_strengths(visible, amodal, hulls=hulls)
    return order_from_strengths(strengths, amodal.reshape(len(amodal), -1).sum(axis=1), min_share)


@dataclass
class DepthLayers:
    """Depth layers from an ``occludes`` relation.

    Attributes:
        layers: (N,) int, 0 = nothing lies in front; otherwise 1 + the deepest layer in front.
        occludes: (N, N) bool, the relation with the broken edges removed (acyclic).
        broken: [(i, j), ...] edges "i in front of j" removed to break cycles, weakest first found.
    """

    layers: np.ndarray
    occludes: np.ndarray
    broken: list[tuple[int, int]]


def depth_layers(occludes: np.ndarray, strengths: np.ndarray | None = None) -> DepthLayers:
    """Layers by topological order of ``occludes`` ((N, N) bool, [i, j] = i in front of j).

    Objects with nothing in front are layer 0; every other object is 1 + the deepest layer of
    the objects in front of it. When every remaining object has something in front (a cycle),
    the cycle's weakest edge (smallest ``strengths[i, j]``, (N, N); all equal by default, then
    the first found) is removed and reported. Never loops forever: each round takes away an
    object or an edge.
    """
    relation = np.array(occludes, dtype=bool)
    count = len(relation)
    weights = np.ones((count, count)) if strengths is None else np.asarray(strengths, dtype=np.float64)
    layers = np.zeros(count, dtype=np.int64)
    remaining = np.ones(count, dtype=bool)
    broken: list[tuple[int, int]] = []
    while remaining.any():
        blocked = relation[remaining][:, remaining].any(axis=0)  # something remaining in front
        free = np.flatnonzero(remaining)[~blocked]
        if free.size:
            for j in free:
                fronts = np.flatnonzero(relation[:, j])
                layers[j] = 1 + layers[fronts].max() if fronts.size else 0
            remaining[free] = False
            continue
        i, j = _weakest_cycle_edge(relation, remaining, weights)
        relation[i, j] = False
        broken.append((int(i), int(j)))
    return DepthLayers(layers=layers, occludes=relation, broken=broken)


def _weakest_cycle_edge(relation: np.ndarray, remaining: np.ndarray, weights: np.ndarray) -> tuple[int, int]:
    """The weakest edge of a cycle among the remaining objects (each has one in front of it):
    walk backwards to a front object until one repeats, then pick the cycle's weakest edge."""
    node = int(np.flatnonzero(remaining)[0])
    path: list[int] = []
    seen: dict[int, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = int(np.flatnonzero(relation[:, node] & remaining)[0])  # one in front of it
    cycle = path[seen[node] :]
    edges = [(cycle[(k + 1) % len(cycle)], cycle[k]) for k in range(len(cycle))]  # (front, behind)
    return min(edges, key=lambda edge: weights[edge])
