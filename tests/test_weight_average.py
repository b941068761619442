"""Weight averaging of fine-tuned heads (amodal_sam.weight_average, ``amodal-sam average``): the
saved head is the weighted mean of the given ones, tensor by tensor; heads on another SAM or of
another shape, and bad weights, are refused by name."""

import json

import pytest
import torch
from huggingface_hub import ModelCard

from amodal_sam import AmodalSAM
from amodal_sam.cli import main
from amodal_sam.sam_weights import read_safetensors
from amodal_sam.weight_average import average_models


def _fine_tuned(model: AmodalSAM, folder, shift: float, seed: int):
    """``model`` saved to ``folder`` with every head tensor moved by ``shift`` times seeded noise
    (a stand-in for a fine-tune of it)."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: v + shift * torch.randn(v.shape, generator=generator) for k, v in model.trainable_state_dict().items()}
    model.load_trainable_state_dict(state)
    return model.save_pretrained(folder)


def _head(folder) -> dict[str, torch.Tensor]:
    return read_safetensors(folder / "model.safetensors", "head")


@pytest.fixture
def two_heads(tiny_model, tmp_path):
    first = _fine_tuned(tiny_model, tmp_path / "a", 0.1, seed=1)
    second = _fine_tuned(tiny_model, tmp_path / "b", 0.1, seed=2)
    return first, second


def test_the_average_is_the_weighted_mean_of_every_tensor(two_heads, tmp_path):
    first, second = two_heads
    a, b = _head(first), _head(second)
    out = average_models([first, second], tmp_path / "mean", weights=[3, 1])  # normalised: 0.75, 0.25
    averaged = _head(out)
    assert set(averaged) == set(a)
    for key in a:
        torch.testing.assert_close(averaged[key], 0.75 * a[key] + 0.25 * b[key], rtol=0, atol=1e-6)
    assert not torch.equal(a["decoder.iou_token.weight"], b["decoder.iou_token.weight"])  # the test has teeth


def test_equal_weights_by_default_and_the_averaged_model_loads_and_runs(two_heads, tmp_path):
    first, second = two_heads
    out = average_models([first, second], tmp_path / "mean")
    key = "decoder.iou_token.weight"
    torch.testing.assert_close(_head(out)[key], (_head(first)[key] + _head(second)[key]) / 2, rtol=0, atol=1e-6)
    model = AmodalSAM.from_pretrained(out)
    averaged = model.trainable_state_dict()[key]
    torch.testing.assert_close(averaged, _head(out)[key])
    config = json.loads((out / "config.json").read_text())
    parts = config["extra"]["training"]["average_of"]
    assert [p["model"] for p in parts] == [f"{first.parent.name}/a", f"{first.parent.name}/b"]
    assert [p["weight"] for p in parts] == [0.5, 0.5]
    card = ModelCard.load(out / "README.md").text
    assert "weight average" in card and "a, weight 0.5" in card


def test_a_model_averaged_with_itself_is_unchanged(two_heads, tmp_path):
    first, _ = two_heads
    out = average_models([first, first], tmp_path / "same", weights=[0.3, 0.7])
    for key, value in _head(first).items():
        torch.testing.assert_close(_head(out)[key], value, rtol=0, atol=1e-6)


def test_heads_on_another_sam_are_refused_by_name(two_heads, tmp_path):
    first, second = two_heads
    config = json.loads((second / "config.json").read_text())
    config["sam_sha256"] = "0" * 64
    (second / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"another frozen SAM.*only heads on one SAM"):
        average_models([first, second], tmp_path / "mean")
    assert not (tmp_path / "mean").exists()


def test_heads_of_another_shape_are_refused_by_name(two_heads, tmp_path):
    from safetensors.torch import save_file

    first, second = two_heads
    state = _head(second)
    state["decoder.iou_token.weight"] = torch.zeros(2, 3)
    save_file(state, str(second / "model.safetensors"))
    with pytest.raises(ValueError, match=r"has another architecture.*names or shapes differ"):
        average_models([first, second], tmp_path / "mean")


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "one number per model \\(2\\); got 1"),
        ([1.0, -1.0], "positive finite"),
        ([1.0, float("nan")], "positive finite"),
    ],
)
def test_bad_weights_are_refused(two_heads, tmp_path, weights, message):
    with pytest.raises(ValueError, match=f"weights must .*{message}"):
        average_models(list(two_heads), tmp_path / "mean", weights=weights)


def test_one_folder_or_a_folder_without_weights_is_refused(two_heads, tmp_path):
    first, _ = two_heads
    with pytest.raises(ValueError, match="at least two model folders"):
        average_models([first], tmp_path / "mean")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="'.*empty' has no config.json"):
        average_models([first, tmp_path / "empty"], tmp_path / "mean")


def test_the_command_averages_and_a_bad_weight_exits_2_with_one_line(two_heads, tmp_path, capsys):
    first, second = two_heads
    assert main(["average", str(first), str(second), "--weights", "1,1", "--out", str(tmp_path / "mean")]) == 0
    assert "calibrate" in capsys.readouterr().out
    key = "decoder.iou_token.weight"
    torch.testing.assert_close(
        _head(tmp_path / "mean")[key], (_head(first)[key] + _head(second)[key]) / 2, rtol=0, atol=1e-6
    )
    assert main(["average", str(first), str(second), "--weights", "1,0", "--out", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("amodal-sam average: error: weights must be positive") and err.count("\n") == 1
