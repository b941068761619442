"""Amodal segmentation metrics, per instance and over a dataset, in both protocols.

For a predicted amodal mask P, ground-truth amodal A and ground-truth visible V (bool masks):

* AIoU = IoU(P, A); VIoU = IoU(predicted visible part, V), only where a visible part was
  predicted (a method that takes V as given, like the baselines, has none: its VIoU would be 1
  by construction, so it is undefined rather than 1);
* OIoU = IoU(P - V, A - V), only for instances whose A - V is not empty;
* occluded precision |(P - V) & (A - V)| / |P - V| and recall |(P - V) & (A - V)| / |A - V|.

Two ways to average: **mean** over instances (the C2F-Seg protocol; OIoU over occluded
instances only) and **pooled**, summing intersections and unions over every pixel of the dataset
(the PCNet / pix2gestalt protocol).

Occlusion order (:class:`OrderCounts`): pairwise accuracy over pairs whose true amodal masks
overlap, and precision / recall / F1 of the predicted "i hides j" edges (InstaOrder's style).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass

import numpy as np

from amodal_sam.mask_overlap import pairwise_overlap

DEFAULT_BINS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 1.0)


@dataclass(frozen=True)
class InstanceCounts:
    """Pixel counts of one instance, from which every metric follows."""

    amodal_intersection: int
    amodal_union: int
    visible_intersection: int | None  # None: no visible part was predicted
    visible_union: int | None
    occluded_intersection: int
    occluded_union: int
    occluded_predicted: int
    occluded_truth: int
    occlusion_rate: float

    @property
    def aiou(self) -> float:
        return _ratio(self.amodal_intersection, self.amodal_union)

    @property
    def viou(self) -> float:
        """IoU of the predicted visible part; NaN when none was predicted."""
        if self.visible_union is None:
            return math.nan
        return _ratio(self.visible_intersection, self.visible_union)

    @property
    def oiou(self) -> float:
        """IoU of the occluded region; NaN when the instance has no occluded part."""
        return _ratio(self.occluded_intersection, self.occluded_union) if self.occluded_truth else math.nan

    @property
    def occluded_precision(self) -> float:
        return _ratio(self.occluded_intersection, self.occluded_predicted) if self.occluded_predicted else math.nan

    @property
    def occluded_recall(self) -> float:
        return _ratio(self.occluded_intersection, self.occluded_truth) if self.occluded_truth else math.nan


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, with 0 / 0 = 1 (two empty masks agree perfectly)."""
    return 1.0 if denominator == 0 else numerator / denominator


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    """IoU of two (H, W) bool masks; two empty masks agree (1.0, as :func:`_ratio` has it)."""
    return _ratio(int(np.count_nonzero(first & second)), int(np.count_nonzero(first | second)))


def instance_counts(
    predicted_amodal: np.ndarray,
    amodal: np.ndarray,
    visible: np.ndarray,
    predicted_visible: np.ndarray | None = None,
) -> InstanceCounts:
    """Counts for one instance; all masks (H, W) bool. Without ``predicted_visible`` the
    instance has no VIoU."""
    shapes = {m.shape for m in (predicted_amodal, amodal, visible)}
    if len(shapes) != 1:
        raise ValueError(f"predicted_amodal, amodal and visible must share one shape; got {sorted(shapes)}")
    predicted_occluded = predicted_amodal & ~visible
    occluded = amodal & ~visible
    amodal_area = int(amodal.sum())
    return InstanceCounts(
        amodal_intersection=int((predicted_amodal & amodal).sum()),
        amodal_union=int((predicted_amodal | amodal).sum()),
        visible_intersection=None if predicted_visible is None else int((predicted_visible & visible).sum()),
        visible_union=None if predicted_visible is None else int((predicted_visible | visible).sum()),
        occluded_intersection=int((predicted_occluded & occluded).sum()),
        occluded_union=int((predicted_occluded | occluded).sum()),
        occluded_predicted=int(predicted_occluded.sum()),
        occluded_truth=int(occluded.sum()),
        occlusion_rate=float(occluded.sum() / amodal_area) if amodal_area else 0.0,
    )


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def summarize(counts: Sequence[InstanceCounts], bins: Sequence[float] = DEFAULT_BINS) -> dict:
    """Dataset metrics from per-instance counts.

    Returns a dict with ``instances``, ``occluded_instances``, ``mean`` (AIoU, VIoU, OIoU,
    occluded precision / recall averaged over instances; OIoU, precision and recall over the
    instances where they are defined), ``pooled`` (the same from summed pixel counts) and
    ``bins``: the mean and pooled metrics of instances grouped by occlusion rate, bin i holding
    rates in [bins[i], bins[i+1]) and the last bin closed.
    """
    result = {"instances": len(counts), "occluded_instances": sum(1 for c in counts if c.occluded_truth)}
    result.update(_metrics(counts))
    result["bins"] = []
    for i, (low, high) in enumerate(zip(bins[:-1], bins[1:])):
        last = i == len(bins) - 2
        members = [c for c in counts if low <= c.occlusion_rate < high or (last and c.occlusion_rate == high)]
        result["bins"].append({"range": [low, high], "instances": len(members), **_metrics(members)})
    return result


def _metrics(counts: Sequence[InstanceCounts]) -> dict:
    def pooled(intersection: str, union: str) -> float:
        defined = [c for c in counts if getattr(c, union) is not None]
        denominator = sum(getattr(c, union) for c in defined)
        return sum(getattr(c, intersection) for c in defined) / denominator if denominator else math.nan

    return {
        "mean": {
            "aiou": _nanmean([c.aiou for c in counts]) if counts else math.nan,
            "viou": _nanmean([c.viou for c in counts]) if counts else math.nan,
            "oiou": _nanmean([c.oiou for c in counts]),
            "occluded_precision": _nanmean([c.occluded_precision for c in counts]),
            "occluded_recall": _nanmean([c.occluded_recall for c in counts]),
        },
        "pooled": {
            "aiou": pooled("amodal_intersection", "amodal_union"),
            "viou": pooled("visible_intersection", "visible_union"),
            "oiou": pooled("occluded_intersection", "occluded_union"),
            "occluded_precision": pooled("occluded_intersection", "occluded_predicted"),
            "occluded_recall": pooled("occluded_intersection", "occluded_truth"),
        },
    }


@dataclass
class OrderCounts:
    """Occlusion-order counts of one image or a whole dataset (they add up).

    ``pairs``: pairs of objects whose true amodal masks overlap and whose truth says which one
    is in front; ``correct``: those whose predicted relation is exactly that (no edge, or the
    reverse, is wrong). Edges are ordered pairs "i hides j" (InstaOrder's occlusion style):
    ``true_edges``, ``predicted_edges`` and ``matched_edges`` (in both).
    """

    pairs: int = 0
    correct: int = 0
    true_edges: int = 0
    predicted_edges: int = 0
    matched_edges: int = 0

    def __add__(self, other: OrderCounts) -> OrderCounts:
        return OrderCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))

    @property
    def accuracy(self) -> float:
        return _share(self.correct, self.pairs)

    @property
    def precision(self) -> float:
        return _share(self.matched_edges, self.predicted_edges)

    @property
    def recall(self) -> float:
        return _share(self.matched_edges, self.true_edges)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN): 0 when edges were expected and none matched."""
        return _share(2 * self.matched_edges, self.predicted_edges + self.true_edges)

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "accuracy": self.accuracy,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


def _share(numerator: int, denominator: int) -> float:
    """numerator / denominator; NaN when there is nothing to count."""
    return math.nan if denominator == 0 else numerator / denominator


def true_occlusion(visible: np.ndarray, amodal: np.ndarray, orders: Sequence[int | None]) -> tuple[np.ndarray, bool]:
    """The true ``occludes`` relation of N objects ((N, H, W) bool true masks) and whether it
    comes from a recorded order.

    With every object's depth ``order`` recorded (original COCOA, ``synth``: smaller = in front),
    i hides j when their amodal masks overlap and i's order is smaller. Otherwise it is derived
    from the masks: i hides j where i's visible mask meets j's hidden part.
    """
    if len(amodal) and all(order is not None for order in orders):
        overlap = pairwise_overlap(amodal, amodal) > 0
        ranks = np.asarray(orders, dtype=np.float64)
        return overlap & (ranks[:, None] < ranks[None, :]), True
    return pairwise_overlap(visible, amodal & ~visible) > 0, False


def order_counts(predicted: np.ndarray, truth: np.ndarray, amodal: np.ndarray) -> OrderCounts:
    """:class:`OrderCounts` of a predicted (N, N) bool ``occludes`` against the true one, the
    scored pairs being those whose true (N, H, W) ``amodal`` masks overlap and whose truth has
    one direction."""
    overlap = pairwise_overlap(amodal, amodal) > 0
    pairs = correct = 0
    for i, j in zip(*np.nonzero(np.triu(overlap, k=1))):
        if truth[i, j] == truth[j, i]:
            continue
        pairs += 1
        correct += bool(predicted[i, j] == truth[i, j] and predicted[j, i] == truth[j, i])
    return OrderCounts(
        pairs=pairs,
        correct=correct,
        true_edges=int(truth.sum()),
        predicted_edges=int(predicted.sum()),
        matched_edges=int((predicted & truth).sum()),
    )
