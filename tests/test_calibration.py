"""hidden_threshold: the predictor's use of it, its config round trip, and choosing it on held-out data."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.calibration import (
    OCCLUDER_THRESHOLDS,
    DecisionScore,
    SetScore,
    ThresholdScore,
    best_decision,
    best_threshold,
    decision_grid,
    score_decisions,
    score_thresholds,
)
from amodal_sam.cli import main
from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.data.readers import load_dataset
from amodal_sam.decision import Decision
from amodal_sam.evaluate import predict_dataset
from amodal_sam.metrics import summarize
from amodal_sam.modeling.completion import probability_logit

from conftest import TEST_DEVICE, ellipse_mask, random_image, write_occlusion_dataset


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    return write_occlusion_dataset(tmp_path_factory.mktemp("calibration"), count=4)


def _trained_like(model):
    """Occluder output everywhere, hypotheses of varied confidence: the threshold then decides."""
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    return model


def _with_threshold(model, threshold):
    model.config.hidden_threshold = threshold
    return model


def test_a_higher_threshold_adds_a_subset_of_the_pixels(tiny_model):
    model = _trained_like(tiny_model)
    image, visible = random_image(120, 160), ellipse_mask(120, 160, radii=(0.15, 0.1))
    results = []
    for threshold in (0.2, 0.5, 0.9):
        predictor = AmodalPredictor(_with_threshold(model, threshold), device=TEST_DEVICE)
        predictor.set_image(image)
        results.append(predictor.complete(visible_mask=visible))
    for looser, stricter in zip(results, results[1:]):
        assert not (stricter.hypotheses & ~looser.hypotheses).any()
        assert (stricter.hypotheses.sum() < looser.hypotheses.sum()) or not looser.hypotheses.any()
    best = int(results[1].hypothesis_scores.argmax())
    expected = results[1].visible | (results[1].hypotheses[best] & results[1].occluder)
    np.testing.assert_array_equal(results[1].amodal, expected)


def test_threshold_is_saved_and_checked(tiny_model, tmp_path):
    _with_threshold(tiny_model, 0.8).save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["hidden_threshold"] == 0.8
    assert AmodalSAM.from_pretrained(tmp_path).config.hidden_threshold == 0.8
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"hidden_threshold must be a probability in \(0, 1\)"):
            AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), hidden_threshold=bad)
    assert probability_logit(0.5) == 0.0 and probability_logit(0.9) == pytest.approx(np.log(9.0))
    with pytest.raises(ValueError, match=r"hidden_threshold must be a probability in \(0, 1\); got 1.0"):
        probability_logit(1.0)


def test_calibration_decodes_each_image_once_for_every_threshold(annotations, tiny_model):
    dataset = load_dataset(annotations)
    instances = sum(len(record.instances) for record in dataset.records)
    calls = {"encoder": 0, "decoder": 0}
    tiny_model.sam.image_encoder.register_forward_hook(lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1))
    tiny_model.decoder.register_forward_hook(lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1))
    scores = score_thresholds(dataset, tiny_model, [0.5, 0.6, 0.7, 0.8, 0.9], progress=False)
    assert len(scores) == 5
    assert calls["encoder"] == len(dataset.records) == 4  # one encoding per image
    assert calls["decoder"] == instances  # one decoding per instance (one per call on the CPU), not 5 x


def test_best_threshold_takes_the_largest_gain_that_does_no_harm():
    scores = [
        ThresholdScore(0.3, aiou=0.70, oiou=0.30, gain=0.05, harmless=False),  # the largest gain, but harmful
        ThresholdScore(0.5, aiou=0.70, oiou=0.30, gain=-0.02, harmless=True),
        ThresholdScore(0.7, aiou=0.74, oiou=0.25, gain=0.01, harmless=True),
        ThresholdScore(0.8, aiou=0.75, oiou=0.25, gain=0.01, harmless=True),
        ThresholdScore(0.9, aiou=0.76, oiou=0.20, gain=-0.01, harmless=True),
    ]
    assert best_threshold(scores) == 0.7  # exact ties go to the lower threshold
    assert best_threshold([replace(s, harmless=False) for s in scores]) == 0.3  # none harmless: the gain alone
    with pytest.raises(ValueError, match="no threshold"):
        best_threshold([])


def test_a_near_tie_in_gain_goes_to_the_larger_oiou():
    # One set, the better baseline at 0.730: the best harmless gain is 0.010 (AIoU 0.740); AIoUs
    # within GAIN_TIE = 0.005 of it (>= 0.735) are a near tie, which OIoU decides.
    scores = [
        ThresholdScore(0.7, aiou=0.740, oiou=0.25, gain=0.010, harmless=True),
        ThresholdScore(0.6, aiou=0.737, oiou=0.28, gain=0.007, harmless=True),  # a near tie, better hidden part
        ThresholdScore(0.5, aiou=0.734, oiou=0.40, gain=0.004, harmless=True),  # 0.006 behind: not a tie
        ThresholdScore(0.3, aiou=0.739, oiou=0.50, gain=0.009, harmless=False),  # harmful: never
    ]
    assert best_threshold(scores) == 0.6

    def score(decision, gains, oious):  # sets where visible = 0.8 > rule = 0.7, so gain = AIoU - 0.8
        return DecisionScore(decision, tuple(SetScore(0.8 + g, o, 0.8, 0.7) for g, o in zip(gains, oious)))

    top = score(Decision(0.9, 1.0), (0.010, 0.010), (0.30, 0.30))  # mean gain 0.010, mean OIoU 0.30
    near = score(Decision(0.5, 1.0), (0.007, 0.006), (0.40, 0.30))  # within 0.005 on both sets; OIoU 0.35
    # a mean gain of 0.009, but 0.010 behind on the second set: a tie on the mean only
    lopsided = score(Decision(0.4, 1.0), (0.018, 0.000), (0.60, 0.60))
    far = score(Decision(0.3, 1.0), (0.004, 0.004), (0.60, 0.60))  # 0.006 behind on each set
    assert near.mean_oiou == pytest.approx(0.35) and lopsided.gain == pytest.approx(0.009)
    assert best_decision([top, near, lopsided, far]) == Decision(0.5, 1.0)
    assert best_decision([top, lopsided, far]) == Decision(0.9, 1.0)


def test_score_thresholds_matches_eval_and_leaves_the_model_as_it_was(annotations, tiny_model):
    dataset = load_dataset(annotations)
    model = _trained_like(tiny_model)
    scores = score_thresholds(dataset, model, [0.3, 0.9], progress=False)
    assert [s.threshold for s in scores] == [0.3, 0.9] and model.config.hidden_threshold == 0.5
    visible = summarize([p.counts for p in predict_dataset(dataset, baseline_name="visible", progress=False)])
    hull = summarize([p.counts for p in predict_dataset(dataset, baseline_name="hull", progress=False)])
    for score in scores:
        metrics = summarize([p.counts for p in predict_dataset(dataset, _with_threshold(model, score.threshold))])
        assert score.aiou == pytest.approx(metrics["mean"]["aiou"])
        assert score.oiou == pytest.approx(metrics["mean"]["oiou"])
        expected = score.aiou - max(visible["mean"]["aiou"], hull["mean"]["aiou"])
        assert score.gain == pytest.approx(expected)
        assert score.harmless == (score.aiou >= visible["mean"]["aiou"])
    with pytest.raises(ValueError, match="at least one"):
        score_thresholds(dataset, model, [])


def test_calibrate_command_saves_the_chosen_threshold(annotations, tiny_model, tmp_path, capsys):
    _trained_like(tiny_model).save_pretrained(tmp_path / "model")
    code = main(
        ["calibrate", "--data", str(annotations), "--model", str(tmp_path / "model"), "--thresholds", "0.3,0.9"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "| 0.3 |" in out and "| 0.9 |" in out
    scores = score_decisions(
        [load_dataset(annotations)], _trained_like(AmodalSAM.random("tiny")), decision_grid([0.3, 0.9]), progress=False
    )
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    chosen = best_decision(scores)
    assert (saved["hidden_threshold"], saved["outside_threshold"], saved["plausible_share"]) == (
        chosen.threshold,
        chosen.outside_threshold,
        chosen.plausible_share,
    )
    assert main(["calibrate", "--data", str(annotations), "--model", str(tmp_path / "nowhere")]) == 2
    assert "local model folder" in capsys.readouterr().err


def test_aiou_gain_is_the_lead_over_the_better_baseline():
    from amodal_sam.calibration import aiou_gain

    assert aiou_gain(0.80, visible_aiou=0.75, rule_aiou=0.70) == pytest.approx(0.05)  # the visible masks lead
    assert aiou_gain(0.80, visible_aiou=0.70, rule_aiou=0.78) == pytest.approx(0.02)  # the rule leads
    assert aiou_gain(0.60, visible_aiou=0.70, rule_aiou=0.65) == pytest.approx(-0.10)  # behind


def test_calibration_reads_embeddings_from_the_cache(annotations, tiny_model, tmp_path):
    from amodal_sam.embedding_cache import EmbeddingCache, embed_dataset

    dataset = load_dataset(annotations)
    cache = EmbeddingCache(tmp_path / "cache", tiny_model)
    embed_dataset(dataset, cache, progress=False)
    encoder_calls = []
    tiny_model.sam.image_encoder.register_forward_hook(lambda *_: encoder_calls.append(1))
    cached = score_thresholds(dataset, tiny_model, [0.5, 0.9], cache=cache, progress=False)
    assert encoder_calls == [] and cache.stats.hits == 4
    assert cached == score_thresholds(dataset, tiny_model, [0.5, 0.9], progress=False)


def test_calibrate_model_loads_the_folder_and_saves_the_choice(annotations, tiny_model, tmp_path):
    from amodal_sam.calibration import calibrate_model

    _trained_like(tiny_model).save_pretrained(tmp_path / "model")
    chosen, scores = calibrate_model(load_dataset(annotations), tmp_path / "model", [0.3, 0.9], progress=False)
    grid = decision_grid([0.3, 0.9], occluder=OCCLUDER_THRESHOLDS)  # single-object mode: every occluder level
    assert chosen == best_decision(scores) and [s.decision for s in scores] == grid
    assert AmodalSAM.from_pretrained(tmp_path / "model").config.decision_for(occluders_known=False) == chosen
    with pytest.raises(FileNotFoundError, match="config.json"):
        calibrate_model(load_dataset(annotations), tmp_path / "nowhere")


def test_calibrate_changes_only_the_threshold_and_takes_the_encoder_options(annotations, tiny_model, tmp_path):
    from amodal_sam.calibration import calibrate_model

    folder = tmp_path / "model"
    _trained_like(tiny_model).accelerate_encoder("bf16").save_pretrained(folder)
    before = json.loads((folder / "config.json").read_text())
    weights = (folder / "model.safetensors").read_bytes()
    (folder / "sam.safetensors").rename(tmp_path / "moved_sam.safetensors")  # the SAM weights moved away
    with pytest.raises(FileNotFoundError, match="sam.safetensors"):
        calibrate_model(load_dataset(annotations), folder, [0.3, 0.9], progress=False)
    seen = []
    original = AmodalSAM.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        model = original(cls, *args, **kwargs)
        seen.append(model.encoder_mode)
        return model

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AmodalSAM, "from_pretrained", classmethod(recording))
        chosen, _ = calibrate_model(
            load_dataset(annotations),
            folder,
            [0.3, 0.9],
            sam_checkpoint=str(tmp_path / "moved_sam.safetensors"),
            encoder_dtype="fp32",
            progress=False,
        )
    assert seen == ["folded-fp32"]  # the given precision, over the recorded bf16
    after = json.loads((folder / "config.json").read_text())
    assert after.pop("extra").keys() == {"calibration"}  # the record the model card shows
    assert after == {
        **{k: v for k, v in before.items() if k != "extra"},
        "hidden_threshold": chosen.threshold,
        "outside_threshold": chosen.outside_threshold,
        "plausible_share": chosen.plausible_share,
    }  # the recorded encoder_dtype stays bf16
    assert after["encoder_dtype"] == "bf16" and (folder / "model.safetensors").read_bytes() == weights


def test_a_named_attention_path_reaches_the_encoder_from_python_and_the_command_line(tiny_model, tmp_path):
    from amodal_sam.cli import main
    from amodal_sam.factory import create_model

    tiny_model.save_pretrained(tmp_path / "plain")  # no recorded precision: segment-anything's modules
    assert create_model(model=str(tmp_path / "plain")).encoder_mode == "reference-fp32"
    assert create_model(model=str(tmp_path / "plain"), attention="chunked").encoder_mode == "chunked-fp32"
    assert create_model(sam="tiny", attention="sdpa").encoder_mode == "sdpa-fp32"
    assert create_model(sam="tiny", encoder_dtype="bf16", attention="sdpa").encoder_mode == "sdpa-bf16"
    tiny_model.accelerate_encoder("bf16").save_pretrained(tmp_path / "bf16")
    model = create_model(model=str(tmp_path / "bf16"), attention="chunked")  # over the suite's AMODAL_SAM_ATTENTION
    assert model.encoder_mode == "chunked-bf16"
    assert all(type(block.attn).__name__ == "ChunkedAttention" for block in model.sam.image_encoder.blocks)
    seen = []
    original = AmodalSAM.accelerate_encoder

    def recording(self, *args, **kwargs):
        accelerated = original(self, *args, **kwargs)
        seen.append(accelerated.encoder_mode)
        return accelerated

    image, mask = tmp_path / "image.png", tmp_path / "mask.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(image)
    visible = np.zeros((40, 48), np.uint8)
    visible[10:30, 12:30] = 255
    Image.fromarray(visible).save(mask)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AmodalSAM, "accelerate_encoder", recording)
        args = ["complete", str(image), "--visible", str(mask), "--model", str(tmp_path / "bf16")]
        assert main([*args, "--out", str(tmp_path / "a.png"), "--attention", "sdpa"]) == 0
        assert main([*args, "--out", str(tmp_path / "b.png"), "--attention", "chunked", "--encoder-dtype", "fp32"]) == 0
    assert seen == ["sdpa-bf16", "chunked-fp32"]


def test_the_recorded_encoder_precision_is_used_by_eval_and_complete(annotations, tiny_model, tmp_path, capsys):
    from amodal_sam.cli import main
    from amodal_sam.factory import create_model

    tiny_model.accelerate_encoder("bf16").save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "config.json").read_text())["encoder_dtype"] == "bf16"
    assert create_model(model=str(tmp_path / "model")).encoder_mode == "folded-bf16"
    assert create_model(model=str(tmp_path / "model"), encoder_dtype="fp16").encoder_mode == "folded-fp16"
    report = tmp_path / "report.json"
    assert main(["eval", "--data", str(annotations), "--model", str(tmp_path / "model"), "--report", str(report)]) == 0
    assert json.loads(report.read_text())["encoder"] == "folded-bf16"


def test_decision_grid_crosses_inside_outside_and_shares():
    grid = decision_grid([0.5, 0.95], outside=(0.9, 1.0), shares=(1.0, 0.5))
    assert grid == [
        Decision(0.5, 0.5, 1.0),
        Decision(0.5, 0.9, 1.0),
        Decision(0.5, 1.0, 1.0),
        Decision(0.5, 0.5, 0.5),
        Decision(0.5, 0.9, 0.5),
        Decision(0.5, 1.0, 0.5),
        Decision(0.95, 0.95, 1.0),  # 0.9 is below the inside threshold: not a candidate
        Decision(0.95, 1.0, 1.0),
        Decision(0.95, 0.95, 0.5),
        Decision(0.95, 1.0, 0.5),
    ]
    with pytest.raises(ValueError, match="at least one"):
        decision_grid([])


def test_best_decision_averages_the_gain_over_harmless_decisions_and_breaks_ties_towards_the_rule():
    # Two sets: visible masks 0.80 / 0.70, the rule 0.85 / 0.60 (the better baseline: 0.85 / 0.70).
    def score(decision, *aious):
        return DecisionScore(
            decision, tuple(SetScore(a, 0.3, v, r) for a, v, r in zip(aious, (0.80, 0.70), (0.85, 0.60)))
        )

    harmful = score(Decision(0.1, 0.7), 0.99, 0.69)  # gains +0.14 / -0.01: mean +0.065, below the visible masks
    careful = score(Decision(0.7, 0.9), 0.86, 0.72)  # +0.01 / +0.02: the best worst set, mean +0.015
    bold = score(Decision(0.5, 1.0), 0.90, 0.71)  # +0.05 / +0.01: mean +0.03
    tie_lower = score(Decision(0.3, 1.0), 0.90, 0.71)  # the same gains at a lower inside threshold
    tie_outside = score(Decision(0.3, 0.97), 0.90, 0.71)  # the same, a lower outside threshold
    assert harmful.gain == pytest.approx(0.065) and not harmful.harmless
    assert bold.gain == pytest.approx(0.03) and bold.harmless and bold.aiou == (0.90, 0.71)
    assert best_decision([harmful, careful, bold]) == Decision(0.5, 1.0)
    assert best_decision([careful, bold, tie_lower, tie_outside]) == Decision(0.3, 1.0)
    assert best_decision([harmful, score(Decision(0.9), 0.79, 0.69)]) == Decision(0.1, 0.7)  # none harmless
    with pytest.raises(ValueError, match="no decision"):
        best_decision([])


def test_score_decisions_scores_each_set_as_alone(annotations, tiny_model, tmp_path):
    model = _trained_like(tiny_model)
    first = load_dataset(annotations)
    second = load_dataset(write_occlusion_dataset(tmp_path, count=2, seed=5))
    grid = [Decision(0.5), Decision(0.3, 1.0, 0.5)]
    both = score_decisions([first, second], model, grid, progress=False)
    alone = [score_decisions([d], model, grid, progress=False) for d in (first, second)]
    for k, score in enumerate(both):
        assert score.sets == (alone[0][k].sets[0], alone[1][k].sets[0])
        assert score.gain == pytest.approx((score.sets[0].gain + score.sets[1].gain) / 2)
    plain = score_thresholds(first, model, [0.5], progress=False)[0]
    assert (plain.aiou, plain.oiou) == (both[0].aiou[0], both[0].oiou[0])


def test_calibrate_model_scores_scene_mode_and_fills_the_cache(annotations, tiny_model, tmp_path):
    from amodal_sam.calibration import calibrate_model

    _trained_like(tiny_model).save_pretrained(tmp_path / "model")
    dataset, grid = load_dataset(annotations), decision_grid([0.3, 0.9])
    saved = AmodalSAM.from_pretrained(tmp_path / "model")
    scene = {s.decision: s.sets for s in score_decisions([dataset], saved, grid, scene=True, progress=False)}
    single = {s.decision: s.sets for s in score_decisions([dataset], saved, grid, progress=False)}
    assert scene != single  # the case tells the modes apart
    chosen, scores = calibrate_model(
        dataset, tmp_path / "model", [0.3, 0.9], scene=True, cache_dir=tmp_path / "cache", progress=False
    )
    assert {s.decision: s.sets for s in scores} == scene
    assert AmodalSAM.from_pretrained(tmp_path / "model").config.decision_for(occluders_known=True) == chosen
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == len(dataset.records)  # one embedding per image


def test_format_decision_scores_writes_one_row_per_decision_and_set():
    from amodal_sam.calibration import format_decision_scores

    sets = (SetScore(0.81234, 0.4, 0.8, 0.75), SetScore(0.7, 0.2, 0.72, 0.6))  # gains +0.0123, -0.02
    scores = [DecisionScore(Decision(0.3, 1.0, 0.5, 0.9), sets)]
    assert format_decision_scores(scores, ["a.json", "b"]) == (
        "| threshold | outside | share | occluder | a.json: AIoU / OIoU / gain | b: AIoU / OIoU / gain | mean gain "
        "| no harm |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| 0.3 | 1 | 0.5 | 0.9 | 0.8123 / 0.4000 / +0.0123 | 0.7000 / 0.2000 / -0.0200 | -0.0038 | no |"
    )


def test_calibrate_saves_the_occluder_level_in_single_object_mode_only(annotations, tiny_model, tmp_path, monkeypatch):
    from amodal_sam import calibration

    _trained_like(tiny_model).save_pretrained(tmp_path / "model")
    grids = []

    def strictest_occluder(scores):  # stands in for the choice: the grid's last decision
        grids.append([s.decision for s in scores])
        return grids[-1][-1]

    monkeypatch.setattr(calibration, "best_decision", strictest_occluder)
    calibration.calibrate_model(load_dataset(annotations), tmp_path / "model", [0.3], progress=False)
    assert {d.occluder_threshold for d in grids[0]} == {0.5, 0.7, 0.9, 0.97, 0.99}
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["occluder_threshold"] == 0.99 and saved["hidden_threshold"] == 0.3
    calibration.calibrate_model(load_dataset(annotations), tmp_path / "model", [0.3], scene=True, progress=False)
    assert {d.occluder_threshold for d in grids[1]} == {0.5}  # known occluders: one level
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["occluder_threshold"] == 0.99 and saved["scene_hidden_threshold"] == 0.3  # single's level kept
