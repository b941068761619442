"""The model used when none is named."""

from __future__ import annotations

import warnings

from amodal_sam.modeling.amodal_sam import AmodalSAM

RANDOM_MODEL_WARNING = (
    "No model was named and no trained demo model is shipped yet: using a small RANDOM-weight "
    "model. Its masks show the pipeline working, not amodal completion quality."
)


def default_model() -> AmodalSAM:
    """The default model: for now a seeded random ``tiny`` model, with a warning saying so."""
    warnings.warn(RANDOM_MODEL_WARNING, stacklevel=2)
    return AmodalSAM.random("tiny", seed=0)
