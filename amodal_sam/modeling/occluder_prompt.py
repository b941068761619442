"""The known occluders as a second dense prompt of the amodal decoder.

In scene mode every object's visible mask is known, so what can hide an object is known too: the
other objects' visible masks (and background regions). They enter the decoder as a second mask
prompt, downscaled by their own small convolutions (the layout of segment-anything's
``PromptEncoder.mask_downscaling``) and added to the dense prompt embedding. The last convolution
starts at zero, so an untrained occluder input changes nothing; where occluders are not known the
embedding is not added at all, and the model is the single-object model.
"""

from __future__ import annotations

import torch
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from amodal_sam.modeling.channels_last import output_channels_last


class OccluderPromptEncoder(nn.Module):
    """(N, 1, L, L) occluder levels in [-1, 1] (+1 covered by a known occluder, -1 not; low-res
    frame, L = 4 x the embedding side) -> (N, C, L/4, L/4) dense prompt embedding."""

    def __init__(self, *, embed_dim: int, mask_in_chans: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)
        output_channels_last(self.layers)  # added to the channels-last dense embedding

    def forward(self, levels: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        """``levels`` (N, 1, L, L); ``known`` (N,) bool, whether each prompt's occluders are known:
        rows where they are not get a zero embedding."""
        return self.layers(levels) * known.to(levels.dtype)[:, None, None, None]
