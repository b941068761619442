"""Choosing a model's decision (:class:`~amodal_sam.decision.Decision`) on held-out data.

A decoder trained on a few scenes is over-confident on new ones: it adds hidden pixels that are
not there, most harmfully outside the convex hull of the visible part, where it grows into
neighbours. Its completion should beat the trivial answers: the visible mask itself (the best
AIoU when nothing is added) and the geometric rule (the convex hull of the visible part, or in
scene mode ``hull-occluders``: the visible mask joined with its hull's part under the known
occluders). So each candidate decision is scored, on each calibration set (data the model was not
trained on: synthetic occlusions, real photos, simple generated shapes), by its **AIoU gain**:
its mean AIoU less the better of the two baselines' there. The chosen decision is, among those
that **do no harm** (AIoU at or above the visible masks' on every set; all of them when none
does), the one with the largest gain averaged over the sets. A decision whose AIoU is, **on every
set**, within :data:`GAIN_TIE` of that one's is a near tie; near ties are broken by the larger mean
OIoU (the better hidden part, where AIoU cannot tell them apart). A tie on the mean alone would
let one set's rise pay for another's fall (candidate E in ``benchmarks/README.md``). Exact ties go to the decision nearest the geometric
rule: the higher outside threshold, then the lower inside threshold, then the larger share.

AIoU decides first, OIoU only among near ties: the rule's OIoU is hard to beat (it fills every plausible pixel), and an
objective with an OIoU term (the worst of AIoU over the visible masks and OIoU over the rule, used
before 2026-12-05) lands a weak model on the rule itself, giving up the AIoU it has where it is
right (``benchmarks/README.md``, the refused shape retrains). The average over sets, not the
worst, lets a decision that completes simple shapes count against one that is a little more
careful on photos; the no-harm condition keeps it from buying that with any set's AIoU below
what it was given.

The candidates (:func:`decision_grid`) cross a threshold inside the hull, a threshold outside it
(1.0: never), the share of the best predicted IoU a hypothesis needs to count inside the hull
and, in single-object mode, the level the decoder's own occluder estimate must reach at a hidden
pixel (:data:`OCCLUDER_THRESHOLDS`): a false hidden part most often lies where the decoder is
unsure that anything covers the object.
In scene mode (``scene=True``: each instance's known occluders are the other instances' visible
masks) the rule is ``hull-occluders`` and the choice is saved in the scene fields
(``scene_hidden_threshold``, ...).

Each image is encoded and decoded once; every candidate is scored from the same decoder outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from amodal_sam.config import DEFAULT_THRESHOLDS, read_config_file, write_config_file
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.decision import Decision
from amodal_sam.device import default_device
from amodal_sam.embedding_cache import EmbeddingCache
from amodal_sam.evaluate import baseline_amodal, iter_completions
from amodal_sam.metrics import instance_counts, summarize
from amodal_sam.model_card import CALIBRATION_KEY, SCENE_CALIBRATION_KEY, short_source, write_model_card
from amodal_sam.modeling.amodal_sam import AmodalSAM

# Outside-the-hull thresholds the grid tries (with the inside threshold itself: the plain rule).
OUTSIDE_THRESHOLDS: tuple[float, ...] = (0.7, 0.9, 0.97, 0.99, 1.0)
# Shares of the best predicted IoU that make a hypothesis count inside the hull: near 1, a
# hypothesis scored almost as high as the best one (the visible part alone and its completion are
# often a near tie); 0.5, any reasonable one.
PLAUSIBLE_SHARES: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8, 0.5)
# Levels of the decoder's own occluder estimate a hidden pixel needs (single-object mode; scene
# mode's occluders are known masks): 0.5 is its logits above 0, the level before the setting.
OCCLUDER_THRESHOLDS: tuple[float, ...] = (0.5, 0.7, 0.9, 0.97, 0.99)
# AIoUs this close to the best decision's on every set are a near tie (about the spread of a mean
# AIoU between two trainings of one recipe on a calibration split: the adoption report's AIoU
# floor); the larger mean OIoU breaks it.
GAIN_TIE = 0.005


def aiou_gain(aiou: float, visible_aiou: float, rule_aiou: float) -> float:
    """How far a mean AIoU is ahead of the better trivial answer: ``aiou - max(visible-mask
    AIoU, geometric-rule AIoU)`` (negative: behind)."""
    return aiou - max(visible_aiou, rule_aiou)


@dataclass(frozen=True)
class SetScore:
    """One decision on one calibration set: its mean AIoU and OIoU, and the baselines' mean AIoU
    there (the visible masks', the geometric rule's)."""

    aiou: float
    oiou: float
    visible_aiou: float
    rule_aiou: float

    @property
    def gain(self) -> float:
        """:func:`aiou_gain` on this set."""
        return aiou_gain(self.aiou, self.visible_aiou, self.rule_aiou)

    @property
    def harmless(self) -> bool:
        """The decision's AIoU is at least the visible masks' own: it takes nothing away."""
        return self.aiou >= self.visible_aiou


@dataclass(frozen=True)
class DecisionScore:
    """One candidate decision scored on each calibration set (``sets``, in the order given)."""

    decision: Decision
    sets: tuple[SetScore, ...]

    @property
    def aiou(self) -> tuple[float, ...]:
        return tuple(s.aiou for s in self.sets)

    @property
    def oiou(self) -> tuple[float, ...]:
        return tuple(s.oiou for s in self.sets)

    @property
    def gain(self) -> float:
        """The AIoU gain over the better baseline, averaged over the sets."""
        return sum(s.gain for s in self.sets) / len(self.sets)

    @property
    def set_aious(self) -> tuple[float, ...]:
        """The AIoU per set (as :attr:`aiou`)."""
        return self.aiou

    @property
    def mean_oiou(self) -> float:
        """The OIoU averaged over the sets."""
        return sum(s.oiou for s in self.sets) / len(self.sets)

    @property
    def harmless(self) -> bool:
        """At or above the visible masks' AIoU on every set."""
        return all(s.harmless for s in self.sets)


@dataclass(frozen=True)
class ThresholdScore:
    """Mean AIoU and OIoU of the model at one plain ``hidden_threshold`` on one set, its AIoU
    gain over the better baseline and whether it does no harm (see :class:`SetScore`)."""

    threshold: float
    aiou: float
    oiou: float
    gain: float
    harmless: bool

    @property
    def set_aious(self) -> tuple[float, ...]:
        """The AIoU per set: this one set's."""
        return (self.aiou,)


ScoreT = TypeVar("ScoreT", ThresholdScore, DecisionScore)


def decision_grid(
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    outside: Sequence[float] = OUTSIDE_THRESHOLDS,
    shares: Sequence[float] = PLAUSIBLE_SHARES,
    occluder: Sequence[float] = (0.5,),
) -> list[Decision]:
    """Every candidate: each inside threshold, with each outside threshold at or above it, each
    plausible share and each occluder level (:data:`OCCLUDER_THRESHOLDS` in single-object mode)."""
    if len(thresholds) == 0:
        raise ValueError("thresholds must hold at least one probability")
    grid = []
    for threshold in thresholds:
        for share in shares:
            for outside_threshold in sorted({threshold, *(o for o in outside if o > threshold)}):
                grid.extend(Decision(threshold, outside_threshold, share, level) for level in occluder)
    return grid


def score_decisions(
    datasets: Sequence[AmodalDataset],
    model: AmodalSAM,
    decisions: Sequence[Decision],
    *,
    scene: bool = False,
    cache: EmbeddingCache | None = None,
    device: str | None = None,
    progress: bool = True,
) -> list[DecisionScore]:
    """The model's mean AIoU / OIoU on each dataset (true visible masks as prompts) under each
    decision, beside the visible masks' and the geometric rule's AIoU there (``hull``, or
    ``hull-occluders`` in ``scene`` mode); one decoding per image for all decisions. The model is
    not changed."""
    if len(decisions) == 0:
        raise ValueError("decisions must hold at least one candidate")
    rule = "hull-occluders" if scene else "hull"
    model.to(default_device(device)).eval()
    per_set = []
    for dataset in datasets:
        counts: dict[object, list] = {"visible": [], rule: [], **{d: [] for d in decisions}}
        for item in iter_completions(
            dataset, model, scene=scene, cache=cache, progress=progress, description="calibrate"
        ):
            candidates = {d: m.cpu().numpy() for d, m in item.completion.amodal_for(decisions).items()}
            for row in range(len(item.indices)):
                visible, amodal = item.visible[row], item.amodal[row]
                for name in ("visible", rule):
                    predicted = baseline_amodal(name, visible, item.occluders[row])
                    counts[name].append(instance_counts(predicted, amodal, visible))
                for decision, predicted in candidates.items():
                    counts[decision].append(instance_counts(predicted[row], amodal, visible))
        visible_aiou = summarize(counts["visible"])["mean"]["aiou"]
        rule_aiou = summarize(counts[rule])["mean"]["aiou"]
        means = {d: summarize(counts[d])["mean"] for d in decisions}
        per_set.append({d: SetScore(m["aiou"], m["oiou"], visible_aiou, rule_aiou) for d, m in means.items()})
    return [DecisionScore(decision=d, sets=tuple(scores[d] for scores in per_set)) for d in decisions]


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
    """:func:`score_decisions` of the plain rule at each threshold, on one dataset."""
    if len(thresholds) == 0:
        raise ValueError("thresholds must hold at least one probability")
    decisions = [Decision(t) for t in thresholds]  # a clear error for a value outside (0, 1)
    scores = score_decisions([dataset], model, decisions, scene=scene, cache=cache, device=device, progress=progress)
    return [ThresholdScore(s.decision.threshold, s.aiou[0], s.oiou[0], s.gain, s.harmless) for s in scores]


def _near_best(scores: Sequence[ScoreT]) -> list[ScoreT]:
    """Among the scores that do no harm (all of them when none does), the one with the largest
    gain and its near ties: those whose AIoU on every set is within :data:`GAIN_TIE` of its."""
    eligible = [s for s in scores if s.harmless] or list(scores)
    top = max(eligible, key=lambda s: s.gain).set_aious
    return [s for s in eligible if all(a >= b - GAIN_TIE for a, b in zip(s.set_aious, top))]


def best_threshold(scores: Sequence[ThresholdScore]) -> float:
    """Among the thresholds that do no harm (all when none does), the one with the largest AIoU
    gain and those within :data:`GAIN_TIE` of its AIoU; of these the one with the largest OIoU,
    the lowest among equals."""
    if not scores:
        raise ValueError("no threshold was scored")
    return max(_near_best(scores), key=lambda s: (s.oiou, -s.threshold)).threshold


def best_decision(scores: Sequence[DecisionScore]) -> Decision:
    """Among the decisions that do no harm on any set (all of them when none does), the one with
    the largest mean AIoU gain and its near ties (AIoU within :data:`GAIN_TIE` of its on every
    set); of these the one with the largest mean OIoU; among equals the one nearest the geometric rule: the higher outside threshold,
    then the lower inside threshold, then the larger share, then the lower occluder level."""
    if not scores:
        raise ValueError("no decision was scored")
    best = max(
        _near_best(scores),
        key=lambda s: (
            s.mean_oiou,
            s.decision.outside_threshold,
            -s.decision.threshold,
            s.decision.plausible_share,
            -s.decision.occluder_threshold,
        ),
    )
    return best.decision


def calibrate_model(
    datasets: AmodalDataset | Sequence[AmodalDataset],
    model_dir: str | Path,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    *,
    scene: bool = False,
    cache_dir: str | Path | None = None,
    sam_checkpoint: str | None = None,
    encoder_dtype: str | None = None,
    attention: str = "auto",
    device: str | None = None,
    progress: bool = True,
) -> tuple[Decision, list[DecisionScore]]:
    """Score the decisions of :func:`decision_grid` (``thresholds`` inside the hull) on one or
    several calibration ``datasets`` and save the best (:func:`best_decision`) into the model
    folder's config: ``hidden_threshold``, ``outside_threshold``, ``plausible_share`` and
    ``occluder_threshold`` (single-object mode, where the decoder estimates the occluders), or
    with ``scene`` the first three's ``scene_`` fields, and the chosen decision's scores per set in its ``extra``
    record (:data:`~amodal_sam.model_card.CALIBRATION_KEY`), which the rewritten model card
    shows. The weights are not rewritten.

    Arguments:
        model_dir: a local model folder (``config.json`` and weights).
        scene: score scene mode (see :func:`score_decisions`).
        cache_dir: an embedding cache folder to read (and fill) the image embeddings from.
        sam_checkpoint, encoder_dtype, attention: as :meth:`AmodalSAM.from_pretrained` takes them
            (the SAM weights when the config's are elsewhere; the encoder precision, by default
            the recorded one; the fast path's attention).
    Returns the chosen decision and every score.
    """
    if not Path(model_dir, "config.json").is_file():
        raise FileNotFoundError(
            f"the model to calibrate (model_dir, --model) must be a local model folder with a config.json; "
            f"got {str(model_dir)!r}"
        )
    datasets = [datasets] if isinstance(datasets, AmodalDataset) else list(datasets)
    grid = decision_grid(thresholds) if scene else decision_grid(thresholds, occluder=OCCLUDER_THRESHOLDS)
    model = AmodalSAM.from_pretrained(
        model_dir, sam_checkpoint=sam_checkpoint, encoder_dtype=encoder_dtype, attention=attention
    )
    cache = EmbeddingCache(cache_dir, model) if cache_dir is not None else None
    scores = score_decisions(datasets, model, grid, scene=scene, cache=cache, device=device, progress=progress)
    chosen = best_decision(scores)
    prefix = "scene_" if scene else ""
    settings = {
        f"{prefix}hidden_threshold": chosen.threshold,
        f"{prefix}outside_threshold": chosen.outside_threshold,
        f"{prefix}plausible_share": chosen.plausible_share,
    }
    if not scene:
        settings["occluder_threshold"] = chosen.occluder_threshold
    config_path = Path(model_dir, "config.json")
    config = read_config_file(config_path)
    chosen_score = next(s for s in scores if s.decision == chosen)
    record = [
        {"data": short_source(dataset.source), **dataclasses.asdict(set_score)}
        for dataset, set_score in zip(datasets, chosen_score.sets)
    ]
    extra = {**config.extra, SCENE_CALIBRATION_KEY if scene else CALIBRATION_KEY: {"sets": record}}
    config = dataclasses.replace(config, **settings, extra=extra)
    write_config_file(config_path, config)
    write_model_card(model_dir, config)
    return chosen, scores


def format_decision_scores(scores: Sequence[DecisionScore], names: Sequence[str]) -> str:
    """A Markdown table: one row per decision, AIoU / OIoU / AIoU gain on each set (``names``),
    then the mean gain and whether it does no harm."""
    header = (
        "| threshold | outside | share | occluder | "
        + " | ".join(f"{n}: AIoU / OIoU / gain" for n in names)
        + " | mean gain | no harm |"
    )
    lines = [header, "|" + " --- |" * (6 + len(names))]
    for score in scores:
        cells = [f"{s.aiou:.4f} / {s.oiou:.4f} / {s.gain:+.4f}" for s in score.sets]
        d = score.decision
        lines.append(
            f"| {d.threshold:g} | {d.outside_threshold:g} | {d.plausible_share:g} | {d.occluder_threshold:g} | "
            + " | ".join(cells)
            + f" | {score.gain:+.4f} | {'yes' if score.harmless else 'no'} |"
        )
    return "\n".join(lines)
