"""Training a SAM-architecture image encoder once, on dense targets of synthetic scenes, to freeze after.

A model whose encoder is SAM keeps it frozen: :mod:`amodal_sam.train` fits the head on cached
embeddings. The demo's encoder is not SAM (no SAM weights reach the machines that build it) but a
small seeded random ``ImageEncoderViT``, whose features do not say where one object lies in front
of another. This module trains such an encoder on what synthetic scenes record exactly, per token
of the input frame (``patch`` px of the resized, padded S x S image):

- **occlusion edge**: the token holds a pixel within ``band`` px of the line where an object's
  visible part meets its hidden part (an occluder's boundary drawn over it);
- **object boundary**: the token holds a pixel within ``band`` px of a visible mask's boundary that
  is no occlusion edge (an object's own outline; the image border is none);
- **hidden**: the share of the token's pixels in some object's hidden part (amodal, not visible).

A 1 x 1 convolution (the probe) reads the three from the encoder's output; encoder and probe train
together with binary cross-entropy over the tokens that hold image pixels, and only the encoder is
kept. The saved model is the starting one with the new encoder bundled (``sam.safetensors``, a new
SHA-256, so no embedding cache of the old one is reused) and its head unchanged: train the head on
it next (``amodal-sam train --init OUT``). The record
(:data:`~amodal_sam.model_card.ENCODER_TRAINING_KEY`) says what the
encoder learnt from, beside the held-out check: each target's cross-entropy on data it never saw,
next to the best constant's there (the set's own mean).

Every step is seeded by (seed, epoch, image), and a resume point is written every ``save_every``
steps, so an interrupted run resumed gives the same weights as one that ran through.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from amodal_sam.atomic import atomic_output
from amodal_sam.data.readers import AmodalDataset, ImageRecord
from amodal_sam.device import default_device
from amodal_sam.embedding_cache import encoder_identity
from amodal_sam.geometry import ImageFrame
from amodal_sam.model_card import ENCODER_TRAINING_KEY, RECORD_KEYS, STARTED_FROM_KEY, short_source, starting_point
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.sam_weights import non_finite_tensors
from amodal_sam.train import changed_options, cosine_with_warmup, write_history_csv

TARGETS = ("occlusion_edge", "object_boundary", "hidden")
STATE_NAME = "encoder_state.pt"
LOG_NAME = "encoder_log.csv"


@dataclass
class EncoderTrainOptions:
    """Hyper-parameters of :func:`train_encoder`; ``batch_size`` counts images."""

    epochs: int = 2
    batch_size: int = 4
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    seed: int = 0
    flip_prob: float = 0.5  # chance an image and its masks are mirrored left to right
    band: int = 2  # half-width in input-frame pixels of the edge and boundary lines
    save_every: int = 100  # steps between resume points
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "warmup_steps", "band", "save_every"):
            value = getattr(self, name)
            least = 0 if name == "warmup_steps" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                kind = "non-negative" if least == 0 else "positive"
                raise ValueError(f"{name} must be a {kind} integer; got {value!r}")
        for name in ("lr", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive; got {getattr(self, name)!r}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1]; got {self.flip_prob!r}")


# Options a resumed run may change: how long it runs, how often it saves, whether it shows progress.
_RESUMABLE_CHANGES = {"epochs", "save_every", "progress"}


def token_targets(
    visible: np.ndarray, amodal: np.ndarray, frame: ImageFrame, patch: int, band: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The dense targets of one image (module docstring).

    Args:
        visible, amodal: (N, H, W) bool masks of every object of the image, original frame.
        frame: the image's :class:`~amodal_sam.geometry.ImageFrame`; targets live on its input frame.
        patch: token side in input-frame pixels (16 for SAM); the grid is G = S / patch a side.
        band: half-width in input-frame pixels of the edge and boundary lines.

    Returns:
        ((3, G, G) float32 targets in :data:`TARGETS` order, each in [0, 1]; (G, G) bool, the tokens
        that hold pixels of the image rather than only padding).
    """
    side = frame.encoder_size
    if side % patch:
        raise ValueError(f"patch {patch} must divide the input side {side}")
    h, w = frame.input_size
    kernel = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    edge, outline, hidden = (np.zeros((h, w), bool) for _ in range(3))
    for visible_mask, amodal_mask in zip(visible, amodal):
        seen = cv2.resize(visible_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        whole = cv2.resize(amodal_mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        behind = whole & (1 - seen)
        edge |= (cv2.dilate(seen, kernel) & cv2.dilate(behind, kernel) & (seen | behind)).astype(bool)
        # erode's border value keeps a mask whole at the image border: no outline along it
        outline |= (cv2.dilate(seen, kernel) & (1 - cv2.erode(seen, kernel))).astype(bool)
        hidden |= behind.astype(bool)
    grid = side // patch
    maps = np.zeros((3, side, side), np.float32)
    maps[0, :h, :w], maps[1, :h, :w], maps[2, :h, :w] = edge, outline & ~edge, hidden
    cells = maps.reshape(3, grid, patch, grid, patch)
    targets = np.stack([cells[0].max(axis=(1, 3)), cells[1].max(axis=(1, 3)), cells[2].mean(axis=(1, 3))])
    holds_image = np.zeros((grid, grid), bool)
    holds_image[: -(-h // patch), : -(-w // patch)] = True
    return targets, holds_image


def _image_inputs(
    dataset: AmodalDataset, record: ImageRecord, model: AmodalSAM, flip: bool, band: int
) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """One image's (1, 3, S, S) input pixels (on the CPU), (3, G, G) targets and (G, G) token
    weights, mirrored left to right when ``flip``."""
    image = dataset.load_image(record)
    visible, amodal = dataset.load_masks(record)
    if flip:
        image, visible, amodal = image[:, ::-1], visible[:, :, ::-1], amodal[:, :, ::-1]
    frame = ImageFrame.for_spec(image.shape[:2], model.spec, str(record.image_path))
    pixels = frame.prepare_image(np.ascontiguousarray(image), model.sam.pixel_mean.cpu(), model.sam.pixel_std.cpu())
    targets, holds_image = token_targets(visible, amodal, frame, model.spec.patch_size, band)
    return pixels, targets, holds_image


def token_losses(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, 3, G, G) probe logits and targets, (B, G, G) token weights -> (3,) binary cross-entropy of
    each target, averaged over the weighted tokens."""
    per_token = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (per_token * weights[:, None]).sum(dim=(0, 2, 3)) / weights.sum().clamp_min(1)


def constant_losses(targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(3,) cross-entropy of the best constant prediction: each target's own weighted mean."""
    total = weights.sum().clamp_min(1)
    rate = ((targets * weights[:, None]).sum(dim=(0, 2, 3)) / total).clamp(1e-6, 1 - 1e-6)
    return token_losses(torch.logit(rate)[None, :, None, None].expand_as(targets), targets, weights)


@torch.no_grad()
def held_out_losses(
    model: AmodalSAM, probe: nn.Module, dataset: AmodalDataset, band: int, progress: bool = False
) -> dict[str, float]:
    """Each target's cross-entropy on ``dataset`` (no mirroring), and the best constant's there:
    ``{"<target>": ..., "<target>_constant": ...}``, pooled over every token that holds image pixels."""
    logits, targets, weights = [], [], []
    for record in tqdm(dataset.records, desc="held-out check", disable=not progress):
        pixels, target, holds_image = _image_inputs(dataset, record, model, False, band)
        logits.append(probe(model.sam.image_encoder(pixels.to(model.device))).cpu())
        targets.append(torch.from_numpy(target)[None])
        weights.append(torch.from_numpy(holds_image)[None].float())
    logits_all, targets_all, weights_all = torch.cat(logits), torch.cat(targets), torch.cat(weights)
    learnt = token_losses(logits_all, targets_all, weights_all)
    constant = constant_losses(targets_all, weights_all)
    scores = {name: float(learnt[i]) for i, name in enumerate(TARGETS)}
    scores.update({f"{name}_constant": float(constant[i]) for i, name in enumerate(TARGETS)})
    return scores


def _check_resumable(state: dict, options: EncoderTrainOptions, start: str, images: int, path: Path) -> None:
    """Refuse to resume a state made with other options, another starting encoder or other data."""
    changed = changed_options(state.get("options", {}), options, _RESUMABLE_CHANGES)
    if changed:
        raise ValueError(
            f"--resume: {str(path)!r} was made with other options ({', '.join(changed)}); pass the same "
            "options, or train into another --out"
        )
    if state.get("start") != start or state.get("images") != images:
        raise ValueError(
            f"--resume: {str(path)!r} was made from another starting model or other data "
            f"({state.get('start')!r} on {state.get('images')} images, now {start!r} on {images}); "
            "pass the same --init and --data, or train into another --out"
        )


def _record(
    train_data: AmodalDataset,
    check_data: AmodalDataset | None,
    options: EncoderTrainOptions,
    entry: dict,
    encoder_before: str,
    started_from: dict | None,
) -> dict:
    """What the model card says of the encoder's training
    (:data:`~amodal_sam.model_card.ENCODER_TRAINING_KEY`): data, options, the saved epoch's losses,
    the encoder it started from and the records of the model it started from."""
    return {
        "data": [short_source(s) for s in train_data.source.split(" + ") if s],
        "images": len(train_data.records),
        "epochs": entry["epoch"],
        "targets": list(TARGETS),
        "options": {k: v for k, v in asdict(options).items() if k not in ("progress", "save_every")},
        "train_loss": entry["train_loss"],
        "check": short_source(check_data.source) if check_data is not None else None,
        "check_losses": {k: entry[k] for k in entry if k.startswith(TARGETS)} or None,
        "encoder_before": encoder_before,
        STARTED_FROM_KEY: started_from,
    }


def train_encoder(
    model: AmodalSAM,
    train_data: AmodalDataset,
    out_dir: str | Path,
    options: EncoderTrainOptions | None = None,
    *,
    check_data: AmodalDataset | None = None,
    resume: bool = False,
    device: str | None = None,
) -> list[dict]:
    """Train ``model``'s image encoder on :func:`token_targets` of ``train_data``'s images; returns
    the per-epoch history.

    Writes to ``out_dir`` after every epoch: the model with its new encoder bundled
    (``config.json``, ``sam.safetensors``, ``model.safetensors``: the head as it was, whose
    calibrations move into the record since they describe the old encoder) and ``encoder_log.csv``;
    every ``options.save_every`` steps and at each epoch's end, the resume point
    ``encoder_state.pt``. ``check_data``: held-out images whose losses each epoch records beside
    the best constant's. A NaN or infinite loss stops the run before that step changes anything.
    """
    if model.encoder_mode != "reference-fp32":
        raise ValueError(
            f"train_encoder trains the reference fp32 encoder; this model runs {model.encoder_mode!r}: "
            "load it without an encoder dtype"
        )
    out_dir = Path(out_dir)
    options = options or EncoderTrainOptions()
    records = train_data.records
    if not records:
        raise ValueError("train_data holds no images")
    device = default_device(device)
    model.to(device)
    start = encoder_identity(model)
    encoder = model.sam.image_encoder
    with torch.random.fork_rng(devices=[]):  # the probe starts from options.seed alone
        torch.manual_seed(options.seed)
        probe = nn.Conv2d(model.spec.prompt_embed_dim, len(TARGETS), kernel_size=1).to(device)
    parameters = [*encoder.parameters(), *probe.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=options.lr, weight_decay=options.weight_decay)
    epoch_steps = -(-len(records) // options.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, cosine_with_warmup(options.warmup_steps, epoch_steps * options.epochs)
    )
    history: list[dict] = []
    start_epoch, start_step, losses = 0, 0, []
    state_path = out_dir / STATE_NAME
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        _check_resumable(state, options, start, len(records), state_path)
        encoder.load_state_dict(state["encoder"])
        probe.load_state_dict(state["probe"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, start_step, losses, history = state["epoch"], state["step"], state["losses"], state["history"]
        if options.progress:
            print(f"resuming at epoch {start_epoch + 1}, step {start_step} from {str(state_path)!r}", file=sys.stderr)
    elif resume and options.progress:
        print(f"--resume: no {str(state_path)!r} yet; starting afresh", file=sys.stderr)

    def save_state(epoch: int, step: int) -> None:
        if non_finite_tensors(encoder.state_dict()):
            raise RuntimeError(
                f"training diverged: an encoder weight is NaN or infinite at epoch {epoch + 1}, step {step}; "
                "the last resume point stays. Lower the learning rate (--lr)"
            )
        with atomic_output(state_path) as temporary:
            torch.save(
                {
                    "encoder": encoder.state_dict(),
                    "probe": probe.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                    "step": step,
                    "losses": losses,
                    "history": history,
                    "options": asdict(options),
                    "start": start,
                    "images": len(records),
                },
                temporary,
            )

    started_from = starting_point(model.config.extra)
    encoder.requires_grad_(True)
    try:
        for epoch in range(start_epoch, options.epochs):
            began = time.time()
            order = np.random.default_rng([options.seed, epoch]).permutation(len(records))
            bar = tqdm(
                range(start_step, epoch_steps),
                initial=start_step,
                total=epoch_steps,
                desc=f"encoder epoch {epoch + 1}/{options.epochs}",
                disable=not options.progress,
            )
            for step in bar:
                batch = order[step * options.batch_size : (step + 1) * options.batch_size]
                inputs = [
                    _image_inputs(
                        train_data,
                        records[index],
                        model,
                        bool(np.random.default_rng([options.seed, epoch, int(index)]).random() < options.flip_prob),
                        options.band,
                    )
                    for index in batch
                ]
                pixels = torch.cat([item[0] for item in inputs]).to(device)
                targets = torch.from_numpy(np.stack([item[1] for item in inputs])).to(device)
                weights = torch.from_numpy(np.stack([item[2] for item in inputs])).float().to(device)
                loss = token_losses(probe(encoder(pixels)), targets, weights).mean()
                if not torch.isfinite(loss):
                    raise RuntimeError(
                        f"training diverged: the loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                        "the last resume point stays. Lower the learning rate (--lr), or check the data"
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(parameters, options.grad_clip)
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
                if (step + 1) % options.save_every == 0 and step + 1 < epoch_steps:
                    save_state(epoch, step + 1)
            entry = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "seconds": round(time.time() - began, 1)}
            if check_data is not None:
                entry.update(held_out_losses(model, probe, check_data, options.band, options.progress))
            losses, start_step = [], 0
            history.append(entry)
            save_state(epoch + 1, 0)
            extra = model.config.extra
            for key in RECORD_KEYS:  # the head's records describe it on the old encoder
                extra.pop(key, None)
            extra[ENCODER_TRAINING_KEY] = _record(train_data, check_data, options, entry, start, started_from)
            model.save_pretrained(out_dir, include_sam=True)
            write_history_csv(out_dir / LOG_NAME, history)
    finally:
        encoder.requires_grad_(False)
    return history
