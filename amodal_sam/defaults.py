"""The model used when none is named: the demo model.

A wheel (or any non-editable install) carries it inside the package as ``amodal_sam/demo_model``;
a source checkout or an editable install reads it from ``checkpoints/demo``, its source. Where
neither holds it, asking for the default model is an error that says how to get a model: never
a silent random one.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from amodal_sam.modeling.amodal_sam import AmodalSAM

_PACKAGE_DIR = Path(__file__).resolve().parent
# Where the demo model is looked for, in order: inside an installed package, then the checkout.
DEMO_MODEL_DIRS: tuple[Path, ...] = (_PACKAGE_DIR / "demo_model", _PACKAGE_DIR.parent / "checkpoints" / "demo")
DEMO_MODEL_NOTE = (
    "Using the DEMO model ({folder}): a tiny random, frozen SAM-architecture encoder with an amodal "
    "decoder trained on synthetic occlusions. It has learnt a shape prior, not SAM's image "
    "understanding; name a model trained on SAM weights for real use."
)
_announced = False


def demo_model_dir() -> Path:
    """The folder of the demo model (``config.json``, ``model.safetensors``, ``sam.safetensors``);
    a FileNotFoundError saying where it was looked for and how to get a model when it is absent."""
    for folder in DEMO_MODEL_DIRS:
        if (folder / "config.json").is_file():
            return folder
    raise FileNotFoundError(
        "no model was named and the demo model is not installed (looked in "
        + ", ".join(repr(str(folder)) for folder in DEMO_MODEL_DIRS)
        + "): reinstall amodal-sam from its wheel or a source checkout, which ship it, or name a model: "
        "--model DIR_OR_HUB_ID on the command line, AmodalSAM.from_pretrained(...) in Python"
    )


def default_model(*, announce: bool = False) -> AmodalSAM:
    """The demo model (see :func:`demo_model_dir`). The first call in a process says which model
    it is: on standard error with ``announce`` (commands), else as a ``UserWarning``."""
    global _announced
    folder = demo_model_dir()
    note = DEMO_MODEL_NOTE.format(folder=folder)
    if announce:
        print(note, file=sys.stderr)
    elif not _announced:
        warnings.warn(note, UserWarning, stacklevel=2)
    _announced = True
    return AmodalSAM.from_pretrained(folder)
