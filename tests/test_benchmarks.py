"""Benchmarks run end to end on tiny settings (smoke: no timing is asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

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


def _tiny_model_and_data(tmp_path: Path) -> Path:
    """A tiny random model saved to ``tmp_path / "model"`` and three occluded ellipses; returns the
    annotations' path."""
    sys.path.insert(0, str(ROOT / "tests"))
    from amodal_sam import AmodalSAM

    from conftest import write_occlusion_dataset

    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "model")
    return write_occlusion_dataset(tmp_path / "data", count=3)


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
    assert result["ours"]["encoder_mode"] == "folded-bf16"  # the suite's AMODAL_SAM_ATTENTION reaches it
    assert result["ours"]["decoder_dtype"] == "fp32"  # and its AMODAL_SAM_DECODER_DTYPE
    assert result["machine"]["cpu_model"] and isinstance(result["machine"]["cpu_flags"], list)


def test_both_throughput_sides_time_one_model_whose_attention_has_a_bias():
    # Relative-position tables are zero at initialisation: with them the embeddings' agreement
    # would not cover the bias. Both child processes must build the same tables.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import seeded_model

    first, second = seeded_model("tiny"), seeded_model("tiny")
    tables = [(n, p) for n, p in first.sam.image_encoder.named_parameters() if "rel_pos" in n]
    assert tables and all(0.3 < float(p.std()) < 0.7 for _, p in tables)
    again = dict(second.sam.image_encoder.named_parameters())
    assert all(torch.equal(p, again[n]) for n, p in tables)


def test_attention_speed_smoke_records_the_automatic_choice(tmp_path):
    out = tmp_path / "attention.json"
    done = _run_benchmark(
        "attention_speed.py", "--model-type", "tiny", "--dtypes", "fp32", "--repeats", "1", "--json", str(out)
    )
    result = json.loads(out.read_text())
    assert set(result["paths"]) == {"reference fp32", "sdpa fp32", "folded fp32", "chunked fp32"}
    assert all(path["cosine"] > 0.9999 for path in result["paths"].values())
    choice = result["auto_choice"]["fp32"]
    timed = {name: s for name, s in choice["attention_seconds"].items() if s is not None}
    assert choice["chosen"] == min(timed, key=timed.get) and result["cpu"]
    assert "auto in fp32: " + choice["chosen"] in done.stdout


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
    annotations = _tiny_model_and_data(tmp_path)
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


def test_decoder_precision_compares_both_decoders_in_both_modes(tmp_path):
    annotations = _tiny_model_and_data(tmp_path)
    out = tmp_path / "precision.json"
    done = _run_benchmark(
        "decoder_precision.py", "--data", str(annotations), "--model", str(tmp_path / "model"), "--json", str(out)
    )
    result = json.loads(out.read_text())
    assert list(result["modes"]) == ["single", "scene"]
    for row in result["modes"].values():
        assert row["instances"] == 3
        assert 0.0 <= row["min_iou_between"] <= row["mean_iou_between"] <= 1.0
        assert set(row["mean_aiou"]) == {"fp32", "bf16"} and all(0 < v <= 1 for v in row["mean_aiou"].values())
    assert "| single | 3 |" in done.stdout and "| scene | 3 |" in done.stdout


def test_instance_gains_split_occluded_and_unoccluded_objects():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from types import SimpleNamespace

    from instance_gains import instance_gains

    from amodal_sam.metrics import instance_counts

    def strip(start, stop):  # a 1 x 20 mask of columns [start, stop)
        mask = np.zeros((1, 20), bool)
        mask[0, start:stop] = True
        return mask

    def scored(predicted, truth, visible):
        return SimpleNamespace(counts=instance_counts(predicted, truth, visible))

    # an occluded object: 10 px, 6 visible; the model adds 2 right hidden px: AIoU 0.8 against 0.6
    occluded = (strip(0, 8), strip(0, 10), strip(0, 6))
    # an object nothing covers, given 5 false hidden px: AIoU 10 / 15 against 1
    covered_by_nothing = (strip(0, 15), strip(0, 10), strip(0, 10))
    # an object nothing covers, left as it is
    left_alone = (strip(0, 10), strip(0, 10), strip(0, 10))
    cases = [occluded, covered_by_nothing, left_alone]
    row = instance_gains([scored(*c) for c in cases], [scored(c[2], c[1], c[2]) for c in cases])
    assert (row["instances"], row["occluded"], row["unoccluded_completed"]) == (3, 1, 1)
    assert row["gain_occluded"] == pytest.approx(0.2)
    assert row["gain_unoccluded"] == pytest.approx((10 / 15 - 1) / 2)
    assert row["gain"] == pytest.approx((0.2 + 10 / 15 - 1) / 3)
    assert row["unoccluded_loss"] == pytest.approx(1 - 10 / 15)


def test_instance_gains_command_prints_one_row_per_model(tmp_path):
    annotations = _tiny_model_and_data(tmp_path)
    out = tmp_path / "gains.json"
    done = _run_benchmark(
        "instance_gains.py", "--data", str(annotations), "--model", str(tmp_path / "model"), "--json", str(out)
    )
    (row,) = json.loads(out.read_text())["rows"].values()
    assert row["instances"] == 3 and row["occluded"] == 3  # every ellipse is cut by its bar
    assert f"| {tmp_path / 'model'} | 3 (3 / 0) |" in done.stdout


def test_decision_frontier_keeps_the_points_nothing_beats_on_both():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from decision_frontier import pareto_frontier

    # (OIoU, AIoU): 3 ties 0's OIoU and 2's AIoU and is beaten by each on the other (no point beats
    # it on both); 4 repeats 1, which stands for it
    points = [(0.1, 0.8), (0.2, 0.7), (0.15, 0.75), (0.1, 0.75), (0.2, 0.7), (0.05, 0.85)]
    assert pareto_frontier(points) == [5, 0, 2, 1]
    assert pareto_frontier([(0.3, 0.9)]) == [0]


def test_decision_frontier_row_reports_the_own_decision_and_the_target():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from decision_frontier import model_row

    from amodal_sam.calibration import DecisionScore, SetScore
    from amodal_sam.decision import Decision

    def scored(threshold, aiou, oiou):
        return DecisionScore(Decision(threshold), (SetScore(aiou, oiou, 0.86, 0.75),))

    scores = [scored(0.99, 0.86, 0.20), scored(0.5, 0.873, 0.15), scored(0.1, 0.88, 0.10), scored(0.3, 0.85, 0.12)]
    row = model_row(scores, Decision(0.99), (0.8728, 0.1488))
    assert row["decisions"] == 4 and (row["own"]["threshold"], row["own"]["aiou"]) == (0.99, 0.86)
    assert [p["threshold"] for p in row["frontier"]] == [0.1, 0.5, 0.99]  # 0.3 is beaten by 0.5 on both
    assert row["best_aiou_at_target_oiou"] == 0.873 and row["reaches_target"] is True
    assert model_row(scores, Decision(0.99), (0.875, 0.1488))["reaches_target"] is False
    beyond = model_row(scores, Decision(0.99), (0.8, 0.25))
    assert beyond["best_aiou_at_target_oiou"] is None and beyond["reaches_target"] is False
    assert "reaches_target" not in model_row(scores, Decision(0.5), None)


def test_decision_frontier_command_writes_the_points_and_the_picture(tmp_path):
    annotations = _tiny_model_and_data(tmp_path)
    out = tmp_path / "frontier"
    done = _run_benchmark(
        "decision_frontier.py",
        "--data",
        str(annotations),
        "--model",
        str(tmp_path / "model"),
        "--labels",
        "tiny",
        "--target",
        "0.9",
        "0.1",
        "--out",
        str(out),
    )
    result = json.loads(out.with_suffix(".json").read_text())
    row = result["models"]["tiny"]
    assert result["mode"] == "single-object" and result["target"] == [0.9, 0.1]
    assert result["baselines"]["visible"]["oiou"] == 0.0 and 0 < result["baselines"]["hull"]["aiou"] <= 1
    assert row["own"]["threshold"] == 0.5 and row["frontier"] and row["decisions"] > 100
    best = max(row["frontier"], key=lambda p: p["aiou"])["aiou"]
    assert all(p["aiou"] <= best for p in [row["own"], *row["frontier"]])
    assert "tiny: own decision" in done.stdout
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_decision_frontier_in_scene_mode_stands_hull_occluders_beside_the_models(tmp_path):
    annotations = _tiny_model_and_data(tmp_path)
    out = tmp_path / "frontier"
    _run_benchmark(
        "decision_frontier.py",
        "--data",
        str(annotations),
        "--model",
        str(tmp_path / "model"),
        "--scene",
        "--out",
        str(out),
    )
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["mode"] == "scene" and list(result["baselines"]) == ["visible", "hull-occluders"]
    assert result["models"]["model"]["own"]["occluder_threshold"] == 0.5  # known occluders: no level


def test_decision_frontier_refuses_labels_that_do_not_match_the_models(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "decision_frontier.py"),
            "--data",
            "x.json",
            "--model",
            "a",
            "b",
            "--labels",
            "one",
            "--out",
            str(tmp_path / "f"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and "--labels: give one per --model (2); got 1" in done.stderr


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
    assert list(steps["attention"]["result"]["paths"]) == ["reference fp32", "sdpa bf16", "folded bf16", "chunked bf16"]
    assert 'failures="0"' in (tmp_path / "tests.xml").read_text()


def test_moved_visible_masks_open_gaps_or_overrun_into_free_pixels_only():
    """Two 6-px-wide bars side by side (columns 2-7 and 8-13) on a 10 x 16 canvas, moved 1 px:
    a bar grows only into free columns (1 or 14), never into its neighbour; an eroded bar leaves
    a one-column gap at the shared edge. Every combination shows over the seeds."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from mask_noise import moved_visible_masks

    bars = np.zeros((2, 10, 16), bool)
    bars[0, :, 2:8] = bars[1, :, 8:14] = True
    seen = set()
    for seed in range(16):
        moved = moved_visible_masks(bars, 1, np.random.default_rng(seed))
        assert not (moved[0] & moved[1]).any()  # never overlapping
        left, right = (tuple(np.flatnonzero(m[5])[[0, -1]]) for m in moved)
        assert left in {(1, 7), (3, 6)} and right in {(8, 14), (9, 12)}
        seen.add((left, right))
    assert len(seen) == 4
    np.testing.assert_array_equal(moved_visible_masks(bars, 0, np.random.default_rng(0)), bars)


def _two_scenes(root: Path) -> Path:
    """Two 64 x 64 images, each an L-shaped object A behind a box B (A's hidden part under B) and a
    free-standing square C; the second image shifted 8 px right."""
    sys.path.insert(0, str(ROOT / "tests"))

    from amodal_sam.data.masks import encode_rle
    from amodal_sam.image_io import write_rgb

    from conftest import random_image

    images, annotations = [], []
    for image_id, shift in ((1, 0), (2, 8)):
        masks = np.zeros((4, 64, 64), bool)
        masks[0, 10:50, 10 + shift : 20 + shift] = masks[0, 40:50, 20 + shift : 50 + shift] = True  # A's L
        masks[1, 25:40, 20 + shift : 30 + shift] = True  # B
        masks[2, 54:62, 2:10] = True  # C
        a_amodal = masks[0] | masks[1]
        write_rgb(root / f"{image_id}.png", random_image(64, 64, seed=image_id))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "height": 64, "width": 64})
        for k, (amodal, visible) in enumerate(((a_amodal, masks[0]), (masks[1], masks[1]), (masks[2], masks[2]))):
            annotation = {"segmentation": encode_rle(amodal), "visible_mask": encode_rle(visible)}
            annotations.append({"id": 10 * image_id + k, "image_id": image_id, **annotation})
    (root / "scenes.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return root / "scenes.json"


def test_mask_noise_at_zero_pixels_gives_the_plain_evaluation(tmp_path):
    """Radius 0 scores every method exactly as predict_dataset does (scene mode, single-object
    mode and each baseline); at 2 px the model's inputs change and so do its scores."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tests"))
    from dataclasses import replace

    from mask_noise import score_radii

    from amodal_sam import AmodalSAM
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.evaluate import BASELINES, predict_dataset
    from amodal_sam.metrics import summarize

    from conftest import TEST_DEVICE

    dataset = load_dataset(_two_scenes(tmp_path), include_stuff=True)
    model = AmodalSAM.random("tiny", seed=0).to(TEST_DEVICE).eval()
    both = score_radii(dataset, model, [0, 2], progress=False)
    plain, noisy = both[0], both[2]
    expected = {
        "model (scene mode)": predict_dataset(dataset, model, scene=True, device=TEST_DEVICE, progress=False),
        "model (visible prompt)": predict_dataset(dataset, model, device=TEST_DEVICE, progress=False),
        **{f"baseline {name}": predict_dataset(dataset, baseline_name=name, progress=False) for name in BASELINES},
    }
    for method, predictions in expected.items():  # VIoU aside: the benchmark scores the amodal masks only
        without_viou = [replace(p.counts, visible_intersection=None, visible_union=None) for p in predictions]
        assert plain[method] == without_viou, method
    assert summarize(noisy["baseline visible"])["mean"]["aiou"] < summarize(plain["baseline visible"])["mean"]["aiou"]


def test_mask_noise_command_writes_its_table_json_and_plot(tmp_path):
    from amodal_sam import AmodalSAM

    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "model")
    out, picture = tmp_path / "noise.json", tmp_path / "noise.png"
    done = _run_benchmark(
        "mask_noise.py",
        *("--data", str(_two_scenes(tmp_path)), "--model", str(tmp_path / "model"), "--radii", "0,2"),
        *("--json", str(out), "--plot", str(picture)),
    )
    assert "| model (scene mode) |" in done.stdout and "2 px: AIoU / OIoU" in done.stdout
    summaries = json.loads(out.read_text())["summaries"]
    assert list(summaries) == ["0", "2"] and summaries["0"]["baseline visible"]["instances"] == 6
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_video_speed_times_video_mode_beside_frame_by_frame(tmp_path):
    from test_synth_video import write_sequence

    from amodal_sam import AmodalSAM
    from amodal_sam.data.synth_video import ClipOptions, synthesize_clips

    write_sequence(tmp_path / "seq" / "a", 4, 0, 0.02)
    write_sequence(tmp_path / "seq" / "b", 4, 50, 0.0)
    clips = synthesize_clips(
        tmp_path / "seq", tmp_path / "clips", 1, targets=["a", "b"], options=ClipOptions(length=3), progress=False
    )
    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "model")
    out = tmp_path / "video.json"
    done = _run_benchmark(
        "video_speed.py",
        "--clip",
        str(clips[0]),
        "--model",
        str(tmp_path / "model"),
        "--repeats",
        "1",
        "--json",
        str(out),
    )
    result = json.loads(out.read_text())
    assert [row["form"] for row in result["forms"]] == ["single", "scene"]
    for row in result["forms"]:
        assert row["frames"] == 3
        assert row["ratio"] == pytest.approx(row["per_frame_fps"] / row["video_fps"])
    assert "frames/s" in done.stdout


def test_onnx_latency_times_both_heads_on_the_same_prompts(tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the onnx extra")
    out = tmp_path / "onnx.json"
    done = _run_benchmark(
        "onnx_latency.py",
        *("--model-type", "tiny", "--instances", "1,3", "--repeats", "1", "--warmup", "0"),
        *("--json", str(out)),
    )
    result = json.loads(out.read_text())
    assert [(r["mode"], r["instances"]) for r in result["rows"]] == [
        ("single", 1),
        ("single", 3),
        ("scene", 1),
        ("scene", 3),
    ]
    assert all(r["max_abs_logit_difference"] < 1e-3 and r["torch_ms_per_instance"] > 0 for r in result["rows"])
    assert "| scene | 3 |" in done.stdout
