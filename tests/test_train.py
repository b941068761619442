"""Fine-tuning: the loss falls, outputs load, resume continues exactly, DDP equals one process."""

import csv
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import amodal_sam.train as train_module
from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.cli import main
from amodal_sam.data.readers import load_dataset
from amodal_sam.geometry import ImageFrame
from amodal_sam.train import TrainOptions, fit

from conftest import TEST_DEVICE, write_occlusion_dataset

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    return write_occlusion_dataset(tmp_path_factory.mktemp("data"), count=8)


def _options(**changes):
    values = {"epochs": 3, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "seed": 0, "progress": False}
    values.update(changes)
    return TrainOptions(**values)


def _weights(folder):
    return load_file(str(Path(folder) / "model.safetensors"))


def test_training_lowers_the_loss_and_writes_its_outputs(annotations, tmp_path):
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    detail_start = {k: v.clone() for k, v in model.decoder.detail_encoder.state_dict().items()}
    history = fit(
        model,
        dataset,
        tmp_path,
        _options(epochs=8, lr=1e-2, mask_noise_prob=0.0, point_prob=0.0),
        val_data=dataset,
        device=TEST_DEVICE,
    )
    losses = [h["train_loss"] for h in history]
    assert len(history) == 8 and losses[-1] < 0.6 * losses[0]
    assert all(0.0 <= h["val_aiou"] <= 1.0 for h in history)
    for name in ("config.json", "model.safetensors", "sam.safetensors", "trainer_state.pt", "log.csv", "training.png"):
        assert (tmp_path / name).is_file(), name
    with open(tmp_path / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the pixels reach the loss: the detail branch learnt too (its fusion starts at zero)
    assert any(not torch.equal(v, detail_start[k]) for k, v in model.decoder.detail_encoder.state_dict().items())
    best = max(history, key=lambda h: h["val_oiou"])
    loaded = AmodalSAM.from_pretrained(tmp_path)  # the best epoch by validation OIoU
    state = torch.load(tmp_path / "trainer_state.pt", weights_only=True)
    assert state["best_score"] == pytest.approx(best["val_oiou"])
    # the saved epoch's record, which the model card shows
    record = loaded.config.extra["training"]
    assert record["epochs"] == best["epoch"] and record["val_oiou"] == pytest.approx(best["val_oiou"])
    assert record["data"] == [annotations.parent.name + "/" + annotations.name] == [record["validation"]]
    assert record["instances"] == len(dataset) and record["options"]["lr"] == 1e-2
    assert f"validation (best epoch): AIoU {best['val_aiou']:.4f}" in (tmp_path / "README.md").read_text()
    if best is history[-1]:
        for key, tensor in model.trainable_state_dict().items():
            assert torch.equal(loaded.trainable_state_dict()[key], tensor), key


def test_a_fine_tune_records_its_starting_model_and_the_options_that_reached_it(annotations, tmp_path):
    dataset = load_dataset(annotations)
    without_memory = AmodalSAM(config=dataclasses.replace(AmodalSAM.random("tiny").config, memory_prompt=False))
    fit(without_memory, dataset, tmp_path / "first", _options(epochs=1), device=TEST_DEVICE)
    first = AmodalSAM.from_pretrained(tmp_path / "first")
    record = first.config.extra["training"]
    assert record["started_from"] is None  # a new head
    assert "memory_prob" not in record["options"] and record["options"]["scene_prob"] == 0.5  # no memory input
    calibration = {
        "sets": [{"data": "calib/annotations.json", "aiou": 0.9, "oiou": 0.3, "visible_aiou": 0.8, "rule_aiou": 0.85}]
    }
    first.config.extra["calibration"] = calibration
    fit(first, dataset, tmp_path / "second", _options(epochs=1, lr=1e-4), device=TEST_DEVICE)
    extra = AmodalSAM.from_pretrained(tmp_path / "second").config.extra
    # the starting model's calibration described its weights, not these: it moves into the record
    assert "calibration" not in extra
    assert extra["training"]["started_from"] == {"training": record, "calibration": calibration}
    assert extra["training"]["options"]["lr"] == 1e-4
    card = (tmp_path / "second" / "README.md").read_text()
    data = annotations.parent.name + "/" + annotations.name
    assert (
        f"- started from: a model trained 1 epoch(s) on {data}; calibrated before this training "
        "(single object on calib/annotations.json)\n  - started from: a new amodal head on the frozen SAM\n"
    ) in card
    assert "No calibration recorded" in card
    with_memory = AmodalSAM.random("tiny")
    fit(with_memory, dataset, tmp_path / "third", _options(epochs=1, memory_prob=0.25), device=TEST_DEVICE)
    assert AmodalSAM.from_pretrained(tmp_path / "third").config.extra["training"]["options"]["memory_prob"] == 0.25


def test_occluder_target_is_known_everywhere_when_annotated_else_inside_the_object(annotations):
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    options = _options()
    keys = [str(k) for k in range(len(dataset.records))]
    for index in (0, 1):  # annotation 1 has an occluder mask, annotation 2 has none
        record = dataset.records[dataset.index[index][0]]
        visible, amodal = (m[0] for m in dataset.load_masks(record))
        frame = ImageFrame.for_spec(visible.shape, model.spec)
        sample = train_module._sample(dataset, keys, index, 0, options, model)
        if index == 0:
            bar = dataset.load_occluder(record, 0)
            np.testing.assert_allclose(sample.occluder_target, frame.masks_to_low_res(bar[None])[0])
            assert (sample.occluder_weight == 1).all()
        else:
            assert dataset.load_occluder(record, 0) is None
            hidden = frame.masks_to_low_res((amodal & ~visible)[None])[0]
            np.testing.assert_allclose(sample.occluder_target, hidden)
            np.testing.assert_array_equal(sample.occluder_weight, sample.amodal_target > 0)
            assert 0 < sample.occluder_weight.sum() < sample.occluder_weight.size


def test_resume_continues_from_the_saved_epoch(annotations, tmp_path, monkeypatch):
    dataset = load_dataset(annotations)
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "straight", _options(epochs=3), device=TEST_DEVICE)

    original_sample = train_module._sample

    def interrupted_in_epoch_3(dataset, keys, index, epoch, *args):
        if epoch == 2:
            raise KeyboardInterrupt  # the run dies during its third epoch
        return original_sample(dataset, keys, index, epoch, *args)

    monkeypatch.setattr(train_module, "_sample", interrupted_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "resumed", _options(epochs=3), device=TEST_DEVICE)
    monkeypatch.setattr(train_module, "_sample", original_sample)
    assert torch.load(tmp_path / "resumed" / "trainer_state.pt", weights_only=True)["epoch"] == 2
    history = fit(
        AmodalSAM.random("tiny", seed=0),
        dataset,
        tmp_path / "resumed",
        _options(epochs=3),
        resume=True,
        device=TEST_DEVICE,
    )
    assert [h["epoch"] for h in history] == [1, 2, 3] and history[-1]["step"] == 6
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], atol=1e-6, rtol=1e-5)


def test_dataloader_workers_train_exactly_as_the_training_process_alone(annotations, tmp_path):
    """Batches prepared by two worker processes give the same weights, byte for byte, as batches
    prepared in the training loop (every sample is seeded by (seed, epoch, index), not by who
    prepares it); a resumed run may change the number of workers."""
    dataset = load_dataset(annotations)

    def options(workers):
        return _options(epochs=2, scene_prob=0.5, point_prob=0.5, workers=workers)

    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "alone", options(0), device=TEST_DEVICE)
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "workers", options(2), device=TEST_DEVICE)
    alone, workers = _weights(tmp_path / "alone"), _weights(tmp_path / "workers")
    assert set(alone) == set(workers)
    for key in alone:
        assert torch.equal(alone[key], workers[key]), key
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "workers", options(0), resume=True, device=TEST_DEVICE)
    with pytest.raises(ValueError, match="workers"):
        TrainOptions(workers=-1)


def test_ddp_on_two_cpu_processes_equals_one_process(annotations, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(HERE), OMP_NUM_THREADS="1")
    single = subprocess.run(
        [sys.executable, str(HERE / "ddp_fit.py"), str(annotations), str(tmp_path / "one")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(HERE / "ddp_fit.py"),
        str(annotations),
        str(tmp_path / "two"),
    ]
    double = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert set(one) == set(two)
    changed = False
    initial = AmodalSAM.random("tiny", seed=0).trainable_state_dict()
    for key in one:
        torch.testing.assert_close(two[key], one[key], atol=1e-5, rtol=1e-4)
        changed |= not torch.equal(one[key], initial[key])
    assert changed  # training moved the weights, so the comparison means something


def test_train_command_output_loads_and_predicts(annotations, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(annotations),
            "--val",
            str(annotations),
            "--sam",
            "tiny",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0 and "validation AIoU" in capsys.readouterr().out
    model = AmodalSAM.from_pretrained(out)
    dataset = load_dataset(annotations)
    sample = dataset[0]
    predictor = AmodalPredictor(model, device=TEST_DEVICE)
    predictor.set_image(sample.image)
    result = predictor.complete(visible_mask=sample.visible)
    assert result.amodal.shape == sample.amodal.shape
    initial = AmodalSAM.random("tiny", seed=0).trainable_state_dict()  # --sam tiny, --sam-seed 0
    trained = model.trainable_state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in initial.items())  # the saved head was trained
    for key, tensor in AmodalSAM.random("tiny", seed=0).sam.state_dict().items():
        assert torch.equal(model.sam.state_dict()[key], tensor), key  # on the frozen SAM it names
