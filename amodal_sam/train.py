"""Fine-tuning the amodal prompt encoder and decoder on cached frozen-encoder embeddings.

``fit`` runs on one device, or on several under ``torchrun`` (PyTorch DDP: each rank takes its
share of every global batch; gloo on CPU, NCCL on GPU). Every sample's augmentation is seeded
by (seed, epoch, sample), so a run gives the same weights whether it is split over ranks or
interrupted and resumed.
"""

from __future__ import annotations

import copy
import csv
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from amodal_sam.atomic import atomic_output
from amodal_sam.data.memory_prior import memory_prior
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.device import default_device
from amodal_sam.distributed import barrier, join_process_group
from amodal_sam.embedding_cache import EmbeddingCache, embed_dataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.geometry import ImageFrame, mask_boxes
from amodal_sam.mask_noise import moved_boundary
from amodal_sam.metrics import summarize
from amodal_sam.model_card import RECORD_KEYS, STARTED_FROM_KEY, TRAINING_KEY, short_source, starting_point
from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.prompts import DecoderPrompts, DenseLevels, dense_prompt_levels
from amodal_sam.sam_weights import non_finite_tensors

STATE_NAME = "trainer_state.pt"
LOG_NAME = "log.csv"
PLOT_NAME = "training.png"


@dataclass
class TrainOptions:
    """Hyper-parameters. ``batch_size`` is the global batch, split evenly over DDP ranks."""

    epochs: int = 10
    batch_size: int = 8
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    mask_noise_prob: float = 0.5  # chance a visible prompt is eroded or dilated
    box_jitter: float = 0.05  # box edges move by N(0, this x box side)
    point_prob: float = 0.25  # chance of 1-3 extra positive points from the visible mask
    visible_loss_weight: float = 1.0
    occluded_loss_weight: float = 1.0  # Dice on the hidden part alone, so completion is not drowned out
    occluder_loss_weight: float = 1.0  # where the occluders are: everywhere if annotated, else in the object
    iou_loss_weight: float = 1.0
    scene_prob: float = 0.5  # chance the known occluders (the other objects' visible masks) are given
    occluder_noise_prob: float = 0.5  # chance, once occluders are given, that their boundaries move (each on its own)
    memory_prob: float = 0.5  # chance a model with a memory input is given a shape memory (data.memory_prior)
    workers: int = 0  # DataLoader processes preparing batches (masks, prompts, pixels); 0: the training process
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name in ("warmup_steps", "workers"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer; got {value!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive finite number; got {self.lr!r}")
        for name in ("mask_noise_prob", "point_prob", "scene_prob", "occluder_noise_prob", "memory_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1]; got {getattr(self, name)!r}")
        for name in (
            "weight_decay",
            "grad_clip",
            "box_jitter",
            "visible_loss_weight",
            "occluded_loss_weight",
            "occluder_loss_weight",
            "iou_loss_weight",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative finite number; got {value!r}")


# ------------------------------------------------------------------------------- prompts
def _noisy_mask(mask: np.ndarray, rng: np.random.Generator, probability: float) -> np.ndarray:
    """The visible mask eroded or dilated by a few pixels (with ``probability``), never emptied."""
    if rng.random() >= probability:
        return mask
    return _moved_boundary(mask, rng)


def _moved_boundary(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool ``mask`` eroded or grown (an even chance) by 1 to about 4 % of sqrt(area)
    pixels, never emptied."""
    radius = int(rng.integers(1, max(2, int(0.04 * math.sqrt(mask.sum()))) + 1))
    return moved_boundary(mask, radius, grow=rng.random() >= 0.5)


def _known_occluders(
    all_visible: np.ndarray,
    instance_index: int,
    annotated: np.ndarray | None,
    own_visible: np.ndarray,
    rng: np.random.Generator,
    noise_probability: float,
) -> np.ndarray:
    """(H, W) bool: what scene mode knows can hide instance ``instance_index``, as it would be
    given at inference: the union of the other instances' visible masks ((N, H, W)
    ``all_visible``) and of its ``annotated`` (H, W) occluder mask where no instance explains it
    (synth's single-object files), never over its own (prompted) visible mask ``own_visible``.

    With ``noise_probability``, every one of those masks has its boundary moved by a few pixels
    on its own (eroded, leaving a gap, or grown): real neighbours' masks, annotated or
    segmented, never abut exactly, and synth's do.
    """
    others = np.delete(all_visible, instance_index, axis=0)
    if annotated is not None:
        others = np.concatenate([others, (annotated & ~others.any(axis=0))[None]])
    others = others[others.any(axis=(1, 2))]
    if not len(others):
        return np.zeros_like(own_visible)
    if rng.random() < noise_probability:
        others = np.stack([_moved_boundary(mask, rng) for mask in others])
    return others.any(axis=0) & ~own_visible


def _jittered_box(mask: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    box = mask_boxes(mask[None])[0]
    side = np.array([box[2] - box[0], box[3] - box[1]] * 2) + 1.0
    box = box + rng.normal(0.0, jitter, 4) * side
    height, width = mask.shape
    return np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])


@dataclass
class _Sample:
    image_key: str
    record_index: int
    dense: DenseLevels  # (1, L, L) levels of the noisy visible mask (its known occluders, its memory), low-res frame
    box: np.ndarray  # (4,) input-frame pixels
    points: np.ndarray  # (P, 2) input-frame pixels, P may be 0
    amodal_target: np.ndarray  # (L, L) coverage
    visible_target: np.ndarray  # (L, L) coverage
    occluder_target: np.ndarray  # (L, L) coverage
    occluder_weight: np.ndarray  # (L, L) 1 where the occluder target is known, else 0


def _sample(
    dataset: AmodalDataset, keys: list[str], index: int, epoch: int, options: TrainOptions, model: AmodalSAM
) -> _Sample:
    record_index, instance_index = dataset.index[index]
    record = dataset.records[record_index]
    all_visible, all_amodal = dataset.load_masks(record)
    visible, amodal = all_visible[instance_index], all_amodal[instance_index]
    rng = np.random.default_rng([options.seed, epoch, index])
    frame = ImageFrame.for_spec(visible.shape, model.spec)
    noisy = _noisy_mask(visible, rng, options.mask_noise_prob)
    points = np.zeros((0, 2))
    if rng.random() < options.point_prob:
        ys, xs = np.nonzero(visible)
        picks = rng.integers(len(xs), size=int(rng.integers(1, 4)))
        points = frame.points_to_input(np.stack([xs[picks], ys[picks]], axis=1).astype(np.float64))
    annotated_occluder = dataset.load_occluder(record, instance_index)
    annotated = annotated_occluder is not None
    # known inside the object only when not annotated: its hidden part is covered, its visible part is not
    occluder = annotated_occluder if annotated else amodal & ~visible
    targets = frame.masks_to_low_res(np.stack([amodal, visible, occluder]))
    occluder_weight = np.ones_like(targets[0]) if annotated else (targets[0] > 0).astype(np.float32)
    known = None
    if model.occluder_prompt is not None and (rng.random() < options.scene_prob or record.scene_only):
        known = _known_occluders(
            all_visible, instance_index, annotated_occluder, noisy, rng, options.occluder_noise_prob
        )[None]
    memory = None
    if model.memory_prompt is not None and rng.random() < options.memory_prob:
        memory = memory_prior(amodal, visible, rng)[None]
    return _Sample(
        image_key=keys[record_index],
        record_index=record_index,
        dense=dense_prompt_levels(frame, noisy[None], known, with_hull=model.config.hull_prompt, memory_masks=memory),
        box=frame.boxes_to_input(_jittered_box(noisy, rng, options.box_jitter)[None])[0],
        points=points,
        amodal_target=targets[0],
        visible_target=targets[1],
        occluder_target=targets[2],
        occluder_weight=occluder_weight,
    )


# ------------------------------------------------------------------------------- loss
def _dice_loss(probability: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(..., L, L) probabilities and targets -> (...) soft Dice loss."""
    probability, target = probability.flatten(-2), target.flatten(-2)
    return 1 - (2 * (probability * target).sum(-1) + 1) / (probability.sum(-1) + target.sum(-1) + 1)


def _mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, K, L, L) logits, (N, 1, L, L) target -> (N, K) BCE + Dice."""
    target = target.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((-2, -1))
    return bce + _dice_loss(logits.sigmoid(), target)


def _weighted_mask_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N, 1, L, L) logits, target and 0/1 weight -> (N,) BCE + Dice over the weighted pixels."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * weight).flatten(1).sum(1) / weight.flatten(1).sum(1).clamp(min=1)
    return bce + _dice_loss(logits.sigmoid() * weight, target * weight)[:, 0]


_COVERAGE_EPSILON = 1e-4  # coverage differences below this are area-averaging round-off, not a hidden part


def _hard_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, K, L, L) logits, (N, 1, L, L) coverage -> (N, K) IoU of the thresholded masks."""
    predicted, truth = logits > 0, target > 0.5
    intersection = (predicted & truth).flatten(-2).sum(-1).float()
    union = (predicted | truth).flatten(-2).sum(-1).float()
    return intersection / union.clamp(min=1)


def loss_terms(
    output: AmodalDecoderOutput,
    amodal_target: torch.Tensor,
    visible_target: torch.Tensor,
    occluder_target: torch.Tensor,
    occluder_weight: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """The training loss's terms per instance; targets are (N, L, L) low-res coverage,
    ``occluder_weight`` (N, L, L) 1 where the occluder target is known.

    * ``amodal_outputs``: (N, 1 + K) BCE + Dice of each amodal output (single, K hypotheses);
    * ``occluded_outputs``: (N, 1 + K) Dice of each output on the hidden part alone (its coverage
      beyond the visible part's: ``relu(p - visible)`` against ``amodal - visible``), 0 where the
      target hides nothing; :func:`total_loss` adds it to each output
      before it takes the single output plus the best hypothesis;
    * ``visible``: (N,) BCE + Dice of the visible output;
    * ``occluder``: (N,) BCE + Dice of the occluder output over the known pixels;
    * ``iou``: (N,) mean squared error of the outputs' predicted IoU against their true IoU.
    """
    amodal_target, visible_target = amodal_target[:, None], visible_target[:, None]
    # Coverage of the hidden part: the visible part lies inside the amodal mask, so a low-res
    # pixel's hidden coverage is its amodal coverage minus its visible coverage (not their
    # product with 1 - visible, which would call every soft edge of a visible mask hidden).
    occluded_target = (amodal_target - visible_target).clamp(min=0)
    occluded_target = torch.where(occluded_target < _COVERAGE_EPSILON, 0.0, occluded_target)
    has_occluded = (occluded_target.flatten(-2).sum(-1) > 0).float()  # (N, 1)
    predicted_occluded = (output.amodal_logits.sigmoid() - visible_target).clamp(min=0)
    occluded = has_occluded * _dice_loss(predicted_occluded, occluded_target)  # (N, 1 + K)
    return {
        "amodal_outputs": _mask_loss(output.amodal_logits, amodal_target),  # (N, 1 + K), combined below
        "occluded_outputs": occluded,
        "visible": _mask_loss(output.visible_logits, visible_target)[:, 0],
        "occluder": _weighted_mask_loss(output.occluder_logits, occluder_target[:, None], occluder_weight[:, None]),
        "iou": F.mse_loss(
            output.amodal_iou, _hard_iou(output.amodal_logits.detach(), amodal_target), reduction="none"
        ).mean(1),
    }


def total_loss(terms: dict[str, torch.Tensor], options: TrainOptions) -> torch.Tensor:
    """The weighted sum of :func:`loss_terms`, averaged over instances: the amodal term of the
    single output plus the best hypothesis (each with ``occluded_loss_weight`` x its hidden-part
    Dice), then the visible, occluder and IoU terms with their weights."""
    per_output = terms["amodal_outputs"] + options.occluded_loss_weight * terms["occluded_outputs"]
    amodal = per_output[:, 0] + per_output[:, 1:].min(dim=1).values
    return (
        amodal
        + options.visible_loss_weight * terms["visible"]
        + options.occluder_loss_weight * terms["occluder"]
        + options.iou_loss_weight * terms["iou"]
    ).mean()


class _LossModule(nn.Module):
    """Prompt batch -> training loss; what DDP wraps (gradients reach the amodal head only)."""

    def __init__(self, model: AmodalSAM, options: TrainOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options

    def forward(
        self,
        embeddings,
        pixels,
        image_index,
        prompts,
        amodal_target,
        visible_target,
        occluder_target,
        occluder_weight,
    ):
        output = self.model.decode(
            embeddings,
            prompts,
            image_index=image_index,
            detail_features=None if pixels is None else self.model.detail_features(pixels),
        )
        terms = loss_terms(output, amodal_target, visible_target, occluder_target, occluder_weight)
        return total_loss(terms, self.options)


class _StepInputs(torch.utils.data.Dataset):
    """Step -> this process's share of that step's global batch, prepared on the CPU, as a
    DataLoader's worker processes can do it beside the training loop: the samples and, for a
    decoder with a detail branch, the (I, 3, S, S) normalised input pixels of the batch's I distinct
    images (in order of first use), else None. Reads no embedding and touches no GPU tensor."""

    def __init__(
        self,
        dataset: AmodalDataset,
        keys: list[str],
        epoch: int,
        options: TrainOptions,
        model: AmodalSAM,
        rank: int,
        world: int,
    ) -> None:
        self.dataset, self.keys, self.epoch, self.options, self.model = dataset, keys, epoch, options, model
        self.order = np.random.default_rng([options.seed, epoch]).permutation(len(dataset))
        self.rank, self.world = rank, world
        self.with_pixels = model.decoder.has_detail
        self.pixel_mean = model.sam.pixel_mean.detach().cpu()
        self.pixel_std = model.sam.pixel_std.detach().cpu()

    def __len__(self) -> int:
        return steps_per_epoch(len(self.dataset), self.options.batch_size)

    def __getitem__(self, step: int) -> tuple[list[_Sample], torch.Tensor | None]:
        size = self.options.batch_size
        share = self.order[step * size : (step + 1) * size][self.rank :: self.world]
        samples = [_sample(self.dataset, self.keys, int(i), self.epoch, self.options, self.model) for i in share]
        if not self.with_pixels:
            return samples, None
        records = {s.image_key: s.record_index for s in samples}  # same key, same pixels
        images = [self.dataset.load_image(self.dataset.records[records[k]]) for k in _image_keys(samples)]
        pixels = [
            ImageFrame.for_spec(image.shape[:2], self.model.spec).prepare_image(image, self.pixel_mean, self.pixel_std)
            for image in images
        ]
        return samples, torch.cat(pixels)


def steps_per_epoch(instances: int, batch_size: int) -> int:
    """Global batches in an epoch over ``instances`` (the last partial batch is left out; at least one)."""
    return max(1, instances // batch_size)


def _as_is(item):
    """The DataLoader's collate function: a step's inputs are a batch already."""
    return item


def _image_keys(samples: list[_Sample]) -> list[str]:
    """The distinct images of a batch, in order of first use: the rows of its embeddings and pixels."""
    return list(dict.fromkeys(s.image_key for s in samples))


def _batch(
    samples: list[_Sample],
    pixels: torch.Tensor | None,
    dataset: AmodalDataset,
    cache: EmbeddingCache,
    model: AmodalSAM,
    device: torch.device,
) -> dict:
    """Tensors of one batch on ``device``: each image's cached embedding once, its ``pixels`` (from
    :class:`_StepInputs`, for a detail branch), the samples' prompts as one
    :class:`~amodal_sam.modeling.prompts.DecoderPrompts` and their targets stacked."""
    keys = _image_keys(samples)
    record_of = {s.image_key: s.record_index for s in samples}  # same key, same pixels
    cached = [cache.read(k) for k in keys]
    # an entry that turned unreadable since embedding (it warns) is recomputed from its image
    cached = [
        e if e is not None else cache.embedding(dataset.load_image(dataset.records[record_of[k]]))
        for e, k in zip(cached, keys)
    ]
    embeddings = torch.cat(cached).to(device)
    most_points = max(len(s.points) for s in samples)
    points = None
    if most_points:
        coords = np.zeros((len(samples), most_points, 2), dtype=np.float32)
        labels = -np.ones((len(samples), most_points), dtype=np.int64)  # -1: padding, not a point
        for row, s in enumerate(samples):
            coords[row, : len(s.points)] = s.points
            labels[row, : len(s.points)] = 1
        points = (torch.from_numpy(coords).to(device), torch.from_numpy(labels).to(device))

    def stacked(name):
        return torch.as_tensor(np.stack([getattr(s, name) for s in samples]), dtype=torch.float32, device=device)

    def dense(name):
        return torch.as_tensor(np.concatenate([getattr(s.dense, name) for s in samples]), device=device)

    prompts = DecoderPrompts(
        mask_logits=model.mask_prompt(dense("mask").float()),
        boxes=stacked("box"),
        points=points,
        occluder_levels=dense("occluder").float()[:, None],
        occluders_known=dense("occluders_known"),
        memory_levels=dense("memory").float()[:, None],
        memory_known=dense("memory_known"),
    )
    return {
        "embeddings": embeddings,
        "pixels": pixels.to(device) if pixels is not None else None,
        "image_index": torch.tensor([keys.index(s.image_key) for s in samples], device=device),
        "prompts": prompts,
        "amodal_target": stacked("amodal_target"),
        "visible_target": stacked("visible_target"),
        "occluder_target": stacked("occluder_target"),
        "occluder_weight": stacked("occluder_weight"),
    }


# ------------------------------------------------------------------------------- bookkeeping
def write_history_csv(path: Path, history: list[dict]) -> None:
    """Write a training's per-epoch ``history`` (dicts with the same keys) to the CSV ``path``
    atomically, one row an epoch."""
    with atomic_output(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _plot(out_dir: Path, history: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    figure, (loss_axes, score_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [h["train_loss"] for h in history], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    for name in ("val_aiou", "val_oiou"):
        values = [h[name] for h in history]
        if not all(math.isnan(v) for v in values):
            score_axes.plot(epochs, values, marker="o", label=name.replace("val_", "").upper())
    score_axes.set(xlabel="epoch", ylabel="mean IoU", title="validation")
    if score_axes.lines:
        score_axes.legend(loc="lower right")
    figure.tight_layout()
    with atomic_output(out_dir / PLOT_NAME) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def validation_scores(model: AmodalSAM, val_data: AmodalDataset, cache: EmbeddingCache) -> tuple[float, float]:
    """(mean AIoU, mean OIoU) of ``model`` on ``val_data``, true visible masks as prompts."""
    model.eval()
    predictions = predict_dataset(val_data, model, cache=cache, device=str(model.device), progress=False)
    summary = summarize([p.counts for p in predictions])["mean"]
    return summary["aiou"], summary["oiou"]


# Options a resumed run may change: how long it runs, whether it shows progress and how many
# DataLoader workers prepare its batches (none of which changes a step).
_RESUMABLE_CHANGES = {"epochs", "progress", "workers"}


def changed_options(saved: dict, options, may_change: set[str]) -> list[str]:
    """``"name saved -> now"`` for each field of the dataclass ``options`` that differs from the
    ``saved`` dict of a resume point, leaving out those in ``may_change``."""
    return [
        f"{name} {saved.get(name)!r} -> {value!r}"
        for name, value in asdict(options).items()
        if name not in may_change and saved.get(name) != value
    ]


def _check_resumable(state: dict, options: TrainOptions, encoder: str, state_path: Path) -> None:
    """Refuse to resume a state made with other training options or another frozen encoder."""
    changed = changed_options(state.get("options", {}), options, _RESUMABLE_CHANGES)
    if changed:
        raise ValueError(
            f"--resume: {str(state_path)!r} was made with other training options ({', '.join(changed)}); "
            "pass the same options, or train into another --out"
        )
    if state.get("encoder") != encoder:
        raise ValueError(
            f"--resume: {str(state_path)!r} was made with the frozen encoder {state.get('encoder')!r}, "
            f"not {encoder!r}; pass the same --sam / --init, or train into another --out"
        )


def with_visible_parts(dataset: AmodalDataset) -> tuple[AmodalDataset, int]:
    """(a view of ``dataset`` without the instances whose visible mask is empty, how many were
    left out): an instance wholly hidden gives the decoder no prompt to start from."""
    rows_of: dict[int, list[int]] = {}
    for record_index, row in dataset.index:
        rows_of.setdefault(record_index, []).append(row)
    keep, left_out = [], 0
    for record_index, rows in rows_of.items():
        visible, _ = dataset.load_masks(dataset.records[record_index], rows)
        for row, instance in zip(rows, visible):
            if instance.any():
                keep.append((record_index, row))
            else:
                left_out += 1
    if not left_out:
        return dataset, 0
    view = copy.copy(dataset)
    view.index = keep
    return view, left_out


def selection_criterion(val_data: AmodalDataset) -> str:
    """Which validation score picks the best epoch: ``"val_oiou"`` (how well hidden parts are
    found), or ``"val_aiou"`` when no validation instance has a hidden part (OIoU is then
    undefined); an error when ``val_data`` holds no instances."""
    if len(val_data) == 0:
        raise ValueError("val_data holds no instances")
    for record in val_data.records:
        visible, amodal = val_data.load_masks(record)
        if (amodal & ~visible).any():
            return "val_oiou"
    return "val_aiou"


def _stop_unless_finite(loss: torch.Tensor, epoch: int, step: int, world: int) -> None:
    """Raise (on every DDP process alike) when the loss is NaN or infinite: the run has
    diverged, and the last saved model and ``trainer_state.pt`` stay as they were."""
    finite = torch.isfinite(loss.detach()).float().reshape(1)
    if world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() < 1:
        raise RuntimeError(
            f"training diverged: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; nothing "
            "from this epoch was saved. Lower the learning rate (--lr), or check the data; --resume "
            "continues from the last finished epoch"
        )


def _stop_unless_finite_weights(model: AmodalSAM, epoch: int) -> None:
    """Raise when a trainable weight turned NaN or infinite during epoch ``epoch`` (0-based)."""
    if non_finite_tensors(model.trainable_state_dict()):
        raise RuntimeError(
            f"training diverged: a weight is NaN or infinite after epoch {epoch + 1}; nothing from this "
            "epoch was saved. Lower the learning rate (--lr); --resume continues from the last finished epoch"
        )


def cosine_with_warmup(warmup: int, total: int):
    """The learning-rate factor of step ``step`` (0-based) for ``LambdaLR``: linear warm-up over
    ``warmup`` steps, then a cosine from 1 to 0 at step ``total``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


# ------------------------------------------------------------------------------- the loop
# Options that act only through a decoder input, by the input (an AmodalSAM attribute, None when absent).
_INPUT_OPTIONS = {
    "scene_prob": "occluder_prompt",
    "occluder_noise_prob": "occluder_prompt",
    "memory_prob": "memory_prompt",
}


def _training_record(
    model: AmodalSAM,
    train_data: AmodalDataset,
    val_data: AmodalDataset | None,
    options: TrainOptions,
    entry: dict,
    started_from: dict | None,
) -> dict:
    """What the model card says of a training (:data:`~amodal_sam.model_card.TRAINING_KEY`): the
    data, the options that reached ``model`` (none for an input it lacks), the saved epoch's
    validation scores (None without validation data) and the records of the model it started
    from (``started_from``, :func:`~amodal_sam.model_card.starting_point`)."""
    scored = val_data is not None and math.isfinite(entry["val_aiou"])
    unused = {name for name, part in _INPUT_OPTIONS.items() if getattr(model, part) is None}
    return {
        "data": [short_source(s) for s in train_data.source.split(" + ") if s],
        "instances": len(train_data),
        "epochs": entry["epoch"],
        "options": {k: v for k, v in asdict(options).items() if k not in ("workers", "progress", *unused)},
        "validation": short_source(val_data.source) if val_data is not None else None,
        "val_aiou": entry["val_aiou"] if scored else None,
        "val_oiou": entry["val_oiou"] if scored else None,
        STARTED_FROM_KEY: started_from,
    }


def fit(
    model: AmodalSAM,
    train_data: AmodalDataset,
    out_dir: str | Path,
    options: TrainOptions | None = None,
    *,
    val_data: AmodalDataset | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    device: str | None = None,
) -> list[dict]:
    """Train ``model``'s amodal head; returns the per-epoch history.

    Writes to ``out_dir``: the model (``config.json``, ``model.safetensors``; the best by
    validation OIoU when ``val_data`` is given, AIoU when it has no hidden part, else the last), ``trainer_state.pt`` (resume
    point, written after every epoch), ``log.csv`` and ``training.png``. ``resume=True``
    continues from ``trainer_state.pt``. Embeddings are cached in ``cache_dir`` (default
    ``out_dir/embeddings``).
    """
    out_dir = Path(out_dir)
    options = options or TrainOptions()
    train_data, unseen = with_visible_parts(train_data)
    if len(train_data) == 0:
        raise ValueError("train_data holds no instances with a visible part")
    device = default_device(device)
    rank, world = join_process_group(device)
    if options.batch_size % world:
        raise ValueError(f"batch_size {options.batch_size} must be a multiple of the {world} DDP processes")
    main_process = rank == 0
    started_from = starting_point(model.config.extra)
    model.to(device).train()
    cache = EmbeddingCache(cache_dir or out_dir / "embeddings", model)
    show = options.progress and main_process
    keys = embed_dataset(train_data, cache, progress=show, rank=rank, world=world)
    if unseen and show:
        print(f"{unseen} training instances have no visible part (nothing to prompt with): left out", file=sys.stderr)
    criterion = None
    if val_data is not None and main_process:
        embed_dataset(val_data, cache, progress=show)
        criterion = selection_criterion(val_data)
        if show:
            print(f"best epoch chosen by {criterion} on the validation data", file=sys.stderr)
    barrier(world)

    epoch_steps = steps_per_epoch(len(train_data), options.batch_size)
    total_steps = epoch_steps * options.epochs
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=options.lr, weight_decay=options.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(options.warmup_steps, total_steps))
    history: list[dict] = []
    start_epoch, best = 0, -math.inf
    state_path = out_dir / STATE_NAME
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        _check_resumable(state, options, cache.encoder, state_path)
        model.load_trainable_state_dict(state["trainable"], f"trainable weights in {str(state_path)!r}")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, best, history = state["epoch"], state["best_score"], state["history"]
        if show:
            print(f"resuming after epoch {start_epoch} of {options.epochs} from {str(state_path)!r}", file=sys.stderr)
    elif resume and show:
        print(f"--resume: no {str(state_path)!r} yet; starting afresh", file=sys.stderr)

    loss_module = _LossModule(model, options)
    step_module = DistributedDataParallel(loss_module, find_unused_parameters=True) if world > 1 else loss_module
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)
    )
    for epoch in range(start_epoch, options.epochs):
        model.train()
        began = time.time()
        inputs = _StepInputs(train_data, keys, epoch, options, model, rank, world)
        loader = torch.utils.data.DataLoader(inputs, batch_size=None, num_workers=options.workers, collate_fn=_as_is)
        losses = []
        bar = tqdm(loader, total=epoch_steps, desc=f"epoch {epoch + 1}/{options.epochs}", disable=not show)
        for step, (local, pixels) in enumerate(bar):
            with autocast:
                loss = step_module(**_batch(local, pixels, train_data, cache, model, device))
            _stop_unless_finite(loss, epoch, step, world)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(model.trainable_parameters()), options.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        entry = {
            "epoch": epoch + 1,
            "step": (epoch + 1) * epoch_steps,
            "train_loss": float(np.mean(losses)),
            "lr": scheduler.get_last_lr()[0],
            "val_aiou": math.nan,
            "val_oiou": math.nan,
            "seconds": round(time.time() - began, 1),
        }
        _stop_unless_finite_weights(model, epoch)
        if main_process:
            improved = True
            if val_data is not None:
                entry["val_aiou"], entry["val_oiou"] = validation_scores(model, val_data, cache)
                score = entry[criterion]
                improved = score > best
                best = max(best, score)
            history.append(entry)
            if improved:
                # the starting model's calibration describes other weights: it moves into the record
                for key in RECORD_KEYS:
                    model.config.extra.pop(key, None)
                model.config.extra[TRAINING_KEY] = _training_record(
                    model, train_data, val_data, options, entry, started_from
                )
                model.save_pretrained(out_dir)
            with atomic_output(state_path) as temporary:
                torch.save(
                    {
                        "trainable": model.trainable_state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "epoch": epoch + 1,
                        "best_score": best,  # of the validation criterion (selection_criterion)
                        "history": history,
                        "options": asdict(options),
                        "encoder": cache.encoder,
                    },
                    temporary,
                )
            write_history_csv(out_dir / LOG_NAME, history)
        barrier(world)
    if main_process and history:
        _plot(out_dir, history)
    return history
