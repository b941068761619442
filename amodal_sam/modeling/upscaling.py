"""SAM's mask-decoder upscaling as per-token matrix products, ending channels last.

segment-anything's ``output_upscaling`` is two transposed convolutions of kernel 2 and stride 2
(with a LayerNorm and activations between): every output pixel depends on one input token only.
Each stage is therefore one matrix product per token, its output pixels kept beside the token
(channels last) until the end, where one copy puts them in place:

    after both stages: (N, h, w, 2, 2, 2, 2, C), element [n, i, j, a, b, a2, b2, c] being channel c
    of the pixel at row 4 i + 2 a + a2, column 4 j + 2 b + b2 of the (4h, 4w) upscaled frame;
    returned as (N, 4h, 4w, C), channels last.

Same values as the convolutions, up to float rounding, at a fraction of their CPU time; what the
amodal decoder does per pixel afterwards (the mask tokens' dot products) works on channels-last
pixels too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d
from torch import nn


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


def _per_token_product(conv: nn.ConvTranspose2d, tokens: torch.Tensor) -> torch.Tensor:
    """(M, C_in) tokens -> (M, 2 * 2 * C_out): each token's 2 x 2 output pixels of a stride-2
    transposed convolution, bias included, columns in (a, b, c_out) order (channels last)."""
    weight = conv.weight.permute(0, 2, 3, 1).reshape(conv.in_channels, -1)  # (C_in, (a, b, c_out))
    return torch.addmm(conv.bias.repeat(4), tokens, weight)


def upscale_tokens(upscaling: nn.Sequential, tokens: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, h * w, C) image tokens (row-major over the (h, w) embedding grid, as the two-way
    transformer returns them) -> (N, 4h, 4w, C_out) channels last: the same values as
    ``upscaling`` applied to the (N, C, h, w) image (see :func:`check_upscaling`), permuted."""
    first, norm, first_activation, second, second_activation = upscaling
    count, (height, width) = tokens.shape[0], size
    middle, out = first.out_channels, second.out_channels
    upscaled = _per_token_product(first, tokens.reshape(-1, tokens.shape[-1]))
    upscaled = first_activation(F.layer_norm(upscaled.view(-1, middle), (middle,), norm.weight, norm.bias, norm.eps))
    upscaled = second_activation(_per_token_product(second, upscaled))
    upscaled = upscaled.view(count, height, width, 2, 2, 2, 2, out)
    # (n, i, j, a, b, a2, b2, c) -> (n, i, a, a2, j, b, b2, c): rows 4i + 2a + a2, columns 4j + 2b + b2
    return upscaled.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(count, 4 * height, 4 * width, out)
