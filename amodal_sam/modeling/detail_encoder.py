"""The decoder's own view of the pixels: fine detail that the frozen encoder's tokens lose.

SAM's ViT sees the image in 16-px tokens, and its mask decoder upsamples those 4 x; the edges
of what covers an object (where a hidden part can start) fall between tokens. Like HQ-SAM's
fusion of early features, a small trainable CNN reads the encoder's input pixels at the
decoder's low-res resolution and its features are fused with the decoder's upscaled embedding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from amodal_sam.modeling.subpixel import spatial_to_subpixel, subpixel_to_spatial


class DetailEncoder(nn.Module):
    """(B, 3, S, S) normalised, padded input-frame pixels -> (B, out_chans, L, L) features.

    The first convolution reads non-overlapping ``stride`` x ``stride`` pixel patches (stride =
    S / L, 4 for SAM), so each feature sits on one low-res pixel; two 3 x 3 convolutions add
    context (a receptive field of 5 x 5 low-res pixels).
    """

    def __init__(self, *, stride: int, out_chans: int, hidden_chans: int = 32) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, hidden_chans, kernel_size=stride, stride=stride),
            LayerNorm2d(hidden_chans),
            nn.GELU(),
            nn.Conv2d(hidden_chans, hidden_chans, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_chans, hidden_chans, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden_chans, out_chans, kernel_size=1),
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)


class DetailFusion(nn.Module):
    """Adds pixel detail to the decoder's upscaled embedding, per prompt.

    Upscaled embedding + detail features -> upscaled + ``f([upscaled, detail])``, with ``f`` two
    convolutions (GELU between) of kernel 1 (``pointwise``) or 3 x 3 (models saved before the
    pointwise fusion). The last convolution starts at zero, so a fresh fusion leaves SAM's decoder
    output unchanged. Both sides are in the decoder's sub-pixel layout
    (:mod:`amodal_sam.modeling.subpixel`): (N, h, w, 2, 2, 2, 2, C) for an (N, C, 4h, 4w) frame.

    ``f``'s first convolution is linear in its input, so its detail half depends on the image
    alone: :meth:`image_term` computes it once per image, and :meth:`forward` adds it to the
    upscaled half of each prompt (the same sum as convolving the concatenation). Pointwise, the
    per-prompt work is two small matrix products per pixel, done in the sub-pixel layout; the 3 x 3
    fusion needs the image layout and costs several times more.
    """

    def __init__(self, *, chans: int, detail_chans: int, pointwise: bool = True) -> None:
        super().__init__()
        self.chans = chans
        self.pointwise = pointwise
        kernel = 1 if pointwise else 3
        self.layers = nn.Sequential(
            nn.Conv2d(chans + detail_chans, chans, kernel_size=kernel, padding=kernel // 2),
            nn.GELU(),
            nn.Conv2d(chans, chans, kernel_size=kernel, padding=kernel // 2),
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def image_term(self, detail: torch.Tensor) -> torch.Tensor:
        """(B, D, 4h, 4w) detail features of B images -> (B, h, w, 2, 2, 2, 2, C) in the sub-pixel
        layout: the first convolution's detail half, with its bias."""
        first = self.layers[0]
        return spatial_to_subpixel(F.conv2d(detail, first.weight[:, self.chans :], first.bias, padding=first.padding))

    def forward(self, upscaled: torch.Tensor, image_term: torch.Tensor) -> torch.Tensor:
        """``upscaled`` (N, h, w, 2, 2, 2, 2, C) and the :meth:`image_term` of each prompt's image
        (N or 1 rows, same layout) -> (N, h, w, 2, 2, 2, 2, C)."""
        first, activation, last = self.layers
        image_term = image_term.to(upscaled.dtype)
        if self.pointwise:
            hidden = upscaled @ first.weight[:, : self.chans, 0, 0].t() + image_term
            return upscaled + activation(hidden) @ last.weight[:, :, 0, 0].t() + last.bias
        spatial = subpixel_to_spatial(upscaled)
        hidden = F.conv2d(spatial, first.weight[:, : self.chans], padding=1) + subpixel_to_spatial(image_term)
        return upscaled + spatial_to_subpixel(last(activation(hidden)))
