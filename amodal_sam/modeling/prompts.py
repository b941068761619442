"""The amodal decoder's prompts as one value, built the same way by training and inference.

Per object, the decoder reads **dense** prompts on the low-res frame (L x L, :class:`ImageFrame`):
the visible mask's levels (+1 visible, -1 elsewhere, 0 where a completion is likeliest: the hull,
under the known occluders when those are given; :func:`visible_prompt_levels`), in scene mode
the known occluders' levels, in video the shape memory's levels (each with a flag per object
saying it is given; :func:`mask_prompt_levels`); and **sparse** prompts on the input frame: a box
and points (label 1 object, 0 background, -1 padding), as segment-anything's prompt encoder takes
them.

:func:`dense_prompt_levels` turns masks at the original resolution into the dense levels (numpy:
training prepares samples in worker processes); :class:`DecoderPrompts` holds N objects' prompts
as tensors, what :meth:`AmodalSAM.decode` reads. A new decoder input is one more field of both,
built here and read there.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from amodal_sam.geometry import ImageFrame, mask_prompt_levels, visible_prompt_levels


@dataclass(frozen=True)
class DenseLevels:
    """N objects' dense prompt levels on the low-res frame (numpy).

    Attributes:
        mask: (N, L, L) float32 visible-mask levels in [-1, 1].
        occluder: (N, L, L) float32 known-occluder levels in [-1, 1] (zeros where not given).
        occluders_known: (N,) bool, the known occluders are given (scene input).
        memory: (N, L, L) float32 shape-memory levels in [-1, 1] (zeros where not given).
        memory_known: (N,) bool, the shape memory is given (video input).
    """

    mask: np.ndarray
    occluder: np.ndarray
    occluders_known: np.ndarray
    memory: np.ndarray
    memory_known: np.ndarray


def dense_prompt_levels(
    frame: ImageFrame,
    visible_masks: np.ndarray,
    occluder_masks: np.ndarray | None,
    *,
    with_hull: bool,
    memory_masks: np.ndarray | None = None,
) -> DenseLevels:
    """(N, H, W) bool visible masks, in scene mode (N, H, W) bool known occluders and in video
    (N, H, W) bool shape memories, at the original resolution of ``frame`` -> their
    :class:`DenseLevels`. ``with_hull``: the model's ``config.hull_prompt`` (the hull, under the
    known occluders when given, left undecided)."""
    mask = visible_prompt_levels(frame, visible_masks, with_hull=with_hull, occluders=occluder_masks)
    absent = np.zeros_like(mask), np.zeros(len(mask), dtype=bool)
    occluder, occluders_known = absent if occluder_masks is None else known_occluder_levels(frame, occluder_masks)
    memory, memory_known = absent if memory_masks is None else shape_memory_levels(frame, memory_masks)
    return DenseLevels(mask, occluder, occluders_known, memory, memory_known)


def known_occluder_levels(frame: ImageFrame, occluder_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) bool known occluders -> their (N, L, L) levels and (N,) True: every row is
    given (an empty mask says nothing can hide the object)."""
    return mask_prompt_levels(frame, occluder_masks), np.ones(len(occluder_masks), dtype=bool)


def shape_memory_levels(frame: ImageFrame, memory_masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) bool shape memories -> their (N, L, L) levels and (N,) bool rows given: those
    with a pixel (an empty memory, one moved out of the image, is none)."""
    return mask_prompt_levels(frame, memory_masks), np.asarray(memory_masks).any(axis=(1, 2))


@dataclass(frozen=True)
class DecoderPrompts:
    """N objects' prompts as tensors on one device, what :meth:`AmodalSAM.decode` reads; any
    field may be None (not given). Row k of each field is object k.

    Attributes:
        mask_logits: (N, 1, L, L) visible-mask prompt logits (:meth:`AmodalSAM.mask_prompt` of the
            levels), low-res frame.
        boxes: (N, 4) boxes (x0, y0, x1, y1), input-frame pixels.
        points: ((N, P, 2) input-frame (x, y), (N, P) labels 1 object, 0 background, -1 padding).
        occluder_levels: (N, 1, L, L) known-occluder levels; read only by a model with
            ``config.occluder_prompt``.
        occluders_known: (N,) bool, which rows hold known occluders (default: all, when
            ``occluder_levels`` is given).
        memory_levels: (N, 1, L, L) shape-memory levels; read only by a model with
            ``config.memory_prompt``.
        memory_known: (N,) bool, which rows hold a shape memory (default: all, when
            ``memory_levels`` is given).
    """

    mask_logits: torch.Tensor | None = None
    boxes: torch.Tensor | None = None
    points: tuple[torch.Tensor, torch.Tensor] | None = None
    occluder_levels: torch.Tensor | None = None
    occluders_known: torch.Tensor | None = None
    memory_levels: torch.Tensor | None = None
    memory_known: torch.Tensor | None = None

    def __post_init__(self) -> None:
        counts = self._counts()
        if len(counts) != 1:
            got = "none" if not counts else f"{sorted(counts)} objects"
            raise ValueError(f"prompts need a mask, box or points for the same number of objects; got {got}")

    def __len__(self) -> int:
        (count,) = self._counts()  # one, as __post_init__ checked
        return count

    def _counts(self) -> set[int]:
        """The object counts of the given fields (one, in a valid value)."""
        counts = {
            len(v) for v in (self.mask_logits, self.boxes, self.occluder_levels, self.memory_levels) if v is not None
        }
        if self.points is not None:
            counts.add(len(self.points[0]))
        return counts

    def rows(self, rows: slice) -> DecoderPrompts:
        """The prompts of objects ``rows``."""
        values = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None:
                values[field.name] = None
            elif field.name == "points":
                values[field.name] = (value[0][rows], value[1][rows])
            else:
                values[field.name] = value[rows]
        return DecoderPrompts(**values)
