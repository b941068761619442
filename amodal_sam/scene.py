"""Scene mode: every object of an image completed together, the others as known occluders.

Users often have every object's visible mask (an instance segmenter, SAM's automatic masks,
their own annotation); then what can hide an object is known: the other objects' visible masks
and any background (stuff) regions. Each object is completed with those as its known occluders
(:meth:`AmodalSAM.complete` with ``occluder_masks``: the model reads them as a prompt and hides
parts only under them), and the occlusion order follows from the completions
(:mod:`amodal_sam.occlusion`). One encoder pass per image, N decoder calls (batched on a GPU).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import AmodalResult
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.occlusion import (
    check_scene_masks,
    depth_layers,
    non_overlapping_masks,
    occlusion_order,
    occlusion_strengths,
)
from amodal_sam.validation import check_mask


@dataclass
class Scene:
    """N objects of one image, completed together. Masks are (N, H, W) bool at the image's size.

    Attributes:
        amodal: the completed objects.
        visible: the visible masks the completion started from (overlaps resolved, see
            :func:`amodal_sam.occlusion.check_scene_masks`).
        results: N :class:`AmodalResult`, as :meth:`AmodalPredictor.complete` gives them.
        occludes: (N, N) bool, [i, j] = i lies in front of j and hides part of it (acyclic).
        layers: (N,) int depth layer, 0 = nothing in front of it.
        broken: [(i, j), ...] edges "i in front of j" dropped to break occlusion cycles.
    """

    amodal: np.ndarray
    visible: np.ndarray
    results: list[AmodalResult]
    occludes: np.ndarray
    layers: np.ndarray
    broken: list[tuple[int, int]]

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
        return self.occluded.sum(axis=(1, 2)) / np.maximum(self.amodal.sum(axis=(1, 2)), 1)


def known_occluders(visible: np.ndarray, stuff: np.ndarray | None = None, band: int = 0) -> np.ndarray:
    """(N, H, W) bool: what can hide each object, the union of the other objects' visible masks
    and the (S, H, W) ``stuff`` regions, grown by ``band`` pixels (for masks that do not quite
    touch; the object's own mask is never grown) and never over the object's own visible part."""
    everything = visible.any(axis=0)
    if stuff is not None and len(stuff):
        everything = everything | stuff.any(axis=0)
    if band <= 0:
        return everything[None] & ~visible
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    grown = np.empty_like(visible)
    for index, own in enumerate(visible):
        others = (everything & ~own).astype(np.uint8)
        grown[index] = cv2.dilate(others, kernel).astype(bool) & ~own
    return grown


def check_scene_inputs(
    visible_masks: np.ndarray | Sequence[np.ndarray],
    image_size: tuple[int, int],
    stuff_masks: np.ndarray | Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The user's visible masks ((N, H, W) array or list of N (H, W) masks) and stuff masks as
    (N, H, W) / (S, H, W) bool arrays of the image's size, overlaps between objects resolved;
    errors name the argument and index."""
    height, width = image_size
    masks = (
        np.stack([check_mask(m, image_size, f"visible_masks[{i}]") for i, m in enumerate(visible_masks)])
        if len(visible_masks)
        else np.zeros((0, height, width), bool)
    )
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
    """
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
    occluders = known_occluders(visible_masks, stuff_masks, occluder_band)
    completion = model.complete(
        image,
        visible_masks=visible_masks,
        occluder_masks=occluders,
        multimask=multimask,
        hidden_threshold=hidden_threshold,
        decoder_batch=decoder_batch,
    )
    results = completion.results()
    amodal = np.stack([r.amodal for r in results])
    strengths = occlusion_strengths(visible_masks, amodal)
    order = depth_layers(occlusion_order(visible_masks, amodal), strengths - strengths.T)
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
