"""ONNX export of the amodal head: the graph run by onnxruntime gives the PyTorch head's outputs
(every prompt kind, a varying number of prompts and points), the predictor and the CLI give the
same masks through it, and a file that does not belong to the model is refused."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.cli import main
from amodal_sam.image_io import read_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.modeling.prompts import DecoderPrompts
from amodal_sam.onnx_export import export_onnx, point_inputs

from conftest import ellipse_mask, random_image

pytest.importorskip("onnxruntime", reason="the ONNX tests need the onnx extra (pip install -e '.[test]')")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
LOGIT_TOLERANCE = 1e-3  # fp32 graph against fp32 PyTorch: max abs difference of logits
MASK_AGREEMENT = 0.999  # share of pixels where the thresholded masks agree


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny model with head weights SAM does not have (the detail branch and the occluder and
    memory prompts start at zero: perturbed, they take part), and its exported head."""
    model = copy.deepcopy(AmodalSAM.random("tiny", seed=0, sam_prompts=True)).eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    path = export_onnx(model, tmp_path_factory.mktemp("onnx") / "head.onnx")
    return model, path


def _prompts(model, count, points_per_prompt, seed):
    spec = model.spec
    low_res, size = spec.low_res_size, spec.image_size
    generator = torch.Generator().manual_seed(seed)
    corners = torch.rand(count, 2, 2, generator=generator) * size
    boxes = torch.cat([corners.min(dim=1).values, corners.max(dim=1).values], dim=1)
    coords = torch.rand(count, points_per_prompt, 2, generator=generator) * size
    labels = torch.randint(0, 2, (count, points_per_prompt), generator=generator)
    return {
        "embedding": torch.randn(1, spec.prompt_embed_dim, low_res // 4, low_res // 4, generator=generator),
        "detail": model.detail_features(torch.randn(1, 3, size, size, generator=generator)),
        "mask_logits": 10 * torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1),
        "boxes": boxes,
        "points": (coords, labels),
        "occluders": torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1),
        "known": torch.arange(count) % 2 == 0,  # known occluders for every other prompt
        "memory": torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1),
        "remembered": torch.arange(count) % 2 == 1,  # a shape memory for the other prompts
    }


def _decode(model, prompts, kinds):
    with torch.no_grad():
        return model.decode(
            prompts["embedding"],
            DecoderPrompts(
                mask_logits=prompts["mask_logits"] if "mask" in kinds else None,
                boxes=prompts["boxes"] if "box" in kinds else None,
                points=prompts["points"] if "points" in kinds else None,
                occluder_levels=prompts["occluders"] if "occluders" in kinds else None,
                occluders_known=prompts["known"] if "occluders" in kinds else None,
                memory_levels=prompts["memory"] if "memory" in kinds else None,
                memory_known=prompts["remembered"] if "memory" in kinds else None,
            ),
            detail_features=prompts["detail"],
        )


@pytest.mark.parametrize(
    ("kinds", "count", "points_per_prompt"),
    [
        (("mask", "box"), 3, 1),  # the visible-mask path: mask and its box
        (("mask", "box", "occluders"), 4, 1),  # scene mode
        (("mask", "box", "occluders", "memory"), 4, 1),  # video, scene form
        (("mask", "box", "memory"), 3, 1),  # video, one object
        (("points",), 2, 3),  # points alone: padded with a "no point"
        (("points", "box"), 5, 2),
        (("box",), 1, 1),
    ],
)
def test_the_onnx_head_gives_the_pytorch_heads_outputs(trained, kinds, count, points_per_prompt):
    model, path = trained
    prompts = _prompts(model, count, points_per_prompt, seed=count)
    reference = _decode(model, prompts, kinds)
    onnx_model = copy.copy(model).use_onnx_decoder(path)  # the same modules, decoded through onnxruntime
    exported = _decode(onnx_model, prompts, kinds)
    for name in ("amodal_logits", "amodal_iou", "visible_logits", "occluder_logits"):
        ours, theirs = getattr(exported, name), getattr(reference, name)
        assert ours.shape == theirs.shape, name
        assert float((ours - theirs).abs().max()) < LOGIT_TOLERANCE, name
    agreement = ((exported.amodal_logits > 0) == (reference.amodal_logits > 0)).float().mean()
    assert float(agreement) > MASK_AGREEMENT


def test_point_inputs_put_points_then_box_corners_and_pad_points_alone():
    boxes = torch.tensor([[1.0, 2, 3, 4]])
    points = (torch.tensor([[[5.0, 6]]]), torch.tensor([[1]]))
    coords, labels = point_inputs(boxes, points, 1)
    assert coords.tolist() == [[[5, 6], [1, 2], [3, 4]]] and labels.tolist() == [[1, 2, 3]]
    coords, labels = point_inputs(None, points, 1)
    assert coords.tolist() == [[[5, 6], [0, 0]]] and labels.tolist() == [[1, -1]]
    with pytest.raises(ValueError, match="boxes or points"):
        point_inputs(None, None, 1)


def test_the_predictor_completes_through_the_onnx_head_as_through_pytorch(trained):
    model, path = trained
    image, visible = random_image(90, 120), ellipse_mask(90, 120)
    occluder = ellipse_mask(90, 120, center=(0.7, 0.5), radii=(0.2, 0.3)) & ~visible

    def run(m):
        predictor = AmodalPredictor(m, device="cpu")
        predictor.set_image(image)
        return predictor.complete(visible_mask=visible), predictor.complete_scene(np.stack([visible, occluder]))

    (single, scene), (onnx_single, onnx_scene) = run(model), run(copy.copy(model).use_onnx_decoder(path))
    assert (single.amodal == onnx_single.amodal).mean() > MASK_AGREEMENT
    assert abs(single.score - onnx_single.score) < LOGIT_TOLERANCE
    assert (scene.amodal == onnx_scene.amodal).mean() > MASK_AGREEMENT
    assert np.array_equal(scene.layers, onnx_scene.layers)


def test_a_file_from_other_weights_or_no_file_is_refused(trained, tmp_path):
    model, path = trained
    other = AmodalSAM.random("tiny", seed=0, sam_prompts=True)  # the same shapes, the weights SAM's
    with pytest.raises(ValueError, match="other weights"):
        other.use_onnx_decoder(path)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        model.use_onnx_decoder(tmp_path / "missing.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a graph")
    with pytest.raises(ValueError, match="broken.onnx"):
        model.use_onnx_decoder(tmp_path / "broken.onnx")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path / "old.onnx", opset=11)
    assert copy.copy(model).use_onnx_decoder(path).use_onnx_decoder(None)._onnx_decoder is None


def test_the_demo_exported_on_the_command_line_completes_the_readme_example_alike(tmp_path, capsys):
    onnx_file = tmp_path / "demo.onnx"
    assert main(["export-onnx", "--model", "demo", "--out", str(onnx_file)]) == 0
    common = ["complete", str(EXAMPLES / "scene.png"), "--visible", str(EXAMPLES / "scene_visible.png")]
    assert main([*common, "--out", str(tmp_path / "torch.png")]) == 0
    assert main([*common, "--out", str(tmp_path / "onnx.png"), "--backend", "onnx", "--onnx", str(onnx_file)]) == 0
    torch_mask, onnx_mask = read_mask(tmp_path / "torch.png"), read_mask(tmp_path / "onnx.png")
    assert torch_mask.shape == read_rgb(EXAMPLES / "scene.png").shape[:2]
    assert (torch_mask == onnx_mask).mean() > MASK_AGREEMENT
    scene = ["scene", str(EXAMPLES / "scene.png"), "--masks", str(EXAMPLES / "scene_objects.png")]
    assert main([*scene, "--out", str(tmp_path / "t")]) == 0
    assert main([*scene, "--out", str(tmp_path / "o"), "--backend", "onnx", "--onnx", str(onnx_file)]) == 0
    for name in ("amodal_000.png", "amodal_001.png"):
        assert (read_mask(tmp_path / "t" / name) == read_mask(tmp_path / "o" / name)).mean() > MASK_AGREEMENT


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--backend", "onnx"], "name it with --onnx FILE"),
        (["--onnx", "head.onnx"], "is run with --backend onnx"),
        (["--backend", "onnx", "--onnx", "nowhere.onnx"], "nowhere.onnx"),
    ],
)
def test_backend_arguments_that_do_not_fit_exit_2_with_one_line(arguments, message, tmp_path, capsys):
    common = ["complete", str(EXAMPLES / "scene.png"), "--visible", str(EXAMPLES / "scene_visible.png")]
    assert main([*common, "--out", str(tmp_path / "m.png"), *arguments]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("amodal-sam complete: error:") and message in error


def test_export_refuses_an_output_that_is_not_onnx(tmp_path, capsys):
    assert main(["export-onnx", "--out", str(tmp_path / "head.txt")]) == 2
    assert "--out" in capsys.readouterr().err
