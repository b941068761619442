"""A faster path through segment-anything's ViT image encoder, same embeddings.

* Attention runs through ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels,
  no separate softmax matrix), with SAM's decomposed relative-position bias passed as the
  additive mask, for windowed and global blocks alike.
* Optional reduced precision: ``bfloat16`` (CPU and GPU) or ``float16`` (GPU), the encoder's
  weights cast once.
* Optional ``torch.compile``.

:func:`make_fast` changes an ``ImageEncoderViT`` in place and returns it; the parameters stay
those of the original modules, so loading and caching are unaffected.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention, get_rel_pos

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position term as an additive attention bias.

    Arguments:
        q: (B, heads, h * w, d) unscaled queries of an h x w token grid.
        rel_pos_h, rel_pos_w: (2h - 1, d) and (2w - 1, d) relative-position tables.
        size: (h, w).
    Returns:
        (B, heads, h * w, h * w) bias: bias[q, k] = q . Rh[qh, kh] + q . Rw[qw, kw].
    """
    height, width = size
    batch, heads, tokens, dim = q.shape
    grid = q.reshape(batch * heads, height, width, dim)
    table_h = get_rel_pos(height, height, rel_pos_h).to(q.dtype)
    table_w = get_rel_pos(width, width, rel_pos_w).to(q.dtype)
    rel_h = torch.einsum("bhwc,hkc->bhwk", grid, table_h)
    rel_w = torch.einsum("bhwc,wkc->bhwk", grid, table_w)
    bias = rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]
    return bias.reshape(batch, heads, tokens, tokens)


class SdpaAttention(Attention):
    """segment-anything's ``Attention`` computed with ``scaled_dot_product_attention``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, tokens, d) each
        bias = decomposed_rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, (height, width)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        return self.proj(out)


def make_fast(encoder: ImageEncoderViT, dtype: str = "fp32", compile: bool = False) -> torch.nn.Module:
    """Switch ``encoder``'s attention to SDPA and cast it to ``dtype`` (fp32, bf16 or fp16).

    Returns the encoder, wrapped by ``torch.compile`` when ``compile`` is True. Inputs must then
    be given in ``dtype``; see :func:`encode`.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}; got {dtype!r}")
    for block in encoder.blocks:
        if type(block.attn) is Attention:
            block.attn.__class__ = SdpaAttention  # same parameters, faster forward
    encoder.to(DTYPES[dtype])
    return torch.compile(encoder) if compile else encoder


def encode(encoder: torch.nn.Module, pixels: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, 3, S, S) normalised pixels -> (B, C, S/16, S/16) float32 embeddings, computed in
    ``dtype`` (the encoder's own by default)."""
    if dtype is None:
        dtype = next(iter(encoder.parameters())).dtype
    with torch.inference_mode():
        return encoder(pixels.to(dtype)).float()
