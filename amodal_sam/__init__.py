"""amodal_sam: the complete shape of an object, occluded parts included, from what is visible of it."""

from amodal_sam.config import SAM_SPECS, AmodalConfig, SamSpec
from amodal_sam.defaults import default_model
from amodal_sam.factory import create_model
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.completion import AmodalResult, Completion
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.predictor import AmodalPredictor, complete, complete_scene
from amodal_sam.scene import Scene

__version__ = "0.1.0"

__all__ = [
    "SAM_SPECS",
    "AmodalConfig",
    "AmodalPredictor",
    "AmodalResult",
    "AmodalSAM",
    "Completion",
    "EncodedImage",
    "SamSpec",
    "Scene",
    "complete",
    "complete_scene",
    "create_model",
    "default_model",
]
