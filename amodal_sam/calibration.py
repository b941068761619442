"""Choosing a model's ``hidden_threshold`` on held-out data.

A decoder trained on a few scenes is over-confident on new ones: it adds hidden pixels that are
not there. The amodal mask should beat both trivial answers, the visible mask itself (best AIoU
when nothing is added) and its convex hull (adds everything plausible), so the chosen threshold
is the one with the largest worst-case margin over them: ``min(AIoU - visible AIoU, OIoU - hull
OIoU)``, on data the model was not trained on. Ties go to the lower threshold.

In scene mode (``scene=True``: each instance's known occluders are the other instances' visible
masks) the hull's part in the margin goes to the rule scene mode must beat, ``hull-occluders``,
and the choice is saved as ``scene_hidden_threshold``: with exact known occluders as the gate, a
pixel needs less of the decoder's confidence than under its own occluder estimate.

Each image is encoded and decoded once; every candidate threshold is scored from the same
decoder outputs (:meth:`Completion.amodal_at`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from amodal_sam.config import DEFAULT_THRESHOLDS, read_config_file, write_config_file
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.device import default_device
from amodal_sam.embedding_cache import EmbeddingCache
from amodal_sam.evaluate import baseline_amodal, iter_completions
from amodal_sam.metrics import instance_counts, summarize
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import probability_logit


@dataclass(frozen=True)
class ThresholdScore:
    """Mean AIoU and OIoU of the model at one ``hidden_threshold``, and its margin over the
    baselines (visible-mask AIoU, convex-hull OIoU)."""

    threshold: float
    aiou: float
    oiou: float
    margin: float


def baseline_margin(aiou: float, oiou: float, visible_aiou: float, hull_oiou: float) -> float:
    """How far a method is ahead of both baselines, at the weaker end:
    ``min(AIoU - visible-mask AIoU, OIoU - convex-hull OIoU)``."""
    return min(aiou - visible_aiou, oiou - hull_oiou)


def score_thresholds(
    dataset: AmodalDataset,
    model: AmodalSAM,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    scene: bool = False,
    cache: EmbeddingCache | None = None,
    device: str | None = None,
    progress: bool = True,
) -> list[ThresholdScore]:
    """The model's mean AIoU / OIoU on ``dataset`` (true visible masks as prompts) at each
    threshold, with its margin ``min(AIoU - visible AIoU, OIoU - hull OIoU)`` (``hull-occluders``
    OIoU in ``scene`` mode); one decoding per image for all thresholds. The model is not changed."""
    if len(thresholds) == 0:
        raise ValueError("thresholds must hold at least one probability")
    for threshold in thresholds:
        probability_logit(threshold)  # a clear error for a value outside (0, 1)
    rule = "hull-occluders" if scene else "hull"
    counts: dict[str, list] = {"visible": [], rule: [], **{str(t): [] for t in thresholds}}
    model.to(default_device(device)).eval()
    completions = iter_completions(dataset, model, scene=scene, cache=cache, progress=progress, description="calibrate")
    for item in completions:
        candidates = {str(t): item.completion.amodal_at(t).cpu().numpy() for t in thresholds}
        for row in range(len(item.indices)):
            visible, amodal = item.visible[row], item.amodal[row]
            for name in ("visible", rule):
                predicted = baseline_amodal(name, visible, item.occluders[row])
                counts[name].append(instance_counts(predicted, amodal, visible))
            for key, predicted in candidates.items():
                counts[key].append(instance_counts(predicted[row], amodal, visible))
    visible_aiou = summarize(counts["visible"])["mean"]["aiou"]
    hull_oiou = summarize(counts[rule])["mean"]["oiou"]
    scores = []
    for threshold in thresholds:
        metrics = summarize(counts[str(threshold)])["mean"]
        margin = baseline_margin(metrics["aiou"], metrics["oiou"], visible_aiou, hull_oiou)
        scores.append(ThresholdScore(float(threshold), metrics["aiou"], metrics["oiou"], margin))
    return scores


def best_threshold(scores: Sequence[ThresholdScore]) -> float:
    """The threshold with the largest margin; the lowest one among equals."""
    if not scores:
        raise ValueError("no threshold was scored")
    return max(scores, key=lambda s: (s.margin, -s.threshold)).threshold


def calibrate_model(
    dataset: AmodalDataset,
    model_dir: str | Path,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    scene: bool = False,
    cache_dir: str | Path | None = None,
    sam_checkpoint: str | None = None,
    encoder_dtype: str | None = None,
    device: str | None = None,
    progress: bool = True,
) -> tuple[float, list[ThresholdScore]]:
    """Score ``thresholds`` on ``dataset`` and save the best into the model folder's config:
    ``hidden_threshold``, or with ``scene`` ``scene_hidden_threshold``. Only that field of
    ``config.json`` changes; the weights are not rewritten.

    Arguments:
        model_dir: a local model folder (``config.json`` and weights).
        scene: score scene mode (see :func:`score_thresholds`).
        cache_dir: an embedding cache folder to read (and fill) the image embeddings from.
        sam_checkpoint, encoder_dtype: as :meth:`AmodalSAM.from_pretrained` takes them (the SAM
            weights when the config's are elsewhere; the encoder precision, by default the
            recorded one).
    Returns the chosen threshold and every score.
    """
    if not Path(model_dir, "config.json").is_file():
        raise FileNotFoundError(
            f"the model to calibrate (model_dir, --model) must be a local model folder with a config.json; "
            f"got {str(model_dir)!r}"
        )
    model = AmodalSAM.from_pretrained(model_dir, sam_checkpoint=sam_checkpoint, encoder_dtype=encoder_dtype)
    cache = EmbeddingCache(cache_dir, model) if cache_dir is not None else None
    scores = score_thresholds(dataset, model, thresholds, scene=scene, cache=cache, device=device, progress=progress)
    chosen = best_threshold(scores)
    setting = "scene_hidden_threshold" if scene else "hidden_threshold"
    config_path = Path(model_dir, "config.json")
    write_config_file(config_path, dataclasses.replace(read_config_file(config_path), **{setting: chosen}))
    return chosen, scores
