"""Predicting every instance of an amodal dataset with a model or a baseline, and scoring it.

Models go through :meth:`AmodalSAM.complete`, the one decision rule; each image is encoded once
(or read from the embedding cache) and decoded once. In scene mode (``scene=True``) each
instance's known occluders are the visible masks of every other instance of its image, stuff
regions included (stuff is never scored). The occlusion order of any method's completions is
scored by :func:`order_report`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import AmodalDataset, ImageRecord
from amodal_sam.device import default_decoder_batch, default_device
from amodal_sam.embedding_cache import EmbeddingCache
from amodal_sam.geometry import ImageFrame, convex_hull, mask_boxes
from amodal_sam.metrics import InstanceCounts, OrderCounts, instance_counts, order_counts, summarize, true_occlusion
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import Completion
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.occlusion import occlusion_order
from amodal_sam.scene import known_occluders
from amodal_sam.validation import check_decoder_batch

PROMPTS = ("visible", "box", "point")
BASELINES = ("visible", "hull", "hull-occluders")


@dataclass
class Prediction:
    """One ground-truth instance's prediction and its counts."""

    annotation_id: object
    image_id: object
    index: int  # the instance's position in its image record
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


@dataclass
class ScoredInstances:
    """One image's scored instances: the objects (not stuff) with a visible part.

    ``indices`` are their positions in the record; ``visible`` / ``amodal`` their (M, H, W) true
    masks; ``occluders`` (M, H, W) what is known to be able to hide each in scene mode: the union
    of every other instance's visible mask, stuff included."""

    record: ImageRecord
    indices: list[int]
    visible: np.ndarray
    amodal: np.ndarray
    occluders: np.ndarray


@dataclass
class ImageCompletion(ScoredInstances):
    """:class:`ScoredInstances` with the model's completion of them (true visible masks as
    prompts)."""

    completion: Completion | None = None


def baseline_amodal(name: str, visible: np.ndarray, occluders: np.ndarray | None = None) -> np.ndarray:
    """A baseline's (H, W) bool amodal mask from the (H, W) visible mask: ``visible`` itself,
    its convex ``hull``, or ``hull-occluders``: visible | (hull & the (H, W) known occluders)."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}; got {name!r}")
    if name == "visible":
        return visible.copy()
    if name == "hull":
        return convex_hull(visible)
    if occluders is None:
        raise ValueError("the hull-occluders baseline needs the known occluders")
    return visible | (convex_hull(visible) & occluders)


def _prompt_point(visible: np.ndarray, rng: np.random.Generator) -> list[list[float]]:
    """One (x, y) pixel inside the visible mask, drawn with ``rng``."""
    ys, xs = np.nonzero(visible)
    pick = rng.integers(len(xs))
    return [[float(xs[pick]), float(ys[pick])]]


def scored_indices(record: ImageRecord, visible: np.ndarray) -> list[int]:
    """Indices of the record's objects that are scored: not stuff, and with a visible pixel in
    their (N, H, W) ``visible`` masks (nothing to prompt with otherwise)."""
    return [i for i, instance in enumerate(record.instances) if not instance.is_stuff and visible[i].any()]


def scored_instances(dataset: AmodalDataset, record: ImageRecord) -> ScoredInstances:
    """The record's objects with a visible part, their true masks and known occluders."""
    visible, amodal = dataset.load_masks(record)
    usable = scored_indices(record, visible)
    occluders = known_occluders(visible)[usable] if usable else visible[:0]
    return ScoredInstances(record, usable, visible[usable], amodal[usable], occluders)


def encode_record(
    dataset: AmodalDataset, record: ImageRecord, model: AmodalSAM, cache: EmbeddingCache | None
) -> EncodedImage:
    """The record's image encoded by ``model``, its embedding from ``cache`` when given."""
    image = dataset.load_image(record)
    ImageFrame.for_spec(image.shape[:2], model.spec, str(record.image_path))  # a size the encoder can take
    return cache.encode(image) if cache is not None else model.encode(image)


def iter_completions(
    dataset: AmodalDataset,
    model: AmodalSAM,
    *,
    scene: bool = False,
    cache: EmbeddingCache | None = None,
    decoder_batch: int | None = None,
    progress: bool = True,
    description: str = "eval",
) -> Iterator[ImageCompletion]:
    """Each image's instances completed from their true visible masks (with their known
    occluders when ``scene``): one encoding and one decoding per image (``decoder_batch``
    instances per decoder call)."""
    for record in tqdm(dataset.records, desc=description, disable=not progress):
        item = scored_instances(dataset, record)
        if not item.indices:
            continue
        encoded = encode_record(dataset, record, model, cache)
        completion = model.complete(
            encoded,
            visible_masks=item.visible,
            occluder_masks=item.occluders if scene else None,
            decoder_batch=decoder_batch,
        )
        yield ImageCompletion(**vars(item), completion=completion)


def predict_dataset(
    dataset: AmodalDataset,
    model: AmodalSAM | None = None,
    *,
    baseline_name: str | None = None,
    prompt: str = "visible",
    scene: bool = False,
    cache: EmbeddingCache | None = None,
    seed: int = 0,
    device: str | None = None,
    decoder_batch: int | None = None,
    progress: bool = True,
) -> list[Prediction]:
    """Predict every ground-truth object (not stuff), in the order the reader yields them; one
    without a visible part gets an empty prediction with score 0 (nothing to start from).

    Exactly one of ``model`` / ``baseline_name``. With a model each image is encoded once (or
    read from ``cache``) and, for ``prompt="visible"``, its instances are decoded together,
    ``decoder_batch`` per call (default: all on a GPU, one by one on the CPU, where that is
    faster). ``prompt``: ``visible`` feeds the true visible mask, ``box`` its box, ``point`` one
    point drawn inside it (seeded); box and point go through SAM's decoder for the visible part.
    ``scene``: each instance also gets its known occluders (the other instances' visible masks,
    stuff included); visible prompts only. Baselines start from the true visible mask (and
    ``hull-occluders`` from the known occluders) and take none of the model's options: giving
    one is an error.

    VIoU counts come from the visible part the model predicts: SAM's mask for box / point
    prompts, the amodal decoder's own visible output for visible-mask prompts (the given mask
    itself would score 1 by construction). Baselines predict no visible part: no VIoU.
    """
    if (model is None) == (baseline_name is None):
        raise ValueError("give exactly one of model and baseline_name")
    if prompt not in PROMPTS:
        raise ValueError(f"prompt must be one of {PROMPTS}; got {prompt!r}")
    if baseline_name is not None:
        _refuse_options(
            "a baseline", prompt=prompt, scene=scene, cache=cache, device=device, decoder_batch=decoder_batch
        )
        return _one_per_instance(dataset, _baseline_predictions(dataset, baseline_name, progress))
    if prompt != "visible":
        _refuse_options(f"prompt {prompt!r} (one instance per decoder call)", decoder_batch=decoder_batch, scene=scene)
    check_decoder_batch(decoder_batch)
    model.to(default_device(device)).eval()
    if prompt == "visible":
        predictions = []
        completions = iter_completions(
            dataset, model, scene=scene, cache=cache, decoder_batch=decoder_batch, progress=progress
        )
        for item in completions:
            completion = item.completion
            amodal, scores = completion.amodal.cpu().numpy(), completion.score.cpu().numpy()
            decoder_visible = completion.decoder_visible().cpu().numpy()
            for row, index in enumerate(item.indices):
                counts = instance_counts(amodal[row], item.amodal[row], item.visible[row], decoder_visible[row])
                predictions.append(_prediction(item.record, index, amodal[row], scores[row], counts))
        return _one_per_instance(dataset, predictions)
    predictions = _prompted_predictions(dataset, model, prompt, cache, np.random.default_rng(seed), progress)
    return _one_per_instance(dataset, predictions)


def _one_per_instance(dataset: AmodalDataset, predictions: list[Prediction]) -> list[Prediction]:
    """``predictions`` with an empty prediction (score 0) for every object that has none (an
    instance without a visible part gives no prompt to start from), in the reader's order."""
    made = {(p.image_id, p.index): p for p in predictions}
    complete = []
    for record in dataset.records:
        objects = [i for i, instance in enumerate(record.instances) if not instance.is_stuff]
        missing = [i for i in objects if (record.image_id, i) not in made]
        if missing:
            visible, amodal = dataset.load_masks(record, missing)
            for row, index in enumerate(missing):
                empty = np.zeros_like(visible[row])
                counts = instance_counts(empty, amodal[row], visible[row])
                made[(record.image_id, index)] = _prediction(record, index, empty, 0.0, counts)
        complete += [made[(record.image_id, i)] for i in objects]
    return complete


def _refuse_options(who: str, **options: Any) -> None:
    """ValueError naming each option that ``who`` cannot use but was given (not its default)."""
    defaults = {"prompt": "visible", "scene": False, "cache": None, "device": None, "decoder_batch": None}
    given = [name for name, value in options.items() if value != defaults[name]]
    if given:
        raise ValueError(f"{who} takes no {', '.join(given)}: it would be ignored")


def _prediction(record: ImageRecord, index: int, amodal: np.ndarray, score: float, counts) -> Prediction:
    return Prediction(record.instances[index].annotation_id, record.image_id, index, amodal, float(score), counts)


def _baseline_predictions(dataset: AmodalDataset, name: str, progress: bool) -> list[Prediction]:
    predictions = []
    for record in tqdm(dataset.records, desc="eval", disable=not progress):
        item = scored_instances(dataset, record)
        for row, index in enumerate(item.indices):
            predicted = baseline_amodal(name, item.visible[row], item.occluders[row])
            counts = instance_counts(predicted, item.amodal[row], item.visible[row])
            predictions.append(_prediction(record, index, predicted, 1.0, counts))
    return predictions


def _prompted_predictions(
    dataset: AmodalDataset,
    model: AmodalSAM,
    prompt: str,
    cache: EmbeddingCache | None,
    rng: np.random.Generator,
    progress: bool,
) -> list[Prediction]:
    """Box or point prompts, one instance at a time: SAM's decoder finds the visible part, the
    amodal decoder completes it; where SAM finds nothing the prediction is empty (score 0)."""
    predictions = []
    for record in tqdm(dataset.records, desc="eval", disable=not progress):
        item = scored_instances(dataset, record)
        usable, visible, amodal = item.indices, item.visible, item.amodal
        if not usable:
            continue
        encoded = encode_record(dataset, record, model, cache)
        for row, index in enumerate(usable):
            if prompt == "box":
                # mask_boxes gives the last covered column and row; +1 reaches their far edges
                prompts = {"boxes": mask_boxes(visible[row][None]) + (0, 0, 1, 1)}
            else:
                point = np.asarray([_prompt_point(visible[row], rng)])
                prompts = {"points": (point, np.ones((1, 1), dtype=np.int64))}
            sam_visible = model.sam_visible_masks(encoded, **prompts)
            if not sam_visible.any():
                empty = np.zeros_like(visible[row])
                counts = instance_counts(empty, amodal[row], visible[row], empty)
                predictions.append(_prediction(record, index, empty, 0.0, counts))
                continue
            completion = model.complete(encoded, visible_masks=sam_visible.cpu().numpy())
            predicted = completion.amodal[0].cpu().numpy()
            counts = instance_counts(predicted, amodal[row], visible[row], completion.visible[0].cpu().numpy())
            predictions.append(_prediction(record, index, predicted, completion.score[0], counts))
    return predictions


def evaluation_report(
    predictions: list[Prediction],
    *,
    data: str,
    model: AmodalSAM | None = None,
    model_name: str | None = None,
    baseline_name: str | None = None,
    prompt: str = "visible",
    scene: bool = False,
    seed: int = 0,
    cache: EmbeddingCache | None = None,
    decoder_batch: int | None = None,
    dataset: AmodalDataset | None = None,
) -> dict:
    """The metrics of ``predictions`` with what produced them: for a model its name, prompt (the
    point seed, the decoder batch of visible prompts), encoder mode, device, embedding cache and
    hidden threshold; for a baseline only its name, since it takes none of those. With the
    ``dataset`` the predictions were made on, the occlusion order is scored too (``order``,
    :func:`order_report`)."""
    report: dict[str, Any] = {"data": data}
    if model is None:
        report["method"] = f"baseline {baseline_name}"
    else:
        report.update(
            method=f"model {model_name}" + (" (scene)" if scene else ""),
            prompt=prompt,
            scene=scene,
            encoder=model.encoder_mode,
            decoder_dtype=model.decoder_dtype,
            device=str(model.device),
            hidden_threshold=model.config.threshold_for(occluders_known=scene),
            cache=None if cache is None else str(cache.folder),
        )
        if prompt == "visible":
            report["decoder_batch"] = decoder_batch or default_decoder_batch(model.device)
        if prompt == "point":
            report["seed"] = seed
    if dataset is not None:
        report["order"] = order_report(dataset, predictions, hull_evidence=model is not None and scene)
    return {**report, **summarize([p.counts for p in predictions])}


def order_report(dataset: AmodalDataset, predictions: list[Prediction], hull_evidence: bool = False) -> dict:
    """Occlusion-order metrics of ``predictions`` (any method): per image, the order of the
    predicted completions (:func:`amodal_sam.occlusion.occlusion_order`) against the truth
    (:func:`amodal_sam.metrics.true_occlusion`: the recorded order where every instance has one,
    else derived from the true masks), summed over images. ``truth`` says which.
    ``hull_evidence``: read the order as scene mode does (:class:`amodal_sam.scene.Scene`), each
    hidden part joined with its visible part's convex hull; for a model's scene-mode predictions."""
    by_image: dict = {}
    for prediction in predictions:
        by_image.setdefault(prediction.image_id, {})[prediction.index] = prediction.amodal
    total, recorded, derived = OrderCounts(), 0, 0
    for record in dataset.records:
        predicted = by_image.get(record.image_id, {})
        item = scored_instances(dataset, record)
        rows = [row for row, index in enumerate(item.indices) if index in predicted]
        if len(rows) < 2:
            continue
        visible, amodal = item.visible[rows], item.amodal[rows]
        orders = [record.instances[item.indices[row]].order for row in rows]
        truth, from_order = true_occlusion(visible, amodal, orders)
        recorded, derived = recorded + from_order, derived + (not from_order)
        completed = np.stack([predicted[item.indices[row]] for row in rows])
        hulls = np.stack([convex_hull(v) for v in visible]) if hull_evidence else None
        total = total + order_counts(occlusion_order(visible, completed, hulls=hulls), truth, amodal)
    source = {(True, False): "recorded order", (False, True): "derived from the masks"}.get(
        (recorded > 0, derived > 0), "recorded order where present, else derived from the masks"
    )
    return {**total.as_dict(), "truth": source}
