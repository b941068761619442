"""How one mode turns an amodal decoder's outputs into a hidden part: the decision's settings.

Plain values, no torch: a model's config holds one decision per mode, and
:func:`amodal_sam.modeling.completion.amodal_rule` applies it (its module docstring says why the
convex hull of the visible part is where a hidden part needs less evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, replace


def check_probability(name: str, value: float, allow_one: bool = False) -> float:
    """``value`` as a float when it is a number in (0, 1), or (0, 1] with ``allow_one``; else a
    ValueError naming ``name``."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and 0.0 < value and (value <= 1.0 if allow_one else value < 1.0)):
        interval = "(0, 1]" if allow_one else "(0, 1)"
        raise ValueError(f"{name} must be a probability in {interval}; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Decision:
    """How one mode turns decoder outputs into a hidden part (see the module docstring).

    Attributes:
        threshold: probability in (0, 1) a plausible hypothesis must exceed at a pixel of the
            prior region ``hull(visible) & occluder``.
        outside_threshold: probability in (0, 1] the best hypothesis must exceed at a pixel under
            the occluder but outside the hull; 1.0: never (no probability exceeds 1).
        plausible_share: in (0, 1]; inside the prior region, every hypothesis whose predicted IoU
            is at least this share of the best one's counts (1.0: the best one only).
        occluder_threshold: probability in (0, 1) the decoder's own occluder estimate must exceed
            at a pixel for it to count as covered (0.5: its logits above 0), where the occluders
            are estimated (single-object mode). Known occluders (scene mode) are masks: it plays
            no part there.
    """

    threshold: float
    outside_threshold: float | None = None
    plausible_share: float = 1.0
    occluder_threshold: float = 0.5

    def __post_init__(self) -> None:
        check_probability("hidden_threshold", self.threshold)
        if self.outside_threshold is None:
            object.__setattr__(self, "outside_threshold", float(self.threshold))
        check_probability("outside_threshold", self.outside_threshold, allow_one=True)
        check_probability("plausible_share", self.plausible_share, allow_one=True)
        check_probability("occluder_threshold", self.occluder_threshold)

    @property
    def is_plain(self) -> bool:
        """The plain rule: one threshold everywhere, the best hypothesis only."""
        return self.outside_threshold == self.threshold and self.plausible_share == 1.0

    def at(self, threshold: float) -> Decision:
        """This decision with another inside ``threshold``. A plain decision stays plain (one
        threshold everywhere); otherwise a pixel outside the prior region never needs less
        evidence than inside, so the outside threshold rises to ``threshold`` when lower."""
        threshold = check_probability("hidden_threshold", threshold)
        if self.is_plain:
            return Decision(threshold, occluder_threshold=self.occluder_threshold)
        return replace(self, threshold=threshold, outside_threshold=max(self.outside_threshold, threshold))
