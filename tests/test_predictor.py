"""AmodalPredictor and complete(): shapes, invariants, batching, prompts, the reference pipeline."""

import warnings

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from amodal_sam import AmodalPredictor, AmodalSAM, complete
from amodal_sam.cli import main
from amodal_sam.image_io import write_rgb

from conftest import TEST_DEVICE, ellipse_mask, random_image


@pytest.fixture
def predictor(tiny_model):
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(random_image(240, 320))
    return predictor


def _call_log(model):
    """Record, in order, which decoders run."""
    calls = []
    model.sam.mask_decoder.register_forward_hook(lambda *_: calls.append("sam"))
    model.decoder.register_forward_hook(lambda *_: calls.append("amodal"))
    return calls


@pytest.mark.parametrize("size", [(240, 320), (320, 240), (97, 301)])
def test_result_masks_are_consistent(tiny_model, size):
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(random_image(*size))
    visible = ellipse_mask(*size)
    result = predictor.complete(visible_mask=visible)
    assert result.amodal.shape == result.visible.shape == result.occluded.shape == result.occluder.shape == size
    assert result.amodal.dtype == bool and result.hypotheses.dtype == bool
    assert result.hypotheses.shape == (3,) + size and result.hypothesis_scores.shape == (3,)
    assert result.low_res_logits.shape == (3, 64, 64) and result.visible_logits.shape == (64, 64)
    np.testing.assert_array_equal(result.visible, visible)
    np.testing.assert_array_equal(result.occluded, result.amodal & ~result.visible)
    best = int(np.argmax(result.hypothesis_scores))
    assert result.score == pytest.approx(float(result.hypothesis_scores[best]))
    np.testing.assert_array_equal(result.amodal, (result.hypotheses[best] & result.occluder) | visible)


def test_nothing_is_hidden_where_no_occluder_is_seen(predictor):
    visible = ellipse_mask(240, 320)
    open_gate = predictor.complete(visible_mask=visible)
    assert open_gate.occluded.any()  # the random tiny decoder adds pixels, for the gate to remove
    occluder_mlp = predictor.model.decoder.output_hypernetworks_mlps[5]
    with torch.no_grad():  # a zero hypernetwork output: occluder logits of exactly 0, "not covered"
        occluder_mlp.layers[-1].weight.zero_()
        occluder_mlp.layers[-1].bias.zero_()
    closed_gate = predictor.complete(visible_mask=visible)
    assert not closed_gate.occluder.any() and not closed_gate.occluded.any()
    np.testing.assert_array_equal(closed_gate.amodal, visible)
    np.testing.assert_array_equal(closed_gate.hypotheses, open_gate.hypotheses)  # hypotheses are not gated


def test_single_output_mode(predictor):
    result = predictor.complete(visible_mask=ellipse_mask(240, 320), multimask=False)
    assert result.hypotheses.shape == (1, 240, 320) and result.low_res_logits.shape == (1, 64, 64)


def test_batch_equals_loop(predictor):
    predictor.decoder_batch = 64  # all in one decoder call
    masks = [
        ellipse_mask(240, 320, center=c, radii=r)
        for c, r in [((0.3, 0.4), (0.2, 0.2)), ((0.6, 0.5), (0.3, 0.1)), ((0.5, 0.8), (0.1, 0.15))]
    ]
    batch = predictor.complete_batch(masks)
    assert len(batch) == 3
    for mask, together in zip(masks, batch):
        alone = predictor.complete(visible_mask=mask)
        np.testing.assert_allclose(together.low_res_logits, alone.low_res_logits, atol=1e-5)
        np.testing.assert_allclose(together.hypothesis_scores, alone.hypothesis_scores, atol=1e-6)
        np.testing.assert_array_equal(together.amodal, alone.amodal)


@pytest.mark.parametrize("decoder_batch, calls_expected", [(64, 1), (3, 2), (1, 4)])
def test_batch_runs_decoder_batch_instances_per_call(predictor, decoder_batch, calls_expected):
    masks = [ellipse_mask(240, 320, center=(0.3 + 0.1 * i, 0.5)) for i in range(4)]
    expected = [r.low_res_logits for r in predictor.complete_batch(masks)]
    predictor.decoder_batch = decoder_batch
    calls = _call_log(predictor.model)
    results = predictor.complete_batch(masks)
    assert calls == ["amodal"] * calls_expected
    for result, logits in zip(results, expected):
        np.testing.assert_allclose(result.low_res_logits, logits, atol=1e-5)


def test_default_decoder_batch_is_all_on_gpu_one_on_cpu(tiny_model):
    assert AmodalPredictor(tiny_model, device="cpu").decoder_batch == 1
    assert AmodalPredictor(tiny_model, device="cpu", decoder_batch=16).decoder_batch == 16


def test_embedding_matches_sam_predictor(tiny_model):
    image = random_image(200, 300)
    reference = SamPredictor(tiny_model.sam)
    reference.set_image(image)
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(image)
    torch.testing.assert_close(predictor.image.embedding, reference.get_image_embedding())


def test_point_prompt_goes_through_sam_then_the_amodal_decoder(tiny_model):
    image = random_image(200, 300)
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(image)
    calls = _call_log(tiny_model)
    result = predictor.complete(point_coords=[[150, 100]], point_labels=[1])
    assert calls == ["sam", "amodal"]
    reference = SamPredictor(tiny_model.sam)
    reference.set_image(image)
    masks, scores, _ = reference.predict(
        point_coords=np.array([[150, 100]]), point_labels=np.array([1]), multimask_output=True
    )
    np.testing.assert_array_equal(result.visible, masks[np.argmax(scores)])  # SAM's best mask is the visible part


def test_box_prompt_goes_through_sam_then_the_amodal_decoder(tiny_model):
    image = random_image(200, 300)
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(image)
    calls = _call_log(tiny_model)
    box = [60, 40, 220, 170]
    result = predictor.complete(box=box)
    assert calls == ["sam", "amodal"]
    reference = SamPredictor(tiny_model.sam)
    reference.set_image(image)
    masks, _, _ = reference.predict(box=np.array(box), multimask_output=False)
    np.testing.assert_array_equal(result.visible, masks[0])


def test_box_can_go_straight_to_the_amodal_decoder(predictor):
    calls = _call_log(predictor.model)
    predictor.complete(box=[60, 40, 220, 170], use_sam_for_visible=False)
    assert calls == ["amodal"]


def test_set_embedding_reuses_a_computed_embedding(tiny_model, predictor):
    torch.nn.init.normal_(tiny_model.decoder.detail_fusion.layers[-1].weight)  # let the pixels matter
    image, mask = random_image(240, 320), ellipse_mask(240, 320)
    predictor.set_image(image)
    expected = predictor.complete(visible_mask=mask)
    other = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    other.set_embedding(predictor.image.embedding.clone(), (240, 320), image=image)
    np.testing.assert_array_equal(other.complete(visible_mask=mask).low_res_logits, expected.low_res_logits)
    with pytest.raises(ValueError, match=r"embedding must have shape \(1, 32, 16, 16\)"):
        other.set_embedding(torch.zeros(1, 32, 8, 8), (240, 320), image=image)
    with pytest.raises(ValueError, match="detail branch.*pass image="):
        other.set_embedding(predictor.image.embedding, (240, 320))
    with pytest.raises(ValueError, match=r"image must be \(240, 320\)"):
        other.set_embedding(predictor.image.embedding, (240, 320), image=random_image(100, 320))


def test_complete_one_shot_matches_predictor(tiny_model):
    image, mask = random_image(120, 90), ellipse_mask(120, 90)
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(image)
    np.testing.assert_array_equal(
        complete(image, mask, model=tiny_model).amodal, predictor.complete(visible_mask=mask).amodal
    )


def test_complete_without_a_model_uses_the_demo_model(tiny_model, tmp_path, monkeypatch):
    from amodal_sam import defaults

    image, mask = random_image(64, 64), ellipse_mask(64, 64)
    tiny_model.save_pretrained(tmp_path / "demo")
    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (tmp_path / "demo",))
    monkeypatch.setattr(defaults, "_announced", False)
    with pytest.warns(UserWarning, match=f"Using the DEMO model \\({tmp_path / 'demo'}\\)"):
        first = complete(image, mask)
    np.testing.assert_array_equal(first.amodal, complete(image, mask, model=tiny_model).amodal)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: the second call is quiet
        complete(image, mask)


def test_complete_without_a_model_or_demo_is_an_error_saying_how_to_get_one(tmp_path, monkeypatch):
    from amodal_sam import defaults

    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (tmp_path / "absent",))
    with pytest.raises(FileNotFoundError, match="the demo model is not installed .*absent.*AmodalSAM.from_pretrained"):
        complete(random_image(64, 64), ellipse_mask(64, 64))


def test_encoders_with_other_patch_sizes_work_end_to_end():
    import dataclasses

    from amodal_sam import AmodalSAM
    from amodal_sam.config import SAM_SPECS

    spec = dataclasses.replace(SAM_SPECS["tiny"], patch_size=8, window_size=8)  # 32 x 32 tokens, 128-px low-res
    model = AmodalSAM.random(spec, seed=0)
    predictor = AmodalPredictor(model, device=TEST_DEVICE)
    predictor.set_image(random_image(90, 120))
    result = predictor.complete(visible_mask=ellipse_mask(90, 120))
    assert result.low_res_logits.shape == (3, 128, 128) and result.amodal.shape == (90, 120)


def test_set_embedding_without_a_detail_branch_needs_no_image():
    from amodal_sam import AmodalSAM
    from amodal_sam.config import AmodalConfig, sam_spec_for

    model = AmodalSAM(config=AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), detail_branch=False))
    image, mask = random_image(90, 120), ellipse_mask(90, 120)
    predictor = AmodalPredictor(model, device=TEST_DEVICE)
    predictor.set_image(image)
    expected = predictor.complete(visible_mask=mask)
    other = AmodalPredictor(model, device=TEST_DEVICE)
    other.set_embedding(predictor.image.embedding, (90, 120))
    assert other.image.original_size == (90, 120) and other.image.detail is None
    np.testing.assert_array_equal(other.complete(visible_mask=mask).low_res_logits, expected.low_res_logits)


def test_complete_batch_takes_a_threshold_and_needs_masks(predictor):
    masks = [ellipse_mask(240, 320, center=(0.4, 0.5)), ellipse_mask(240, 320, center=(0.6, 0.5))]
    for threshold in (0.1, 0.9):
        batch = predictor.complete_batch(masks, hidden_threshold=threshold)
        for mask, result in zip(masks, batch):
            np.testing.assert_array_equal(
                result.amodal, predictor.complete(visible_mask=mask, hidden_threshold=threshold).amodal
            )
    loose, strict = predictor.complete_batch(masks, hidden_threshold=0.1), predictor.complete_batch(masks)
    assert sum(r.amodal.sum() for r in loose) > sum(r.amodal.sum() for r in strict) or not any(
        r.occluder.any() for r in strict
    )
    with pytest.raises(ValueError, match="at least one"):
        predictor.complete_batch([])


def test_reset_image_forgets_the_image(predictor):
    predictor.reset_image()
    assert predictor.image is None
    with pytest.raises(RuntimeError, match="no image is set"):
        predictor.complete(visible_mask=ellipse_mask(240, 320))


def test_a_random_sam_refuses_point_and_box_prompts_instead_of_returning_noise(tmp_path):
    model = AmodalSAM.random("tiny", seed=0)  # a random SAM: its prompt path is untrained
    assert model.config.sam_prompts is False
    model.save_pretrained(tmp_path / "model")
    loaded = AmodalSAM.from_pretrained(tmp_path / "model")
    assert loaded.config.sam_prompts is False
    predictor = AmodalPredictor(loaded)
    image, mask = random_image(64, 64), ellipse_mask(64, 64)
    predictor.set_image(image)
    message = r"point and box prompts need a frozen SAM with real weights; this model's SAM \(tiny\) is random"
    for prompts in ({"point_coords": [[32, 32]], "point_labels": [1]}, {"box": [10, 10, 50, 50]}):
        with pytest.raises(ValueError, match=message):
            predictor.complete(**prompts)
        with pytest.raises(ValueError, match=message):
            predictor.complete(**prompts, use_sam_for_visible=False)  # the amodal decoder alone: noise too
    assert predictor.complete(visible_mask=mask).amodal.shape == (64, 64)  # the visible mask still works
    main_args = ["complete", str(tmp_path / "i.png"), "--point", "32,32", "--model", str(tmp_path / "model")]
    write_rgb(tmp_path / "i.png", image)
    assert main([*main_args, "--out", str(tmp_path / "a.png")]) == 2
