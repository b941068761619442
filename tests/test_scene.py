"""Scene completion on the tiny random model: equal to per-object completion with the same known
occluders, the order taken from the completions, and every bad input named."""

import dataclasses

import numpy as np
import pytest
import torch

from amodal_sam import AmodalPredictor, complete_scene
from amodal_sam.geometry import convex_hull
from amodal_sam.occlusion import occlusion_order
from amodal_sam.scene import known_occluders

from conftest import TEST_DEVICE, random_image, rect_mask

SIZE = 64


def _trained_like(model, seed=3):
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def _rect(rows, cols) -> np.ndarray:
    return rect_mask((SIZE, SIZE), rows, cols)


def _three_objects() -> np.ndarray:
    """Three visible masks that touch: a bar in front, two blocks cut by it."""
    bar = _rect((0, SIZE), (28, 36))
    left = _rect((16, 48), (8, 28))
    right = _rect((20, 44), (36, 56))
    return np.stack([left, bar, right])


@pytest.fixture
def predictor(tiny_model):
    predictor = AmodalPredictor(_trained_like(tiny_model), device=TEST_DEVICE)
    predictor.set_image(random_image(SIZE, SIZE))
    return predictor


def test_known_occluders_are_the_others_and_the_stuff():
    masks = _three_objects()
    floor = _rect((56, 64), (0, 64))
    occluders = known_occluders(masks, floor[None])
    np.testing.assert_array_equal(occluders[0], masks[1] | masks[2] | (floor & ~masks[0]))
    assert not (occluders & masks).any()  # never over the object's own visible part
    grown = known_occluders(masks[:2], band=2)
    assert grown[0, 5, 26] and grown[0, 5, 27] and not grown[0, 5, 25]  # 2 px left of the bar (column 28)
    assert not grown[0, 30, 27]  # but never on the block's own visible part
    assert not grown[0, 15, 12]  # and the block itself is not grown: one row above it, far from the bar


def test_a_scene_equals_complete_per_object_with_the_same_occluders(predictor):
    masks = _three_objects()
    scene = predictor.complete_scene(masks)
    for index, mask in enumerate(masks):
        alone = predictor.complete(visible_mask=mask, occluder_mask=known_occluders(masks)[index])
        np.testing.assert_array_equal(scene.amodal[index], alone.amodal)
        np.testing.assert_array_equal(scene.results[index].hypotheses, alone.hypotheses)
        assert scene.results[index].score == pytest.approx(alone.score)
    np.testing.assert_array_equal(scene.visible, masks)
    np.testing.assert_array_equal(scene.occluded, scene.amodal & ~masks)
    assert not (scene.occluded & ~known_occluders(masks)).any()  # hidden only under the others
    hulls = np.stack([convex_hull(m) for m in masks])  # the order reads the hulls too
    np.testing.assert_array_equal(scene.occludes, occlusion_order(masks, scene.amodal, hulls=hulls))
    assert scene.layers.shape == (3,) and scene.scores.shape == (3,)
    shares = scene.occluded.reshape(3, -1).sum(1) / scene.amodal.reshape(3, -1).sum(1)
    np.testing.assert_allclose(scene.hidden_share, shares)


def test_one_object_has_nothing_in_front(predictor):
    mask = _rect((10, 40), (10, 40))
    scene = predictor.complete_scene([mask])
    np.testing.assert_array_equal(scene.amodal[0], mask)  # nothing known can hide it
    assert scene.occludes.tolist() == [[False]] and scene.layers.tolist() == [0]


def test_stuff_hides_objects_but_is_not_completed(predictor):
    mask = _rect((10, 40), (10, 40))
    wall = _rect((0, SIZE), (40, SIZE))
    scene = predictor.complete_scene([mask], stuff_masks=[wall])
    assert len(scene) == 1
    np.testing.assert_array_equal(scene.results[0].occluder, wall)


def test_an_empty_scene(predictor, tiny_model):
    scene = predictor.complete_scene(np.zeros((0, SIZE, SIZE), bool))
    assert scene.amodal.shape == (0, SIZE, SIZE) and scene.occludes.shape == (0, 0) and scene.results == []
    assert scene.hidden_share.shape == scene.scores.shape == scene.layers.shape == (0,)
    assert len(complete_scene(random_image(SIZE, SIZE), [], model=tiny_model)) == 0


def test_the_one_shot_scene_equals_the_predictors(predictor, tiny_model):
    masks = _three_objects()
    one_shot = complete_scene(random_image(SIZE, SIZE), masks, model=predictor.model)
    np.testing.assert_array_equal(one_shot.amodal, predictor.complete_scene(masks).amodal)


def test_bad_scene_inputs_name_the_argument(predictor):
    masks = _three_objects()
    with pytest.raises(ValueError, match=r"visible_masks\[1\] has shape \(10, 10\)"):
        predictor.complete_scene([masks[0], np.ones((10, 10), bool)])
    with pytest.raises(ValueError, match=r"visible_masks\[1\] lies mostly inside visible_masks\[0\]"):
        predictor.complete_scene([masks[0], _rect((20, 30), (10, 20))])
    with pytest.raises(ValueError, match=r"visible_masks\[2\] is empty"):
        predictor.complete_scene([masks[0], masks[1], np.zeros((SIZE, SIZE), bool)])
    with pytest.raises(ValueError, match=r"stuff_masks\[0\] has shape"):
        predictor.complete_scene(masks, stuff_masks=[np.ones((5, 5), bool)])
    predictor.reset_image()
    with pytest.raises(RuntimeError, match="no image is set"):
        predictor.complete_scene(masks)


def test_scene_options_reach_every_completion(predictor, monkeypatch):
    import amodal_sam.scene as scene_module

    masks = _three_objects()
    scene = predictor.complete_scene(masks, hidden_threshold=0.7, multimask=False, occluder_band=2)
    grown = known_occluders(masks, band=2)
    for index, mask in enumerate(masks):
        alone = predictor.complete(visible_mask=mask, occluder_mask=grown[index], hidden_threshold=0.7, multimask=False)
        np.testing.assert_array_equal(scene.amodal[index], alone.amodal)
        np.testing.assert_array_equal(scene.results[index].occluder, grown[index])
    calls = []
    original = predictor.model.decode
    monkeypatch.setattr(predictor.model, "decode", lambda *a, **k: calls.append(1) or original(*a, **k))
    predictor.decoder_batch = 2
    predictor.complete_scene(masks)
    assert len(calls) == 2  # three objects, two per decoder call
    seen = {}
    monkeypatch.setattr(scene_module, "depth_layers", lambda occludes, strengths: seen.update(s=strengths) or None)
    with pytest.raises(AttributeError):  # the stub returns nothing; what it was given is what counts
        predictor.complete_scene(masks, hidden_threshold=0.05)  # low: the random model hides some pixels
    assert seen["s"].any() and np.array_equal(seen["s"], -seen["s"].T)  # each claim's margin over the reverse


def test_an_empty_stuff_mask_is_allowed(predictor):
    mask = _rect((10, 40), (10, 40))
    scene = predictor.complete_scene([mask], stuff_masks=[np.zeros((SIZE, SIZE), bool)])
    np.testing.assert_array_equal(scene.amodal[0], mask)


def test_the_band_is_a_disc_of_its_radius():
    own = _rect((0, 5), (0, 5))
    dot = _rect((30, 31), (50, 51))
    cross = known_occluders(np.stack([own, dot]), band=1)[0]
    assert cross[29, 50] and cross[30, 49] and not cross[29, 49]  # 3 x 3 disc: a cross
    disc = known_occluders(np.stack([own, dot]), band=2)[0]
    assert disc[28, 50] and disc[30, 48] and disc[29, 48] and disc[28 + 4, 50] and not disc[28, 49]
    assert disc.sum() == 17 and cross.sum() == 5  # rows of 1, 5, 5, 5, 1 pixels


def test_a_broken_cycle_is_reported_and_warned_at_the_callers_line(predictor, monkeypatch):
    import amodal_sam.scene as scene_module
    from amodal_sam.occlusion import DepthLayers

    cycle = DepthLayers(layers=np.array([1, 0, 0]), occludes=np.zeros((3, 3), bool), broken=[(0, 1)])
    monkeypatch.setattr(scene_module, "depth_layers", lambda occludes, strengths: cycle)
    with pytest.warns(
        UserWarning, match=r"broken at their weakest edge\(s\), \(front, behind\): \[\(0, 1\)\]"
    ) as caught:
        scene = predictor.complete_scene(_three_objects())
    assert scene.broken == [(0, 1)] and caught[0].filename == __file__


def test_a_scene_orders_by_the_hulls_where_its_completions_add_nothing(predictor, monkeypatch):
    """B, a U opening upward, and A, a post between its arms, completed by a careful model (each
    completion its visible mask, nothing added): A is still found in front of B, since its
    visible pixels lie in B's convex hull and B's do not lie in A's."""
    model = predictor.model
    decode = type(model).complete

    def careful(self, *args, visible_masks, **kwargs):
        completion = decode(self, *args, visible_masks=visible_masks, **kwargs)
        return dataclasses.replace(completion, amodal=torch.as_tensor(visible_masks, device=completion.amodal.device))

    monkeypatch.setattr(type(model), "complete", careful)
    b = _rect((10, 50), (10, 20)) | _rect((10, 50), (44, 54)) | _rect((40, 50), (10, 54))
    a = _rect((4, 36), (26, 38))
    scene = predictor.complete_scene(np.stack([a, b]))
    assert not scene.occluded.any()  # the completions claim nothing
    assert scene.occludes.tolist() == [[False, True], [False, False]] and scene.layers.tolist() == [0, 1]
