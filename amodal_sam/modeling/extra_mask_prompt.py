"""A further dense mask prompt of the amodal decoder: the known occluders, the shape memory.

Besides the visible mask (segment-anything's own mask prompt), the decoder may read other masks
of the same frame: in scene mode the known occluders (the other objects' visible masks, and
background regions), in video the object's shape memory (its whole shape as earlier frames showed
it, carried to this frame). Each enters through its own :class:`ExtraMaskPromptEncoder`: small
convolutions with the layout of segment-anything's ``PromptEncoder.mask_downscaling``, whose output
is added to the dense prompt embedding. The last convolution starts at zero, so an untrained input
changes nothing; rows where the mask is not given get no embedding at all, and the model is the
one without that input.
"""

from __future__ import annotations

import torch
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from amodal_sam.modeling.channels_last import output_channels_last


class ExtraMaskPromptEncoder(nn.Module):
    """(N, 1, L, L) mask levels in [-1, 1] (+1 in the mask, -1 not; low-res frame, L = 4 x the
    embedding side) -> (N, C, L/4, L/4) dense prompt embedding."""

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

    def forward(self, levels: torch.Tensor, given: torch.Tensor) -> torch.Tensor:
        """``levels`` (N, 1, L, L); ``given`` (N,) bool, whether each row's mask is given: rows
        where it is not get a zero embedding."""
        return self.layers(levels) * given.to(levels.dtype)[:, None, None, None]
