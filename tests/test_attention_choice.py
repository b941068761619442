"""The fast encoder's attention path: chosen by measuring on this machine, remembered, overridable."""

import dataclasses
import json
from functools import partial

import pytest
import torch
from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

from amodal_sam import AmodalSAM
from amodal_sam.config import SAM_SPECS
from amodal_sam.modeling import attention_choice
from amodal_sam.modeling.attention_choice import (
    ENV_VARIABLE,
    attention_shapes,
    choice_key,
    choose_attention,
    reference_attention,
    time_candidates,
)
from amodal_sam.modeling.fast_encoder import ATTENTION, sdpa_rel_pos_attention
from amodal_sam.modeling.sam_builder import build_image_encoder


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    """These tests choose: the suite's override (conftest) is cleared."""
    monkeypatch.delenv(ENV_VARIABLE, raising=False)


def _tiny_encoder(**changes):
    return build_image_encoder(dataclasses.replace(SAM_SPECS["tiny"], **changes)).eval()


def _timer(seconds, calls):
    """A stand-in for time_candidates: returns ``seconds`` and counts its calls."""

    def timer(encoder, dtype, device, candidates):
        calls.append((dtype, tuple(candidates)))
        return dict(seconds)

    return timer


def _never(*_):
    raise AssertionError("measured, but the choice should not need it")


def test_attention_shapes_follow_the_blocks():
    # tiny: 256 px / 16 = 16 x 16 tokens, 2 heads of 32 / 2 = 16 channels; block 0 in windows of 4
    # (16 windows), block 1 global. Windows of 5 pad 16 to 20 tokens a side: 4 x 4 = 16 windows.
    assert attention_shapes(_tiny_encoder()) == [(16, 2, 4, 16), (1, 2, 16, 16)]
    assert attention_shapes(_tiny_encoder(window_size=5, encoder_global_attn_indexes=())) == [(16, 2, 5, 16)] * 2


def test_an_explicit_path_or_the_environment_wins_without_measuring(monkeypatch, tmp_path):
    encoder, path = _tiny_encoder(), tmp_path / "choice.json"
    assert choose_attention(encoder, "fp32", "cpu", "sdpa", path, timer=_never) == "sdpa"
    monkeypatch.setenv(ENV_VARIABLE, "chunked")
    assert choose_attention(encoder, "fp32", "cpu", "auto", path, timer=_never) == "chunked"
    assert choose_attention(encoder, "fp32", "cpu", "folded", path, timer=_never) == "folded"  # the argument first
    assert not path.exists()
    monkeypatch.setenv(ENV_VARIABLE, "fastest")
    with pytest.raises(ValueError, match=f"{ENV_VARIABLE} must be one of .*'chunked'.* got 'fastest'"):
        choose_attention(encoder, "fp32", "cpu", "auto", path, timer=_never)
    with pytest.raises(ValueError, match="attention must be one of .* got 'quick'"):
        choose_attention(encoder, "fp32", "cpu", "quick", path, timer=_never)


def test_the_fastest_working_path_is_chosen_remembered_and_reused(tmp_path):
    encoder, path, calls = _tiny_encoder(), tmp_path / "cache" / "choice.json", []
    timer = _timer({"folded": 2.0, "sdpa": 1.5, "chunked": None}, calls)  # chunked failed: never chosen
    assert choose_attention(encoder, "bf16", "cpu", choice_file=path, timer=timer) == "sdpa"
    assert calls == [("bf16", ("folded", "sdpa", "chunked"))]
    saved = json.loads(path.read_text())
    assert saved == {
        choice_key(encoder, "bf16", "cpu"): {
            "attention": "sdpa",
            "seconds": {"folded": 2.0, "sdpa": 1.5, "chunked": None},
        }
    }
    assert choose_attention(encoder, "bf16", "cpu", choice_file=path, timer=_never) == "sdpa"  # remembered
    # another precision is another key: measured again, both kept
    timer = _timer({"folded": 1.0, "sdpa": 1.5, "chunked": 3.0}, calls)
    assert choose_attention(encoder, "fp32", "cpu", choice_file=path, timer=timer) == "folded"
    assert len(calls) == 2 and len(json.loads(path.read_text())) == 2


def test_the_key_names_shapes_precision_device_torch_and_cpu():
    encoder = _tiny_encoder()
    key = choice_key(encoder, "bf16", "cpu")
    assert "(1, 2, 16, 16)" in key and "bf16" in key and " cpu " in key and torch.__version__ in key
    assert key != choice_key(_tiny_encoder(window_size=5), "bf16", "cpu")
    assert key != choice_key(encoder, "fp32", "cpu")


def test_a_choice_remembered_by_older_candidate_code_is_measured_again(tmp_path, monkeypatch):
    encoder, path, calls = _tiny_encoder(), tmp_path / "choice.json", []
    before = choice_key(encoder, "fp32", "cpu")
    timer = _timer({"folded": 2.0, "sdpa": 1.0, "chunked": 3.0}, calls)
    assert choose_attention(encoder, "fp32", "cpu", choice_file=path, timer=timer) == "sdpa"
    monkeypatch.setattr(attention_choice, "PATHS_REVISION", attention_choice.PATHS_REVISION + 1)
    assert choice_key(encoder, "fp32", "cpu") != before
    timer = _timer({"folded": 2.0, "sdpa": 3.0, "chunked": 1.0}, calls)
    assert choose_attention(encoder, "fp32", "cpu", choice_file=path, timer=timer) == "chunked"
    assert len(calls) == 2


def test_a_cpu_with_other_vector_flags_under_the_same_model_name_measures_again(tmp_path, monkeypatch):
    # Two VMs both named "AMD EPYC": one with AVX-512 and bf16 instructions, one with AVX2 only.
    encoder, path, calls = _tiny_encoder(), tmp_path / "choice.json", []
    monkeypatch.setattr(attention_choice, "cpu_model", lambda: "AMD EPYC x2")
    monkeypatch.setattr(attention_choice, "cpu_flags", lambda: ["avx2", "avx512_bf16", "avx512f", "fma"])
    wide = choice_key(encoder, "fp32", "cpu")
    assert "AMD EPYC x2 [avx2 avx512_bf16 avx512f fma]" in wide
    assert (
        choose_attention(
            encoder, "fp32", "cpu", choice_file=path, timer=_timer({"folded": 1.0, "sdpa": 2.0, "chunked": 3.0}, calls)
        )
        == "folded"
    )
    monkeypatch.setattr(attention_choice, "cpu_flags", lambda: ["avx2", "fma"])
    assert choice_key(encoder, "fp32", "cpu") != wide
    assert (
        choose_attention(
            encoder, "fp32", "cpu", choice_file=path, timer=_timer({"folded": 2.0, "sdpa": 1.0, "chunked": 3.0}, calls)
        )
        == "sdpa"
    )
    assert len(calls) == 2 and len(json.loads(path.read_text())) == 2


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_an_unreadable_choice_file_is_measured_over(tmp_path, content):
    encoder, path, calls = _tiny_encoder(), tmp_path / "choice.json", []
    path.write_text(content)
    timer = _timer({"folded": 1.0, "sdpa": 0.5, "chunked": 0.7}, calls)
    assert choose_attention(encoder, "fp32", "cpu", choice_file=path, timer=timer) == "sdpa"
    assert len(calls) == 1
    assert json.loads(path.read_text())[choice_key(encoder, "fp32", "cpu")]["attention"] == "sdpa"


def test_a_remembered_name_that_is_no_path_is_measured_over(tmp_path):
    encoder, path, calls = _tiny_encoder(), tmp_path / "choice.json", []
    path.write_text(json.dumps({choice_key(encoder, "fp32", "cpu"): {"attention": "gone"}}))
    timer = _timer({"folded": 1.0, "sdpa": 2.0, "chunked": 3.0}, calls)
    assert choose_attention(encoder, "fp32", "cpu", choice_file=path, timer=timer) == "folded"
    assert len(calls) == 1


def test_no_working_path_is_an_error(tmp_path):
    timer = _timer({"folded": None, "sdpa": None, "chunked": None}, [])
    with pytest.raises(RuntimeError, match="no attention path ran correctly"):
        choose_attention(_tiny_encoder(), "fp32", "cpu", choice_file=tmp_path / "c.json", timer=timer)


def test_timing_never_keeps_a_path_that_disagrees_or_fails():
    def wrong(q, k, v, *_):  # the fastest of all, and wrong: the values unmixed
        return v

    def broken(*_):
        raise RuntimeError("no kernel for this dtype")

    functions = {"folded": wrong, "sdpa": sdpa_rel_pos_attention, "chunked": broken}
    seconds = time_candidates(_tiny_encoder(), "fp32", "cpu", ["folded", "sdpa", "chunked"], 1, functions)
    assert seconds["folded"] is None and seconds["chunked"] is None and seconds["sdpa"] > 0
    timer = partial(time_candidates, repeats=1, functions=functions)
    assert choose_attention(_tiny_encoder(), "fp32", "cpu", choice_file=None, timer=timer) == "sdpa"


@pytest.mark.parametrize("rows", [5, 64, 512])
def test_the_reference_in_blocks_of_queries_is_segment_anythings_formula(rows):
    # segment-anything's own Attention.forward: scores, add_decomposed_rel_pos, softmax, values;
    # 5 rows a block leaves a last block of 4 of the 64 queries.
    generator = torch.Generator().manual_seed(3)
    heads, side, width = 2, 8, 16
    q, k, v = (torch.randn(1, heads, side * side, width, generator=generator) for _ in range(3))
    tables = [0.5 * torch.randn(2 * side - 1, width, generator=generator) for _ in range(2)]
    flat = [t.reshape(heads, side * side, width) for t in (q, k, v)]
    scores = add_decomposed_rel_pos(
        flat[0] * width**-0.5 @ flat[1].transpose(-2, -1), flat[0], *tables, (side, side), (side, side)
    )
    expected = (scores.softmax(dim=-1) @ flat[2]).reshape(1, heads, side * side, width)
    result = reference_attention(q, k, v, *tables, (side, side), width**-0.5, rows=rows)
    assert result.shape == expected.shape
    assert torch.allclose(result, expected, atol=1e-5)


@pytest.mark.parametrize("rows", [5, 64])
def test_the_reference_holds_at_most_rows_queries_scores_at_a_time(monkeypatch, rows):
    from conftest import record_score_products

    generator = torch.Generator().manual_seed(3)
    heads, side, width = 2, 8, 16
    q, k, v = (torch.randn(1, heads, side * side, width, generator=generator) for _ in range(3))
    tables = [0.5 * torch.randn(2 * side - 1, width, generator=generator) for _ in range(2)]
    products = record_score_products(monkeypatch, keys=side * side)
    reference_attention(q, k, v, *tables, (side, side), width**-0.5, rows=rows)
    assert max(size for _, size in products) == rows * side * side
    assert sum(size for _, size in products) == heads * (side * side) ** 2


def test_every_real_path_agrees_and_is_timed():
    seconds = time_candidates(_tiny_encoder(), "fp32", "cpu", ["folded", "sdpa", "chunked"], repeats=1)
    assert set(seconds) == {"folded", "sdpa", "chunked"} and all(s is not None and s > 0 for s in seconds.values())


def test_accelerate_encoder_takes_the_choice_and_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="fp32")
    chosen = json.loads((tmp_path / "amodal_sam" / "attention_choice.json").read_text())
    (entry,) = chosen.values()
    assert model.encoder_mode == f"{entry['attention']}-fp32"
    assert all(type(block.attn) is ATTENTION[entry["attention"]] for block in model.sam.image_encoder.blocks)
    monkeypatch.setenv(ENV_VARIABLE, "chunked")
    model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="fp32")
    assert model.encoder_mode == "chunked-fp32"
    assert all(type(block.attn) is ATTENTION["chunked"] for block in model.sam.image_encoder.blocks)
    with pytest.raises(ValueError, match="dtype must be one of"):
        AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="int4")


@pytest.mark.parametrize(
    ("flags", "dtype", "device", "warned"),
    [
        (["avx2", "fma"], "bf16", "cpu", True),  # an AVX2-only host: bf16 emulated
        (["avx2", "avx512_bf16", "avx512f"], "bf16", "cpu", False),
        (["amx_bf16", "avx2"], "bf16", "cpu", False),
        (["avx2", "avx512_bf16"], "fp16", "cpu", True),  # bf16 native is not fp16 native
        (["avx2", "fma"], "fp32", "cpu", False),
        (["avx2", "fma"], "bf16", "cuda", False),
        ([], "bf16", "cpu", False),  # flags unknown (not x86 Linux): no guess
    ],
)
def test_an_emulated_low_precision_is_warned_about(monkeypatch, flags, dtype, device, warned):
    monkeypatch.setattr(attention_choice, "cpu_flags", lambda: flags)
    message = attention_choice.emulated_precision_warning(dtype, device)
    assert (message is not None) == warned
    if warned:
        assert f"encoder dtype {dtype!r}" in message and f"avx512_{dtype}" in message and "fp32" in message


def test_accelerating_in_an_emulated_precision_warns(monkeypatch, tmp_path):
    from amodal_sam.modeling import attention_choice

    monkeypatch.setattr(attention_choice, "cpu_flags", lambda: ["avx2", "fma"])
    monkeypatch.setenv(ENV_VARIABLE, "folded")
    with pytest.warns(RuntimeWarning, match="emulated and the encoder runs slower than in fp32"):
        AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="bf16")
