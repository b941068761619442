"""The adoption report's rule (benchmarks/adopt.py): hand-made rows, then one run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import adopt

from amodal_sam.data.synth_video import read_clips

READY = {"single": 0.95, "scene": 0.96}


def _rows(aiou, oiou, name="validation / scene"):
    return {name: {"aiou": np.asarray(aiou, float), "oiou": np.asarray(oiou, float), "order": None}}


def _verdict(candidate, current, readme=READY, current_readme=READY, real=(), current_real=()):
    return adopt.verdict(adopt.compare_rows(candidate, current), readme, current_readme, list(real), list(current_real))


def test_a_worse_candidate_is_refused_naming_the_row():
    current = _rows([0.9] * 50, [0.5] * 50)
    worse = _rows([0.85] * 50, [0.5] * 50)
    adopted, reasons = _verdict(worse, current)
    assert not adopted and reasons[0].startswith("worse: validation / scene AIOU 0.8500 against 0.9000")


def test_an_equal_candidate_is_not_adopted_by_noise():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.7, 1.0, 60)
    noise = rng.normal(0, 0.01, 60) - np.float64(0.003)  # per-instance jitter, a mean a little below
    noise -= noise.mean() + 0.003  # exactly 0.003 below: inside the 0.005 floor
    current = {**_rows(base, base - 0.4), **_rows(base, base - 0.4, "shapes / single")}
    candidate = {
        **_rows(base + noise, base - 0.4 + noise),
        **_rows(base - noise, base - 0.4 - noise, "shapes / single"),
    }
    comparisons = adopt.compare_rows(candidate, current)
    assert [round(c.difference, 6) for c in comparisons] == [-0.003, -0.003, 0.003, 0.003]
    adopted, reasons = _verdict(candidate, current)
    assert not adopted and reasons == [
        "not better: no row beyond its tolerance, and the current model passes rules 3 and 4"
    ]


def test_a_better_candidate_is_adopted_and_one_row_worse_still_refuses():
    current = _rows([0.80] * 40, [0.30] * 40)
    better = _rows([0.85] * 40, [0.40] * 40)
    assert _verdict(better, current) == (True, [])
    two_rows_current = {**current, **_rows([0.9] * 40, [0.5] * 40, "calibration / single")}
    two_rows_better = {**better, **_rows([0.8] * 40, [0.5] * 40, "calibration / single")}
    adopted, reasons = _verdict(two_rows_better, two_rows_current)
    assert not adopted and reasons == ["worse: calibration / single AIOU 0.8000 against 0.9000 (tolerance 0.0050)"]


def test_readme_and_real_photo_rules():
    current = _rows([0.80] * 40, [0.30] * 40)
    adopted, reasons = _verdict(_rows([0.85] * 40, [0.40] * 40), current, readme={"single": 0.69, "scene": 0.96})
    assert not adopted and reasons == ["README example not completed in single mode: IoU 0.690 < 0.9"]
    adopted, reasons = _verdict(_rows([0.85] * 40, [0.40] * 40), current, real=["real / scene"])
    assert not adopted and reasons == ["less than given: real / scene AIoU below the visible masks'"]
    # equal rows, but the candidate fixes what the current model fails: adopted
    assert _verdict(current, current, current_readme={"single": 0.5, "scene": 0.5}) == (True, [])
    assert _verdict(current, current, current_real=["real / scene"]) == (True, [])


def test_tolerance_widens_on_small_noisy_sets_and_keeps_its_floor():
    assert adopt.tolerance(np.zeros(100), 0.005) == 0.005
    assert adopt.tolerance(np.array([0.3, -0.3, 0.3, -0.3]), 0.005) > 0.2  # 4 objects swinging: wide
    assert adopt.tolerance(np.array([np.nan, 0.1]), 0.02) == 0.02  # one defined value: the floor


def test_never_less_than_given_compares_with_the_visible_masks():
    rows = {**_rows([0.8, 0.9], [0.1, 0.2], "real / scene"), **_rows([0.9, 0.9], [0, 0], "real / scene / visible")}
    assert adopt.never_less_than_given(rows, ["real / scene"]) == ["real / scene"]
    rows["real / scene"]["aiou"] = np.array([0.9, 0.9])
    assert adopt.never_less_than_given(rows, ["real / scene"]) == []


def test_video_rows_are_the_memory_with_the_same_model_frame_by_frame_beside(monkeypatch):
    """Each method's per-frame scores become one row, frames of all clips in order; the model
    with its memory is the compared row, the frame-by-frame run a row beside it."""
    from amodal_sam import evaluate_video

    def clip(offset):  # a clip of two frames, the second without a hidden part
        return {"aiou": [offset, offset + 0.1], "oiou": [offset / 2, float("nan")]}

    methods = {
        "visible": 0.1, "hull": 0.2, "hull-occluders": 0.3,
        "video / single": 0.4, "per frame / single": 0.5, "video / scene": 0.6, "per frame / scene": 0.7,
    }  # fmt: skip
    fake = {name: [clip(value), clip(value + 0.01)] for name, value in methods.items()}
    monkeypatch.setattr(evaluate_video, "score_clips", lambda clips, video, forms=("single", "scene"), **_: fake)
    monkeypatch.setattr("amodal_sam.video.AmodalVideoPredictor", lambda model: None)
    rows = adopt.score_video(object(), ["clip"]) | adopt.video_baselines(["clip"])
    np.testing.assert_allclose(rows["video (held-out clips) / single"]["aiou"], [0.4, 0.5, 0.41, 0.51])
    np.testing.assert_allclose(rows["video (held-out clips) / scene / per frame"]["aiou"], [0.7, 0.8, 0.71, 0.81])
    np.testing.assert_allclose(rows["video (held-out clips) / scene"]["oiou"], [0.3, np.nan, 0.305, np.nan])
    assert rows["video (held-out clips) / scene / hull-occluders"]["aiou"][0] == 0.3
    assert "video (held-out clips) / single / hull-occluders" not in rows
    assert adopt.score_video(object(), []) == {} and adopt.video_baselines([]) == {}


def test_a_baseline_that_depends_on_the_model_shows_both_means():
    shared = {"aiou": np.array([0.5, 0.7]), "oiou": np.array([np.nan, 0.2])}
    assert adopt._baseline_means(shared, shared, "aiou") == "0.6000"
    assert adopt._baseline_means(None, shared, "oiou") == "0.2000"
    ours = {"aiou": np.array([0.9, 0.7]), "oiou": shared["oiou"]}
    assert adopt._baseline_means(ours, shared, "aiou") == "0.8000 / 0.6000"  # candidate / current


def test_the_report_runs_end_to_end_and_keeps_an_equal_model(tiny_model, tmp_path):
    import cv2

    tiny_model.save_pretrained(tmp_path / "model", include_sam=True)
    sequence = tmp_path / "data" / "davis2016" / "soapbox"  # one validation sequence: the beyond row's crops
    sequence.mkdir(parents=True)
    mask = np.zeros((48, 64), np.uint8)
    mask[12:36, 20:44] = 255  # a whole object, clear of the border
    cv2.imwrite(str(sequence / "00000.jpg"), np.full((48, 64, 3), 90, np.uint8))
    cv2.imwrite(str(sequence / "00000.png"), mask)
    for name in ("soapbox", "bmx-trees"):  # a validation sequence and an occluder: the video rows' clips
        video_sequence = tmp_path / "data" / "davis2016-video" / name
        video_sequence.mkdir(parents=True)
        for t in range(3):
            moving = np.roll(mask, 2 * t, axis=1)
            cv2.imwrite(str(video_sequence / f"{t:05d}.jpg"), np.full((48, 64, 3), 60 + 40 * t, np.uint8))
            cv2.imwrite(str(video_sequence / f"{t:05d}.png"), moving)
    report = tmp_path / "report.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "adopt.py"),
            "--candidate",
            str(tmp_path / "model"),
            "--current",
            str(tmp_path / "model"),
            "--work",
            str(tmp_path / "work"),
            "--data-root",
            str(tmp_path / "data"),
            "--out",
            str(report),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1, done.stderr  # the same model twice: not better
    assert "validation left out" in done.stderr and "cocoa-sln4 (real) left out" in done.stderr
    assert "video clips made without ['breakdance', 'motocross-jump']" in done.stderr
    content = json.loads(report.with_suffix(".json").read_text())
    assert not content["adopt"] and any(r.startswith("not better") for r in content["reasons"])
    rows = {(r["row"], r["metric"]) for r in content["rows"]}
    expected = {(f"simple shapes / {m}", k) for m in ("single", "scene") for k in ("aiou", "oiou")}
    expected |= {(f"video (held-out clips) / {form}", k) for form in ("single", "scene") for k in ("aiou", "oiou")}
    assert rows == expected | {("beyond the frame (held-out crops) / beyond", k) for k in ("aiou", "oiou")}
    assert all(r["difference"] == 0 for r in content["rows"])
    assert "KEEP THE CURRENT MODEL" in report.read_text()
    # scene rows show the occlusion order of both models and of the hull-occluders rule
    (line,) = [row for row in report.read_text().splitlines() if row.startswith("| simple shapes / scene | AIOU")]
    candidate_order, current_order, rule_order = (float(v) for v in line.split("|")[-2].split(" / "))
    assert candidate_order == current_order and 0 <= rule_order <= 1
    # the beyond row: the visible part and its mirror image as its baselines
    (line,) = [row for row in report.read_text().splitlines() if row.startswith("| beyond the frame") and "OIOU" in row]
    assert "visible 0.0000" in line and "mirror" in line
    # the video rows: 12 clips of 3 frames, the same model frame by frame and the baselines beside
    assert len(read_clips(tmp_path / "work" / "video-clips")) == 12
    (line,) = [
        row for row in report.read_text().splitlines() if row.startswith("| video (held-out clips) / scene | AIOU")
    ]
    assert all(f"{name} " in line for name in ("per frame", "visible", "hull", "hull-occluders"))
    (line,) = [
        row for row in report.read_text().splitlines() if row.startswith("| video (held-out clips) / single | AIOU")
    ]
    assert "hull-occluders" not in line and "per frame " in line
