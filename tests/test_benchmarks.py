"""Benchmarks run end to end on tiny settings (smoke: no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_benchmark(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script>`` with ``args``; fails the test with its stderr if it fails."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_throughput_smoke_on_cpu(tmp_path):
    out = tmp_path / "throughput.json"
    done = _run_benchmark(
        "throughput.py",
        *("--model-type", "tiny", "--device", "cpu", "--dtype", "bf16", "--instances", "1,3"),
        *("--repeats", "1", "--warmup", "0", "--json", str(out)),
    )
    result = json.loads(out.read_text())
    assert result["weights"].startswith("seeded random")
    assert set(result["speedup"]["decoder"]) == {"1", "3"}
    # both sides' end to end is measured as one span, not summed from the encoder and decoder
    reference = result["reference"]
    for n in (1, 3):
        summed = 1 / reference["encoder_images_per_s"] + n / reference["decoder_instances_per_s"][str(n)]
        assert reference["end_to_end_s"][str(n)] > 0 and reference["end_to_end_s"][str(n)] != pytest.approx(
            summed, rel=1e-9
        )
    assert result["reference"]["encoder_images_per_s"] > 0 and result["ours"]["encoder_images_per_s"] > 0
    assert result["agreement"]["embedding"]["cosine"] > 0.99  # bf16 against the fp32 reference
    assert "| encoder images/s |" in done.stdout


def test_scene_speed_smoke_on_cpu(tmp_path):
    out = tmp_path / "scene.json"
    _run_benchmark("scene_speed.py", "--model-type", "tiny", "--objects", "2,4", "--repeats", "1", "--json", str(out))
    result = json.loads(out.read_text())
    assert result["weights"].startswith("seeded random") and [s["objects"] for s in result["scenes"]] == [2, 4]
    for scene in result["scenes"]:
        assert scene["ratio"] == pytest.approx(scene["reference_s"] / scene["ours_s"])


def test_scene_grid_masks_tile_without_overlap():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from scene_speed import grid_masks

    masks = grid_masks(5, (30, 40))  # a 3 x 2 grid, five cells used
    assert masks.sum(axis=0).max() == 1 and masks[0, :15, :13].all() and masks[4, 15:, 13:26].all()


def test_oiou_reports_single_and_scene_mode_beside_every_baseline(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from amodal_sam import AmodalSAM

    from conftest import write_occlusion_dataset

    annotations = write_occlusion_dataset(tmp_path / "data", count=3)
    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "model")
    _run_benchmark(
        "oiou.py", "--data", str(annotations), "--model", str(tmp_path / "model"), "--out", str(tmp_path / "out")
    )
    summaries = json.loads((tmp_path / "out" / "report.json").read_text())["summaries"]
    assert list(summaries) == [
        "model (visible prompt)",
        "model (scene mode)",
        "baseline visible",
        "baseline hull",
        "baseline hull-occluders",
    ]
    assert all(s["instances"] == 3 and "order" in s for s in summaries.values())
    assert (tmp_path / "out" / "cases.png").is_file()


def test_gpu_check_runs_every_step_in_tiny_mode_on_cpu(tmp_path):
    """benchmarks/gpu_check.sh with GPU_CHECK_TINY=1: the device script's every step on the CPU."""
    import os

    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path)],
        cwd=ROOT,
        env=dict(os.environ, GPU_CHECK_TINY="1", OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + (tmp_path / "gpu_check.log").read_text()[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu_check.json", "gpu_check.log", "tests.xml"]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["failed"] == [] and list(summary["steps"]) == [
        "tests",
        "throughput_b2",
        "attention",
        "scene",
        "train",
    ]
    steps = summary["steps"]
    assert all(step["exit"] == 0 for step in steps.values())
    assert steps["throughput_b2"]["result"]["settings"]["image_batch"] == 2
    assert [run["workers"] for run in steps["train"]["result"]["runs"]] == [0, 1]
    assert list(steps["attention"]["result"]["paths"]) == ["reference fp32", "sdpa bf16", "folded bf16"]
    assert 'failures="0"' in (tmp_path / "tests.xml").read_text()
