"""The decoder's sub-pixel layout: where each pixel sits, SAM's upscaling as per-token products,
and the amodal decoder's SAM tokens equal to segment-anything's own MaskDecoder."""

import pytest
import torch
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.common import LayerNorm2d
from torch import nn

from amodal_sam.config import sam_spec_for
from amodal_sam.modeling.amodal_decoder import AmodalMaskDecoder, MaskToken
from amodal_sam.modeling.sam_builder import build_sam
from amodal_sam.modeling.subpixel import (
    check_upscaling,
    spatial_to_subpixel,
    subpixel_to_spatial,
    upscale_tokens,
)


def test_each_element_sits_at_its_documented_pixel():
    image = torch.arange(2 * 3 * 8 * 12, dtype=torch.float32).view(2, 3, 8, 12)
    sub = spatial_to_subpixel(image)
    assert sub.shape == (2, 2, 3, 2, 2, 2, 2, 3)
    # [n, i, j, a, b, a2, b2, c] is channel c at row 4 i + 2 a + a2, column 4 j + 2 b + b2
    assert sub[1, 1, 2, 1, 0, 0, 1, 2] == image[1, 2, 4 + 2 + 0, 8 + 0 + 1]
    assert sub[0, 0, 1, 0, 1, 1, 1, 0] == image[0, 0, 0 + 0 + 1, 4 + 2 + 1]
    assert torch.equal(subpixel_to_spatial(sub), image)
    with pytest.raises(ValueError, match="multiple of 4 high and wide; got 9 x 12"):
        spatial_to_subpixel(torch.zeros(1, 1, 9, 12))


def _random_upscaling(chans: int = 16) -> nn.Sequential:
    upscaling = nn.Sequential(
        nn.ConvTranspose2d(chans, chans // 4, kernel_size=2, stride=2),
        LayerNorm2d(chans // 4),
        nn.GELU(),
        nn.ConvTranspose2d(chans // 4, chans // 8, kernel_size=2, stride=2),
        nn.GELU(),
    )
    for parameter in upscaling.parameters():
        nn.init.normal_(parameter)  # LayerNorm's weight and bias too: every term counts
    return upscaling


def test_upscaling_tokens_equals_the_transposed_convolutions():
    torch.manual_seed(0)
    upscaling = _random_upscaling()
    image = torch.randn(3, 16, 5, 7)
    expected = upscaling(image)  # (3, 2, 20, 28)
    tokens = image.flatten(2).transpose(1, 2)  # (3, 35, 16), row-major as the transformer gives them
    got = subpixel_to_spatial(upscale_tokens(upscaling, tokens, (5, 7)))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_an_upscaling_of_another_shape_is_refused():
    upscaling = _random_upscaling()
    upscaling[3] = nn.ConvTranspose2d(4, 2, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match="output_upscaling must be segment-anything's"):
        check_upscaling(upscaling)
    with pytest.raises(ValueError, match="output_upscaling must be"):
        check_upscaling(nn.Sequential(*list(_random_upscaling())[:4]))
    check_upscaling(_random_upscaling())  # SAM's shape passes


def test_amodal_decoder_equals_segment_anything_predict_masks():
    """segment-anything's own ``MaskDecoder.predict_masks`` (transposed convolutions, one image
    embedding repeated per prompt) run on the amodal decoder's weights gives the same logits and
    IoU for every token, several prompts at once: the sub-pixel path changes no value."""
    spec = sam_spec_for("tiny")
    torch.manual_seed(0)
    sam = build_sam(spec)
    decoder = AmodalMaskDecoder(spec=spec, detail=False)
    for parameter in decoder.parameters():
        parameter.data.add_(0.1 * torch.randn_like(parameter))  # LayerNorm and biases off their defaults
    embedding = torch.randn(1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
    boxes = torch.tensor([[10.0, 20.0, 120.0, 200.0], [50.0, 60.0, 70.0, 90.0]])
    masks = torch.randn(2, 1, spec.low_res_size, spec.low_res_size)
    sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=masks)
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        expected_masks, expected_iou = MaskDecoder.predict_masks(decoder, embedding, pe, sparse, dense)
        got = decoder(embedding, pe, sparse, dense)
    assert expected_masks.shape == (2, len(MaskToken), spec.low_res_size, spec.low_res_size)
    got_masks = torch.cat([got.amodal_logits, got.visible_logits, got.occluder_logits], dim=1)
    torch.testing.assert_close(got_masks, expected_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.amodal_iou, expected_iou[:, : MaskToken.VISIBLE], atol=1e-5, rtol=1e-5)
