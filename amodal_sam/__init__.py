"""amodal_sam: the complete shape of an object, occluded parts included, from what is visible of it.

The public names below are imported on first use (PEP 562), so that ``import amodal_sam`` and the
command line's ``--help`` do not wait for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "SAM_SPECS": "amodal_sam.config",
    "AmodalConfig": "amodal_sam.config",
    "SamSpec": "amodal_sam.config",
    "default_model": "amodal_sam.defaults",
    "create_model": "amodal_sam.factory",
    "AmodalSAM": "amodal_sam.modeling.amodal_sam",
    "AmodalResult": "amodal_sam.modeling.completion",
    "Completion": "amodal_sam.modeling.completion",
    "EncodedImage": "amodal_sam.modeling.encoded_image",
    "AmodalPredictor": "amodal_sam.predictor",
    "complete": "amodal_sam.predictor",
    "complete_scene": "amodal_sam.predictor",
    "Scene": "amodal_sam.scene",
    "AmodalVideoPredictor": "amodal_sam.video",
    "MemoryRule": "amodal_sam.video_memory",
    "Track": "amodal_sam.video",
}
__all__ = [
    "SAM_SPECS",
    "AmodalConfig",
    "AmodalPredictor",
    "AmodalResult",
    "AmodalSAM",
    "AmodalVideoPredictor",
    "Completion",
    "EncodedImage",
    "MemoryRule",
    "SamSpec",
    "Scene",
    "Track",
    "complete",
    "complete_scene",
    "create_model",
    "default_model",
]

if TYPE_CHECKING:
    from amodal_sam.config import SAM_SPECS, AmodalConfig, SamSpec
    from amodal_sam.defaults import default_model
    from amodal_sam.factory import create_model
    from amodal_sam.modeling.amodal_sam import AmodalSAM
    from amodal_sam.modeling.completion import AmodalResult, Completion
    from amodal_sam.modeling.encoded_image import EncodedImage
    from amodal_sam.predictor import AmodalPredictor, complete, complete_scene
    from amodal_sam.scene import Scene
    from amodal_sam.video import AmodalVideoPredictor, Track
    from amodal_sam.video_memory import MemoryRule


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'amodal_sam' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
