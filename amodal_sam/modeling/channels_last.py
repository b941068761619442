"""Dense prompt embeddings made channels last where they are made.

The amodal decoder reads the image embedding plus the dense prompt embeddings as (N, h*w, C)
tokens: channels last. Made channels first, they cost one reordering copy per prompt (9 ms for
ViT-B's (1, 256, 64, 64) on a 2-core CPU, about 6 % of a prompt's decoding); made channels last
by the prompt encoders' last convolution (a 1 x 1 one, itself faster so on a CPU) and added to an
embedding that is channels last too (:meth:`AmodalSAM.encode`), they cost none. Same values.
"""

from __future__ import annotations

import torch
from torch import nn


class ChannelsLastConv2d(nn.Conv2d):
    """A Conv2d that reads its input channels last, so that its output is channels last; its
    parameters and their names are a Conv2d's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def output_channels_last(layers: nn.Sequential) -> nn.Sequential:
    """``layers`` (ending in a Conv2d) with that last convolution replaced, in place, by a
    :class:`ChannelsLastConv2d` holding the same parameters; returns ``layers``."""
    last = layers[-1]
    if not isinstance(last, nn.Conv2d) or last.groups != 1:
        raise TypeError(f"the last layer must be an ungrouped Conv2d; got {last!r}")
    replacement = ChannelsLastConv2d(
        last.in_channels,
        last.out_channels,
        last.kernel_size,
        stride=last.stride,
        padding=last.padding,
        dilation=last.dilation,
        bias=last.bias is not None,
        device=last.weight.device,
        dtype=last.weight.dtype,
    )
    replacement.load_state_dict(last.state_dict())
    layers[-1] = replacement
    return layers
