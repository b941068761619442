"""Adoption report: a candidate model against the current one, on every mode at once.

    python benchmarks/adopt.py --candidate DIR --current checkpoints/demo --work WORK_DIR \
        [--data-root ../shared/data] [--out REPORT.md]

THE RULE (written before any candidate was scored; change it only in its own commit, never
together with a candidate):

1. Every (set, mode) row is scored for both models with the same true visible masks as prompts:
   single-object mode and scene mode on the validation and calibration splits (synthetic
   occlusions of DAVIS sequences kept out of training), the generated simple scenes
   (:mod:`amodal_sam.data.shapes`, seed 0), and the real COCOA photos of ``--data-root`` (scene
   mode, where the known occluders are real). Per-instance mean AIoU and OIoU, baselines beside.
   Beyond the frame (added 2026-12-05, before any candidate trained for it): crops of the
   validation sequences' whole objects that cut 20-50 % off at one border
   (:func:`amodal_sam.data.truncation.truncated_crops`, seed 0, one per object, margin
   :data:`BEYOND`), completed with ``beyond``; AIoU on the canvas, and in the OIoU column the
   IoU of the part outside the image; baselines the visible part and its mirror image.
   Video (added 2026-12-05, before any candidate trained for it): the 12 occlusion clips of the
   README's video table (:func:`amodal_sam.data.synth_video.synthesize_clips` on
   ``--data-root``'s ``davis2016-video``: targets the validation sequences, occluders those and
   bmx-trees, seed 1, 16 frames), run by the video predictor with its memory, the object's mask
   alone (single) and with the occluder's (scene); every frame one instance: its AIoU, and its
   OIoU where some of the object is hidden; baselines the visible part, the hull, hull ∩ the
   occluder (scene) and the same model frame by frame. Frames of a clip are alike, so their
   standard error is small and the floors below mostly decide.
2. **No row worse**: on no row is the candidate's AIoU or OIoU below the current model's by more
   than that row's tolerance, ``max(floor, 2 x the standard error of the paired per-instance
   difference)`` (1000 bootstrap resamples of the instances, seed 0; floors :data:`AIOU_FLOOR`
   and :data:`OIOU_FLOOR`, about the spread between two trainings of one recipe on the
   validation split). The standard error widens the tolerance on small sets, where a few objects
   swing the mean.
3. **README examples complete**: the candidate's completion of the README's disc behind the bar
   has IoU >= :data:`README_IOU` with the true disc, in single-object and in scene mode.
4. **Never less than given on real photos**: in scene mode on each real set, the candidate's
   AIoU is at least the visible masks' own.
5. **Better, not equal**: at least one row is better than the current model's by more than its
   tolerance (an equal candidate is not adopted by noise), or the current model fails 3 or 4
   where the candidate passes.
Adopt when 2-5 all hold; the report names each failure.

Accuracy here is the model's on these sets; with the demo's random frozen encoder it is not SAM's.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

AIOU_FLOOR = 0.005
OIOU_FLOOR = 0.02
README_IOU = 0.9
BOOTSTRAP_RESAMPLES = 1000
METRICS = ("aiou", "oiou")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
BEYOND = 0.5
BEYOND_SEQUENCES = ("breakdance", "motocross-jump", "soapbox")  # the validation split's, kept out of training
BEYOND_ROW = "beyond the frame (held-out crops) / beyond"
VIDEO_SET = "video (held-out clips)"
VIDEO_OCCLUDERS = (*BEYOND_SEQUENCES, "bmx-trees")
VIDEO_CLIPS, VIDEO_SEED = 12, 1


@dataclass(frozen=True)
class EvaluationSet:
    """One set of the report: its name, annotation file and the modes it is scored in; ``real``:
    human-annotated photos (rule 4)."""

    name: str
    annotations: Path
    modes: tuple[str, ...]
    real: bool = False


def evaluation_sets(data_root: Path, work: Path) -> list[EvaluationSet]:
    """The report's sets: the demo's validation and calibration splits (``work/val``,
    ``work/calib``, as ``checkpoints/train_demo.sh`` writes them), the simple scenes (written into
    ``work/shapes`` when missing) and the real COCOA photos of ``data_root``. Missing sets are
    left out with a note on stderr."""
    from amodal_sam.data.shapes import write_shape_scenes

    shapes = work / "shapes" / "annotations.json"
    if not shapes.is_file():
        write_shape_scenes(shapes.parent, count=24, seed=0)
    candidates = [
        EvaluationSet("validation", work / "val" / "annotations.json", ("single", "scene")),
        EvaluationSet("calibration", work / "calib" / "annotations.json", ("single", "scene")),
        EvaluationSet("simple shapes", shapes, ("single", "scene")),
        EvaluationSet("cocoa-sln4 (real)", data_root / "cocoa-sln4" / "annotations.json", ("scene",), real=True),
        EvaluationSet("cocoa-sample (real)", data_root / "cocoa-sample", ("scene",), real=True),
    ]
    present = [s for s in candidates if s.annotations.exists()]
    for missing in set(candidates) - set(present):
        print(f"adopt: {missing.name} left out: {missing.annotations} not found", file=sys.stderr)
    return present


def beyond_crops(data_root: Path) -> list:
    """The crops of the beyond-the-frame rows: whole objects of ``data_root/davis2016``'s
    :data:`BEYOND_SEQUENCES` (none, with a note on stderr, where that folder is missing)."""
    from amodal_sam.data.objects import filter_objects, load_objects
    from amodal_sam.data.truncation import truncated_crops

    source = data_root / "davis2016"
    if not source.is_dir():
        print(f"adopt: beyond the frame left out: {source} not found", file=sys.stderr)
        return []
    objects = filter_objects(load_objects(source), include=BEYOND_SEQUENCES)
    return list(truncated_crops(objects, beyond=BEYOND, seed=0))


def score_beyond(model, crops: list) -> dict[str, dict]:
    """The model's beyond-the-frame row: per-crop AIoU on the canvas and, as its OIoU, the IoU
    of the part outside the image."""
    from amodal_sam.evaluate_beyond import completion_method, evaluate_beyond

    if not crops:
        return {}
    scores = evaluate_beyond(crops, {"model": completion_method(model, BEYOND)}, progress=False)
    return {BEYOND_ROW: _beyond_row(scores["model"])}


def beyond_baselines(crops: list) -> dict[str, dict]:
    """The beyond rows of the visible part and of its mirror image (the same for either model)."""
    from amodal_sam.evaluate_beyond import BEYOND_BASELINES, evaluate_beyond

    if not crops:
        return {}
    scores = evaluate_beyond(crops, BEYOND_BASELINES, progress=False)
    return {f"{BEYOND_ROW} / {name}": _beyond_row(method_scores) for name, method_scores in scores.items()}


def _beyond_row(scores) -> dict:
    return {
        "aiou": np.array([s.aiou for s in scores]),
        "oiou": np.array([s.outside_iou for s in scores]),
        "order": None,
    }


def video_clips(data_root: Path, work: Path) -> list:
    """The clips of the video rows, written into ``work/video-clips`` when missing from the
    sequences of ``data_root/davis2016-video`` that are there (none, with a note on stderr,
    where no validation sequence and occluder are)."""
    from amodal_sam.data.synth_video import ClipOptions, read_clips, synthesize_clips

    source, folder = data_root / "davis2016-video", work / "video-clips"
    if folder.is_dir():
        return read_clips(folder)
    present = [name for name in VIDEO_OCCLUDERS if (source / name).is_dir()]
    if missing := sorted(set(VIDEO_OCCLUDERS) - set(present)):
        print(f"adopt: video clips made without {missing}: not found under {source}", file=sys.stderr)
    targets = [name for name in BEYOND_SEQUENCES if name in present]
    if not targets or len(present) < 2:
        print("adopt: video left out: too few sequences for clips", file=sys.stderr)
        return []
    options = ClipOptions(seed=VIDEO_SEED)
    synthesize_clips(source, folder, VIDEO_CLIPS, targets=targets, occluders=present, options=options)
    return read_clips(folder)


def score_video(model, clips: list) -> dict[str, dict]:
    """The model's video rows, ``VIDEO_SET / FORM`` (with its memory), and beside each the same
    model frame by frame, ``VIDEO_SET / FORM / per frame``: every frame an instance."""
    from amodal_sam.evaluate_video import FORMS, score_clips
    from amodal_sam.video import AmodalVideoPredictor

    if not clips:
        return {}
    scores = score_clips(clips, AmodalVideoPredictor(model), progress=False)
    rows = {}
    for form in FORMS:
        rows[f"{VIDEO_SET} / {form}"] = _frame_row(scores[f"video / {form}"])
        rows[f"{VIDEO_SET} / {form} / per frame"] = _frame_row(scores[f"per frame / {form}"])
    return rows


def video_baselines(clips: list) -> dict[str, dict]:
    """The video rows' baselines (the same for either model): visible and hull beside both
    forms, hull ∩ the occluder beside the scene form."""
    from amodal_sam.evaluate_video import FORMS, score_clips

    if not clips:
        return {}
    scores = score_clips(clips, None, forms=(), progress=False)
    rows = {}
    for form in FORMS:
        for baseline in ("visible", "hull", *(("hull-occluders",) if form == "scene" else ())):
            rows[f"{VIDEO_SET} / {form} / {baseline}"] = _frame_row(scores[baseline])
    return rows


def _frame_row(clip_scores: list[dict]) -> dict:
    """Per-frame AIoU and OIoU (NaN where nothing is hidden) of every clip, in order."""
    return {
        "aiou": np.array([a for s in clip_scores for a in s["aiou"]]),
        "oiou": np.array([o for s in clip_scores for o in s["oiou"]]),
        "order": None,
    }


def per_instance(counts) -> dict[str, np.ndarray]:
    """Per-instance AIoU and OIoU (NaN where an instance has no hidden part) of a list of
    :class:`~amodal_sam.metrics.InstanceCounts`."""
    return {"aiou": np.array([c.aiou for c in counts]), "oiou": np.array([c.oiou for c in counts])}


def score_model(model, sets: list[EvaluationSet], cache_dir: Path) -> dict[str, dict]:
    """``{"set / mode": {"aiou": (M,), "oiou": (M,), "order": accuracy or None}}`` for a model
    (an :class:`~amodal_sam.modeling.amodal_sam.AmodalSAM`)."""
    from amodal_sam.embedding_cache import EmbeddingCache
    from amodal_sam.evaluate import predict_dataset

    cache = EmbeddingCache(cache_dir, model)
    rows: dict[str, dict] = {}
    for evaluation_set, dataset in _datasets(sets):
        for mode in evaluation_set.modes:
            scene = mode == "scene"
            predictions = predict_dataset(dataset, model, scene=scene, cache=cache, progress=False)
            rows[f"{evaluation_set.name} / {mode}"] = _row(dataset, predictions, scene, hull_evidence=scene)
    return rows


def score_baselines(sets: list[EvaluationSet]) -> dict[str, dict]:
    """The baselines' rows, ``"set / mode / baseline"``: the visible masks, and the hull
    (single-object mode) or ``hull-occluders`` (scene mode). The same for either model."""
    from amodal_sam.evaluate import predict_dataset

    rows: dict[str, dict] = {}
    for evaluation_set, dataset in _datasets(sets):
        for mode in evaluation_set.modes:
            scene = mode == "scene"
            for baseline in ("visible", "hull-occluders" if scene else "hull"):
                predictions = predict_dataset(dataset, baseline_name=baseline, progress=False)
                rows[f"{evaluation_set.name} / {mode} / {baseline}"] = _row(dataset, predictions, scene)
    return rows


def _datasets(sets: list[EvaluationSet]):
    from amodal_sam.data.readers import load_dataset

    for evaluation_set in sets:
        yield evaluation_set, load_dataset(evaluation_set.annotations, include_stuff=True)


def _row(dataset, predictions, scene: bool, hull_evidence: bool = False) -> dict:
    """Per-instance AIoU / OIoU of ``predictions``, and their order accuracy in scene mode (read
    as the scene reads it, hulls joined, for a model's scene-mode predictions: ``hull_evidence``)."""
    from amodal_sam.evaluate import order_report

    order = order_report(dataset, predictions, hull_evidence=hull_evidence)["accuracy"] if scene else None
    return {**per_instance([p.counts for p in predictions]), "order": order}


def readme_example_iou(model) -> dict[str, float]:
    """IoU with the true disc of the README example's completion, in single-object mode (the
    disc's visible mask) and in scene mode (both objects' masks)."""
    from amodal_sam.image_io import read_rgb
    from amodal_sam.mask_files import read_mask
    from amodal_sam.scene import complete_encoded_scene

    image = read_rgb(EXAMPLES / "scene.png")
    visible, truth = read_mask(EXAMPLES / "scene_visible.png"), read_mask(EXAMPLES / "scene_amodal.png")
    encoded = model.encode(image)
    single = model.complete(encoded, visible_masks=visible[None]).amodal[0].cpu().numpy()
    bar = read_mask(EXAMPLES / "scene_objects.png") & ~visible
    scene = complete_encoded_scene(model, encoded, np.stack([visible, bar])).amodal[0]
    return {
        mode: float((mask & truth).sum() / (mask | truth).sum())
        for mode, mask in (("single", single), ("scene", scene))
    }


def tolerance(difference: np.ndarray, floor: float, seed: int = 0) -> float:
    """``max(floor, 2 x bootstrap standard error of the mean)`` of a paired per-instance
    ``difference`` (NaNs, instances without a hidden part, left out)."""
    values = difference[~np.isnan(difference)]
    if len(values) < 2:
        return floor
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_RESAMPLES, len(values)))].mean(axis=1)
    return max(floor, 2.0 * float(means.std()))


@dataclass
class RowComparison:
    """One row's metric: the two means, their difference and its tolerance."""

    row: str
    metric: str
    current: float
    candidate: float
    tolerance: float

    @property
    def difference(self) -> float:
        return self.candidate - self.current

    @property
    def worse(self) -> bool:
        return self.difference < -self.tolerance

    @property
    def better(self) -> bool:
        return self.difference > self.tolerance


def compare_rows(candidate: dict[str, dict], current: dict[str, dict]) -> list[RowComparison]:
    """Every model row (not baselines) and metric of both models, paired by instance."""
    comparisons = []
    for row in candidate:
        if row.count(" / ") != 1:
            continue
        for metric in METRICS:
            ours, theirs = candidate[row][metric], current[row][metric]
            if len(ours) != len(theirs):
                raise ValueError(f"{row}: {len(ours)} instances for the candidate, {len(theirs)} for the current model")
            floor = AIOU_FLOOR if metric == "aiou" else OIOU_FLOOR
            comparisons.append(
                RowComparison(
                    row, metric, float(np.nanmean(theirs)), float(np.nanmean(ours)), tolerance(ours - theirs, floor)
                )
            )
    return comparisons


def never_less_than_given(rows: dict[str, dict], real_rows: list[str]) -> list[str]:
    """Rule 4's failures: the real rows where the model's mean AIoU is below the visible masks'."""
    return [row for row in real_rows if np.nanmean(rows[row]["aiou"]) < np.nanmean(rows[f"{row} / visible"]["aiou"])]


def verdict(
    comparisons: list[RowComparison],
    candidate_readme: dict[str, float],
    current_readme: dict[str, float],
    candidate_real_failures: list[str],
    current_real_failures: list[str],
) -> tuple[bool, list[str]]:
    """Rules 2-5: (adopt?, the reasons, one line each)."""
    reasons = []
    for c in comparisons:
        if c.worse:
            reasons.append(
                f"worse: {c.row} {c.metric.upper()} {c.candidate:.4f} against {c.current:.4f} "
                f"(tolerance {c.tolerance:.4f})"
            )
    incomplete = [mode for mode, iou in candidate_readme.items() if not iou >= README_IOU]
    for mode in incomplete:
        reasons.append(f"README example not completed in {mode} mode: IoU {candidate_readme[mode]:.3f} < {README_IOU}")
    for row in candidate_real_failures:
        reasons.append(f"less than given: {row} AIoU below the visible masks'")
    current_fails = any(not iou >= README_IOU for iou in current_readme.values()) or bool(current_real_failures)
    fixes = current_fails and not incomplete and not candidate_real_failures
    if not any(c.better for c in comparisons) and not fixes:
        reasons.append("not better: no row beyond its tolerance, and the current model passes rules 3 and 4")
    return not reasons, reasons


def _mean(values: np.ndarray) -> str:
    mean = np.nanmean(values) if np.isfinite(values).any() else math.nan
    return "-" if math.isnan(mean) else f"{mean:.4f}"


def _baseline_means(candidate: dict | None, current: dict, metric: str) -> str:
    """A baseline row's mean; ``candidate / current`` where it depends on the model (the same
    model frame by frame beside a video row)."""
    current_mean = _mean(current[metric])
    candidate_mean = None if candidate is None else _mean(candidate[metric])
    return current_mean if candidate_mean in (None, current_mean) else f"{candidate_mean} / {current_mean}"


def report_markdown(
    candidate: dict[str, dict],
    current: dict[str, dict],
    comparisons: list[RowComparison],
    readmes: tuple[dict[str, float], dict[str, float]],
    adopt: bool,
    reasons: list[str],
    names: tuple[str, str],
) -> str:
    """The report: the verdict, the README example, then one table row per (set, mode) with
    both models, the baselines, the difference and its tolerance."""
    lines = [
        f"# Adoption report: {names[0]} (candidate) against {names[1]} (current)",
        "",
        f"**Verdict: {'ADOPT' if adopt else 'KEEP THE CURRENT MODEL'}**" + ("" if adopt else ": " + "; ".join(reasons)),
        "",
        (
            "Rule: `benchmarks/adopt.py`'s docstring. Per-instance means; tolerance = max(floor, 2 x bootstrap "
            "standard error of the paired difference). Random frozen encoder: not SAM quality."
        ),
        "",
        "| README example (IoU with the true disc) | candidate | current |",
        "| --- | --- | --- |",
    ]
    for mode in readmes[0]:
        lines.append(f"| {mode} | {readmes[0][mode]:.3f} | {readmes[1][mode]:.3f} |")
    lines += [
        "",
        "| set / mode | metric | candidate | current | difference | tolerance | baselines | order (cand. / cur. / rule) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in comparisons:
        baselines = ", ".join(
            f"{row.rsplit(' / ', 1)[1]} {_baseline_means(candidate.get(row), current[row], c.metric)}"
            for row in current
            if row.startswith(c.row + " / ")
        )
        order = ""
        if c.metric == "aiou" and candidate[c.row]["order"] is not None:
            rule = current.get(f"{c.row} / hull-occluders", {}).get("order")
            order = f"{candidate[c.row]['order']:.3f} / {current[c.row]['order']:.3f}" + (
                f" / {rule:.3f}" if rule is not None else ""
            )
        mark = " (better)" if c.better else " (worse)" if c.worse else ""
        lines.append(
            f"| {c.row} | {c.metric.upper()} | {c.candidate:.4f} | {c.current:.4f} | {c.difference:+.4f}{mark} | "
            f"{c.tolerance:.4f} | {baselines} | {order} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", required=True, help="the retrained model's folder")
    parser.add_argument("--current", default="checkpoints/demo", help="the shipped model's folder")
    parser.add_argument(
        "--work", required=True, type=Path, help="the demo's work folder (val/, calib/; cache/, shapes/, video-clips/)"
    )
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"), help="real COCOA photos")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (and its JSON beside it)")
    args = parser.parse_args(argv)
    from amodal_sam.factory import create_model
    from amodal_sam.report import write_json

    sets = evaluation_sets(args.data_root, args.work)
    crops = beyond_crops(args.data_root)
    clips = video_clips(args.data_root, args.work)
    models = create_model(model=args.candidate), create_model(model=args.current)
    baselines = score_baselines(sets) | beyond_baselines(crops) | video_baselines(clips)
    candidate, current = (
        score_model(model, sets, args.work / "cache")
        | score_beyond(model, crops)
        | score_video(model, clips)
        | baselines
        for model in models
    )
    readmes = readme_example_iou(models[0]), readme_example_iou(models[1])
    real_rows = [f"{s.name} / scene" for s in sets if s.real]
    comparisons = compare_rows(candidate, current)
    adopt, reasons = verdict(
        comparisons,
        readmes[0],
        readmes[1],
        never_less_than_given(candidate, real_rows),
        never_less_than_given(current, real_rows),
    )
    text = report_markdown(candidate, current, comparisons, readmes, adopt, reasons, (args.candidate, args.current))
    print(text)
    if args.out:
        from amodal_sam.atomic import atomic_output

        with atomic_output(args.out) as temporary:
            temporary.write_text(text)
        write_json(
            args.out.with_suffix(".json"),
            {
                "adopt": adopt,
                "reasons": reasons,
                "readme_iou": {"candidate": readmes[0], "current": readmes[1]},
                "rows": [vars(c) | {"difference": c.difference} for c in comparisons],
            },
        )
    return 0 if adopt else 1


if __name__ == "__main__":
    sys.exit(main())
