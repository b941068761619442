"""SAM's upscaling as per-token products, the fused attention, and the amodal decoder equal to
segment-anything's own MaskDecoder computation on the same weights."""

import copy

import pytest
import torch
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.common import LayerNorm2d
from segment_anything.modeling.transformer import Attention
from torch import nn

from amodal_sam.config import sam_spec_for
from amodal_sam.modeling.amodal_decoder import AmodalMaskDecoder, FusedAttention, MaskToken
from amodal_sam.modeling.sam_builder import build_sam
from amodal_sam.modeling.upscaling import check_upscaling, upscale_tokens


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
    got = upscale_tokens(upscaling, tokens, (5, 7))
    assert got.shape == (3, 20, 28, 2)  # channels last
    torch.testing.assert_close(got.permute(0, 3, 1, 2), expected, atol=1e-5, rtol=1e-5)


def test_an_upscaling_of_another_shape_is_refused():
    upscaling = _random_upscaling()
    upscaling[3] = nn.ConvTranspose2d(4, 2, kernel_size=3, stride=2)
    with pytest.raises(ValueError, match="output_upscaling must be segment-anything's"):
        check_upscaling(upscaling)
    for length in (4, 3):  # too short: refused by name, not an IndexError
        with pytest.raises(ValueError, match="output_upscaling must be"):
            check_upscaling(nn.Sequential(*list(_random_upscaling())[:length]))
    check_upscaling(_random_upscaling())  # SAM's shape passes


def _reference_of(decoder: AmodalMaskDecoder) -> AmodalMaskDecoder:
    """A copy of ``decoder`` with segment-anything's own attention modules back in place."""
    reference = copy.deepcopy(decoder)
    for module in reference.transformer.modules():
        if isinstance(module, FusedAttention):
            module.__class__ = Attention
    return reference


def _perturbed_decoder(spec, detail: bool) -> AmodalMaskDecoder:
    decoder = AmodalMaskDecoder(spec=spec, detail=detail)
    for parameter in decoder.parameters():
        parameter.data.add_(0.1 * torch.randn_like(parameter))  # LayerNorm, biases, fusion: off their defaults
    return decoder


def _prompts(sam, spec):
    boxes = torch.tensor([[10.0, 20.0, 120.0, 200.0], [50.0, 60.0, 70.0, 90.0]])
    masks = torch.randn(2, 1, spec.low_res_size, spec.low_res_size)
    return sam.prompt_encoder(points=None, boxes=boxes, masks=masks)


def test_amodal_decoder_equals_segment_anything_predict_masks():
    """segment-anything's own ``MaskDecoder.predict_masks`` (its attention, transposed
    convolutions, one image embedding repeated per prompt) run on the amodal decoder's weights
    gives the same logits and IoU for every token, several prompts at once."""
    spec = sam_spec_for("tiny")
    torch.manual_seed(0)
    sam = build_sam(spec)
    decoder = _perturbed_decoder(spec, detail=False)
    assert any(isinstance(m, FusedAttention) for m in decoder.transformer.modules())
    embedding = torch.randn(1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
    sparse, dense = _prompts(sam, spec)
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        expected_masks, expected_iou = MaskDecoder.predict_masks(_reference_of(decoder), embedding, pe, sparse, dense)
        got = decoder(embedding, pe, sparse, dense)
    assert expected_masks.shape == (2, len(MaskToken), spec.low_res_size, spec.low_res_size)
    got_masks = torch.cat([got.amodal_logits, got.visible_logits, got.occluder_logits], dim=1)
    torch.testing.assert_close(got_masks, expected_masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got.amodal_iou, expected_iou[:, : MaskToken.VISIBLE], atol=1e-5, rtol=1e-5)


def test_amodal_decoder_with_detail_equals_the_fusion_written_out():
    """With a detail branch: segment-anything's steps with the fused embedding in between, as
    defined (upscaled + layers(concat(upscaled, detail)), then the mask vectors' dot products)."""
    spec = sam_spec_for("tiny")
    torch.manual_seed(1)
    sam = build_sam(spec)
    decoder = _perturbed_decoder(spec, detail=True)
    reference = _reference_of(decoder)
    embedding = torch.randn(1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
    pixels = torch.randn(1, 3, spec.image_size, spec.image_size)
    sparse, dense = _prompts(sam, spec)
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        tokens = torch.cat([reference.iou_token.weight, reference.mask_tokens.weight])[None].expand(2, -1, -1)
        tokens = torch.cat([tokens, sparse], dim=1)
        hs, src = reference.transformer(embedding.repeat(2, 1, 1, 1) + dense, pe.repeat(2, 1, 1, 1), tokens)
        side = spec.embedding_size
        upscaled = reference.output_upscaling(src.transpose(1, 2).reshape(2, -1, side, side))
        detail = reference.detail_encoder(pixels).expand(2, -1, -1, -1)
        fused = upscaled + reference.detail_fusion.layers(torch.cat([upscaled, detail], dim=1))
        vectors = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(reference.output_hypernetworks_mlps)], dim=1)
        expected = torch.einsum("ntc,nchw->nthw", vectors, fused)
        got = decoder(embedding, pe, sparse, dense, detail_features=decoder.detail(pixels))
    got_masks = torch.cat([got.amodal_logits, got.visible_logits, got.occluder_logits], dim=1)
    torch.testing.assert_close(got_masks, expected, atol=1e-4, rtol=1e-4)
    fusion_share = torch.einsum("ntc,nchw->nthw", vectors, fused - upscaled)
    assert fusion_share.abs().max() > 0.1  # the detail branch counts here


def test_prompts_of_several_images_are_decoded_against_their_own_image():
    """B images, prompts interleaved by ``image_index``: each prompt's outputs equal decoding it
    against its own image alone (a decoder without a detail branch, so no detail features)."""
    spec = sam_spec_for("tiny")
    torch.manual_seed(2)
    sam = build_sam(spec)
    decoder = _perturbed_decoder(spec, detail=False)
    embeddings = torch.randn(2, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
    sparse, dense = _prompts(sam, spec)
    pe = sam.prompt_encoder.get_dense_pe()
    with torch.no_grad():
        together = decoder(embeddings, pe, sparse, dense, image_index=torch.tensor([1, 0]))
        for row, image in ((0, 1), (1, 0)):
            alone = decoder(embeddings[image : image + 1], pe, sparse[row : row + 1], dense[row : row + 1])
            torch.testing.assert_close(together.amodal_logits[row], alone.amodal_logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together.amodal_iou[row], alone.amodal_iou[0], atol=1e-6, rtol=1e-6)
