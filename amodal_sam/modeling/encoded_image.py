"""The per-image state that every completion starts from."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from amodal_sam.geometry import ImageFrame


@dataclass(frozen=True)
class EncodedImage:
    """One image as the amodal decoder sees it; made by :meth:`AmodalSAM.encode`.

    Each image, each scene and each video frame holds its own: nothing about an image is kept
    inside the model or the predictor.

    Attributes:
        frame: the image's coordinate frames (original (H, W), encoder input, low-res).
        embedding: (1, C, h, w) float32 frozen image embedding (what the embedding cache stores).
        detail: (1, C/8, L, L) features of the decoder's detail branch, computed from the pixels
            (trained, so never cached), or None for a decoder without one.
    """

    frame: ImageFrame
    embedding: torch.Tensor
    detail: torch.Tensor | None

    @property
    def original_size(self) -> tuple[int, int]:
        """(H, W) of the image in pixels."""
        return self.frame.original_size
