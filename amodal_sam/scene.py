"""Scene mode: every object of an image completed together, the others as known occluders.

Users often have every object's visible mask (an instance segmenter, SAM's automatic masks,
their own annotation); then what can hide an object is known: the other objects' visible masks
and any background (stuff) regions. Each object is completed with those as its known occluders
(:meth:`AmodalSAM.complete` with ``occluder_masks``: the model reads them as a prompt and hides
parts only under them), and the occlusion order follows from the completions joined with the
visible parts' convex hulls
(:mod:`amodal_sam.occlusion`). One encoder pass per image, N decoder calls (batched on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from amodal_sam.canvas import Canvas, OnCanvas
from amodal_sam.geometry import convex_hull
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import AmodalResult
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.occlusion import (
    check_scene_masks,
    depth_layers,
    non_overlapping_masks,
    occlusion_strengths,
    order_from_strengths,
)
from amodal_sam.validation import check_mask

# Objects x pixels completed together in scene mode (64 M: a few hundred MB of masks and logits at a
# time); memory then grows with N x H x W only through the scene's own amodal masks.
SCENE_CHUNK_PIXELS = 2**26


@dataclass
class Scene(OnCanvas):
    """N objects of one image, completed together. Masks are (N, H, W) bool at the image's size.

    Attributes:
        amodal: the completed objects.
        visible: the visible masks the completion started from (overlaps resolved, see
            :func:`amodal_sam.occlusion.check_scene_masks`); the caller's own (N, H, W) bool array
            when nothing needed resolving (not copied: at 12 megapixels each mask is 12 MB).
        results: N :class:`AmodalResult`, as :meth:`AmodalPredictor.complete` gives them.
        occludes: (N, N) bool, [i, j] = i lies in front of j and hides part of it (acyclic).
        layers: (N,) int depth layer, 0 = nothing in front of it.
        broken: [(i, j), ...] edges "i in front of j" dropped to break occlusion cycles.
        canvas: with ``beyond`` (:mod:`amodal_sam.beyond`), the canvas that ``amodal``,
            ``visible`` and the results' masks lie on, (N, H_c, W_c); None: the image's (N, H, W).
    """

    amodal: np.ndarray
    visible: np.ndarray
    results: list[AmodalResult]
    occludes: np.ndarray
    layers: np.ndarray
    broken: list[tuple[int, int]]
    canvas: Canvas | None = None

    def __len__(self) -> int:
        return len(self.amodal)

    @property
    def occluded(self) -> np.ndarray:
        """(N, H, W) bool hidden parts, ``amodal & ~visible``."""
        return self.amodal & ~self.visible

    @property
    def scores(self) -> np.ndarray:
        """(N,) float32 predicted IoU of each completion."""
        return np.asarray([r.score for r in self.results], dtype=np.float32)

    @property
    def hidden_share(self) -> np.ndarray:
        """(N,) float share of each completed object that is hidden (0 where nothing is)."""
        hidden = np.array([np.count_nonzero(a & ~v) for a, v in zip(self.amodal, self.visible)], dtype=np.int64)
        return hidden / np.maximum(self.amodal.sum(axis=(1, 2)), 1)


def known_occluders(
    visible: np.ndarray, stuff: np.ndarray | None = None, band: int = 0, objects: range | None = None
) -> np.ndarray:
    """(M, H, W) bool: what can hide each of the M ``objects`` (indices into the (N, H, W)
    ``visible`` masks; default all N), the union of the other objects' visible masks and the
    (S, H, W) ``stuff`` regions, grown by ``band`` pixels (for masks that do not quite touch; the
    object's own mask is never grown) and never over the object's own visible part."""
    return _occluders_of(visible, scene_cover(visible, stuff), band, objects)


def scene_cover(visible: np.ndarray, stuff: np.ndarray | None = None) -> np.ndarray:
    """(H, W) bool: every pixel of the (N, H, W) ``visible`` masks and (S, H, W) ``stuff``."""
    everything = visible.any(axis=0)
    if stuff is not None and len(stuff):
        everything |= stuff.any(axis=0)
    return everything


def _occluders_of(visible: np.ndarray, cover: np.ndarray, band: int, objects: range | None) -> np.ndarray:
    """:func:`known_occluders` from the scene's (H, W) ``cover`` (:func:`scene_cover`)."""
    objects = range(len(visible)) if objects is None else objects
    occluders = np.empty((len(objects), *visible.shape[1:]), dtype=bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1)) if band > 0 else None
    for row, index in enumerate(objects):
        own = visible[index]
        others = cover & ~own
        occluders[row] = others if kernel is None else cv2.dilate(others.astype(np.uint8), kernel).astype(bool) & ~own
    return occluders


MAX_BAND_SHARE = 0.05  # the known occluders may grow by at most this share of the image's longer side


def check_occluder_band(band: int, image_size: tuple[int, int], name: str = "occluder_band") -> int:
    """``band`` when it is a whole number of pixels from 0 to :data:`MAX_BAND_SHARE` of the
    image's longer side (at least 1): it bridges the pixel or two that imperfect masks leave
    between neighbours, not whole regions. Otherwise a ValueError naming ``name``."""
    largest = max(1, int(MAX_BAND_SHARE * max(image_size)))
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 0 <= band <= largest:
        raise ValueError(
            f"{name} must be a whole number of pixels from 0 to {largest} ({MAX_BAND_SHARE:.0%} of this "
            f"{image_size[1]} x {image_size[0]} image's longer side); got {band!r}"
        )
    return int(band)


def scene_chunk(image_size: tuple[int, int]) -> int:
    """How many objects of a scene on an image of ``image_size`` (H, W) are completed together:
    as many as keep one (chunk, H, W) mask under :data:`SCENE_CHUNK_PIXELS` pixels, at least one."""
    return max(1, SCENE_CHUNK_PIXELS // (image_size[0] * image_size[1]))


def check_scene_inputs(
    visible_masks: np.ndarray | Sequence[np.ndarray],
    image_size: tuple[int, int],
    stuff_masks: np.ndarray | Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The user's visible masks ((N, H, W) array or list of N (H, W) masks) and stuff masks as
    (N, H, W) / (S, H, W) bool arrays of the image's size, overlaps between objects resolved;
    errors name the argument and index."""
    height, width = image_size
    if (
        isinstance(visible_masks, np.ndarray)
        and visible_masks.dtype == np.bool_
        and visible_masks.ndim == 3
        and len(visible_masks)
    ):
        masks = visible_masks  # checked in place: an (N, H, W) array is not copied
        for index, mask in enumerate(masks):
            check_mask(mask, image_size, f"visible_masks[{index}]")
    elif len(visible_masks):
        masks = np.stack([check_mask(m, image_size, f"visible_masks[{i}]") for i, m in enumerate(visible_masks)])
    else:
        masks = np.zeros((0, height, width), bool)
    masks = check_scene_masks(masks)
    stuff = None
    if stuff_masks is not None and len(stuff_masks):
        stuff = np.stack(
            [check_mask(m, image_size, f"stuff_masks[{i}]", allow_empty=True) for i, m in enumerate(stuff_masks)]
        )
    return masks, stuff


def complete_encoded_scene(
    model: AmodalSAM,
    image: EncodedImage,
    visible_masks: np.ndarray,
    *,
    stuff_masks: np.ndarray | None = None,
    multimask: bool = True,
    hidden_threshold: float | None = None,
    decoder_batch: int | None = None,
    occluder_band: int = 0,
    memory_masks: np.ndarray | None = None,
) -> Scene:
    """Complete the N objects of an encoded image together and order them; occlusion cycles
    broken on the way are in ``Scene.broken`` (the predictor warns about them).

    Arguments:
        model: the amodal model.
        image: the encoded image (:meth:`AmodalSAM.encode`).
        visible_masks: (N, H, W) bool, checked and non-overlapping (:func:`check_scene_inputs`).
        stuff_masks: (S, H, W) bool background regions: they can hide objects, not completed.
        multimask, hidden_threshold, decoder_batch: as :meth:`AmodalSAM.complete`.
        occluder_band: grow the known occluders by this many pixels (see :func:`known_occluders`).
        memory_masks: (N, H, W) bool shape memories of the objects (video), as
            :meth:`AmodalSAM.complete` reads them.
    """
    check_occluder_band(occluder_band, visible_masks.shape[1:])
    count = len(visible_masks)
    if count == 0:
        return Scene(
            amodal=visible_masks.copy(),
            visible=visible_masks.copy(),
            results=[],
            occludes=np.zeros((0, 0), bool),
            layers=np.zeros(0, np.int64),
            broken=[],
        )
    amodal = np.empty_like(visible_masks)
    strengths = np.zeros((count, count), np.int64)
    cover = scene_cover(visible_masks, stuff_masks)
    results: list[AmodalResult] = []
    step = scene_chunk(visible_masks.shape[1:])
    for start in range(0, count, step):
        objects = range(start, min(count, start + step))
        completion = model.complete(
            image,
            visible_masks=visible_masks[start : objects.stop],
            occluder_masks=_occluders_of(visible_masks, cover, occluder_band, objects),
            multimask=multimask,
            hidden_threshold=hidden_threshold,
            decoder_batch=decoder_batch,
            memory_masks=None if memory_masks is None else memory_masks[start : objects.stop],
        )
        chunk = slice(start, objects.stop)
        amodal[chunk] = completion.amodal.cpu().numpy()
        hulls = np.stack([convex_hull(v) for v in visible_masks[chunk]])
        strengths[:, chunk] = occlusion_strengths(visible_masks, amodal[chunk], visible_masks[chunk], hulls)
        results += [
            replace(completion.result(row), amodal=amodal[index], visible=visible_masks[index])
            for row, index in enumerate(objects)
        ]
        del completion  # its (chunk, H, W) tensors go before the next chunk's are made
    occludes = order_from_strengths(strengths, amodal.reshape(count, -1).sum(axis=1))
    order = depth_layers(occludes, strengths - strengths.T)
    return Scene(
        amodal=amodal,
        visible=visible_masks,
        results=results,
        occludes=order.occludes,
        layers=order.layers,
        broken=order.broken,
    )


def automatic_visible_masks(
    model: AmodalSAM, image: np.ndarray, *, min_area: int = 100, points_per_side: int = 32
) -> np.ndarray:
    """Visible masks of a bare (H, W, 3) uint8 RGB image: segment-anything's
    ``SamAutomaticMaskGenerator`` run with the model's frozen SAM, its overlapping masks made a
    scene by :func:`amodal_sam.occlusion.non_overlapping_masks` (parts inside wholes dropped),
    masks under ``min_area`` pixels dropped. Returns (M, H, W) bool, largest first.

    Only as good as the frozen SAM: with real SAM weights this is amodal "segment everything";
    with a random SAM (the demo model, tests) it finds nonsense or nothing.
    """
    from segment_anything import SamAutomaticMaskGenerator

    generator = SamAutomaticMaskGenerator(model.sam, points_per_side=points_per_side, min_mask_region_area=min_area)
    found = generator.generate(image)
    if not found:
        return np.zeros((0, *image.shape[:2]), bool)
    masks, _ = non_overlapping_masks(np.stack([f["segmentation"] for f in found]), min_area=min_area)
    return masks[np.argsort(-masks.sum(axis=(1, 2)), kind="stable")]
