"""AmodalSAM modules: frozen SAM, decoder initialised from SAM's, batching over images."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from amodal_sam import AmodalSAM
from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.modeling.prompts import DecoderPrompts


def _prompts(model, count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    side = model.spec.image_size
    corners = torch.rand(count, 2, generator=generator) * side / 2
    boxes = torch.cat([corners, corners + side / 4], dim=1)
    low = model.spec.low_res_size
    levels = 2 * (torch.rand(count, low, low, generator=generator) > 0.5).float() - 1
    return boxes, model.mask_prompt(levels)


def _detail(model, images, seed=0):
    """Detail features of ``images`` random (normalised) input-frame pixel grids."""
    side = model.spec.image_size
    return model.detail_features(torch.randn(images, 3, side, side, generator=torch.Generator().manual_seed(seed)))


def test_decoder_starts_as_sams_decoder(tiny_model):
    ours, sam = tiny_model.decoder.state_dict(), tiny_model.sam.mask_decoder.state_dict()
    for key, tensor in sam.items():
        assert torch.equal(ours[key][: tensor.shape[0]], tensor), key
    # The added visible (4) and occluder (5) tokens start as SAM's single-answer token (0), with
    # its MLP and IoU row.
    for token in (4, 5):
        assert torch.equal(ours["mask_tokens.weight"][token], sam["mask_tokens.weight"][0])
        for name in ("weight", "bias"):
            iou_row = f"iou_prediction_head.layers.2.{name}"
            assert torch.equal(ours[iou_row][token], sam[iou_row][0])
        for key in tiny_model.decoder.output_hypernetworks_mlps[token].state_dict():
            assert torch.equal(
                ours[f"output_hypernetworks_mlps.{token}.{key}"], sam[f"output_hypernetworks_mlps.0.{key}"]
            )
    prompt_ours, prompt_sam = tiny_model.prompt_encoder.state_dict(), tiny_model.sam.prompt_encoder.state_dict()
    assert all(torch.equal(prompt_ours[k], v) for k, v in prompt_sam.items())


def test_decoder_output_shapes(tiny_model):
    boxes, mask_logits = _prompts(tiny_model, 3)
    with torch.no_grad():
        output = tiny_model.decode(
            torch.randn(1, 32, 16, 16), DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 1)
        )
    assert output.amodal_logits.shape == (3, 4, 64, 64) and output.amodal_iou.shape == (3, 4)
    assert output.hypotheses.shape == (3, 3, 64, 64) and output.hypothesis_iou.shape == (3, 3)
    assert output.visible_logits.shape == output.occluder_logits.shape == (3, 1, 64, 64)


def test_only_the_amodal_head_is_trainable(tiny_model):
    assert not any(p.requires_grad for p in tiny_model.sam.parameters())
    trainable = list(tiny_model.trainable_parameters())
    assert trainable and all(p.requires_grad for p in trainable)
    heads = (tiny_model.decoder, tiny_model.prompt_encoder, tiny_model.occluder_prompt, tiny_model.memory_prompt)
    expected = sum(p.numel() for head in heads for p in head.parameters())
    assert sum(p.numel() for p in trainable) == expected
    tiny_model.train()
    assert tiny_model.decoder.training and not tiny_model.sam.training
    assert {k.split(".")[0] for k in tiny_model.trainable_state_dict()} == {
        "prompt_encoder",
        "decoder",
        "occluder_prompt",
        "memory_prompt",
    }


def test_a_model_saved_before_the_occluder_prompt_loads_and_behaves_as_before(tmp_path):
    """The shipped-before-scenes layout: a config without ``occluder_prompt`` and weights without
    its tensors load into a model without it; known occluders then only gate the rule."""
    import json

    model = AmodalSAM.random("tiny", seed=0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["occluder_prompt"] is True
    del config["occluder_prompt"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    weights = load_file(str(tmp_path / "model.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("occluder_prompt.")}, str(tmp_path / "model.safetensors")
    )
    old = AmodalSAM.from_pretrained(tmp_path)
    assert old.occluder_prompt is None and not old.config.occluder_prompt
    assert set(old.trainable_state_dict()) == {k for k in weights if not k.startswith("occluder_prompt.")}
    again = AmodalSAM.from_pretrained(tmp_path)
    again.save_pretrained(tmp_path / "resaved")
    assert json.loads((tmp_path / "resaved" / "config.json").read_text())["occluder_prompt"] is False


def test_loss_gradients_reach_the_decoder_but_not_sam(tiny_model):
    embedding = torch.randn(1, 32, 16, 16)
    boxes, mask_logits = _prompts(tiny_model, 2)
    output = tiny_model.decode(embedding, DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 1))
    (output.amodal_logits.mean() + output.visible_logits.mean() + output.occluder_logits.mean()).backward()
    assert tiny_model.decoder.mask_tokens.weight.grad is not None
    assert tiny_model.prompt_encoder.mask_downscaling[0].weight.grad is not None
    # the fusion's last convolution starts at zero, so only it learns on the first step
    assert tiny_model.decoder.detail_fusion.layers[-1].weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_model.sam.parameters())


def test_prompts_of_several_images_decode_as_one_image_at_a_time(tiny_model):
    embeddings = torch.randn(3, 32, 16, 16)
    boxes, mask_logits = _prompts(tiny_model, 5)
    image_index = torch.tensor([2, 0, 2, 1, 0])
    torch.nn.init.normal_(tiny_model.decoder.detail_fusion.layers[-1].weight)  # let the pixels matter
    with torch.no_grad():
        detail = _detail(tiny_model, 3)
        together = tiny_model.decode(
            embeddings, DecoderPrompts(mask_logits, boxes), image_index=image_index, detail_features=detail
        )
        for row, image in enumerate(image_index.tolist()):
            alone = tiny_model.decode(
                embeddings[image : image + 1],
                DecoderPrompts(mask_logits[row : row + 1], boxes[row : row + 1]),
                detail_features=detail[image : image + 1],
            )
            torch.testing.assert_close(together.amodal_logits[row], alone.amodal_logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(together.amodal_iou[row], alone.amodal_iou[0], atol=1e-5, rtol=1e-5)


def test_several_images_without_image_index_is_an_error(tiny_model):
    boxes, mask_logits = _prompts(tiny_model, 2)
    with pytest.raises(ValueError, match="image_index is required"):
        tiny_model.decode(
            torch.randn(2, 32, 16, 16), DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 2)
        )


def test_a_fresh_detail_branch_leaves_the_decoder_output_unchanged():
    spec = sam_spec_for("tiny")
    torch.manual_seed(0)
    plain = AmodalSAM(config=AmodalConfig(sam_type="tiny", sam_spec=spec, detail_branch=False))
    with_detail = AmodalSAM(config=AmodalConfig.current("tiny", spec), sam=plain.sam)
    boxes, mask_logits = _prompts(plain, 3)
    embedding = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        expected = plain.decode(embedding, DecoderPrompts(mask_logits, boxes))
        got = with_detail.decode(embedding, DecoderPrompts(mask_logits, boxes), detail_features=_detail(with_detail, 1))
    torch.testing.assert_close(got.amodal_logits, expected.amodal_logits)
    torch.testing.assert_close(got.occluder_logits, expected.occluder_logits)


def test_a_trained_detail_branch_reads_the_pixels(tiny_model):
    torch.nn.init.normal_(tiny_model.decoder.detail_fusion.layers[-1].weight)
    boxes, mask_logits = _prompts(tiny_model, 1)
    embedding = torch.randn(1, 32, 16, 16)
    with torch.no_grad():
        a, b = (
            tiny_model.decode(embedding, DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 1, s))
            for s in (0, 1)
        )
    assert a.amodal_logits.shape == (1, 4, 64, 64)
    assert not torch.allclose(a.amodal_logits, b.amodal_logits)


def test_detail_features_are_checked(tiny_model):
    boxes, mask_logits = _prompts(tiny_model, 2)
    embedding = torch.randn(1, 32, 16, 16)
    with pytest.raises(ValueError, match="detail_features .* are required"):
        tiny_model.decode(embedding, DecoderPrompts(mask_logits, boxes))
    with pytest.raises(ValueError, match="detail_features hold 2 images; image_embeddings hold 1"):
        tiny_model.decode(embedding, DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 2))
    plain = AmodalSAM(config=AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), detail_branch=False))
    assert plain.detail_features(torch.zeros(1, 3, 256, 256)) is None
    with pytest.raises(ValueError, match="no detail branch"):
        plain.decode(embedding, DecoderPrompts(mask_logits, boxes), detail_features=_detail(tiny_model, 1))


def test_random_models_are_reproducible_per_seed():
    a, b, c = AmodalSAM.random("tiny", seed=3), AmodalSAM.random("tiny", seed=3), AmodalSAM.random("tiny", seed=4)
    key = "image_encoder.blocks.0.attn.qkv.weight"
    assert torch.equal(a.sam.state_dict()[key], b.sam.state_dict()[key])
    assert not torch.equal(a.sam.state_dict()[key], c.sam.state_dict()[key])


def test_vit_b_amodal_head_size():
    model = AmodalSAM.random("vit_b")
    # the occluder prompt and the memory prompt, each: conv 1->4 (2x2) 20, LayerNorm 8, conv 4->16
    # (2x2) 272, LayerNorm 32, conv 16->256 (1x1) 4352: 4684 on top of the 4_394_098 of the prompt
    # encoder and decoder
    assert sum(p.numel() for p in model.trainable_parameters()) == 4_394_098 + 2 * 4_684


def test_detail_fusion_equals_its_definition():
    """The per-image half (image_term) plus the per-prompt half, with the mask vectors folded into
    the last convolution, equals the fusion as defined: the mask vectors dotted with
    layers(concat(upscaled, detail)), zero padding included, for one prompt and for several."""
    from amodal_sam.modeling.detail_encoder import DetailFusion

    torch.manual_seed(0)
    fusion = DetailFusion(chans=6, detail_chans=4)
    for parameter in fusion.parameters():
        torch.nn.init.normal_(parameter)  # the last convolution starts at zero: make it count
    for prompts in (1, 3):
        upscaled, detail = torch.randn(prompts, 6, 9, 11), torch.randn(1, 4, 9, 11)
        vectors = torch.randn(prompts, 5, 6)  # 5 mask tokens
        fused = fusion.layers(torch.cat([upscaled, detail.expand(prompts, -1, -1, -1)], dim=1))
        expected = torch.einsum("ntc,nchw->nthw", vectors, fused)
        actual = fusion(upscaled.permute(0, 2, 3, 1), fusion.image_term(detail), vectors)
        torch.testing.assert_close(actual, expected, atol=1e-3, rtol=1e-4)
        assert expected.abs().max() > 10.0  # the fusion counts here
