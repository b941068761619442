"""Completion past the image border: objects that the border cuts, completed on a canvas larger
than the image (:mod:`amodal_sam.canvas`).

The border hides what lies beyond it as an occluder hides what lies behind it, so this is scene
mode with the margins as a known occluder:

1. The objects are completed in the image as always (the in-frame result is the one without
   ``beyond``, pixel for pixel).
2. For the objects that touch the border (only they can extend past it), the image is placed on
   its canvas with the margins in the encoder's mean colour (zero after normalisation, as SAM's
   own padding), the canvas image is encoded, and each visible mask, placed on the canvas, is
   completed with the margins as its known occluders. The region of the decision's threshold is
   the convex hull of the visible part and its mirror images about the borders it touches (the
   border's counterpart of hull(visible) & occluder, :func:`beyond_prior`); further out a pixel
   needs the decision's outside threshold. The model's scene-mode decision applies.
3. An object's mask on the canvas is its in-frame mask joined with that completion's part
   outside the image.

The encoder sees the canvas image at 1 / (1 + 2 beyond) of the image's resolution, which is why
the in-frame part comes from the image itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from amodal_sam.canvas import Canvas, image_on_canvas, mirrored_beyond, touched_borders
from amodal_sam.geometry import convex_hull
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import AmodalResult
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.packed_mask import PackedMask
from amodal_sam.scene import Scene


def beyond_prior(visible: np.ndarray, canvas: Canvas) -> np.ndarray:
    """(H, W) bool visible mask -> (H_c, W_c) bool: the convex hull, on the canvas, of the mask
    and its mirror images about the borders it touches (:func:`mirrored_beyond`)."""
    return convex_hull(mirrored_beyond(visible, canvas))


def touches_border(visible: np.ndarray) -> bool:
    """True when an (H, W) mask has a pixel in the image's outermost rows or columns."""
    return any(touched_borders(visible).values())


def encode_on_canvas(model: AmodalSAM, image: np.ndarray, canvas: Canvas) -> EncodedImage:
    """The (H, W, 3) uint8 RGB ``image`` on ``canvas``, the margins in the encoder's mean colour,
    through ``model``'s encoder."""
    return model.encode(image_on_canvas(image, canvas, tuple(model.spec.pixel_mean)))


def extend_beyond(
    model: AmodalSAM,
    encoded_canvas: Callable[[Canvas], EncodedImage],
    visible_masks: np.ndarray,
    amodal_masks: np.ndarray,
    canvas: Canvas,
    *,
    decoder_batch: int | None = None,
) -> np.ndarray:
    """The N objects' masks on ``canvas`` ((N, H_c, W_c) bool): their (N, H, W) bool in-frame
    ``amodal_masks``, and for those whose (N, H, W) bool ``visible_masks`` touch the border, the
    part outside the image that completing on the canvas adds (see the module docstring).
    ``encoded_canvas``: the image encoded on a canvas (:func:`encode_on_canvas`; called only when
    some object touches the border, so a caller may keep it); ``decoder_batch``: as
    :meth:`AmodalSAM.complete`."""
    extended = canvas.place(amodal_masks)
    cut = [index for index, visible in enumerate(visible_masks) if touches_border(visible)]
    if not cut or canvas.is_image:
        return extended
    encoded = encoded_canvas(canvas)
    visible = canvas.place(visible_masks[cut])
    outside = np.repeat(~canvas.image_region()[None], len(cut), axis=0)
    priors = np.stack([beyond_prior(visible_masks[index], canvas) for index in cut])
    completion = model.complete(
        encoded,
        visible_masks=visible,
        occluder_masks=outside,
        prior_regions=priors,
        decoder_batch=decoder_batch,
    )
    extended[cut] |= canvas.out_of_frame(completion.amodal.cpu().numpy())
    return extended


def result_on_canvas(result: AmodalResult, amodal: np.ndarray, canvas: Canvas) -> AmodalResult:
    """``result`` with its masks on ``canvas``: ``amodal`` ((H_c, W_c) bool, from
    :func:`extend_beyond`), its visible part placed, its occluder placed and joined with the
    margins (the border hides them)."""
    occluder = canvas.place(result.occluder) | ~canvas.image_region()
    return replace(
        result,
        amodal=amodal,
        visible=canvas.place(result.visible),
        packed_occluder=PackedMask.pack(occluder),
        canvas=canvas,
    )


def scene_on_canvas(
    model: AmodalSAM, encoded_canvas: Callable[[Canvas], EncodedImage], scene: Scene, canvas: Canvas, **options
) -> Scene:
    """``scene`` with every object on ``canvas`` (:func:`extend_beyond`, whose ``encoded_canvas``
    and keyword ``options`` this takes); the order is the in-frame one."""
    amodal = extend_beyond(model, encoded_canvas, scene.visible, scene.amodal, canvas, **options)
    return replace(
        scene,
        amodal=amodal,
        visible=canvas.place(scene.visible),
        results=[result_on_canvas(r, a, canvas) for r, a in zip(scene.results, amodal)],
        canvas=canvas,
    )
