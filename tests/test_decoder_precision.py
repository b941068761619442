"""The decoder's precision at inference: chosen by measuring on this machine, remembered,
overridable, and never in training."""

import json

import pytest
import torch
import torch.nn.functional as F

from amodal_sam import AmodalSAM
from amodal_sam.modeling import attention_choice, decoder_precision
from amodal_sam.modeling.decoder_precision import (
    ENV_VARIABLE,
    choose_decoder_dtype,
    decoder_choice_key,
    time_decoder,
)

SIDE = 16  # the tiny spec's embedding side (256-px images, 16-px patches)


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    """These tests choose: the suite's override (conftest) is cleared."""
    monkeypatch.delenv(ENV_VARIABLE, raising=False)


@pytest.fixture
def model() -> AmodalSAM:
    return AmodalSAM.random("tiny", seed=0).eval()


def _timer(seconds, calls):
    """A stand-in for time_decoder: returns ``seconds`` and counts its calls."""

    def timer(decoder, side, dtype, device):
        calls.append((side, dtype))
        return dict(seconds)

    return timer


def _never(*_):
    raise AssertionError("measured, but the choice should not need it")


def _inputs(model: AmodalSAM, count: int = 2, seed: int = 0):
    """Seeded decoder inputs for ``count`` prompts on one image."""
    generator = torch.Generator().manual_seed(seed)
    width, side = model.decoder.transformer_dim, SIDE
    detail = None
    if model.decoder.has_detail:
        pixels = torch.randn(1, 3, 4 * 4 * side, 4 * 4 * side, generator=generator)
        detail = model.detail_features(pixels)
    return (
        torch.randn(1, width, side, side, generator=generator),
        model.prompt_encoder.get_dense_pe(),
        torch.randn(count, 2, width, generator=generator),
        torch.randn(count, width, side, side, generator=generator),
        None,
        detail,
    )


def test_an_explicit_precision_or_the_environment_wins_without_measuring(model, monkeypatch, tmp_path):
    choice_file = tmp_path / "choice.json"
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "fp32", choice_file, _never) == "fp32"
    assert choose_decoder_dtype(model.decoder, SIDE, None, "cpu", "bf16", choice_file, _never) == "bf16"
    monkeypatch.setenv(ENV_VARIABLE, "bf16")
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, _never) == "bf16"
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "fp32", choice_file, _never) == "fp32"
    monkeypatch.setenv(ENV_VARIABLE, "half")
    with pytest.raises(ValueError, match=f"{ENV_VARIABLE} must be one of .*'half'"):
        choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, _never)
    with pytest.raises(ValueError, match="decoder dtype must be one of .*'int8'"):
        choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "int8", choice_file, _never)
    assert not choice_file.exists()


@pytest.mark.parametrize("environment", [None, "auto", " auto "])
def test_auto_is_the_default_and_may_be_named_in_the_environment(model, monkeypatch, tmp_path, environment):
    if environment is not None:
        monkeypatch.setenv(ENV_VARIABLE, environment)
    calls = []
    timer = _timer({"fp32": 2.0, "bf16": 1.0}, calls)
    assert (
        choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", choice_file=tmp_path / "c.json", timer=timer) == "bf16"
    )
    assert calls == [(SIDE, "bf16")]


@pytest.mark.parametrize("encoder_dtype", [None, "fp32"])
def test_an_fp32_encoder_keeps_the_decoder_in_fp32_without_measuring(model, tmp_path, encoder_dtype):
    chosen = choose_decoder_dtype(model.decoder, SIDE, encoder_dtype, "cpu", "auto", tmp_path / "c.json", _never)
    assert chosen == "fp32"


@pytest.mark.parametrize(
    ("seconds", "chosen"),
    [
        ({"fp32": 2.0, "bf16": 1.0}, "bf16"),
        ({"fp32": 2.0, "bf16": 1.8}, "bf16"),  # 0.9 of fp32's time, the most a clear gain may take
        ({"fp32": 2.0, "bf16": 1.9}, "fp32"),  # within the noise: the values it changes are not worth it
        ({"fp32": 2.0, "bf16": 4.0}, "fp32"),  # emulated bf16 (an AVX2-only host)
        ({"fp32": 2.0, "bf16": None}, "fp32"),  # it disagreed with fp32 or failed
    ],
)
def test_the_reduced_precision_only_when_clearly_faster_remembered_and_reused(model, tmp_path, seconds, chosen):
    choice_file, calls = tmp_path / "choice.json", []
    assert (
        choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, _timer(seconds, calls)) == chosen
    )
    assert calls == [(SIDE, "bf16")]
    remembered = json.loads(choice_file.read_text())
    assert remembered == {decoder_choice_key(model.decoder, SIDE, "bf16", "cpu"): {"dtype": chosen, "seconds": seconds}}
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, _never) == chosen


def test_the_key_names_the_decoder_precision_device_torch_and_cpu(model, monkeypatch):
    key = decoder_choice_key(model.decoder, SIDE, "bf16", "cpu")
    assert f"({model.decoder.transformer_dim}, {SIDE}, {model.decoder.has_detail})" in key
    assert decoder_choice_key(model.decoder, 2 * SIDE, "bf16", "cpu") != key
    assert " bf16 cpu " in key and torch.__version__ in key
    monkeypatch.setattr(attention_choice, "cpu_flags", lambda: ["avx2", "fma"])
    assert decoder_choice_key(model.decoder, SIDE, "bf16", "cpu") != key


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_an_unreadable_choice_file_is_measured_over(model, tmp_path, content):
    choice_file, calls = tmp_path / "choice.json", []
    choice_file.write_text(content)
    timer = _timer({"fp32": 1.0, "bf16": 0.5}, calls)
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, timer) == "bf16"
    assert len(calls) == 1
    (entry,) = json.loads(choice_file.read_text()).values()
    assert entry["dtype"] == "bf16"


def test_a_remembered_precision_of_another_kind_is_measured_over(model, tmp_path):
    choice_file, calls = tmp_path / "choice.json", []
    choice_file.write_text(json.dumps({decoder_choice_key(model.decoder, SIDE, "bf16", "cpu"): {"dtype": "fp16"}}))
    timer = _timer({"fp32": 1.0, "bf16": 2.0}, calls)
    assert choose_decoder_dtype(model.decoder, SIDE, "bf16", "cpu", "auto", choice_file, timer) == "fp32"
    assert len(calls) == 1


def test_timing_runs_both_and_drops_a_precision_that_disagrees_or_fails(model, monkeypatch):
    seconds = time_decoder(model.decoder, SIDE, "bf16", "cpu", repeats=1)
    assert set(seconds) == {"fp32", "bf16"} and seconds["fp32"] > 0 and seconds["bf16"] > 0
    agreement = decoder_precision.MIN_COSINE
    monkeypatch.setattr(decoder_precision, "MIN_COSINE", 1.0 + 1e-6)  # no reduced precision agrees that well
    assert time_decoder(model.decoder, SIDE, "bf16", "cpu", repeats=1)["bf16"] is None
    monkeypatch.setattr(decoder_precision, "MIN_COSINE", agreement)
    original = model.decoder.predict_masks

    def fails_under_autocast(*args):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("no bf16 kernel here")
        return original(*args)

    monkeypatch.setattr(model.decoder, "predict_masks", fails_under_autocast)
    seconds = time_decoder(model.decoder, SIDE, "bf16", "cpu", repeats=1)
    assert seconds["bf16"] is None and seconds["fp32"] > 0


def test_the_decoder_runs_in_its_precision_at_inference_only(model):
    inputs = _inputs(model)
    with torch.no_grad():
        fp32 = model.decoder(*inputs)
        model.accelerate_decoder("bf16")
        assert model.decoder_dtype == "bf16"
        bf16 = model.decoder(*inputs)
    for name in ("amodal_logits", "amodal_iou", "visible_logits", "occluder_logits"):
        full, reduced = getattr(fp32, name), getattr(bf16, name)
        assert reduced.dtype == torch.float32 and reduced.shape == full.shape
        assert not torch.equal(reduced, full)  # bf16 products: not fp32's values to the bit
        assert F.cosine_similarity(reduced.flatten(), full.flatten(), dim=0) > 0.999
    trained = model.decoder(*inputs)  # gradients on, as in training: fp32, the same values
    assert torch.equal(trained.amodal_logits, fp32.amodal_logits.detach())
    with torch.no_grad():
        model.accelerate_decoder("fp32")
        assert model.decoder_dtype == "fp32" and torch.equal(model.decoder(*inputs).amodal_logits, fp32.amodal_logits)


def test_accelerate_encoder_chooses_the_decoder_precision_too(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="fp32")
    assert model.decoder_dtype == "fp32" and model.decoder.inference_dtype is None
    assert not (tmp_path / "amodal_sam" / "decoder_choice.json").exists()  # fp32: nothing to measure
    model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="bf16")
    (entry,) = json.loads((tmp_path / "amodal_sam" / "decoder_choice.json").read_text()).values()
    assert model.decoder_dtype == entry["dtype"] and set(entry["seconds"]) == {"fp32", "bf16"}
    monkeypatch.setenv(ENV_VARIABLE, "bf16")
    model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="bf16")
    assert model.decoder_dtype == "bf16" and model.decoder.inference_dtype is torch.bfloat16
