"""Dense prompt embeddings made channels last where they are made (modeling/channels_last.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from amodal_sam import AmodalSAM
from amodal_sam.modeling.channels_last import ChannelsLastConv2d, output_channels_last

CHANNELS_LAST = torch.channels_last


def test_a_channels_last_convolution_gives_the_same_values_channels_last():
    torch.manual_seed(0)
    layers = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.GELU(), nn.Conv2d(8, 16, 1))
    x = torch.randn(2, 4, 12, 12)
    with torch.no_grad():
        expected = layers(x)
        keys = dict(layers.state_dict())
        assert output_channels_last(layers) is layers
        actual = layers(x)
    assert isinstance(layers[2], ChannelsLastConv2d) and isinstance(layers[0], nn.Conv2d)
    assert actual.is_contiguous(memory_format=CHANNELS_LAST) and not expected.is_contiguous(memory_format=CHANNELS_LAST)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    assert list(layers.state_dict()) == list(keys)  # the same parameter names: checkpoints load as before
    assert all(torch.equal(layers.state_dict()[k], v) for k, v in keys.items())


def test_only_an_ungrouped_convolution_is_replaced():
    with pytest.raises(TypeError, match="ungrouped Conv2d"):
        output_channels_last(nn.Sequential(nn.Conv2d(4, 4, 1), nn.GELU()))
    with pytest.raises(TypeError, match="ungrouped Conv2d"):
        output_channels_last(nn.Sequential(nn.Conv2d(4, 4, 1, groups=2)))


def test_the_decoder_input_is_channels_last_without_a_copy():
    """The encoded embedding and both dense prompts (the mask and the known occluders) come out
    channels last, so their sum, the decoder's image tokens, is too."""
    model = AmodalSAM.random("tiny", seed=0).eval()
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    visible = np.zeros((2, 40, 56), bool)
    visible[0, 5:20, 5:30] = visible[1, 18:35, 20:50] = True
    encoded = model.encode(image)
    assert encoded.embedding.is_contiguous(memory_format=CHANNELS_LAST)
    cached = model.encoded_from_embedding(encoded.embedding.contiguous(), (40, 56), image=image)
    assert cached.embedding.is_contiguous(memory_format=CHANNELS_LAST)
    prompts = model.build_prompts(encoded.frame, visible_masks=visible, occluder_masks=visible[::-1].copy())
    with torch.no_grad():
        _, dense = model.prompt_encoder(points=None, boxes=prompts.boxes, masks=prompts.mask_logits)
        occluders = model.occluder_prompt(prompts.occluder_levels, torch.ones(2, dtype=torch.bool))
    assert dense.is_contiguous(memory_format=CHANNELS_LAST) and occluders.is_contiguous(memory_format=CHANNELS_LAST)
    assert (encoded.embedding + dense + occluders).is_contiguous(memory_format=CHANNELS_LAST)
