"""The decision rule that turns decoder outputs into amodal masks, and its results.

The decoder gives, per object, K amodal hypotheses with a predicted IoU each, a visible-part
estimate and an occluder estimate (what lies in front of the object). A part of an object can
only be hidden where something covers it, and a hidden part most often continues the visible
one inside its convex hull. So a pixel joins the hidden part by one of two routes
(:class:`Decision`):

* **inside the prior region**, ``hull(visible) & occluder``: when a plausible hypothesis (one
  whose predicted IoU is at least ``plausible_share`` of the best one's) gives it a
  probability above ``threshold``;
* **anywhere else under the occluder**: only when the best hypothesis gives it a probability
  above ``outside_threshold`` (1.0: never).

Where the decoder estimates the occluder itself (single-object mode), a pixel counts as covered
when the estimate's probability exceeds the decision's ``occluder_threshold``; known occluders
(scene mode) are masks.

With ``outside_threshold == threshold`` and ``plausible_share == 1`` this is the plain rule
``visible | (best hypothesis > threshold) & occluder``. A model carries its decision per mode in
its config, chosen on held-out data by ``amodal-sam calibrate``: a weak encoder (the demo's) ends
near the geometric rule ``visible | hull & occluder``, a strong one is free to go past it.
:func:`amodal_rule` is that rule; everything that decides a mask (the predictor, evaluation,
calibration, validation during training) goes through it.

With ``clean`` (a model's ``config.clean_masks``) the hidden part is then tidied
(:func:`clean_completion`): hidden pieces that do not come within one low-res pixel of the
visible part are dropped (a hidden part continues a visible one, across the small gaps that
real masks leave between neighbours), and holes the hidden part leaves enclosed in the amodal
mask are filled where the occluder covers them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from amodal_sam.canvas import Canvas, OnCanvas
from amodal_sam.decision import Decision
from amodal_sam.geometry import ImageFrame, convex_hull
from amodal_sam.packed_mask import PackedMask


def probability_logit(probability: float) -> float:
    """A probability in (0, 1) as a logit: mask logits above it count as the object."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"hidden_threshold must be a probability in (0, 1); got {probability!r}")
    return math.log(probability / (1.0 - probability))


def plausible_logits(logits: torch.Tensor, scores: torch.Tensor, share: float) -> torch.Tensor:
    """(N, K, h, w) hypothesis logits and (N, K) predicted IoUs -> (N, h, w): at each pixel the
    largest logit among the plausible hypotheses, those scoring at least ``share`` x the best
    score (the best one always counts)."""
    best = scores.argmax(dim=1, keepdim=True)
    plausible = scores >= share * scores.gather(1, best)
    plausible.scatter_(1, best, True)
    floor = torch.finfo(logits.dtype).min
    return torch.where(plausible[:, :, None, None], logits, torch.full_like(logits, floor)).amax(dim=1)


def visible_hulls(visible: torch.Tensor) -> torch.Tensor:
    """(N, H, W) bool visible masks -> their (N, H, W) bool convex hulls, on the same device."""
    masks = visible.cpu().numpy()
    return torch.as_tensor(np.stack([convex_hull(v) for v in masks]) if len(masks) else masks, device=visible.device)


def amodal_rule(
    best_logits: torch.Tensor,
    occluder: torch.Tensor,
    visible: torch.Tensor,
    decision: Decision | float,
    clean: bool = False,
    gap: int = 1,
    prior_logits: torch.Tensor | None = None,
    hulls: torch.Tensor | None = None,
) -> torch.Tensor:
    """The amodal masks of N objects, all (N, H, W) at the original resolution: ``best_logits``
    of the best hypothesis, bool ``occluder`` and ``visible`` masks, and ``prior_logits``, the
    plausible hypotheses' largest logits (:func:`plausible_logits`; default ``best_logits``).
    Returns (N, H, W) bool ``visible | hull(visible) & occluder & (prior_logits > logit(threshold))
    | ~hull(visible) & occluder & (best_logits > logit(outside_threshold))``, then tidied by
    :func:`clean_completion` with ``clean`` (hidden pieces within ``gap`` pixels of the visible
    part are attached to it). A float ``decision`` is the plain rule at that threshold.
    ``hulls``: the (N, H, W) bool convex hulls of ``visible`` when the caller has them (computed
    otherwise)."""
    if not isinstance(decision, Decision):
        decision = Decision(decision)
    if prior_logits is None:
        prior_logits = best_logits
    if decision.is_plain:
        hidden = best_logits > probability_logit(decision.threshold)
    else:
        if hulls is None:
            hulls = visible_hulls(visible)
        inside = hulls & (prior_logits > probability_logit(decision.threshold))
        hidden = inside
        if decision.outside_threshold < 1.0:
            hidden = hidden | (~hulls & (best_logits > probability_logit(decision.outside_threshold)))
    amodal = visible | (hidden & occluder)
    if not clean:
        return amodal
    cleaned = [
        clean_completion(a, v, o, gap)
        for a, v, o in zip(amodal.cpu().numpy(), visible.cpu().numpy(), occluder.cpu().numpy())
    ]
    return torch.as_tensor(np.stack(cleaned) if cleaned else amodal.cpu().numpy(), device=amodal.device)


def decide_amodal(
    frame: ImageFrame,
    logits: torch.Tensor,
    scores: torch.Tensor,
    occluder: torch.Tensor,
    visible: torch.Tensor,
    decisions: Sequence[Decision],
    clean: bool,
    prior_regions: torch.Tensor | None = None,
) -> dict[Decision, torch.Tensor]:
    """Each decision's (N, H, W) bool amodal masks (:func:`amodal_rule`) from N objects' (N, K,
    L, L) hypothesis ``logits`` and (N, K) predicted IoUs ``scores``, with their (N, H, W) bool
    ``occluder`` and ``visible`` masks at the original resolution of ``frame``. The best
    hypothesis's logits (and each plausible share's) reach the original resolution once, and the
    hulls are computed once, for all decisions. ``prior_regions``: (N, H, W) bool regions of the
    decisions' ``threshold`` in place of the hulls."""
    best = scores.argmax(dim=1)
    rows = torch.arange(len(scores), device=logits.device)
    best_logits = frame.low_res_to_original(logits[rows, best][:, None])[:, 0]
    priors = {
        share: frame.low_res_to_original(plausible_logits(logits, scores, share)[:, None])[:, 0]
        for share in {d.plausible_share for d in decisions if d.plausible_share < 1.0}
    }
    hulls = prior_regions
    if hulls is None and any(not d.is_plain for d in decisions):
        hulls = visible_hulls(visible)
    return {
        d: amodal_rule(
            best_logits, occluder, visible, d, clean, frame.low_res_cell, priors.get(d.plausible_share), hulls
        )
        for d in decisions
    }


_EIGHT_NEIGHBOURS = np.ones((3, 3), np.uint8)


def clean_completion(amodal: np.ndarray, visible: np.ndarray, occluder: np.ndarray, gap: int = 1) -> np.ndarray:
    """One object's (H, W) bool amodal mask with its hidden part (``amodal & ~visible``) tidied:

    * **specks**: a connected piece of the hidden part (8-connected) with no pixel within
      ``gap`` pixels of the visible part (Chebyshev distance: 1 = touching, diagonals included)
      is removed: a hidden part continues a visible one. A ``gap`` above 1 bridges the few
      pixels that imperfect masks leave between an object and what covers it; the model's
      callers pass one low-res pixel (:attr:`ImageFrame.low_res_cell` original pixels), the
      finest step its decoder resolves;
    * **holes**: a background region (4-connected) enclosed by the amodal mask (not reaching the
      image border) and touching the hidden part is filled where ``occluder`` covers it (a part
      can only be hidden there). Holes of the visible part alone are kept: they are seen.

    The visible part never changes. Works on the amodal mask's bounding box, one pixel wider.
    """
    if gap < 1:
        raise ValueError(f"gap must be at least 1 pixel (touching); got {gap!r}")
    hidden = amodal & ~visible
    if not hidden.any():
        return amodal
    rows, cols = np.flatnonzero(amodal.any(axis=1)), np.flatnonzero(amodal.any(axis=0))
    top, bottom = max(rows[0] - 1, 0), min(rows[-1] + 2, amodal.shape[0])
    left, right = max(cols[0] - 1, 0), min(cols[-1] + 2, amodal.shape[1])
    box = (slice(top, bottom), slice(left, right))
    seen, hid, cover = visible[box], hidden[box], occluder[box]
    count, pieces = cv2.connectedComponents(hid.astype(np.uint8), connectivity=8)
    near_visible = cv2.dilate(seen.astype(np.uint8), np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)).astype(bool)
    hid = _label_table(count, pieces[near_visible & hid])[pieces]
    whole = seen | hid
    count, regions = cv2.connectedComponents((~whole).astype(np.uint8), connectivity=4)
    near_hidden = cv2.dilate(hid.astype(np.uint8), _EIGHT_NEIGHBOURS).astype(bool)
    is_hole = _label_table(count, regions[near_hidden & ~whole])  # label 0: the amodal mask itself
    # the crop's edge lies outside the amodal mask's bounding box, or on the image's border
    is_hole[regions[[0, -1], :]] = False
    is_hole[regions[:, [0, -1]]] = False
    hid |= is_hole[regions] & cover
    cleaned = amodal.copy()
    cleaned[box] = seen | hid
    return cleaned


def _label_table(count: int, chosen: np.ndarray) -> np.ndarray:
    """(count,) bool lookup table over the labels of ``cv2.connectedComponents``: True for the
    labels in ``chosen``, never for label 0 (the background). Indexed by a label image, it gives
    the pixels of the chosen components."""
    table = np.zeros(count, dtype=bool)
    table[chosen] = True
    table[0] = False
    return table


@dataclass
class AmodalResult(OnCanvas):
    """The completion of one object. Masks are at the image's resolution (H, W).

    Attributes:
        amodal: (H, W) bool, the whole object: the visible part joined with the pixels of the best
            hypothesis that the occluder mask covers (a part can only be hidden under something).
        visible: (H, W) bool, the visible part the completion started from (the given visible
            mask, SAM's mask for a point/box prompt, or the amodal decoder's own visible output).
        packed_occluder: what lies in front of the object, one bit per pixel (read it as
            :attr:`occluder`).
        score: predicted IoU of the chosen hypothesis with the true amodal mask.
        hypothesis_scores: (K,) predicted IoU of each hypothesis.
        low_res_logits: (K, L, L) float32 logits of the hypotheses in the decoder's low-res frame
            (L = 4 x the embedding side: 256 for SAM, 128 for the demo model).
        visible_logits: (L, L) float32 logits of the visible part as the decoder predicts it.
        frame: the image's frames (the low-res frame of the logits to the original one).
        hypothesis_threshold: the probability :attr:`hypotheses` are thresholded at (the
            decision's threshold).
        canvas: with ``beyond`` (:mod:`amodal_sam.beyond`), the canvas that ``amodal``,
            ``visible`` and the occluder lie on, (H_c, W_c) instead of (H, W); the logits,
            :attr:`hypotheses` and ``frame`` stay the image's. None: masks are the image's.

    Only ``amodal`` and ``visible`` are kept at full resolution (in a scene they are views of
    the scene's arrays); the occluder, hidden part and hypotheses are made when read, so a
    result holds an eighth of a byte per image pixel beyond those two.
    """

    amodal: np.ndarray
    visible: np.ndarray
    packed_occluder: PackedMask
    score: float
    hypothesis_scores: np.ndarray
    low_res_logits: np.ndarray
    visible_logits: np.ndarray
    frame: ImageFrame
    hypothesis_threshold: float
    canvas: Canvas | None = None

    @property
    def occluder(self) -> np.ndarray:
        """(H, W) bool, what lies in front of the object: the known occluder mask when one was
        given, else what the decoder sees there."""
        return self.packed_occluder.unpack()

    @property
    def occluded(self) -> np.ndarray:
        """(H, W) bool, ``amodal & ~visible``: the hidden part."""
        return self.amodal & ~self.visible

    @property
    def hypotheses(self) -> np.ndarray:
        """(K, H, W) bool, every amodal hypothesis as the decoder gave it, thresholded at
        ``hypothesis_threshold`` (the problem is ambiguous: several completions can explain one
        visible part)."""
        logits = self.frame.low_res_to_original(torch.as_tensor(self.low_res_logits)[None])[0]
        return (logits > probability_logit(self.hypothesis_threshold)).numpy()


@dataclass
class Completion:
    """N objects of one image completed together; tensors on the model's device.

    Attributes:
        frame: the image's frames; masks are at ``frame.original_size`` (H, W).
        decision: how ``amodal`` was decided (:class:`Decision`); ``hypotheses`` are
            thresholded at its ``threshold``.
        amodal: (N, H, W) bool amodal masks (:func:`amodal_rule`).
        visible: (N, H, W) bool visible parts the completions started from.
        occluder: (N, H, W) bool occluder masks the rule used: the known ones when they were
            given, else the decoder's estimate above the decision's ``occluder_threshold``.
        hypothesis_scores: (N, K) float predicted IoU of each hypothesis.
        hypothesis_logits: (N, K, L, L) float low-res logits of the hypotheses.
        visible_logits: (N, L, L) float low-res logits of the decoder's visible output.
        clean: ``amodal`` was tidied by :func:`clean_completion` (the model's ``clean_masks``).
        prior_region: (N, H, W) bool regions of the decision's threshold when they were given in
            place of the visible masks' convex hulls (:meth:`AmodalSAM.complete`), else None.
        occluder_logits: (N, L, L) float low-res logits of the decoder's occluder estimate when
            the occluders were estimated, so that another ``occluder_threshold`` can be decided
            (:meth:`amodal_for`); None when they were known.
    """

    frame: ImageFrame
    decision: Decision
    amodal: torch.Tensor
    visible: torch.Tensor
    occluder: torch.Tensor
    hypothesis_scores: torch.Tensor
    hypothesis_logits: torch.Tensor
    visible_logits: torch.Tensor
    clean: bool = False
    prior_region: torch.Tensor | None = None
    occluder_logits: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.amodal.shape[0])

    @property
    def hidden_threshold(self) -> float:
        """The probability of the decision inside the prior region (``decision.threshold``)."""
        return self.decision.threshold

    @property
    def best(self) -> torch.Tensor:
        """(N,) index of the hypothesis with the highest predicted IoU."""
        return self.hypothesis_scores.argmax(dim=1)

    @property
    def score(self) -> torch.Tensor:
        """(N,) predicted IoU of the chosen hypothesis."""
        return self.hypothesis_scores.gather(1, self.best[:, None])[:, 0]

    @property
    def occluded(self) -> torch.Tensor:
        """(N, H, W) bool hidden parts, ``amodal & ~visible``."""
        return self.amodal & ~self.visible

    @property
    def hypotheses(self) -> torch.Tensor:
        """(N, K, H, W) bool hypotheses at the original resolution, thresholded at
        ``decision.threshold``; made when read (K x N x H x W bytes)."""
        return self.frame.low_res_to_original(self.hypothesis_logits) > probability_logit(self.decision.threshold)

    def decoder_visible(self) -> torch.Tensor:
        """(N, H, W) bool visible parts as the amodal decoder predicts them (logits > 0)."""
        return self.frame.low_res_to_original(self.visible_logits[:, None])[:, 0] > 0

    def amodal_at(self, decision: Decision | float) -> torch.Tensor:
        """(N, H, W) bool amodal masks by another decision, from the same decoder outputs (no
        decoding). A float is this completion's decision at that threshold (:meth:`Decision.at`)."""
        if not isinstance(decision, Decision):
            decision = self.decision.at(decision)
        return self.amodal_for([decision])[decision]

    def amodal_for(self, decisions: Sequence[Decision]) -> dict[Decision, torch.Tensor]:
        """Each decision's (N, H, W) bool amodal masks from the same decoder outputs: what
        calibration scores its candidates with (:func:`decide_amodal`). Where the occluders were
        estimated, each decision's ``occluder_threshold`` decides which pixels they cover."""

        def decide(occluder: torch.Tensor, group: Sequence[Decision]) -> dict[Decision, torch.Tensor]:
            return decide_amodal(
                self.frame,
                self.hypothesis_logits,
                self.hypothesis_scores,
                occluder,
                self.visible,
                group,
                self.clean,
                self.prior_region,
            )

        if self.occluder_logits is None:
            return decide(self.occluder, decisions)
        occluder_logits = self.frame.low_res_to_original(self.occluder_logits[:, None])[:, 0]
        amodal = {}
        for level in {d.occluder_threshold for d in decisions}:
            group = [d for d in decisions if d.occluder_threshold == level]
            amodal.update(decide(occluder_logits > probability_logit(level), group))
        return amodal

    def result(self, index: int) -> AmodalResult:
        """Object ``index`` as numpy arrays; its amodal and visible masks are views of this
        completion's (CPU) tensors, nothing else at full resolution is kept."""
        best = int(self.best[index])
        return AmodalResult(
            amodal=self.amodal[index].cpu().numpy(),
            visible=self.visible[index].cpu().numpy(),
            packed_occluder=PackedMask.pack(self.occluder[index].cpu().numpy()),
            score=float(self.hypothesis_scores[index, best]),
            hypothesis_scores=self.hypothesis_scores[index].float().cpu().numpy(),
            low_res_logits=self.hypothesis_logits[index].float().cpu().numpy().copy(),
            visible_logits=self.visible_logits[index].float().cpu().numpy().copy(),
            frame=self.frame,
            hypothesis_threshold=self.decision.threshold,
        )

    def results(self) -> list[AmodalResult]:
        """Every object, in order, as :meth:`result` gives it."""
        return [self.result(i) for i in range(len(self))]
