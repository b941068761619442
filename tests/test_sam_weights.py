"""SAM checkpoint reading and the segment-anything <-> transformers key mapping."""

import pytest
import torch
from safetensors.torch import save_file, save_model

from amodal_sam.config import SAM_SPECS
from amodal_sam.modeling.sam_builder import build_sam
from amodal_sam.sam_weights import (
    is_transformers_layout,
    load_state_dict_strict,
    read_sam_checkpoint,
    sam_to_transformers,
    transformers_to_sam,
)

SPEC = SAM_SPECS["tiny"]
TIED_ALIAS = "prompt_encoder.shared_embedding.positional_embedding"


class NotATensor:
    """An arbitrary pickled object: weights_only loading must refuse it."""


@pytest.fixture
def sam():
    torch.manual_seed(1)
    model = build_sam(SPEC)
    for name, parameter in model.named_parameters():
        if "rel_pos" in name:  # zero-initialised in segment-anything; make them count
            parameter.data.normal_()
    return model


def test_transformers_layout_round_trip_is_lossless(sam):
    original = sam.state_dict()
    converted = sam_to_transformers(original)
    assert is_transformers_layout(converted) and not is_transformers_layout(original)
    assert "vision_encoder.layers.0.layer_norm1.weight" in converted
    assert "mask_decoder.iou_prediction_head.proj_out.weight" in converted
    assert "mask_decoder.output_hypernetworks_mlps.3.layers.0.bias" in converted
    back = transformers_to_sam(converted)
    assert set(back) == set(original)
    for key, tensor in original.items():
        assert torch.equal(back[key], tensor), key


def _hf_tiny_model():
    transformers = pytest.importorskip("transformers")
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    vision = SamVisionConfig(
        hidden_size=SPEC.encoder_embed_dim,
        num_hidden_layers=SPEC.encoder_depth,
        num_attention_heads=SPEC.encoder_num_heads,
        global_attn_indexes=list(SPEC.encoder_global_attn_indexes),
        image_size=SPEC.image_size,
        patch_size=SPEC.patch_size,
        window_size=SPEC.window_size,
        output_channels=SPEC.prompt_embed_dim,
        mlp_dim=4 * SPEC.encoder_embed_dim,
        num_pos_feats=SPEC.prompt_embed_dim // 2,
    )
    prompt = SamPromptEncoderConfig(
        hidden_size=SPEC.prompt_embed_dim,
        image_size=SPEC.image_size,
        patch_size=SPEC.patch_size,
        mask_input_channels=SPEC.mask_in_chans,
    )
    decoder = SamMaskDecoderConfig(
        hidden_size=SPEC.prompt_embed_dim,
        mlp_dim=SPEC.decoder_mlp_dim,
        num_hidden_layers=SPEC.decoder_depth,
        num_attention_heads=SPEC.decoder_num_heads,
        iou_head_hidden_dim=SPEC.iou_head_hidden_dim,
    )
    config = transformers.SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)
    return transformers.SamModel(config).eval()


def test_mapping_fits_transformers_sam_model_and_gives_same_outputs(sam):
    hf_model = _hf_tiny_model()
    loaded = hf_model.load_state_dict(sam_to_transformers(sam.state_dict()), strict=False)
    # The one key left is transformers' tied alias of shared_image_embedding; files hold one of the two.
    assert loaded.missing_keys == [TIED_ALIAS] and loaded.unexpected_keys == []
    pixels = torch.randn(1, 3, SPEC.image_size, SPEC.image_size)
    points, labels = torch.tensor([[[[40.0, 70.0]]]]), torch.tensor([[[1]]])
    with torch.no_grad():
        ours = sam.image_encoder(pixels)
        theirs = hf_model.get_image_embeddings(pixels)
        sparse, dense = sam.prompt_encoder(points=(points[0], labels[0]), boxes=None, masks=None)
        masks, iou = sam.mask_decoder(ours, sam.prompt_encoder.get_dense_pe(), sparse, dense, True)
        hf_out = hf_model(image_embeddings=theirs, input_points=points, input_labels=labels, multimask_output=True)
    torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(hf_out.pred_masks[0], masks, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(hf_out.iou_scores[0], iou, atol=1e-5, rtol=1e-4)


def test_transformers_model_weights_load_into_segment_anything_modules(tmp_path):
    hf_model = _hf_tiny_model()
    path = tmp_path / "model.safetensors"
    save_model(hf_model, str(path))  # as the Hub's files: one copy of each tied tensor
    sam = build_sam(SPEC)
    load_state_dict_strict(sam, read_sam_checkpoint(path), "hf weights")
    torch.testing.assert_close(sam.image_encoder.neck[0].weight, hf_model.vision_encoder.neck.conv1.weight)


def test_a_transformers_state_dict_holding_both_tied_names_converts_whole(tmp_path):
    hf_model = _hf_tiny_model()
    state = hf_model.state_dict()  # in memory, or torch.save'd as pytorch_model.bin: both tied names
    assert TIED_ALIAS in state and "shared_image_embedding.positional_embedding" in state
    sam = build_sam(SPEC)
    load_state_dict_strict(sam, transformers_to_sam(state), "hf state dict")  # every tensor, none left over
    torch.save(state, tmp_path / "pytorch_model.bin")
    load_state_dict_strict(build_sam(SPEC), read_sam_checkpoint(tmp_path / "pytorch_model.bin"), "hf .bin")
    torch.testing.assert_close(sam.mask_decoder.iou_token.weight, hf_model.mask_decoder.iou_token.weight)


def test_pth_and_transformers_safetensors_load_identically(sam, tmp_path):
    pth = tmp_path / "sam_tiny.pth"
    torch.save(sam.state_dict(), pth)
    hf_file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in sam_to_transformers(sam.state_dict()).items()}, str(hf_file))
    from_pth, from_hf = read_sam_checkpoint(pth), read_sam_checkpoint(hf_file)
    assert set(from_pth) == set(from_hf) == set(sam.state_dict())
    for key in from_pth:
        assert torch.equal(from_pth[key], from_hf[key]), key


def test_pth_is_read_with_weights_only(tmp_path):
    path = tmp_path / "pickled.pth"
    torch.save({"x": NotATensor()}, path)
    with pytest.raises(ValueError, match="could not be read"):
        read_sam_checkpoint(path)


def test_strict_load_names_missing_and_misshaped_tensors(sam):
    state = sam.state_dict()
    del state["image_encoder.neck.0.weight"]
    state["mask_decoder.iou_token.weight"] = torch.zeros(2, 3)
    fresh = build_sam(SPEC)
    with pytest.raises(ValueError) as error:
        load_state_dict_strict(fresh, state, "SAM weights 'x.pth'")
    message = str(error.value)
    assert "image_encoder.neck.0.weight" in message and "missing" in message
    assert "mask_decoder.iou_token.weight: file (2, 3), model (1, 32)" in message


def test_strict_load_names_unexpected_and_non_finite_tensors_and_counts_the_rest(sam):
    state = sam.state_dict()
    missing = sorted(key for key in state if key.startswith("image_encoder.blocks."))[:12]
    for key in missing:
        del state[key]
    state["extra.weight"] = torch.zeros(3)
    state["mask_decoder.iou_token.weight"] = torch.full((1, 32), float("nan"))
    fresh = build_sam(SPEC)
    before = {key: tensor.clone() for key, tensor in fresh.state_dict().items()}
    with pytest.raises(ValueError) as error:
        load_state_dict_strict(fresh, state, "SAM weights 'x.pth'")
    assert str(error.value) == (
        f"SAM weights 'x.pth' do not fit the model: missing tensors {missing[:10]} and 2 more, "
        "unexpected tensors ['extra.weight'], "
        "non-finite values (NaN or infinity: a corrupt file?) in ['mask_decoder.iou_token.weight']"
    )
    for key, tensor in fresh.state_dict().items():  # refused whole: nothing half-loaded
        assert torch.equal(tensor, before[key]), key


@pytest.mark.parametrize("count", [10, 11])
def test_strict_load_lists_ten_tensors_of_a_kind_and_counts_the_rest(count, sam):
    state = sam.state_dict()
    extra = [f"extra.{index:02d}" for index in range(count)]
    for name in extra:
        state[name] = torch.zeros(1)
    with pytest.raises(ValueError) as error:
        load_state_dict_strict(build_sam(SPEC), state, "w")
    more = " and 1 more" if count == 11 else ""
    assert str(error.value) == f"w do not fit the model: unexpected tensors {extra[:10]}{more}"


def test_a_truncated_safetensors_sam_checkpoint_is_named(sam, tmp_path):
    path = tmp_path / "sam.safetensors"
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"^SAM checkpoint '.*sam.safetensors' is not a readable safetensors file"):
        read_sam_checkpoint(path)


def test_missing_checkpoint_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        read_sam_checkpoint(tmp_path / "nope.pth")


@pytest.mark.parametrize(
    "content", [{"weight": torch.zeros(2), "epoch": 3}, [torch.zeros(2)]], ids=["a non-tensor value", "a list"]
)
def test_a_pth_that_holds_no_state_dict_of_tensors_is_named(content, tmp_path):
    torch.save(content, tmp_path / "odd.pth")
    with pytest.raises(ValueError, match=r"SAM checkpoint '.*odd.pth' does not hold a state dict of tensors"):
        read_sam_checkpoint(tmp_path / "odd.pth")


def test_a_pth_that_wraps_its_state_dict_in_model_is_unwrapped(sam, tmp_path):
    torch.save({"model": sam.state_dict(), "epoch": torch.tensor(3)}, tmp_path / "wrapped.pth")
    state = read_sam_checkpoint(tmp_path / "wrapped.pth")
    assert set(state) == set(sam.state_dict())
    for key, tensor in sam.state_dict().items():
        assert torch.equal(state[key], tensor), key
