"""A faster path through segment-anything's ViT image encoder, same embeddings.

* Attention runs, for windowed and global blocks alike, in one of four ways:

  - ``folded`` (the default): SAM's decomposed relative-position bias is folded into the dot
    products. The bias of query q and key k is ``q . Rh[qh, kh] + q . Rw[qw, kw]``, i.e. the
    query's row of ``rel_h`` picked by the key's row index plus its row of ``rel_w`` picked by
    the key's column index: appending ``[rel_h(q), rel_w(q)]`` (h + w numbers) to each scaled
    query and the one-hot ``[e(kh), e(kw)]`` to each key makes one plain dot product of both
    terms. No (tokens x tokens) bias is ever built (805 MB per image for a ViT-B global block
    in fp32) and SDPA can take its mask-free fused kernels;
  - ``sdpa``: the bias built as a (tokens x tokens) tensor and passed as the additive mask;
  - ``chunked``: plain matrix products over a few (image, head) pairs and queries at a time
    (:data:`SCORES_PER_STEP`): each step's scores, with the bias added by the product or folded
    into it, and their softmax stay small enough for the CPU's caches, so memory stays bounded;
    no fused kernel, but no padding of the head and no (tokens x tokens) bias either;
  - ``flex``: ``torch.nn.attention.flex_attention`` with the bias as a ``score_mod`` that reads
    the (tokens x h) and (tokens x w) terms: no bias tensor and no extra head width, compiled
    on CUDA (a fused Triton kernel), run eagerly elsewhere (correct but slow: tests only).
  Which one is fastest depends on the host (vector width, memory bandwidth): by default
  (``auto``) :mod:`amodal_sam.modeling.attention_choice` times them on the machine and remembers.
* Optional reduced precision: ``bfloat16`` (CPU and GPU) or ``float16`` (GPU), the encoder's
  weights cast once.
* Optional ``torch.compile``.

:func:`make_fast` changes an ``ImageEncoderViT`` in place and returns it; the parameters stay
those of the original modules, so loading and caching are unaffected.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling.image_encoder import Attention, get_rel_pos

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Scores per step of the chunked path: 512 queries x 4096 keys of one head of a ViT-B global block,
# 4 MB in bf16. On a 2-core AMD EPYC (AVX-512) a global block's attention took 0.17 s this way
# (sdpa 0.44 s); steps of all 12 heads x 64 queries took 0.21 s, whole heads (4096 queries) 0.41 s.
SCORES_PER_STEP = 512 * 4096


def rel_pos_terms(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of SAM's decomposed relative-position bias, per query.

    Arguments:
        q: (B, heads, h * w, d) unscaled queries of an h x w token grid.
        rel_pos_h, rel_pos_w: (2h - 1, d) and (2w - 1, d) relative-position tables.
        size: (h, w).
    Returns:
        rel_h (B, heads, h * w, h) and rel_w (B, heads, h * w, w): rel_h[q, kh] = q . Rh[qh, kh],
        rel_w[q, kw] = q . Rw[qw, kw]; the bias of query q and key k is rel_h[q, kh] + rel_w[q, kw].
    """
    height, width = size
    batch, heads, tokens, dim = q.shape
    grid = q.reshape(batch * heads, height, width, dim)
    rel_h = torch.einsum("bhwc,hkc->bhwk", grid, get_rel_pos(height, height, rel_pos_h).to(q.dtype))
    rel_w = torch.einsum("bhwc,wkc->bhwk", grid, get_rel_pos(width, width, rel_pos_w).to(q.dtype))
    return rel_h.reshape(batch, heads, tokens, height), rel_w.reshape(batch, heads, tokens, width)


def decomposed_rel_pos_bias(
    q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """SAM's decomposed relative-position term as an additive attention bias: arguments as
    :func:`rel_pos_terms` -> (B, heads, h * w, h * w), bias[q, k] = q . Rh[qh, kh] + q . Rw[qw, kw]."""
    rel_h, rel_w = rel_pos_terms(q, rel_pos_h, rel_pos_w, size)
    return (rel_h[..., :, None] + rel_w[..., None, :]).flatten(-2)  # keys in row-major order


def _folded_operands(
    q: torch.Tensor, k: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor, size: tuple[int, int], scale: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bias folded into the dot products: (B, heads, h * w, d) ``q`` and ``k`` of an h x w
    grid and :func:`rel_pos_terms`' two halves -> queries ``[scale q, rel_h, rel_w]`` and keys
    ``[k, one-hot row, one-hot column]`` (row-major), each (B, heads, h * w, d + h + w), whose dot
    product is ``scale q . k + rel_h[kh] + rel_w[kw]``."""
    height, width = size
    batch, heads, tokens, _ = q.shape
    token = torch.arange(tokens, device=q.device)
    positions = torch.cat([F.one_hot(token // width, height), F.one_hot(token % width, width)], 1).to(k.dtype)
    queries = torch.cat([q * scale, rel_h, rel_w], -1)
    return queries, torch.cat([k, positions.expand(batch, heads, tokens, height + width)], -1)


def folded_rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
    scale: float,
) -> torch.Tensor:
    """softmax(scale q k^T + SAM's decomposed relative-position bias) v, the bias folded into
    the dot products (see the module's docstring).

    Arguments:
        q, k, v: (B, heads, h * w, d) queries, keys and values of an h x w token grid.
        rel_pos_h, rel_pos_w, size: as :func:`rel_pos_terms`.
        scale: the factor of q k^T (the bias is not scaled, as in SAM).
    Returns:
        (B, heads, h * w, d).
    """
    dim = q.shape[-1]
    rel_h, rel_w = rel_pos_terms(q, rel_pos_h, rel_pos_w, size)
    queries, keys = _folded_operands(q, k, rel_h, rel_w, size, scale)
    padded = -(-queries.shape[-1] // 8) * 8  # one head size for q, k and v, a multiple of 8: fused kernels take it
    queries = F.pad(queries, (0, padded - queries.shape[-1]))
    keys = F.pad(keys, (0, padded - keys.shape[-1]))
    out = F.scaled_dot_product_attention(queries, keys, F.pad(v, (0, padded - dim)), scale=1.0)
    return out[..., :dim]


def sdpa_rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
    scale: float,
) -> torch.Tensor:
    """As :func:`folded_rel_pos_attention`, with the bias built as a (tokens x tokens) additive
    mask of ``scaled_dot_product_attention``. Same arguments and (B, heads, h * w, d) result."""
    bias = decomposed_rel_pos_bias(q, rel_pos_h, rel_pos_w, size)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=scale)


def chunked_rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
    scale: float,
    scores_per_step: int = SCORES_PER_STEP,
) -> torch.Tensor:
    """As :func:`folded_rel_pos_attention`, by plain matrix products a few (image, head) pairs
    and queries at a time: each step holds at most ``scores_per_step`` scores (at least one
    query's) and takes their softmax. A long sequence (a global block) goes a block of queries
    of one head at a time, short ones (windows) many heads at once.

    The bias reaches the scores one of two ways. Where the grid is small (h + w at most the head
    width d: windows), it is folded into the products as in :func:`folded_rel_pos_attention`, which
    at most doubles their width; a broadcast add over rows of 14 keys was ten times slower there
    (2-core AMD EPYC, bf16). Else each step's bias is built from the two halves and added by the
    product itself (``baddbmm``). Same arguments and (B, heads, h * w, d) result."""
    batch, heads, tokens, dim = q.shape
    height, width = size
    pairs = batch * heads
    rel_h, rel_w = rel_pos_terms(q, rel_pos_h, rel_pos_w, size)
    fold = height + width <= dim
    if fold:
        queries, keys = _folded_operands(q, k, rel_h, rel_w, size, scale)
    else:
        queries, keys = q * scale, k
        rel_h, rel_w = rel_h.reshape(pairs, tokens, height, 1), rel_w.reshape(pairs, tokens, 1, width)
    queries = queries.reshape(pairs, tokens, -1)
    keys = keys.reshape(pairs, tokens, -1).transpose(1, 2).contiguous()  # (pairs, width, tokens), laid out once
    values = v.reshape(pairs, tokens, v.shape[-1])
    rows = min(tokens, max(1, scores_per_step // tokens))
    pairs_per_step = max(1, scores_per_step // (rows * tokens))
    out = torch.empty_like(values)
    for first in range(0, pairs, pairs_per_step):
        group = slice(first, first + pairs_per_step)
        for start in range(0, tokens, rows):
            block = slice(start, start + rows)
            if fold:
                scores = torch.bmm(queries[group, block], keys[group])  # (pairs, rows, tokens)
            else:
                bias = (rel_h[group, block] + rel_w[group, block]).flatten(-2)
                scores = torch.baddbmm(bias, queries[group, block], keys[group])
            out[group, block] = torch.bmm(scores.softmax(dim=-1), values[group])
    return out.reshape(batch, heads, tokens, -1)


def flex_rel_pos_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
    scale: float,
) -> torch.Tensor:
    """As :func:`folded_rel_pos_attention`, computed by ``flex_attention`` with the decomposed
    bias as its ``score_mod`` (compiled on CUDA). Same arguments and (B, heads, h * w, d) result."""
    from torch.nn.attention.flex_attention import flex_attention

    width = size[1]
    rel_h, rel_w = rel_pos_terms(q, rel_pos_h, rel_pos_w, size)

    def score_mod(score, b, h, query, key):
        return score + rel_h[b, h, query, key // width] + rel_w[b, h, query, key % width]

    attend = _compiled_flex_attention() if q.is_cuda else flex_attention
    return attend(q, k, v, score_mod=score_mod, scale=scale)


@functools.cache
def _compiled_flex_attention():
    """``torch.compile(flex_attention)``, made once per process."""
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


class _FastAttention(Attention):
    """segment-anything's ``Attention`` (same parameters) with its attention proper done by
    :meth:`attend`; subclasses choose how the relative-position bias is applied."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, _ = x.shape
        qkv = self.qkv(x).reshape(batch, height * width, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, tokens, d) each
        if self.use_rel_pos:
            out = self.attend(q, k, v, (height, width))
        else:
            out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        out = out.transpose(1, 2).reshape(batch, height, width, -1)
        return self.proj(out)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """(B, heads, h * w, d) q, k, v of an h x w grid -> (B, heads, h * w, d), with the bias."""
        raise NotImplementedError


class FoldedAttention(_FastAttention):
    """The bias folded into the dot products (:func:`folded_rel_pos_attention`)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return folded_rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, size, self.scale)


class FlexAttention(_FastAttention):
    """The bias as ``flex_attention``'s ``score_mod`` (:func:`flex_rel_pos_attention`)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return flex_rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, size, self.scale)


class SdpaAttention(_FastAttention):
    """The bias built as a (tokens x tokens) additive mask (:func:`sdpa_rel_pos_attention`)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return sdpa_rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, size, self.scale)


class ChunkedAttention(_FastAttention):
    """Matrix products in cache-sized steps of heads and queries (:func:`chunked_rel_pos_attention`)."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return chunked_rel_pos_attention(q, k, v, self.rel_pos_h, self.rel_pos_w, size, self.scale)


ATTENTION = {"folded": FoldedAttention, "sdpa": SdpaAttention, "chunked": ChunkedAttention, "flex": FlexAttention}
# The same computation as functions of (q, k, v, rel_pos_h, rel_pos_w, size, scale): what the
# attention choice times.
ATTENTION_FUNCTIONS = {
    "folded": folded_rel_pos_attention,
    "sdpa": sdpa_rel_pos_attention,
    "chunked": chunked_rel_pos_attention,
    "flex": flex_rel_pos_attention,
}


def check_dtype(dtype: str) -> str:
    """``dtype`` when it names a precision of :data:`DTYPES`; else a ValueError saying which."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}; got {dtype!r}")
    return dtype


def make_fast(
    encoder: ImageEncoderViT, dtype: str = "fp32", compile: bool = False, attention: str = "folded"
) -> torch.nn.Module:
    """Switch ``encoder``'s attention to ``attention`` (``folded``, ``sdpa``, ``chunked`` or
    ``flex``, see the module's docstring) and cast it to ``dtype`` (fp32, bf16 or fp16).

    Returns the encoder, wrapped by ``torch.compile`` when ``compile`` is True. Inputs must then
    be given in ``dtype``; see :func:`encode`.
    """
    check_dtype(dtype)
    if attention not in ATTENTION:
        raise ValueError(f"attention must be one of {sorted(ATTENTION)}; got {attention!r}")
    for block in encoder.blocks:
        if isinstance(block.attn, Attention):  # segment-anything's, or a fast one already
            block.attn.__class__ = ATTENTION[attention]  # same parameters, faster forward
    encoder.to(DTYPES[dtype])
    return torch.compile(encoder) if compile else encoder


def encode(encoder: torch.nn.Module, pixels: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """(B, 3, S, S) normalised pixels -> (B, C, S/16, S/16) float32 embeddings, computed in
    ``dtype`` (the encoder's own by default)."""
    if dtype is None:
        dtype = next(iter(encoder.parameters())).dtype
    with torch.inference_mode():
        return encoder(pixels.to(dtype)).float()
