"""Predicting every instance of an amodal dataset with a model or a baseline, and scoring it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm import tqdm

from amodal_sam.data.embedding_cache import EmbeddingCache
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.geometry import convex_hull, mask_boxes
from amodal_sam.metrics import InstanceCounts, instance_counts
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.predictor import AmodalPredictor

PROMPTS = ("visible", "box", "point")
BASELINES = ("visible", "hull")


@dataclass
class Prediction:
    """One ground-truth instance's prediction and its counts."""

    annotation_id: object
    image_id: object
    amodal: np.ndarray  # (H, W) bool predicted amodal mask, original resolution
    score: float
    counts: InstanceCounts

    def as_json(self) -> dict:
        """``{annotation_id, image_id, segmentation: COCO RLE (counts a string), score}``."""
        return {
            "annotation_id": self.annotation_id,
            "image_id": self.image_id,
            "segmentation": encode_rle(self.amodal),
            "score": self.score,
        }


def baseline(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Baseline predictor of the amodal mask from the visible one: ``visible`` or ``hull``."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}; got {name!r}")
    return (lambda visible: visible.copy()) if name == "visible" else convex_hull


def _prompt_point(visible: np.ndarray, rng: np.random.Generator) -> list[list[float]]:
    """One (x, y) pixel inside the visible mask, drawn with ``rng``."""
    ys, xs = np.nonzero(visible)
    pick = rng.integers(len(xs))
    return [[float(xs[pick]), float(ys[pick])]]


def predict_dataset(
    dataset: AmodalDataset,
    model: AmodalSAM | None = None,
    *,
    baseline_name: str | None = None,
    prompt: str = "visible",
    cache: EmbeddingCache | None = None,
    seed: int = 0,
    device: str | None = None,
    decoder_batch: int | None = None,
    progress: bool = True,
) -> list[Prediction]:
    """Predict every ground-truth instance, in the order the reader yields them.

    Exactly one of ``model`` / ``baseline_name``. With a model each image is encoded once (or
    read from ``cache``) and, for ``prompt="visible"``, its instances are decoded together,
    ``decoder_batch`` per call (the predictor's default: all on a GPU, one by one on the CPU,
    where that is faster). ``prompt``: ``visible`` feeds the true visible mask, ``box`` its box, ``point``
    one point drawn inside it (seeded). Baselines always start from the true visible mask.
    """
    if (model is None) == (baseline_name is None):
        raise ValueError("give exactly one of model and baseline_name")
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {PROMPTS}; got {prompt!r}")
    rule = baseline(baseline_name) if baseline_name else None
    predictor = AmodalPredictor(model, device=device, decoder_batch=decoder_batch) if model is not None else None
    rng = np.random.default_rng(seed)
    predictions = []
    for record in tqdm(dataset.records, desc="eval", disable=not progress):
        visible, amodal = dataset.load_masks(record)
        usable = [i for i in range(len(visible)) if visible[i].any()]
        if predictor is None:
            outputs = [(rule(visible[i]), 1.0) for i in usable]
        else:
            image = dataset.load_image(record)
            if cache is not None:
                predictor.set_embedding(cache.embedding(image), image.shape[:2], image=image)
            else:
                predictor.set_image(image)
            outputs = _model_outputs(predictor, visible[usable], prompt, rng)
        for i, (predicted, score) in zip(usable, outputs):
            instance = record.instances[i]
            predictions.append(
                Prediction(
                    instance.annotation_id,
                    record.image_id,
                    predicted,
                    float(score),
                    instance_counts(predicted, amodal[i], visible[i]),
                )
            )
    return predictions


def _model_outputs(predictor: AmodalPredictor, visible: np.ndarray, prompt: str, rng: np.random.Generator):
    if len(visible) == 0:
        return []
    if prompt == "visible":
        return [(r.amodal, r.score) for r in predictor.complete_batch(list(visible))]
    outputs = []
    for mask in visible:
        if prompt == "box":
            # mask_boxes gives the last covered column and row; +1 reaches their far edges
            kwargs = {"box": mask_boxes(mask[None])[0] + (0, 0, 1, 1)}
        else:
            kwargs = {"point_coords": _prompt_point(mask, rng), "point_labels": [1]}
        try:
            result = predictor.complete(**kwargs)
            outputs.append((result.amodal, result.score))
        except RuntimeError:  # SAM saw nothing at the prompt: an empty prediction
            outputs.append((np.zeros_like(mask), 0.0))
    return outputs
