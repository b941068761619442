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
    """Adds pixel detail to the decoder's upscaled embedding, per prompt, as its masks see it.

    By definition the fused embedding is ``upscaled + f([upscaled, detail])`` with ``f`` two 3 x 3
    convolutions (GELU between), and the decoder's mask logits are its dot products with each
    mask token's vector. The last convolution starts at zero, so a fresh fusion leaves SAM's
    decoder output unchanged. Both of ``f``'s convolutions are linear, which the work is split by:

    * the first convolution's detail half depends on the image alone: :meth:`image_term`, once per
      image;
    * the dot products with the mask tokens' vectors commute with the last convolution: folded into
      its weights, it gives the T mask channels directly instead of C channels to multiply
      afterwards (:meth:`forward` returns that term of the logits).

    Same values as the definition, up to float rounding, at a fraction of its cost per prompt.
    Images are channels last: (N, L, L, C).
    """

    def __init__(self, *, chans: int, detail_chans: int) -> None:
        super().__init__()
        self.chans = chans
        self.layers = nn.Sequential(
            nn.Conv2d(chans + detail_chans, chans, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(chans, chans, kernel_size=3, padding=1),
        )
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def image_term(self, detail: torch.Tensor) -> torch.Tensor:
        """(B, D, L, L) detail features of B images -> (B, L, L, C) channels last: the first
        convolution's detail half, with its bias."""
        first = self.layers[0]
        term = F.conv2d(detail, first.weight[:, self.chans :], first.bias, padding=1)
        return term.permute(0, 2, 3, 1).contiguous()

    def forward(self, upscaled: torch.Tensor, image_term: torch.Tensor, mask_vectors: torch.Tensor) -> torch.Tensor:
        """The fusion's share of the mask logits.

        Arguments:
            upscaled: (N, L, L, C) upscaled embeddings of N prompts, channels last.
            image_term: (N or 1, L, L, C) :meth:`image_term` of each prompt's image.
            mask_vectors: (N, T, C) the mask tokens' vectors (hypernetwork outputs).

        Returns (N, T, L, L): ``f([upscaled, detail])`` dotted with each mask vector.
        """
        first, activation, last = self.layers
        count, side_h, side_w, _ = upscaled.shape
        tokens = mask_vectors.shape[1]
        # images and weights channels last alike: the convolutions' fastest CPU path, no reordering
        channels_last = torch.channels_last
        upscaled_weight = first.weight[:, : self.chans].contiguous(memory_format=channels_last)
        hidden = F.conv2d(upscaled.permute(0, 3, 1, 2), upscaled_weight, padding=1)
        hidden = activation(hidden + image_term.permute(0, 3, 1, 2).to(hidden.dtype))
        bias = mask_vectors @ last.bias.to(mask_vectors.dtype)  # (N, T)
        if torch.onnx.is_in_onnx_export():
            # a grouped convolution whose group count is the prompt count cannot be exported with
            # a dynamic count: the same linear map, the convolution before the dot product
            hidden = F.conv2d(hidden, last.weight.to(hidden.dtype), padding=1)  # (N, C, L, L)
            return torch.einsum("nchw,ntc->nthw", hidden, mask_vectors.to(hidden.dtype)) + bias[:, :, None, None]
        # one convolution per prompt with that prompt's folded weights: a grouped convolution
        folded = torch.einsum("ntc,cikl->ntikl", mask_vectors, last.weight.to(mask_vectors.dtype))
        folded = folded.reshape(count * tokens, self.chans, 3, 3).to(hidden.dtype)
        term = F.conv2d(
            hidden.reshape(1, count * self.chans, side_h, side_w).contiguous(memory_format=channels_last),
            folded.contiguous(memory_format=channels_last),
            padding=1,
            groups=count,
        )
        return term.view(count, tokens, side_h, side_w) + bias[:, :, None, None]
