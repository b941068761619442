"""Builds segment-anything modules from a :class:`~amodal_sam.config.SamSpec`."""

from __future__ import annotations

from functools import partial

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from amodal_sam.config import SamSpec


def build_image_encoder(spec: SamSpec) -> ImageEncoderViT:
    """SAM's ViT image encoder: (B, 3, S, S) normalised pixels -> (B, C, S/16, S/16) embedding."""
    return ImageEncoderViT(
        depth=spec.encoder_depth,
        embed_dim=spec.encoder_embed_dim,
        img_size=spec.image_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=spec.encoder_num_heads,
        patch_size=spec.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=spec.encoder_global_attn_indexes,
        window_size=spec.window_size,
        out_chans=spec.prompt_embed_dim,
    )


def build_prompt_encoder(spec: SamSpec) -> PromptEncoder:
    """SAM's prompt encoder for points and boxes (encoder-input pixels) and low-res mask logits."""
    side = spec.embedding_size
    return PromptEncoder(
        embed_dim=spec.prompt_embed_dim,
        image_embedding_size=(side, side),
        input_image_size=(spec.image_size, spec.image_size),
        mask_in_chans=spec.mask_in_chans,
    )


def mask_decoder_arguments(spec: SamSpec, num_multimask_outputs: int = 3) -> dict:
    """Keyword arguments of segment-anything's ``MaskDecoder`` for ``spec``."""
    return {
        "num_multimask_outputs": num_multimask_outputs,
        "transformer": TwoWayTransformer(
            depth=spec.decoder_depth,
            embedding_dim=spec.prompt_embed_dim,
            mlp_dim=spec.decoder_mlp_dim,
            num_heads=spec.decoder_num_heads,
        ),
        "transformer_dim": spec.prompt_embed_dim,
        "iou_head_depth": 3,
        "iou_head_hidden_dim": spec.iou_head_hidden_dim,
    }


def build_mask_decoder(spec: SamSpec) -> MaskDecoder:
    """SAM's two-way-transformer mask decoder (one single-answer and three ambiguity tokens)."""
    return MaskDecoder(**mask_decoder_arguments(spec))


def build_sam(spec: SamSpec) -> Sam:
    """A randomly initialised segment-anything ``Sam`` of the given spec, in eval mode."""
    sam = Sam(
        image_encoder=build_image_encoder(spec),
        prompt_encoder=build_prompt_encoder(spec),
        mask_decoder=build_mask_decoder(spec),
        pixel_mean=list(spec.pixel_mean),
        pixel_std=list(spec.pixel_std),
    )
    return sam.eval()
