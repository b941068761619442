"""The fast encoder path gives segment-anything's embeddings."""

import copy
import dataclasses
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from amodal_sam import AmodalSAM
from amodal_sam.config import SAM_SPECS
from amodal_sam.modeling.fast_encoder import (
    ATTENTION,
    chunked_rel_pos_attention,
    flex_rel_pos_attention,
    folded_rel_pos_attention,
    make_fast,
)
from amodal_sam.modeling.sam_builder import build_image_encoder

# tiny: 16 x 16 tokens in 4 x 4 windows; odd: windows of 5 need padding (16 is no multiple of 5).
SPECS = {
    "tiny": SAM_SPECS["tiny"],
    "odd": dataclasses.replace(SAM_SPECS["tiny"], window_size=5, encoder_global_attn_indexes=(0,)),
}


def _encoder(spec, seed=0):
    torch.manual_seed(seed)
    encoder = build_image_encoder(spec).eval()
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if "rel_pos" in name or "pos_embed" in name:  # zero at init in SAM: make them matter
                parameter.normal_(0, 0.5)
    return encoder


@pytest.mark.filterwarnings("ignore:.*flex_attention.*:UserWarning")
@pytest.mark.parametrize("attention", ["folded", "sdpa", "chunked", "flex"])
@pytest.mark.parametrize("name", SPECS)
def test_fast_attention_in_fp32_matches_reference(name, attention):
    """Windowed blocks (4 x 4 windows; windows of 5 padded over 16 tokens) and global blocks."""
    reference = _encoder(SPECS[name])
    fast = make_fast(copy.deepcopy(reference), dtype="fp32", attention=attention)
    assert all(type(block.attn) is ATTENTION[attention] for block in fast.blocks)
    assert any(block.window_size == 0 for block in fast.blocks) and any(block.window_size for block in fast.blocks)
    pixels = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        expected, actual = reference(pixels), fast(pixels)
    assert (actual - expected).abs().max() < 1e-4


@pytest.mark.filterwarnings("ignore:.*flex_attention.*:UserWarning")
@pytest.mark.parametrize(
    "attend",
    [
        folded_rel_pos_attention,
        flex_rel_pos_attention,
        partial(chunked_rel_pos_attention, scores_per_step=4 * 15),
        partial(chunked_rel_pos_attention, scores_per_step=3 * 15 * 15),
    ],
    ids=["folded", "flex", "chunked by 4 queries of one head", "chunked by 3 whole heads"],
)
@pytest.mark.parametrize("dim", [6, 8], ids=["head narrower than h + w", "head as wide as h + w"])
def test_folded_flex_and_chunked_bias_equal_the_bias_written_out(attend, dim):
    """The folded, flex and chunked attention (4 queries of one head per step: the last block has
    3; or 3 whole heads per step of the 4 (image, head) pairs: the last step has 1) against softmax(scale q k^T + bias) v with SAM's bias written out
    entry by entry from its definition: bias[(qh, qw), (kh, kw)] = q . Rh[qh - kh + h - 1]
    + q . Rw[qw - kw + w - 1], on a 3 x 5 grid (tokens 15, not square, not a multiple of 8), with
    heads of width 6 (the chunked path adds the bias) and 8 (it folds the bias in)."""
    torch.manual_seed(3)
    height, width = 3, 5
    q, k, v = (torch.randn(2, 2, height * width, dim, dtype=torch.float64) for _ in range(3))
    table_h = torch.randn(2 * height - 1, dim, dtype=torch.float64)
    table_w = torch.randn(2 * width - 1, dim, dtype=torch.float64)
    bias = torch.zeros(2, 2, height * width, height * width, dtype=torch.float64)
    for query in range(height * width):
        for key in range(height * width):
            (qh, qw), (kh, kw) = divmod(query, width), divmod(key, width)
            row_term = q[:, :, query] @ table_h[qh - kh + height - 1]
            bias[:, :, query, key] = row_term + q[:, :, query] @ table_w[qw - kw + width - 1]
    expected = torch.softmax(0.5 * q @ k.transpose(-1, -2) + bias, dim=-1) @ v
    actual = attend(q, k, v, table_h, table_w, (height, width), scale=0.5)
    assert actual.shape == (2, 2, height * width, dim)
    torch.testing.assert_close(actual, expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    ("dim", "scores_per_step", "largest", "product"),
    [
        (6, 15, 15, "baddbmm"),  # one query of one head a step: at least one query's scores
        (6, 4 * 15, 4 * 15, "baddbmm"),
        (6, 15 * 15, 15 * 15, "baddbmm"),  # one whole head a step
        (8, 3 * 15 * 15, 3 * 15 * 15, "bmm"),
        (8, 2 * 15 * 15 - 1, 15 * 15, "bmm"),  # not quite two heads: one
    ],
)
def test_chunked_steps_hold_at_most_their_scores_and_fold_the_bias_on_small_grids(
    monkeypatch, dim, scores_per_step, largest, product
):
    """Each step's scores fit ``scores_per_step`` (the bounded memory the path is for), every
    (image, head) pair's queries are scored once, and the bias is folded into the product (no
    ``baddbmm``) where h + w <= d (3 + 5 <= 8), added by it where the grid is wider (8 > 6)."""
    from conftest import record_score_products

    torch.manual_seed(0)
    height, width = 3, 5
    q, k, v = (torch.randn(2, 2, height * width, dim) for _ in range(3))
    tables = (torch.randn(2 * height - 1, dim), torch.randn(2 * width - 1, dim))
    products = record_score_products(monkeypatch, keys=height * width)
    chunked_rel_pos_attention(q, k, v, *tables, (height, width), 0.5, scores_per_step=scores_per_step)
    assert {name for name, _ in products} == {product}
    assert max(size for _, size in products) == largest
    assert sum(size for _, size in products) == 2 * 2 * 15 * 15


def test_make_fast_refuses_an_unknown_attention():
    with pytest.raises(ValueError, match="attention must be one of"):
        make_fast(_encoder(SPECS["tiny"]), attention="flash")


def test_several_images_per_call_equal_one_at_a_time():
    fast = make_fast(_encoder(SPECS["tiny"]))
    pixels = torch.randn(3, 3, 256, 256)
    with torch.no_grad():
        together = fast(pixels)
        for i in range(3):
            assert (fast(pixels[i : i + 1])[0] - together[i]).abs().max() < 1e-5


@pytest.mark.filterwarnings("ignore:.*flex_attention.*:UserWarning")
@pytest.mark.parametrize("attention", ["folded", "sdpa", "chunked", "flex"])
def test_bf16_is_close_to_the_fp32_reference(attention):
    reference = _encoder(SPECS["tiny"])
    fast = make_fast(copy.deepcopy(reference), dtype="bf16", attention=attention)
    pixels = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        expected, actual = reference(pixels), fast(pixels.bfloat16()).float()
    assert F.cosine_similarity(actual.flatten(), expected.flatten(), dim=0) > 0.999


def test_accelerated_model_keeps_its_outputs_and_saves_fp32(tmp_path):
    from amodal_sam import AmodalPredictor

    from conftest import TEST_DEVICE, ellipse_mask, random_image

    image, mask = random_image(100, 140), ellipse_mask(100, 140)
    reference = AmodalPredictor(AmodalSAM.random("tiny", seed=0), device=TEST_DEVICE)
    reference.set_image(image)
    fast_model = AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="fp32")
    fast = AmodalPredictor(fast_model, device=TEST_DEVICE)
    fast.set_image(image)
    assert (fast.image.embedding - reference.image.embedding).abs().max() < 1e-4
    a, b = fast.complete(visible_mask=mask), reference.complete(visible_mask=mask)
    assert abs(a.low_res_logits - b.low_res_logits).max() < 1e-3
    AmodalSAM.random("tiny", seed=0).accelerate_encoder(dtype="bf16").save_pretrained(tmp_path)
    from safetensors.torch import load_file

    assert all(t.dtype == torch.float32 for t in load_file(str(tmp_path / "sam.safetensors")).values())


def test_bad_dtype_is_named():
    with pytest.raises(ValueError, match="dtype must be one of"):
        make_fast(_encoder(SPECS["tiny"]), dtype="int8")


@pytest.mark.filterwarnings("ignore:.*flex_attention.*:UserWarning")
@pytest.mark.parametrize("attention", ["folded", "sdpa", "chunked", "flex"])
def test_blocks_without_relative_positions_attend_as_segment_anything(attention):
    """An attention block built without relative-position tables takes the plain SDPA branch."""
    from segment_anything.modeling.image_encoder import Attention

    torch.manual_seed(0)
    reference = Attention(dim=16, num_heads=2, use_rel_pos=False).eval()
    fast = copy.deepcopy(reference)
    fast.__class__ = ATTENTION[attention]
    x = torch.randn(2, 3, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), reference(x), atol=1e-5, rtol=1e-5)
