"""Scene mode at scale: objects completed a chunk at a time give what one pass gives, results keep
no full-resolution copy beyond views of the scene's arrays, the occlusion counts never build a
whole (N, H, W) hidden tensor, and the options that bound the work are checked."""

import numpy as np
import pytest

import amodal_sam.scene as scene_module
from amodal_sam.device import check_device
from amodal_sam.mask_overlap import pairwise_overlap
from amodal_sam.packed_mask import PackedMask
from amodal_sam.predictor import AmodalPredictor
from amodal_sam.scene import check_occluder_band, known_occluders, scene_chunk

from conftest import random_image, rect_mask

H, W = 48, 64


def _grid(count: int) -> np.ndarray:
    """``count`` touching cells of a grid over the image, (count, H, W) bool."""
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    masks = np.zeros((count, H, W), bool)
    for k in range(count):
        r, c = divmod(k, columns)
        masks[k, r * H // rows : (r + 1) * H // rows, c * W // columns : (c + 1) * W // columns] = True
    return masks


@pytest.fixture
def predictor(tiny_model):
    predictor = AmodalPredictor(tiny_model)
    predictor.set_image(random_image(H, W))
    return predictor


def test_chunks_of_one_object_give_the_scene_of_one_pass(predictor, monkeypatch):
    masks = _grid(7)
    whole = predictor.complete_scene(masks, occluder_band=2)
    monkeypatch.setattr(scene_module, "SCENE_CHUNK_PIXELS", H * W)  # one object per chunk
    assert scene_chunk((H, W)) == 1
    chunked = predictor.complete_scene(masks, occluder_band=2)
    np.testing.assert_array_equal(chunked.amodal, whole.amodal)
    np.testing.assert_array_equal(chunked.scores, whole.scores)
    np.testing.assert_array_equal(chunked.layers, whole.layers)
    np.testing.assert_array_equal(chunked.occludes, whole.occludes)
    for one, other in zip(chunked.results, whole.results):
        np.testing.assert_array_equal(one.occluder, other.occluder)
        np.testing.assert_array_equal(one.hypotheses, other.hypotheses)


def test_scene_results_are_views_of_the_scene_and_the_occluders_they_were_given(predictor):
    masks = _grid(5)
    scene = predictor.complete_scene(masks)
    assert scene.visible is masks  # checked in place, not copied
    occluders = known_occluders(masks)
    for index, result in enumerate(scene.results):
        assert np.shares_memory(result.amodal, scene.amodal) and np.shares_memory(result.visible, scene.visible)
        np.testing.assert_array_equal(result.amodal, scene.amodal[index])
        assert result.packed_occluder.bits.nbytes == -(-H * W // 8)  # one bit per pixel
        np.testing.assert_array_equal(result.occluder, occluders[index])
        np.testing.assert_array_equal(result.occluded, scene.amodal[index] & ~masks[index])


def test_a_results_hypotheses_are_its_logits_at_the_original_size_over_the_threshold(predictor):
    visible = rect_mask((H, W), (10, 30), (10, 40))
    result = predictor.complete(visible, hidden_threshold=0.3)
    import torch

    upsampled = predictor.model.frame((H, W)).low_res_to_original(torch.as_tensor(result.low_res_logits)[None])[0]
    expected = (upsampled > np.log(0.3 / 0.7)).numpy()
    np.testing.assert_array_equal(result.hypotheses, expected)
    assert result.hypotheses.shape == (len(result.hypothesis_scores), H, W)
    assert result.hypothesis_threshold == 0.3


def test_a_packed_mask_unpacks_to_itself():
    rng = np.random.default_rng(0)
    for shape in ((1, 1), (3, 5), (7, 9), (H, W)):
        mask = rng.random(shape) < 0.5
        packed = PackedMask.pack(mask)
        assert packed.bits.nbytes == -(-mask.size // 8)
        np.testing.assert_array_equal(packed.unpack(), mask)
    with pytest.raises(ValueError, match=r"needs an \(H, W\) mask; got shape \(2, 3, 4\)"):
        PackedMask.pack(np.zeros((2, 3, 4), bool))


def test_overlaps_without_a_second_mask_match_the_dense_count():
    rng = np.random.default_rng(1)
    first, second, without = (rng.random((4, H, W)) < p for p in (0.3, 0.5, 0.4))
    first[2] = False  # an empty mask
    expected = np.einsum("ihw,jhw->ij", first.astype(int), (second & ~without).astype(int))
    np.testing.assert_array_equal(pairwise_overlap(first, second, second_without=without), expected)
    np.testing.assert_array_equal(
        pairwise_overlap(first, second), np.einsum("ihw,jhw->ij", first.astype(int), second.astype(int))
    )


def test_known_occluders_of_some_objects_are_those_rows_of_all():
    masks = _grid(6)
    every = known_occluders(masks, band=3)
    np.testing.assert_array_equal(known_occluders(masks, band=3, objects=range(2, 5)), every[2:5])
    assert not (every & masks).any()  # never over the object's own visible part


def test_the_occluder_band_is_bounded_by_the_image(predictor):
    assert check_occluder_band(3, (240, 320)) == 3
    assert check_occluder_band(16, (240, 320)) == 16  # 5 % of 320
    with pytest.raises(ValueError, match=r"--occluder-band must be a whole number of pixels from 0 to 16 .*got 17"):
        check_occluder_band(17, (240, 320), "--occluder-band")
    for bad in (-1, 2.5, True, 1_000_000_000):
        with pytest.raises(ValueError, match="occluder_band must be a whole number"):
            predictor.complete_scene(_grid(2), occluder_band=bad)


def test_a_device_is_checked_by_name_before_anything_loads():
    assert check_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match=r"--device 'gpu' is not a device: expected cpu, cuda, cuda:N or mps"):
        check_device("gpu", "--device")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"--device 'cuda:1': no CUDA GPU is available"):
            check_device("cuda:1", "--device")


OPTIONS = [{}, {"multimask": False}, {"hidden_threshold": 0.2}, {"hidden_threshold": 0.8, "multimask": False}]


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_every_option_of_complete_batch_matches_one_call_per_object(predictor, options):
    masks = list(_grid(4))
    occluders = list(known_occluders(np.stack(masks)))
    batch = predictor.complete_batch(masks, occluder_masks=occluders, **options)
    for mask, occluder, together in zip(masks, occluders, batch):
        alone = predictor.complete(visible_mask=mask, occluder_mask=occluder, **options)
        np.testing.assert_array_equal(together.amodal, alone.amodal)
        np.testing.assert_array_equal(together.hypotheses, alone.hypotheses)
        np.testing.assert_allclose(together.hypothesis_scores, alone.hypothesis_scores, atol=1e-6)


@pytest.mark.parametrize("options", [*OPTIONS, {"occluder_band": 2}], ids=str)
def test_every_option_of_complete_scene_matches_one_call_per_object(predictor, options):
    masks = _grid(4)
    scene = predictor.complete_scene(masks, **options)
    band = options.get("occluder_band", 0)
    decide = {k: v for k, v in options.items() if k != "occluder_band"}
    for index, occluder in enumerate(known_occluders(masks, band=band)):
        alone = predictor.complete(visible_mask=masks[index], occluder_mask=occluder, **decide)
        np.testing.assert_array_equal(scene.amodal[index], alone.amodal)
        np.testing.assert_array_equal(scene.results[index].hypotheses, alone.hypotheses)


def test_the_options_change_the_scene(predictor):
    """The options above matter for this model and scene: an option ignored by the batch forms
    would show there."""
    masks = _grid(4)
    outcomes = {
        str(options): (
            predictor.complete_scene(masks, **options).amodal.sum(),
            len(predictor.complete_scene(masks, **options).results[0].hypothesis_scores),
        )
        for options in OPTIONS
    }
    assert len(set(outcomes.values())) == len(OPTIONS), outcomes
