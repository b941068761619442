"""The model used when none is named: the demo model shipped in ``checkpoints/demo``."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from amodal_sam.modeling.amodal_sam import AmodalSAM

DEMO_MODEL_DIR = Path(__file__).resolve().parents[1] / "checkpoints" / "demo"
DEMO_MODEL_NOTE = (
    "Using the DEMO model (checkpoints/demo): a tiny random, frozen SAM-architecture encoder with an "
    "amodal decoder trained on synthetic occlusions. It has learnt a shape prior, not SAM's image "
    "understanding; name a model trained on SAM weights for real use."
)
RANDOM_MODEL_WARNING = (
    f"No model was named and the demo model is not at {DEMO_MODEL_DIR} (a source checkout ships it): "
    "using a small RANDOM-weight model. Its masks show the pipeline working, not amodal completion."
)


def default_model(*, announce: bool = False) -> AmodalSAM:
    """The demo model when it is there (source checkouts and editable installs), else a seeded
    random ``tiny`` model with a warning saying so. ``announce`` (for commands) says on standard
    error which of the two is used, instead of a Python warning."""
    if (DEMO_MODEL_DIR / "config.json").is_file():
        if announce:
            print(DEMO_MODEL_NOTE, file=sys.stderr)
        return AmodalSAM.from_pretrained(DEMO_MODEL_DIR)
    if announce:
        print(f"WARNING: {RANDOM_MODEL_WARNING}", file=sys.stderr)
    else:
        warnings.warn(RANDOM_MODEL_WARNING, stacklevel=2)
    return AmodalSAM.random("tiny", seed=0)
