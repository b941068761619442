"""Scoring video completion on occlusion clips (:mod:`amodal_sam.data.synth_video`).

Per frame: AIoU and OIoU of the tracked object (OIoU over the frames where some of it is hidden),
OIoU over the frames at least :data:`HEAVY_HIDDEN` hidden, and **flicker**: the mean over
consecutive frames of ``|(1 - IoU(P_t, P_t+1)) - (1 - IoU(A_t, A_t+1))|``, how much the prediction
changes from frame to frame beyond how much the truth does (0: it moves exactly as the object).
Frames of all clips are pooled; flicker is averaged over all consecutive pairs.

Methods scored side by side on the same clips: the model in video mode (memory), the same model
frame by frame, and the baselines visible (nothing hidden), convex hull and hull ∩ the occluder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from amodal_sam.data.synth_video import OCCLUDER_INDEX, TARGET_INDEX, OcclusionClip
from amodal_sam.geometry import convex_hull
from amodal_sam.metrics import instance_counts, mask_iou
from amodal_sam.video import AmodalVideoPredictor, video_tracks

HEAVY_HIDDEN = 0.4
FORMS = ("single", "scene")


def flicker(predicted: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per consecutive pair of the (T, H, W) masks: ``|(1 - IoU(P_t, P_t+1)) - (1 - IoU(A_t, A_t+1))|``."""
    return [
        abs(mask_iou(truth[t], truth[t + 1]) - mask_iou(predicted[t], predicted[t + 1])) for t in range(len(truth) - 1)
    ]


def clip_scores(predicted: np.ndarray, clip: OcclusionClip) -> dict[str, list[float]]:
    """Per-frame ``aiou``, ``oiou`` (NaN where nothing is hidden), ``hidden`` (the true hidden
    share) and per-pair ``flicker`` of the clip's object, predicted (T, H, W) bool."""
    visible = clip.visible == TARGET_INDEX
    counts = [instance_counts(predicted[t], clip.amodal[t], visible[t]) for t in range(len(clip.stems))]
    return {
        "aiou": [c.aiou for c in counts],
        "oiou": [c.oiou for c in counts],
        "hidden": [c.occlusion_rate for c in counts],
        "flicker": flicker(predicted, clip.amodal),
    }


def summarize_scores(scores: Sequence[dict[str, list[float]]]) -> dict[str, float]:
    """Pooled over clips: mean ``aiou``, ``oiou`` (frames with a hidden part), ``oiou_heavy``
    (frames at least :data:`HEAVY_HIDDEN` hidden), ``flicker``; ``frames``."""
    aiou = [a for s in scores for a in s["aiou"]]
    oiou = [o for s in scores for o in s["oiou"] if not math.isnan(o)]
    heavy = [o for s in scores for o, h in zip(s["oiou"], s["hidden"]) if h >= HEAVY_HIDDEN and not math.isnan(o)]
    flickers = [f for s in scores for f in s["flicker"]]

    def mean(values: list[float]) -> float:
        return float(np.mean(values)) if values else math.nan

    return {
        "frames": len(aiou),
        "aiou": mean(aiou),
        "oiou": mean(oiou),
        "oiou_heavy": mean(heavy),
        "flicker": mean(flickers),
    }


def clip_masks(clip: OcclusionClip, form: str) -> np.ndarray:
    """The visible masks a user would give for ``clip``, per frame: ``single``: the object's own
    (T, H, W) bool; ``scene``: the (T, H, W) index map with the occluder as object 2."""
    if form == "single":
        return clip.visible == TARGET_INDEX
    if form == "scene":
        return np.where(np.isin(clip.visible, (TARGET_INDEX, OCCLUDER_INDEX)), clip.visible, 0).astype(np.int64)
    raise ValueError(f"form must be one of {FORMS}; got {form!r}")


def score_clips(
    clips: Sequence[OcclusionClip],
    video: AmodalVideoPredictor | None,
    *,
    forms: Sequence[str] = FORMS,
    bidirectional: bool = False,
    progress: bool = True,
) -> dict[str, list[dict[str, list[float]]]]:
    """Each method's :func:`clip_scores` per clip, in ``clips``' order: ``video / FORM`` and
    ``per frame / FORM`` for each form (:func:`clip_masks`; the same frames encoded once for
    both), and the baselines ``visible``, ``hull`` and ``hull-occluders`` (the object's visible
    part joined with its hull where the occluder's visible mask covers it). ``video`` may be None
    when ``forms`` is empty (the baselines alone)."""
    if forms and video is None:
        raise ValueError(f"scoring the forms {list(forms)} needs a video predictor; got None")
    scores: dict[str, list] = {"visible": [], "hull": [], "hull-occluders": []}
    for clip in tqdm(clips, desc="clips", disable=not progress):
        visible = clip.visible == TARGET_INDEX
        hulls = np.stack([convex_hull(v) if v.any() else v for v in visible])
        scores["visible"].append(clip_scores(visible, clip))
        scores["hull"].append(clip_scores(hulls, clip))
        scores["hull-occluders"].append(clip_scores(visible | (hulls & (clip.visible == OCCLUDER_INDEX)), clip))
        for form in forms:
            observations = video.observe_video(
                list(clip.frames), list(clip_masks(clip, form)), scene=form == "scene", progress=False
            )
            for name, memory in (("video", True), ("per frame", False)):
                tracks = video_tracks(observations, video.rule, bidirectional=bidirectional, memory=memory)
                scores.setdefault(f"{name} / {form}", []).append(clip_scores(tracks[TARGET_INDEX].amodal, clip))
    return scores


def evaluate_clips(
    clips: Sequence[OcclusionClip],
    video: AmodalVideoPredictor,
    *,
    forms: Sequence[str] = FORMS,
    bidirectional: bool = False,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """:func:`summarize_scores` of each method of :func:`score_clips` on ``clips``."""
    scores = score_clips(clips, video, forms=forms, bidirectional=bidirectional, progress=progress)
    return {name: summarize_scores(values) for name, values in scores.items()}


def format_video_report(report: dict[str, dict[str, float]]) -> str:
    """A Markdown table of :func:`evaluate_clips`'s scores, one row per method."""
    lines = [
        f"| method | AIoU | OIoU | OIoU, frames >= {HEAVY_HIDDEN:.0%} hidden | flicker | frames |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, s in report.items():
        lines.append(
            f"| {name} | {s['aiou']:.3f} | {s['oiou']:.3f} | {s['oiou_heavy']:.3f} | {s['flicker']:.3f} | {s['frames']} |"
        )
    return "\n".join(lines)
