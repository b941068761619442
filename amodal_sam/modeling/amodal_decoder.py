"""The trainable amodal mask decoder: segment-anything's ``MaskDecoder`` with two more tokens."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import IntEnum

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder
from segment_anything.modeling.transformer import Attention

from amodal_sam.config import SamSpec
from amodal_sam.modeling.detail_encoder import DetailEncoder, DetailFusion
from amodal_sam.modeling.sam_builder import mask_decoder_arguments
from amodal_sam.modeling.upscaling import check_upscaling, upscale_tokens

NUM_AMODAL_HYPOTHESES = 3


class MaskToken(IntEnum):
    """The role of each mask token (output channel) of the amodal decoder."""

    SINGLE = 0  # SAM's single-output token: the amodal mask when one answer is asked for
    HYPOTHESIS_1 = 1  # SAM's three ambiguity tokens: three amodal hypotheses
    HYPOTHESIS_2 = 2
    HYPOTHESIS_3 = 3
    VISIBLE = 4  # added: the visible part, supervised in training
    OCCLUDER = 5  # added: whatever lies in front of the object


_ADDED_TOKENS = len(MaskToken) - 1 - NUM_AMODAL_HYPOTHESES


@dataclass
class AmodalDecoderOutput:
    """Decoder outputs for N prompts, in the low-res frame (L = 4 x embedding side, 256 for SAM).

    Attributes:
        amodal_logits: (N, 1 + K, L, L) amodal mask logits; channel 0 is the single-answer output,
            channels 1..K the K ambiguity hypotheses.
        amodal_iou: (N, 1 + K) predicted IoU of each amodal output with the true amodal mask.
        visible_logits: (N, 1, L, L) logits of the visible part.
        occluder_logits: (N, 1, L, L) logits of the occluders: whatever lies in front of the
            object. A hidden part can only be where something covers the object.
    """

    amodal_logits: torch.Tensor
    amodal_iou: torch.Tensor
    visible_logits: torch.Tensor
    occluder_logits: torch.Tensor

    @property
    def hypotheses(self) -> torch.Tensor:
        """(N, K, L, L) logits of the K amodal hypotheses."""
        return self.amodal_logits[:, 1:]

    @property
    def hypothesis_iou(self) -> torch.Tensor:
        """(N, K) predicted IoU of the K amodal hypotheses."""
        return self.amodal_iou[:, 1:]


class FusedAttention(Attention):
    """segment-anything's two-way transformer attention with the softmax(q k^T / sqrt(d)) v step
    as one ``scaled_dot_product_attention`` call (same weights, same values up to float rounding;
    its softmax over a handful of prompt tokens per image token is slow on a CPU otherwise)."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q, k, v = (
            self._separate_heads(projection(x), self.num_heads)
            for projection, x in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v))
        )
        return self.out_proj(self._recombine_heads(F.scaled_dot_product_attention(q, k, v)))


class AmodalMaskDecoder(MaskDecoder):
    """``MaskDecoder`` whose tokens predict amodal hypotheses, the visible part and the occluders.

    Tokens 0..3 play the roles they have in SAM (single answer, three ambiguity answers) but
    predict the amodal mask; token 4 predicts the visible mask, token 5 the occluders in front
    of the object (:class:`MaskToken`). With ``detail=True`` a small CNN reads the image's pixels
    (:class:`DetailEncoder`) and its features are fused with the upscaled embedding before the
    masks are read out (:class:`DetailFusion`). Everything else is segment-anything's module,
    computed faster with the same values: its attention as one fused kernel
    (:class:`FusedAttention`), its image inputs channels last, its upscaling per token
    (:mod:`amodal_sam.modeling.upscaling`). At inference it may run in a reduced precision
    (:attr:`inference_dtype`, :meth:`reduced_precision`); its outputs are fp32 either way.
    """

    def __init__(self, *, spec: SamSpec, detail: bool = False) -> None:
        super().__init__(**mask_decoder_arguments(spec, num_multimask_outputs=NUM_AMODAL_HYPOTHESES + _ADDED_TOKENS))
        check_upscaling(self.output_upscaling)
        for module in self.transformer.modules():
            if type(module) is Attention:
                module.__class__ = FusedAttention  # same weights and values, one fused kernel
        self.inference_dtype: torch.dtype | None = None  # see reduced_precision
        self.detail_encoder: DetailEncoder | None = None
        self.detail_fusion: DetailFusion | None = None
        if detail:
            chans = spec.prompt_embed_dim // 8  # channels of the upscaled embedding
            self.detail_encoder = DetailEncoder(stride=spec.image_size // spec.low_res_size, out_chans=chans)
            self.detail_fusion = DetailFusion(chans=chans, detail_chans=chans)

    def forward(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_index: torch.Tensor | None = None,
        detail_features: torch.Tensor | None = None,
    ) -> AmodalDecoderOutput:
        """Decode N prompts against B image embeddings.

        Arguments:
            image_embeddings: (B, C, h, w) image embeddings.
            image_pe: (1, C, h, w) dense positional encoding.
            sparse_prompt_embeddings: (N, T, C) point/box embeddings.
            dense_prompt_embeddings: (N, C, h, w) mask-prompt embeddings.
            image_index: (N,) which of the B images each prompt belongs to; may be omitted when
                B == 1. Prompts are decoded one image at a time and put back in order.
            detail_features: :meth:`detail` of the B images; required exactly when the decoder
                has a detail branch.
        """
        self._check_detail_features(detail_features, image_embeddings.shape[0])
        with self.reduced_precision(image_embeddings.device):
            masks, iou = self._predict_per_image(
                image_embeddings,
                image_pe,
                sparse_prompt_embeddings,
                dense_prompt_embeddings,
                image_index,
                detail_features,
            )
        masks, iou = masks.float(), iou.float()
        return AmodalDecoderOutput(
            amodal_logits=masks[:, : MaskToken.VISIBLE],
            amodal_iou=iou[:, : MaskToken.VISIBLE],
            visible_logits=masks[:, MaskToken.VISIBLE : MaskToken.VISIBLE + 1],
            occluder_logits=masks[:, MaskToken.OCCLUDER : MaskToken.OCCLUDER + 1],
        )

    def reduced_precision(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`inference_dtype` (set by :meth:`AmodalSAM.accelerate_decoder`, see
        :mod:`amodal_sam.modeling.decoder_precision`) where no gradient is taken and nothing is
        being exported; else nothing: fp32, and training always so."""
        if self.inference_dtype is None or torch.is_grad_enabled() or torch.onnx.is_in_onnx_export():
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.inference_dtype)

    def _predict_per_image(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        image_index: torch.Tensor | None,
        detail_features: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`predict_masks` of each image's prompts, put back in the prompts' order: (N, T, L, L)
        mask logits and (N, T) predicted IoU."""
        num_prompts = sparse_prompt_embeddings.shape[0]
        if image_index is None:
            if image_embeddings.shape[0] != 1:
                raise ValueError(
                    f"image_index is required when image_embeddings holds {image_embeddings.shape[0]} images"
                )
            masks, iou = self.predict_masks(
                image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, detail_features
            )
        else:
            if image_index.shape != (num_prompts,):
                raise ValueError(f"image_index must have shape ({num_prompts},); got {tuple(image_index.shape)}")
            masks = iou = None
            for image in torch.unique(image_index).tolist():
                rows = torch.nonzero(image_index == image).flatten()
                part_masks, part_iou = self.predict_masks(
                    image_embeddings[image : image + 1],
                    image_pe,
                    sparse_prompt_embeddings[rows],
                    dense_prompt_embeddings[rows],
                    None if detail_features is None else detail_features[image : image + 1],
                )
                if masks is None:
                    masks = part_masks.new_empty((num_prompts,) + part_masks.shape[1:])
                    iou = part_iou.new_empty((num_prompts,) + part_iou.shape[1:])
                masks[rows] = part_masks
                iou[rows] = part_iou
        return masks, iou

    @property
    def has_detail(self) -> bool:
        """Whether the decoder reads the image's pixels too (see :meth:`detail`)."""
        return self.detail_encoder is not None

    def detail(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """(B, 3, S, S) normalised, padded input-frame pixels -> (B, L, L, C/8) detail features,
        channels last (the pixel CNN's output, already through the fusion's per-image half,
        :meth:`DetailFusion.image_term`), or None when the decoder has no detail branch."""
        if self.detail_encoder is None:
            return None
        return self.detail_fusion.image_term(self.detail_encoder(pixels))

    def _check_detail_features(self, detail_features: torch.Tensor | None, num_images: int) -> None:
        if self.detail_encoder is None:
            if detail_features is not None:
                raise ValueError("detail_features were given, but this decoder has no detail branch")
            return
        if detail_features is None:
            raise ValueError("this decoder has a detail branch: detail_features (from detail(pixels)) are required")
        if detail_features.shape[0] != num_images:
            raise ValueError(
                f"detail_features hold {detail_features.shape[0]} images; image_embeddings hold {num_images}"
            )

    def predict_masks(  # type: ignore[override]
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        detail_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """segment-anything's ``predict_masks`` for one image's N prompts, with the image's detail
        features fused into the upscaled embedding when the decoder has a detail branch.
        Returns (N, T, L, L) mask logits and (N, T) predicted IoU for the T tokens."""
        output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        output_tokens = output_tokens.unsqueeze(0).expand(sparse_prompt_embeddings.size(0), -1, -1)
        tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
        num_prompts = tokens.shape[0]
        # One image's embedding serves every prompt: broadcast, not copied per prompt. Channels
        # last, the (N, h*w, C) token view the transformer takes of its image inputs is contiguous
        # (same values; its additions and projections run several times faster on a CPU).
        src = (image_embeddings + dense_prompt_embeddings).contiguous(memory_format=torch.channels_last)
        pos_src = image_pe.contiguous(memory_format=torch.channels_last).expand(num_prompts, -1, -1, -1)
        height, width = src.shape[-2:]
        hs, src = self.transformer(src, pos_src, tokens)
        iou_token_out = hs[:, 0, :]
        mask_tokens_out = hs[:, 1 : (1 + self.num_mask_tokens), :]
        upscaled = upscale_tokens(self.output_upscaling, src, (height, width))  # (N, L, L, C/8)
        mask_vectors = torch.stack(
            [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        _, side_h, side_w, channels = upscaled.shape
        masks = upscaled.reshape(num_prompts, -1, channels) @ mask_vectors.transpose(1, 2)  # (N, L * L, T)
        masks = masks.view(num_prompts, side_h, side_w, -1).permute(0, 3, 1, 2)  # (N, T, L, L)
        if self.detail_fusion is not None:
            masks = masks + self.detail_fusion(upscaled, detail_features, mask_vectors)
        masks = masks.contiguous()
        return masks, self.iou_prediction_head(iou_token_out)

    @torch.no_grad()
    def init_from_sam_decoder(self, sam_decoder: MaskDecoder) -> None:
        """Copy SAM's mask decoder; the visible and occluder tokens start as copies of SAM's
        single-answer token."""
        own = self.state_dict()
        source = sam_decoder.state_dict()
        for name, tensor in source.items():
            target = own[name]
            if target.shape == tensor.shape:
                target.copy_(tensor)
            elif name == "mask_tokens.weight" or name.startswith("iou_prediction_head.layers.2."):
                target[: tensor.shape[0]].copy_(tensor)
                added = target[MaskToken.VISIBLE :]
                added.copy_(tensor[MaskToken.SINGLE].expand_as(added))
            else:
                raise ValueError(
                    f"SAM mask decoder tensor {name} has shape {tuple(tensor.shape)}; "
                    f"the amodal decoder expects {tuple(target.shape)}"
                )
        for token in (MaskToken.VISIBLE, MaskToken.OCCLUDER):
            self.output_hypernetworks_mlps[token].load_state_dict(
                sam_decoder.output_hypernetworks_mlps[MaskToken.SINGLE].state_dict()
            )
