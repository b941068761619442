"""Training the encoder on synthetic scenes: the per-token targets, the saved model, resume, divergence."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from amodal_sam import AmodalSAM, encoder_training
from amodal_sam.cli import main
from amodal_sam.config import read_config_file
from amodal_sam.data.readers import load_dataset
from amodal_sam.data.shapes import write_shape_scenes
from amodal_sam.encoder_training import (
    STATE_NAME,
    TARGETS,
    EncoderTrainOptions,
    constant_losses,
    token_targets,
    train_encoder,
)
from amodal_sam.geometry import ImageFrame
from amodal_sam.model_card import CALIBRATION_KEY, ENCODER_TRAINING_KEY, STARTED_FROM_KEY
from amodal_sam.model_files import load_pretrained
from amodal_sam.sam_weights import read_safetensors, state_digest
from amodal_sam.train import TrainOptions, fit
from tests.conftest import TEST_DEVICE, rect_mask

EDGE, OUTLINE, HIDDEN = range(3)


def _two_objects(scale: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A 64 x 64 scene (times ``scale``): object A (amodal rows 16-47, columns 0-47) behind B, a strip
    over columns 32-63 of every row; A's hidden part is rows 16-47, columns 32-47."""
    shape = (64 * scale, 64 * scale)
    a_amodal = rect_mask(shape, (16 * scale, 48 * scale), (0, 48 * scale))
    b = rect_mask(shape, (0, 64 * scale), (32 * scale, 64 * scale))
    return np.stack([a_amodal & ~b, b]), np.stack([a_amodal, b])


def _frame(height: int, width: int) -> ImageFrame:
    return ImageFrame(original_size=(height, width), encoder_size=64, low_res_size=16)


def test_targets_mark_the_occlusion_edge_the_outlines_and_the_hidden_share_per_token():
    visible, amodal = _two_objects()
    targets, holds_image = token_targets(visible, amodal, _frame(64, 64), patch=16, band=2)
    assert targets.shape == (3, 4, 4) and holds_image.all()
    # A's visible part meets its hidden part along columns 31 | 32, rows 16-47: band columns 30-33
    expected_edge = np.zeros((4, 4))
    expected_edge[1:3, 1:3] = 1
    np.testing.assert_array_equal(targets[EDGE], expected_edge)
    # outlines: A's top and bottom sides (rows 14-17, 46-49, columns 0-33; none on the image's left
    # border) and B's left side (columns 30-33, every row), less the edge band (rows 16-47, columns
    # 30-33): token columns 0-2, except the two tokens right of the edge (rows 16-47, columns 32-47)
    expected_outline = np.zeros((4, 4))
    expected_outline[:, :3] = 1
    expected_outline[1:3, 2] = 0
    np.testing.assert_array_equal(targets[OUTLINE], expected_outline)
    expected_hidden = np.zeros((4, 4))
    expected_hidden[1:3, 2] = 1.0
    np.testing.assert_array_equal(targets[HIDDEN], expected_hidden)


def test_an_object_nothing_hides_has_no_occlusion_edge_and_a_half_hidden_token_counts_half():
    shape = (64, 64)
    alone = rect_mask(shape, (8, 40), (8, 40))
    targets, _ = token_targets(alone[None], alone[None], _frame(64, 64), patch=16)
    assert targets[EDGE].sum() == 0 and targets[HIDDEN].sum() == 0 and targets[OUTLINE].sum() > 0
    amodal = rect_mask(shape, (0, 16), (0, 16))
    visible = rect_mask(shape, (0, 16), (0, 8))  # the token's right half is hidden
    targets, _ = token_targets(visible[None], amodal[None], _frame(64, 64), patch=16)
    assert targets[HIDDEN][0, 0] == pytest.approx(0.5) and targets[HIDDEN].sum() == pytest.approx(0.5)


def test_targets_live_on_the_input_frame_and_padding_tokens_hold_no_image():
    visible, amodal = _two_objects(scale=2)  # 128 x 128, resized to the 64-px input frame
    targets, holds_image = token_targets(visible, amodal, _frame(128, 128), patch=16)
    small, _ = token_targets(*_two_objects(), _frame(64, 64), patch=16)
    np.testing.assert_array_equal(targets, small)
    assert holds_image.all()
    wide = np.zeros((1, 40, 64), bool)  # H 40, W 64: the input frame's rows 40-63 are padding
    _, holds_image = token_targets(wide, wide, _frame(40, 64), patch=16)
    # token row 2 (rows 32-47) holds image rows 32-39
    np.testing.assert_array_equal(holds_image, np.repeat([[True], [True], [True], [False]], 4, axis=1))
    with pytest.raises(ValueError, match="patch 24 must divide the input side 64"):
        token_targets(wide, wide, _frame(40, 64), patch=24)


def test_mirrored_masks_give_mirrored_targets():
    visible, amodal = _two_objects()
    targets, _ = token_targets(visible, amodal, _frame(64, 64), patch=16)
    mirrored, _ = token_targets(visible[:, :, ::-1], amodal[:, :, ::-1], _frame(64, 64), patch=16)
    np.testing.assert_array_equal(mirrored, targets[:, :, ::-1])


def test_the_constant_baseline_is_the_cross_entropy_of_each_targets_own_rate():
    targets = torch.zeros(1, 3, 2, 2)
    targets[0, 0, 0, 0] = 1.0
    weights = torch.ones(1, 2, 2)
    weights[0, 1, 1] = 0.0  # a padding token: neither counted nor part of the rate, so 1 of 3
    losses = constant_losses(targets, weights)
    rate = 1 / 3
    assert losses[0].item() == pytest.approx(-(rate * math.log(rate) + (1 - rate) * math.log(1 - rate)), rel=1e-4)
    assert losses[1].item() == pytest.approx(0.0, abs=1e-4)  # all zero: the constant is right everywhere


def test_options_are_checked_by_name():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        EncoderTrainOptions(batch_size=0)
    with pytest.raises(ValueError, match="flip_prob must be in"):
        EncoderTrainOptions(flip_prob=1.5)
    with pytest.raises(ValueError, match="lr must be positive"):
        EncoderTrainOptions(lr=0.0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return load_dataset(write_shape_scenes(tmp_path_factory.mktemp("shapes"), 6, seed=3))


def _options(**changes) -> EncoderTrainOptions:
    return EncoderTrainOptions(**{"epochs": 1, "batch_size": 2, "warmup_steps": 1, "progress": False, **changes})


def _model() -> AmodalSAM:
    model = AmodalSAM.random("tiny", seed=0)
    model.config.extra[CALIBRATION_KEY] = {"sets": []}  # a calibration of the old encoder
    return model


def _encoder_state(model: AmodalSAM) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.sam.image_encoder.state_dict().items()}


def test_the_saved_model_has_the_trained_encoder_bundled_and_the_head_as_it_was(scenes, tmp_path):
    model = _model()
    # a head on SAM weights from the Hub: the trained encoder must be bundled, never that name kept
    model.config = dataclasses.replace(model.config, sam_source="facebook/sam-vit-base", sam_sha256=None)
    before, head = _encoder_state(model), model.trainable_state_dict()
    history = train_encoder(model, scenes, tmp_path / "out", _options(), check_data=scenes, device=TEST_DEVICE)
    after = _encoder_state(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not any(p.requires_grad for p in model.sam.image_encoder.parameters())  # frozen again
    loaded = load_pretrained(tmp_path / "out")
    for key, tensor in loaded.sam.image_encoder.state_dict().items():
        torch.testing.assert_close(tensor, after[key])
    for key, tensor in loaded.trainable_state_dict().items():
        torch.testing.assert_close(tensor, head[key])
    config = read_config_file(tmp_path / "out" / "config.json")
    assert config.sam_source == "sam.safetensors"
    assert config.sam_sha256 == state_digest(read_safetensors(tmp_path / "out" / "sam.safetensors", "sam"))
    record = config.extra[ENCODER_TRAINING_KEY]
    assert record["images"] == 6 and record["epochs"] == 1 and record["targets"] == list(TARGETS)
    assert CALIBRATION_KEY not in config.extra  # it described the head on the old encoder
    assert record[STARTED_FROM_KEY] == {CALIBRATION_KEY: {"sets": []}}
    assert set(record["check_losses"]) == {*TARGETS, *(f"{name}_constant" for name in TARGETS)}
    assert history[0]["occlusion_edge_constant"] == record["check_losses"]["occlusion_edge_constant"]
    card = (tmp_path / "out" / "README.md").read_text()
    assert "## Encoder" in card and "started from seeded random weights" not in card  # tiny: not the demo


def test_an_interrupted_run_resumed_gives_the_weights_of_one_that_ran_through(scenes, tmp_path, monkeypatch):
    options = _options(epochs=2, save_every=1)
    straight = _model()
    train_encoder(straight, scenes, tmp_path / "straight", options, device=TEST_DEVICE)
    original, calls = encoder_training._image_inputs, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 9:  # the fifth step of six (two images a step): the second epoch's second
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(encoder_training, "_image_inputs", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_encoder(_model(), scenes, tmp_path / "resumed", options, device=TEST_DEVICE)
    monkeypatch.setattr(encoder_training, "_image_inputs", original)
    state = torch.load(tmp_path / "resumed" / STATE_NAME, weights_only=True)
    assert (state["epoch"], state["step"]) == (1, 1)
    resumed = _model()
    history = train_encoder(resumed, scenes, tmp_path / "resumed", options, resume=True, device=TEST_DEVICE)
    assert [entry["epoch"] for entry in history] == [1, 2]
    for key, tensor in _encoder_state(straight).items():
        torch.testing.assert_close(_encoder_state(resumed)[key], tensor, atol=1e-6, rtol=1e-5)


def test_resuming_with_other_options_or_data_is_refused(scenes, tmp_path):
    train_encoder(_model(), scenes, tmp_path / "out", _options(), device=TEST_DEVICE)
    with pytest.raises(ValueError, match=r"other options \(lr 0.0003 -> 0.001\)"):
        train_encoder(_model(), scenes, tmp_path / "out", _options(lr=1e-3), resume=True, device=TEST_DEVICE)
    fewer = load_dataset(scenes.source)
    fewer.records = fewer.records[:4]
    with pytest.raises(ValueError, match="on 6 images, now .* on 4"):
        train_encoder(_model(), fewer, tmp_path / "out", _options(), resume=True, device=TEST_DEVICE)


def test_a_non_finite_loss_stops_before_anything_is_saved(scenes, tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_training, "token_losses", lambda *args: torch.full((3,), float("nan")))
    with pytest.raises(RuntimeError, match="training diverged: the loss is nan at epoch 1, step 1"):
        train_encoder(_model(), scenes, tmp_path / "out", _options(), device=TEST_DEVICE)
    assert not (tmp_path / "out" / "config.json").exists() and not (tmp_path / "out" / STATE_NAME).exists()


def test_a_model_on_a_fast_encoder_path_is_refused(scenes, tmp_path):
    model = _model()
    model.encoder_mode = "folded-bf16"
    with pytest.raises(ValueError, match="trains the reference fp32 encoder; this model runs 'folded-bf16'"):
        train_encoder(model, scenes, tmp_path / "out", _options(), device=TEST_DEVICE)


def test_the_command_trains_saves_and_reports_the_held_out_check(scenes, tmp_path, capsys):
    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "init")
    code = main(
        ["train-encoder", "--init", str(tmp_path / "init"), "--data", scenes.source, "--check", scenes.source]
        + ["--epochs", "1", "--batch-size", "3", "--out", str(tmp_path / "out")]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "done: 1 epochs" in out and "occlusion_edge " in out and "amodal-sam train --init" in out
    assert read_config_file(tmp_path / "out" / "config.json").extra[ENCODER_TRAINING_KEY]["options"]["batch_size"] == 3


def test_the_command_names_a_missing_data_file_in_one_line(tmp_path, capsys):
    code = main(
        ["train-encoder", "--init", "demo", "--data", str(tmp_path / "none.json"), "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "none.json" in err and "does not exist" in err


def test_a_mirrored_image_gives_mirrored_pixels_and_targets(scenes):
    model, record = AmodalSAM.random("tiny", seed=0), scenes.records[0]
    pixels, targets, holds_image = encoder_training._image_inputs(scenes, record, model, False, 2)
    mirrored, mirrored_targets, _ = encoder_training._image_inputs(scenes, record, model, True, 2)
    height, width = scenes.image_size(record)
    h, w = ImageFrame.for_spec((height, width), model.spec).input_size
    assert w == 256  # a landscape scene fills the input frame's width: its mirror is the frame's
    torch.testing.assert_close(mirrored, pixels.flip(-1))
    visible, amodal = scenes.load_masks(record)
    frame = ImageFrame.for_spec((height, width), model.spec)
    expected, _ = token_targets(visible[:, :, ::-1], amodal[:, :, ::-1], frame, 16, 2)
    np.testing.assert_array_equal(mirrored_targets, expected)
    # nearest-pixel resizing is not exactly mirror-symmetric: near the unmirrored targets mirrored
    assert np.abs(mirrored_targets - targets[:, :, ::-1]).mean() < 0.01
    assert np.abs(mirrored_targets - targets).mean() > 0.02
    assert targets[EDGE].sum() > 0  # a shape scene: the back shape is hidden
    assert holds_image.sum() == 16 * -(-h // 16)


def test_a_head_trained_on_the_new_encoder_keeps_its_record_and_its_weights(scenes, tmp_path):
    """The card of the head trained next still says what the encoder is (issue 20 item 5)."""
    train_encoder(_model(), scenes, tmp_path / "encoder", _options(), device=TEST_DEVICE)
    trained_encoder = load_pretrained(tmp_path / "encoder")
    fit(
        trained_encoder,
        scenes,
        tmp_path / "head",
        TrainOptions(epochs=1, batch_size=4, progress=False),
        device=TEST_DEVICE,
    )
    config = read_config_file(tmp_path / "head" / "config.json")
    assert config.extra[ENCODER_TRAINING_KEY]["images"] == 6 and "training" in config.extra
    assert config.sam_sha256 == read_config_file(tmp_path / "encoder" / "config.json").sam_sha256
    assert "## Encoder" in (tmp_path / "head" / "README.md").read_text()
