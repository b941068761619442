"""Scores of completion past the image border, on crops that cut whole objects
(:mod:`amodal_sam.data.truncation`), with the rule-based baselines beside any model.

Per crop, from a predicted (H_c, W_c) bool mask on the crop's canvas and the true one:

* ``aiou``: IoU of the whole masks on the canvas;
* ``outside_iou``: IoU of their parts outside the image (what the border cut off);
* ``inside_iou``: IoU of their parts inside the image (what completion must leave as it was).

Means are per crop. Baselines: ``visible`` (the visible part alone: nothing beyond the border)
and ``mirror`` (:func:`~amodal_sam.canvas.mirrored_beyond`, the visible part reflected about
each border it touches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from tqdm import tqdm

from amodal_sam.canvas import mirrored_beyond
from amodal_sam.data.truncation import TruncatedCrop
from amodal_sam.metrics import mask_iou
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.predictor import AmodalPredictor

METRICS = ("aiou", "outside_iou", "inside_iou")
BEYOND_BASELINES: dict[str, Callable[[TruncatedCrop], np.ndarray]] = {
    "visible": lambda crop: crop.canvas.place(crop.visible),
    "mirror": lambda crop: mirrored_beyond(crop.visible, crop.canvas),
}


@dataclass(frozen=True)
class BeyondScore:
    """One crop's scores (see the module docstring) and where it comes from."""

    aiou: float
    outside_iou: float
    inside_iou: float
    side: str
    share: float
    name: str


def score_crop(predicted: np.ndarray, crop: TruncatedCrop) -> BeyondScore:
    """Score an (H_c, W_c) bool mask on ``crop``'s canvas against its truth."""
    if predicted.shape != crop.truth.shape:
        raise ValueError(f"the prediction must be on the crop's canvas, {crop.truth.shape}; got {predicted.shape}")
    canvas = crop.canvas
    return BeyondScore(
        aiou=mask_iou(predicted, crop.truth),
        outside_iou=mask_iou(canvas.out_of_frame(predicted), canvas.out_of_frame(crop.truth)),
        inside_iou=mask_iou(canvas.crop(predicted), canvas.crop(crop.truth)),
        side=crop.side,
        share=crop.share,
        name=crop.name,
    )


def completion_method(
    model: AmodalSAM, beyond: float, device: str | None = None
) -> Callable[[TruncatedCrop], np.ndarray]:
    """A method for :func:`evaluate_beyond`: a crop -> its (H_c, W_c) canvas mask by ``model``'s
    completion beyond the frame (:meth:`AmodalPredictor.complete` with ``beyond``, on ``device``)."""
    predictor = AmodalPredictor(model, device=device)

    def complete(crop: TruncatedCrop) -> np.ndarray:
        predictor.set_image(crop.image)
        return predictor.complete(crop.visible, beyond=beyond).amodal

    return complete


def evaluate_beyond(
    crops: Iterable[TruncatedCrop],
    methods: Mapping[str, Callable[[TruncatedCrop], np.ndarray]],
    progress: bool = True,
) -> dict[str, list[BeyondScore]]:
    """Each method's scores on every crop, in the crops' order: ``methods`` maps a name to a
    function from a crop to its (H_c, W_c) bool canvas mask (e.g. :data:`BEYOND_BASELINES`)."""
    scores: dict[str, list[BeyondScore]] = {name: [] for name in methods}
    for crop in tqdm(crops, desc="beyond", unit="crop", disable=not progress):
        for name, method in methods.items():
            scores[name].append(score_crop(method(crop), crop))
    return scores


def mean_scores(scores: list[BeyondScore]) -> dict[str, float]:
    """Per-crop means of :data:`METRICS`, and the crop count."""
    means = {
        metric: float(np.mean([getattr(s, metric) for s in scores])) if scores else float("nan") for metric in METRICS
    }
    return {**means, "crops": len(scores)}


def beyond_report(
    crops: Iterable[TruncatedCrop],
    model: AmodalSAM | None,
    beyond: float,
    device: str | None = None,
    progress: bool = True,
) -> dict:
    """The baselines (and ``model``'s completion with ``beyond`` on ``device``, as ``"model"``)
    on ``crops``: ``{"means": {method: mean_scores}, "crops": {method: [each crop's BeyondScore
    as a dict]}}``."""
    methods = dict(BEYOND_BASELINES)
    if model is not None:
        methods["model"] = completion_method(model, beyond, device)
    scores = evaluate_beyond(crops, methods, progress=progress)
    return {
        "means": {name: mean_scores(method_scores) for name, method_scores in scores.items()},
        "crops": {name: [asdict(s) for s in method_scores] for name, method_scores in scores.items()},
    }


def format_beyond_report(report: Mapping) -> str:
    """:func:`beyond_report`'s means as a Markdown table, one row per method."""
    lines = [
        "| method | AIoU (canvas) | IoU outside the image | IoU inside | crops |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, means in report["means"].items():
        lines.append(f"| {name} | " + " | ".join(f"{means[m]:.4f}" for m in METRICS) + f" | {means['crops']} |")
    return "\n".join(lines)
