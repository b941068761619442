"""Completion past the image border through the predictor: the canvas result, the in-frame part
unchanged, only border objects extended and only within their mirror prior."""

import dataclasses

import numpy as np
import pytest

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.beyond import beyond_prior, canvas_image
from amodal_sam.canvas import Canvas
from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.decision import Decision

from conftest import random_image

H, W = 40, 48


def _masks():
    """Object 0 touches the left border; object 1 lies inside the image, clear of every border."""
    masks = np.zeros((2, H, W), bool)
    masks[0, 10:30, 0:12] = True
    masks[1, 12:28, 25:40] = True
    return masks


@pytest.fixture
def predictor(tiny_model):
    # scene mode decides loosely inside the prior, never outside it: every prior pixel the
    # random head gives any weight is taken, and none beyond it
    tiny_model.config = dataclasses.replace(
        tiny_model.config, scene_hidden_threshold=1e-4, scene_outside_threshold=1.0, scene_plausible_share=1.0
    )
    predictor = AmodalPredictor(tiny_model, device="cpu")
    predictor.set_image(random_image(H, W))
    return predictor


def test_the_canvas_image_puts_the_image_inside_the_fill():
    image = random_image(4, 6)
    canvas = Canvas.around((4, 6), 0.5)
    placed = canvas_image(image, canvas, (123.7, 116.3, 103.5))
    assert placed.shape == (8, 12, 3) and np.array_equal(placed[2:6, 3:9], image)
    assert (placed[0, 0] == [124, 116, 104]).all() and (placed[7, 11] == [124, 116, 104]).all()


def test_beyond_zero_or_none_is_the_plain_completion(predictor):
    masks = _masks()
    plain = predictor.complete(masks[0])
    for beyond in (None, 0, 0.0):
        result = predictor.complete(masks[0], beyond=beyond)
        assert result.canvas is None and result.canvas_origin == (0, 0) and not result.out_of_frame.any()
        assert np.array_equal(result.amodal, plain.amodal)
    scene = predictor.complete_scene(masks, beyond=0)
    assert scene.canvas is None and np.array_equal(scene.amodal, predictor.complete_scene(masks).amodal)


def test_a_border_object_is_extended_only_within_its_mirror_prior_and_keeps_its_in_frame_mask(predictor):
    masks = _masks()
    plain = predictor.complete(masks[0])
    result = predictor.complete(masks[0], beyond=0.5)
    canvas = result.canvas
    assert (canvas.origin, canvas.size) == ((24, 20), (80, 96)) and result.canvas_origin == (24, 20)
    assert result.amodal.shape == result.visible.shape == result.occluder.shape == (80, 96)
    assert np.array_equal(canvas.crop(result.amodal), plain.amodal)  # the in-frame part is the image's own
    assert np.array_equal(canvas.crop(result.visible), masks[0]) and not canvas.out_of_frame(result.visible).any()
    assert canvas.out_of_frame(result.occluder).sum() == 80 * 96 - H * W  # the border hides the margins
    outside = result.out_of_frame
    prior = beyond_prior(masks[0], canvas)
    assert outside.any() and not (outside & ~prior).any()  # taken where the prior allows, only there
    assert not outside[:, 24 + W :].any()  # nothing beyond the right border, which the object does not touch


def test_an_object_clear_of_the_border_gains_nothing_outside(predictor):
    masks = _masks()
    result = predictor.complete(masks[1], beyond=0.5)
    assert result.amodal.shape == (80, 96) and not result.out_of_frame.any()
    assert np.array_equal(result.canvas.crop(result.amodal), predictor.complete(masks[1]).amodal)


def test_a_scene_on_the_canvas_extends_its_border_objects_and_keeps_its_order(predictor):
    masks = _masks()
    plain = predictor.complete_scene(masks)
    scene = predictor.complete_scene(masks, beyond=0.25)
    canvas = scene.canvas
    assert canvas.size == (60, 72) and scene.amodal.shape == scene.visible.shape == (2, 60, 72)
    assert np.array_equal(canvas.crop(scene.amodal), plain.amodal)
    assert np.array_equal(scene.layers, plain.layers) and np.array_equal(scene.occludes, plain.occludes)
    outside = scene.out_of_frame
    assert outside[0].any() and not outside[1].any()
    assert np.array_equal(scene.results[0].amodal, scene.amodal[0]) and scene.results[0].canvas == canvas


def test_beyond_needs_a_valid_share_and_the_images_pixels(predictor, tiny_model):
    with pytest.raises(ValueError, match="beyond must be a number from 0 to 2"):
        predictor.complete(_masks()[0], beyond=-1)
    with pytest.raises(ValueError, match="beyond must be"):
        predictor.complete_scene(_masks(), beyond=float("nan"))
    config = AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), detail_branch=False)
    without_detail = AmodalSAM(config=config)  # the embedding is all its decoder reads
    embedding_only = AmodalPredictor(without_detail, device="cpu")
    embedding_only.set_embedding(without_detail.encode(random_image(H, W)).embedding, (H, W))
    with pytest.raises(ValueError, match=r"beyond needs the image's pixels.*set_image"):
        embedding_only.complete(_masks()[0], beyond=0.5)
    assert Decision(1e-4, 1.0) == tiny_model.config.decision_for(True, None)
