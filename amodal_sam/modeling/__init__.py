"""The nn.Modules: frozen SAM builders, the amodal decoder and AmodalSAM."""

from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput, AmodalMaskDecoder
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.sam_builder import build_sam

__all__ = ["AmodalDecoderOutput", "AmodalMaskDecoder", "AmodalSAM", "build_sam"]
