"""SamPredictor-style interface: set an image once, then complete any number of objects in it.

A thin shell over :meth:`AmodalSAM.encode` and :meth:`AmodalSAM.complete`: it checks the user's
input, holds the current :class:`EncodedImage` and turns the model's tensors into numpy results.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch

from amodal_sam.beyond import encode_on_canvas, extend_beyond, result_on_canvas, scene_on_canvas
from amodal_sam.canvas import Canvas
from amodal_sam.device import default_decoder_batch, default_device
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import AmodalResult
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.scene import Scene, check_scene_inputs, complete_encoded_scene
from amodal_sam.validation import ArrayLike, check_box, check_image, check_mask, check_points

__all__ = ["AmodalPredictor", "AmodalResult", "Scene", "complete", "complete_scene"]


class AmodalPredictor:
    """Completes objects of one image at a time, with the image embedded once.

    Arguments:
        model: the amodal model.
        device: where to run (see :func:`amodal_sam.device.default_device`: CUDA when available).
        decoder_batch: most instances per decoder call in :meth:`complete_batch` (see
            :func:`amodal_sam.device.default_decoder_batch`: all on a GPU, one at a time on a CPU).
    """

    def __init__(self, model: AmodalSAM, *, device: str | None = None, decoder_batch: int | None = None) -> None:
        device = default_device(device)
        self.model = model.to(device).eval()
        self.decoder_batch = decoder_batch or default_decoder_batch(device)
        self.image: EncodedImage | None = None
        self.pixels: np.ndarray | None = None  # the image itself: completion beyond the frame encodes it on a canvas
        self._on_canvas: tuple[Canvas, EncodedImage] | None = None  # that encoding, kept for the image's next objects

    @property
    def device(self) -> torch.device:
        return self.model.device

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.image = None
        self.pixels = None
        self._on_canvas = None

    def set_image(self, image: np.ndarray) -> None:
        """Embed ``image``, an (H, W, 3) uint8 RGB array, with the frozen encoder (the array is
        kept, unchanged, for completion beyond the frame)."""
        self.image = self.model.encode(check_image(image))
        self.pixels = image
        self._on_canvas = None

    def set_embedding(
        self, embedding: torch.Tensor, original_size: Sequence[int], *, image: np.ndarray | None = None
    ) -> None:
        """Use a precomputed (1, C, h, w) embedding of an image of ``original_size`` (H, W).

        A model whose decoder has a detail branch reads the pixels too: pass the (H, W, 3) uint8
        RGB ``image`` the embedding was computed from.
        """
        image = None if image is None else check_image(image)
        self.image = self.model.encoded_from_embedding(embedding, tuple(original_size), image=image)
        self.pixels = image
        self._on_canvas = None

    def complete(
        self,
        visible_mask: np.ndarray | None = None,
        point_coords: ArrayLike | None = None,
        point_labels: ArrayLike | None = None,
        box: ArrayLike | None = None,
        *,
        occluder_mask: np.ndarray | None = None,
        multimask: bool = True,
        use_sam_for_visible: bool = True,
        hidden_threshold: float | None = None,
        beyond: float | None = None,
        memory_mask: np.ndarray | None = None,
    ) -> AmodalResult:
        """Complete one object from its visible mask, or from a point/box prompt.

        Arguments:
            visible_mask: (H, W) bool, the object's visible pixels. Its box goes with it unless
                ``box`` is given; ``point_coords`` are passed to the amodal decoder too.
            point_coords: (P, 2) (x, y) pixels; point_labels: (P,) 1 = object, 0 = background.
            box: (x0, y0, x1, y1) pixels.
            occluder_mask: (H, W) bool, what is known to lie in front of the object (e.g. the
                other objects' visible masks); hidden parts are then only added there, in place
                of the decoder's own occluder estimate. Empty: nothing hides the object.
            multimask: choose among the K hypotheses by predicted IoU (else the single output).
            use_sam_for_visible: without a visible mask, let SAM's frozen decoder turn the
                points/box into the visible mask first (default); if False they go straight to
                the amodal decoder, whose own visible output is then the visible part.
            hidden_threshold: probability above which hidden pixels join the mask (default:
                the model's calibrated ``config.hidden_threshold``, or with ``occluder_mask``
                its ``scene_hidden_threshold`` when set).
            beyond: complete past the image border too, on a canvas grown by ``beyond`` x W
                left and right and ``beyond`` x H above and below (0 to 2; see
                :mod:`amodal_sam.beyond`): the result's masks are then on the canvas
                (``result.canvas``, ``canvas_origin``, ``out_of_frame``). None or 0: the image's.
            memory_mask: (H, W) bool, the object's shape as earlier video frames showed it,
                carried into this image (:class:`~amodal_sam.video.AmodalVideoPredictor` gives
                it); read by a model with ``config.memory_prompt``, ignored by others.
        """
        canvas = self._canvas(beyond)
        result = self._complete(
            visible_mask,
            point_coords,
            point_labels,
            box,
            occluder_mask,
            multimask,
            use_sam_for_visible,
            hidden_threshold,
            memory_mask,
        )
        if canvas is None:
            return result
        amodal = extend_beyond(
            self.model,
            self._encoded_canvas,
            result.visible[None],
            result.amodal[None],
            canvas,
            decoder_batch=self.decoder_batch,
        )[0]
        return result_on_canvas(result, amodal, canvas)

    def _complete(
        self,
        visible_mask: np.ndarray | None,
        point_coords: ArrayLike | None,
        point_labels: ArrayLike | None,
        box: ArrayLike | None,
        occluder_mask: np.ndarray | None,
        multimask: bool,
        use_sam_for_visible: bool,
        hidden_threshold: float | None,
        memory_mask: np.ndarray | None = None,
    ) -> AmodalResult:
        image = self._require_image()
        size = image.original_size
        points = check_points(point_coords, point_labels, size)
        box_values = check_box(box, size)
        points = None if points is None else (points[0][None], points[1][None])
        boxes = None if box_values is None else box_values[None]
        occluders = (
            None if occluder_mask is None else check_mask(occluder_mask, size, "occluder_mask", allow_empty=True)
        )
        memory = None if memory_mask is None else check_mask(memory_mask, size, "memory_mask", allow_empty=True)
        decide = {
            "multimask": multimask,
            "hidden_threshold": hidden_threshold,
            "occluder_masks": None if occluders is None else occluders[None],
            "memory_masks": None if memory is None else memory[None],
        }
        if visible_mask is not None:
            mask = check_mask(visible_mask, size)[None]
            return self.model.complete(image, visible_masks=mask, boxes=boxes, points=points, **decide).result(0)
        if points is None and boxes is None:
            raise ValueError("complete() needs visible_mask, point_coords with point_labels, or box")
        if not use_sam_for_visible:
            return self.model.complete(image, boxes=boxes, points=points, **decide).result(0)
        visible = self.model.sam_visible_masks(image, boxes=boxes, points=points).cpu().numpy()
        if not visible.any():
            raise RuntimeError("SAM found no visible object at the given point/box prompt; try another prompt")
        return self.model.complete(image, visible_masks=visible, **decide).result(0)

    def complete_batch(
        self,
        visible_masks: Sequence[np.ndarray],
        *,
        occluder_masks: Sequence[np.ndarray] | None = None,
        multimask: bool = True,
        hidden_threshold: float | None = None,
    ) -> list[AmodalResult]:
        """Complete N objects of the current image, ``decoder_batch`` per decoder call; same
        results as N calls of :meth:`complete` (``occluder_masks``: one per object, or None)."""
        image = self._require_image()
        if len(visible_masks) == 0:
            raise ValueError("visible_masks must hold at least one (H, W) mask")
        masks = np.stack(
            [check_mask(m, image.original_size, f"visible_masks[{i}]") for i, m in enumerate(visible_masks)]
        )
        occluders = None
        if occluder_masks is not None:
            if len(occluder_masks) != len(masks):
                raise ValueError(
                    f"occluder_masks must hold one mask per visible mask ({len(masks)}); got {len(occluder_masks)}"
                )
            occluders = np.stack(
                [
                    check_mask(m, image.original_size, f"occluder_masks[{i}]", allow_empty=True)
                    for i, m in enumerate(occluder_masks)
                ]
            )
        completion = self.model.complete(
            image,
            visible_masks=masks,
            occluder_masks=occluders,
            multimask=multimask,
            hidden_threshold=hidden_threshold,
            decoder_batch=self.decoder_batch,
        )
        return completion.results()

    def complete_scene(
        self,
        visible_masks: np.ndarray | Sequence[np.ndarray],
        *,
        stuff_masks: np.ndarray | Sequence[np.ndarray] | None = None,
        multimask: bool = True,
        hidden_threshold: float | None = None,
        occluder_band: int = 0,
        beyond: float | None = None,
        memory_masks: np.ndarray | None = None,
    ) -> Scene:
        """Complete every object of the current image together, each with the others' visible
        masks (and ``stuff_masks``) as its known occluders, and recover the occlusion order.

        Arguments:
            visible_masks: (N, H, W) bool array or a list of N (H, W) masks, one per object; they
                should not overlap (a few pixels of noise are resolved, see
                :func:`amodal_sam.occlusion.check_scene_masks`). N = 0 gives an empty scene.
            stuff_masks: (S, H, W) or S masks of background regions (table, wall, road): they can
                hide objects but are not completed.
            multimask, hidden_threshold: as :meth:`complete`.
            occluder_band: grow the known occluders by this many pixels, for masks that do not
                quite touch what hides them.
            beyond: complete past the image border too, as :meth:`complete`: every mask of the
                scene is then on the canvas (``scene.canvas``); the order is the image's.
            memory_masks: (N, H, W) bool, each object's shape memory, as ``memory_mask`` of
                :meth:`complete`.
        """
        canvas = self._canvas(beyond)
        image = self._require_image()
        masks, stuff = check_scene_inputs(visible_masks, image.original_size, stuff_masks)
        scene = complete_encoded_scene(
            self.model,
            image,
            masks,
            stuff_masks=stuff,
            multimask=multimask,
            hidden_threshold=hidden_threshold,
            decoder_batch=self.decoder_batch,
            occluder_band=occluder_band,
            memory_masks=self._checked_memories(memory_masks, masks.shape),
        )
        if scene.broken:
            warnings.warn(
                f"occlusion cycle(s) broken at their weakest edge(s), (front, behind): {scene.broken}", stacklevel=2
            )
        if canvas is None:
            return scene
        return scene_on_canvas(self.model, self._encoded_canvas, scene, canvas, decoder_batch=self.decoder_batch)

    @staticmethod
    def _checked_memories(memory_masks: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """``memory_masks`` as (N, H, W) bool, one per visible mask, or a ValueError saying so."""
        if memory_masks is None:
            return None
        memories = np.asarray(memory_masks)
        if memories.shape != tuple(shape) or memories.dtype != np.bool_:
            raise ValueError(
                f"memory_masks must be a bool array of shape {tuple(shape)}, one per visible mask; "
                f"got {memories.dtype} {memories.shape}"
            )
        return memories

    def _encoded_canvas(self, canvas: Canvas) -> EncodedImage:
        """The current image encoded on ``canvas`` (:func:`encode_on_canvas`), once per image and
        canvas."""
        if self._on_canvas is None or self._on_canvas[0] != canvas:
            self._on_canvas = (canvas, encode_on_canvas(self.model, self.pixels, canvas))
        return self._on_canvas[1]

    def _canvas(self, beyond: float | None) -> Canvas | None:
        """The canvas of the current image for ``beyond`` (checked), or None when it adds
        nothing; beyond the frame needs the image's pixels."""
        image = self._require_image()
        if beyond is None:
            return None
        canvas = Canvas.around(image.original_size, beyond)
        if canvas.is_image:
            return None
        if self.pixels is None:
            raise ValueError(
                "beyond needs the image's pixels to encode them on a canvas: use set_image(image), or "
                "set_embedding(..., image=image)"
            )
        return canvas

    def _require_image(self) -> EncodedImage:
        if self.image is None:
            raise RuntimeError("no image is set: call set_image(image) before complete()")
        return self.image


def complete(
    image: np.ndarray,
    visible_mask: np.ndarray | None = None,
    *,
    model: AmodalSAM | None = None,
    **prompts,
) -> AmodalResult:
    """One-shot completion: embed ``image`` and complete one object.

    Arguments:
        image: (H, W, 3) uint8 RGB.
        visible_mask: (H, W) bool visible pixels; or pass ``point_coords``/``point_labels``/``box``.
        model: the amodal model; the default model (see :func:`amodal_sam.default_model`) if None.
        prompts: further keyword arguments of :meth:`AmodalPredictor.complete`.
    """
    from amodal_sam.defaults import default_model

    predictor = AmodalPredictor(model if model is not None else default_model())
    predictor.set_image(image)
    return predictor.complete(visible_mask, **prompts)


def complete_scene(
    image: np.ndarray,
    visible_masks: np.ndarray | Sequence[np.ndarray],
    *,
    model: AmodalSAM | None = None,
    **options,
) -> Scene:
    """One-shot scene completion: embed ``image`` ((H, W, 3) uint8 RGB) and complete every object
    of it together (see :meth:`AmodalPredictor.complete_scene`, whose keyword arguments
    ``options`` takes); ``model`` defaults to :func:`amodal_sam.default_model`."""
    from amodal_sam.defaults import default_model

    predictor = AmodalPredictor(model if model is not None else default_model())
    predictor.set_image(image)
    return predictor.complete_scene(visible_masks, **options)
