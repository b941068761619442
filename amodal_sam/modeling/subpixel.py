"""SAM's mask-decoder upscaling as per-token matrix products, in a sub-pixel layout.

segment-anything's ``output_upscaling`` is two transposed convolutions of kernel 2 and stride 2
(with a LayerNorm and activations between): every output pixel depends on one input token only.
Each stage is therefore one matrix product per token, and the 16 output pixels of a token can stay
beside it, channels last, instead of being scattered into an image after each stage:

    sub-pixel layout (N, h, w, 2, 2, 2, 2, C): element [n, i, j, a, b, a2, b2, c] is channel c of
    the pixel at row 4 i + 2 a + a2, column 4 j + 2 b + b2 of the (4h, 4w) upscaled frame.

Everything the amodal decoder does per pixel after the upscaling (a pointwise detail fusion, the
mask tokens' dot products) works in that layout, and only the few mask channels are put back
into an image (:func:`subpixel_to_spatial`). Same values as the convolutions, up to float
rounding, at a fraction of the CPU time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

_STAGES = 2  # two stride-2 transposed convolutions: 4 x upscaling


def check_upscaling(upscaling: nn.Sequential) -> None:
    """Raise ValueError unless ``upscaling`` is segment-anything's ``output_upscaling`` shape:
    ConvTranspose2d (kernel 2, stride 2), LayerNorm2d, activation, ConvTranspose2d (kernel 2,
    stride 2), activation."""
    kinds = [type(module).__name__ for module in upscaling]
    convolutions = [upscaling[0], upscaling[3]] if len(upscaling) == 5 else []
    if not (
        len(upscaling) == 5
        and isinstance(upscaling[1], LayerNorm2d)
        and all(
            isinstance(conv, nn.ConvTranspose2d)
            and conv.kernel_size == (2, 2)
            and conv.stride == (2, 2)
            and conv.padding == (0, 0)
            and conv.output_padding == (0, 0)
            and conv.groups == 1
            and conv.bias is not None
            for conv in convolutions
        )
    ):
        raise ValueError(
            "output_upscaling must be segment-anything's (ConvTranspose2d k2 s2, LayerNorm2d, activation, "
            f"ConvTranspose2d k2 s2, activation); got {kinds}"
        )


def _per_token_matrix(conv: nn.ConvTranspose2d) -> torch.Tensor:
    """(C_in, C_out, 2, 2) transposed-convolution weight -> (C_in, 2 * 2 * C_out), columns in
    (a, b, c_out) order: a token's product gives its 2 x 2 output pixels, channels last."""
    return conv.weight.permute(0, 2, 3, 1).reshape(conv.in_channels, -1)


def upscale_tokens(upscaling: nn.Sequential, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h * w, C) image tokens (row-major over the (h, w) embedding grid, as the two-way
    transformer returns them) -> (N, h, w, 2, 2, 2, 2, C_out) in the sub-pixel layout: the same
    values as ``upscaling`` applied to the (N, C, h, w) image (see :func:`check_upscaling`)."""
    first, norm, first_activation, second, second_activation = upscaling
    count, (height, width) = tokens.shape[0], size
    middle = first.out_channels
    upscaled = (tokens @ _per_token_matrix(first)).view(count, height, width, 2, 2, middle) + first.bias
    upscaled = first_activation(F.layer_norm(upscaled, (middle,), norm.weight, norm.bias, norm.eps))
    upscaled = upscaled @ _per_token_matrix(second)
    upscaled = upscaled.view(count, height, width, 2, 2, 2, 2, second.out_channels) + second.bias
    return second_activation(upscaled)


def subpixel_to_spatial(features: torch.Tensor) -> torch.Tensor:
    """(N, h, w, 2, 2, 2, 2, C) sub-pixel layout -> (N, C, 4h, 4w) image layout."""
    count, height, width = features.shape[:3]
    channels = features.shape[-1]
    scale = 2**_STAGES
    return features.permute(0, 7, 1, 3, 5, 2, 4, 6).reshape(count, channels, scale * height, scale * width)


def spatial_to_subpixel(features: torch.Tensor) -> torch.Tensor:
    """(N, C, 4h, 4w) image layout -> (N, h, w, 2, 2, 2, 2, C) sub-pixel layout (contiguous)."""
    count, channels, full_height, full_width = features.shape
    scale = 2**_STAGES
    if full_height % scale or full_width % scale:
        raise ValueError(f"features must be a multiple of {scale} high and wide; got {full_height} x {full_width}")
    grid = features.view(count, channels, full_height // scale, 2, 2, full_width // scale, 2, 2)
    return grid.permute(0, 2, 5, 3, 6, 4, 7, 1).contiguous()
