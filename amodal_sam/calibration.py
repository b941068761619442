"""Choosing a model's ``hidden_threshold`` on held-out data.

A decoder trained on a few scenes is over-confident on new ones: it adds hidden pixels that are
not there. The amodal mask should beat both trivial answers, the visible mask itself (best AIoU
when nothing is added) and its convex hull (adds everything plausible), so the chosen threshold
is the one with the largest worst-case margin over them: ``min(AIoU - visible AIoU, OIoU - hull
OIoU)``, on data the model was not trained on. Ties go to the lower threshold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm import tqdm

from amodal_sam.data.embedding_cache import EmbeddingCache
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.metrics import summarize
from amodal_sam.modeling.amodal_sam import AmodalSAM

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class ThresholdScore:
    """Mean AIoU and OIoU of the model at one ``hidden_threshold``, and its margin over the
    baselines (visible-mask AIoU, convex-hull OIoU)."""

    threshold: float
    aiou: float
    oiou: float
    margin: float


def _mean_metrics(dataset: AmodalDataset, **prediction_arguments) -> dict:
    predictions = predict_dataset(dataset, progress=False, **prediction_arguments)
    return summarize([p.counts for p in predictions])["mean"]


def score_thresholds(
    dataset: AmodalDataset,
    model: AmodalSAM,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    cache: EmbeddingCache | None = None,
    device: str | None = None,
    progress: bool = True,
) -> list[ThresholdScore]:
    """The model's mean AIoU / OIoU on ``dataset`` (true visible masks as prompts) at each
    threshold, with its margin ``min(AIoU - visible AIoU, OIoU - hull OIoU)``. ``model`` is left
    with the threshold it had."""
    if not thresholds:
        raise ValueError("thresholds must hold at least one probability")
    visible_aiou = _mean_metrics(dataset, baseline_name="visible")["aiou"]
    hull_oiou = _mean_metrics(dataset, baseline_name="hull")["oiou"]
    original = model.config
    scores = []
    try:
        for threshold in tqdm(thresholds, desc="thresholds", disable=not progress):
            model.config = dataclasses.replace(original, hidden_threshold=float(threshold))
            metrics = _mean_metrics(dataset, model=model, cache=cache, device=device)
            margin = min(metrics["aiou"] - visible_aiou, metrics["oiou"] - hull_oiou)
            scores.append(ThresholdScore(float(threshold), metrics["aiou"], metrics["oiou"], margin))
    finally:
        model.config = original
    return scores


def best_threshold(scores: Sequence[ThresholdScore]) -> float:
    """The threshold with the largest margin; the lowest one among equals."""
    if not scores:
        raise ValueError("no threshold was scored")
    return max(scores, key=lambda s: (s.margin, -s.threshold)).threshold
