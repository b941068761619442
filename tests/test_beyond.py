"""Completion past the image border through the predictor: the canvas result, the in-frame part
unchanged, only border objects extended and only within their mirror prior."""

import dataclasses

import numpy as np
import pytest

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.beyond import beyond_prior
from amodal_sam.canvas import Canvas, image_on_canvas
from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.decision import Decision

from conftest import random_image

H, W = 40, 48


def _masks():
    """Object 0 touches the left border; object 1 lies inside the image, clear of every border."""
    masks = np.zeros((2, H, W), bool)
    masks[0, 10:30, 0:12] = True
    masks[1, 12:28, 25:40] = True
    return masks


@pytest.fixture
def predictor(tiny_model):
    # scene mode decides loosely inside the prior, never outside it: every prior pixel the
    # random head gives any weight is taken, and none beyond it
    tiny_model.config = dataclasses.replace(
        tiny_model.config, scene_hidden_threshold=1e-4, scene_outside_threshold=1.0, scene_plausible_share=1.0
    )
    predictor = AmodalPredictor(tiny_model, device="cpu")
    predictor.set_image(random_image(H, W))
    return predictor


def test_the_canvas_image_puts_the_image_inside_the_fill():
    image = random_image(4, 6)
    canvas = Canvas.around((4, 6), 0.5)
    placed = image_on_canvas(image, canvas, (123.7, 116.3, 103.5))
    assert placed.shape == (8, 12, 3) and np.array_equal(placed[2:6, 3:9], image)
    assert (placed[0, 0] == [124, 116, 104]).all() and (placed[7, 11] == [124, 116, 104]).all()


def test_beyond_zero_or_none_is_the_plain_completion(predictor):
    masks = _masks()
    plain = predictor.complete(masks[0])
    for beyond in (None, 0, 0.0):
        result = predictor.complete(masks[0], beyond=beyond)
        assert result.canvas is None and result.canvas_origin == (0, 0) and not result.out_of_frame.any()
        assert np.array_equal(result.amodal, plain.amodal)
    scene = predictor.complete_scene(masks, beyond=0)
    assert scene.canvas is None and np.array_equal(scene.amodal, predictor.complete_scene(masks).amodal)


def test_a_border_object_is_extended_only_within_its_mirror_prior_and_keeps_its_in_frame_mask(predictor):
    masks = _masks()
    plain = predictor.complete(masks[0])
    result = predictor.complete(masks[0], beyond=0.5)
    canvas = result.canvas
    assert (canvas.origin, canvas.size) == ((24, 20), (80, 96)) and result.canvas_origin == (24, 20)
    assert result.amodal.shape == result.visible.shape == result.occluder.shape == (80, 96)
    assert np.array_equal(canvas.crop(result.amodal), plain.amodal)  # the in-frame part is the image's own
    assert np.array_equal(canvas.crop(result.visible), masks[0]) and not canvas.out_of_frame(result.visible).any()
    assert canvas.out_of_frame(result.occluder).sum() == 80 * 96 - H * W  # the border hides the margins
    outside = result.out_of_frame
    prior = beyond_prior(masks[0], canvas)
    assert outside.any() and not (outside & ~prior).any()  # taken where the prior allows, only there
    assert not outside[:, 24 + W :].any()  # nothing beyond the right border, which the object does not touch


def test_an_object_clear_of_the_border_gains_nothing_outside(predictor):
    masks = _masks()
    result = predictor.complete(masks[1], beyond=0.5)
    assert result.amodal.shape == (80, 96) and not result.out_of_frame.any()
    assert np.array_equal(result.canvas.crop(result.amodal), predictor.complete(masks[1]).amodal)


def test_a_scene_on_the_canvas_extends_its_border_objects_and_keeps_its_order(predictor):
    masks = _masks()
    plain = predictor.complete_scene(masks)
    scene = predictor.complete_scene(masks, beyond=0.25)
    canvas = scene.canvas
    assert canvas.size == (60, 72) and scene.amodal.shape == scene.visible.shape == (2, 60, 72)
    assert np.array_equal(canvas.crop(scene.amodal), plain.amodal)
    assert np.array_equal(scene.layers, plain.layers) and np.array_equal(scene.occludes, plain.occludes)
    outside = scene.out_of_frame
    assert outside[0].any() and not outside[1].any()
    assert np.array_equal(scene.results[0].amodal, scene.amodal[0]) and scene.results[0].canvas == canvas


def test_beyond_needs_a_valid_share_and_the_images_pixels(predictor, tiny_model):
    with pytest.raises(ValueError, match="beyond must be a number from 0 to 2"):
        predictor.complete(_masks()[0], beyond=-1)
    with pytest.raises(ValueError, match="beyond must be"):
        predictor.complete_scene(_masks(), beyond=float("nan"))
    config = AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), detail_branch=False)
    without_detail = AmodalSAM(config=config)  # the embedding is all its decoder reads
    embedding_only = AmodalPredictor(without_detail, device="cpu")
    embedding_only.set_embedding(without_detail.encode(random_image(H, W)).embedding, (H, W))
    with pytest.raises(ValueError, match=r"beyond needs the image's pixels.*set_image"):
        embedding_only.complete(_masks()[0], beyond=0.5)
    assert Decision(1e-4, 1.0) == tiny_model.config.decision_for(True, None)


def _write_inputs(folder):
    from amodal_sam.image_io import write_mask, write_rgb

    write_rgb(folder / "image.png", random_image(H, W))
    write_mask(folder / "visible.png", _masks()[0])
    index = np.zeros((H, W), np.uint8)
    index[_masks()[0]], index[_masks()[1]] = 1, 2
    write_mask(folder / "objects.png", index)  # an index map: 0 background, 1 and 2 the objects


def test_the_command_line_writes_the_canvas_mask_and_where_the_image_lies(tiny_model, tmp_path, monkeypatch):
    import json

    from amodal_sam import factory
    from amodal_sam.cli import main
    from amodal_sam.mask_files import read_mask

    monkeypatch.setattr(factory, "create_model", lambda **_: tiny_model)
    _write_inputs(tmp_path)
    complete = ["complete", str(tmp_path / "image.png"), "--visible", str(tmp_path / "visible.png")]
    assert main([*complete, "--out", str(tmp_path / "plain.png")]) == 0
    assert main([*complete, "--out", str(tmp_path / "zero.png"), "--beyond", "0"]) == 0
    assert np.array_equal(read_mask(tmp_path / "zero.png"), read_mask(tmp_path / "plain.png"))
    assert json.loads((tmp_path / "zero.json").read_text()) == {
        "canvas_origin": [0, 0],
        "canvas_size": [H, W],
        "image_size": [H, W],
    }
    assert not (tmp_path / "plain.json").exists()
    assert (
        main([*complete, "--out", str(tmp_path / "wide.png"), "--beyond", "0.5", "--overlay", str(tmp_path / "o.png")])
        == 0
    )
    wide = read_mask(tmp_path / "wide.png")
    where = json.loads((tmp_path / "wide.json").read_text())
    assert where == {"canvas_origin": [24, 20], "canvas_size": [80, 96], "image_size": [H, W]} and wide.shape == (
        80,
        96,
    )
    assert np.array_equal(wide[20 : 20 + H, 24 : 24 + W], read_mask(tmp_path / "plain.png"))
    scene = ["scene", str(tmp_path / "image.png"), "--masks", str(tmp_path / "objects.png")]
    assert (
        main([*scene, "--out", str(tmp_path / "scene"), "--beyond", "0.25", "--overlay", str(tmp_path / "s.png")]) == 0
    )
    written = json.loads((tmp_path / "scene" / "scene.json").read_text())
    assert (written["canvas_origin"], written["canvas_size"], written["image_size"]) == ([12, 10], [60, 72], [H, W])
    assert read_mask(tmp_path / "scene" / "amodal_000.png").shape == (60, 72)
    assert main([*scene, "--out", str(tmp_path / "plain_scene")]) == 0
    assert "canvas_origin" not in json.loads((tmp_path / "plain_scene" / "scene.json").read_text())
    from amodal_sam.image_io import read_rgb

    # the overlays are the canvas, the legend beside it
    assert read_rgb(tmp_path / "o.png").shape[0] == 80 and read_rgb(tmp_path / "s.png").shape[0] == 60


@pytest.mark.parametrize("bad", ["-0.5", "nan", "inf", "3", "wide"])
def test_the_command_line_refuses_bad_margins_in_one_line(bad, tmp_path, capsys):
    from amodal_sam.cli import main

    _write_inputs(tmp_path)
    argv = ["complete", str(tmp_path / "image.png"), "--visible", str(tmp_path / "visible.png"), "--out", "x.png"]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--beyond", bad])
    assert stopped.value.code == 2
    assert "argument --beyond: it must be a number from 0 to 2" in capsys.readouterr().err


def test_the_beyond_example_runs_and_scores_its_cut_disc(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "beyond.png"
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "complete_beyond.py"), str(root / "checkpoints" / "demo"), str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "its visible part alone: 0.46" in done.stdout and out.is_file()


def test_the_canvas_is_encoded_once_per_image_and_canvas(predictor, monkeypatch):
    encoded = []
    original = predictor.model.encode
    monkeypatch.setattr(predictor.model, "encode", lambda image: encoded.append(image.shape) or original(image))
    masks = _masks()
    first = predictor.complete(masks[0], beyond=0.5)
    again = predictor.complete(masks[0], beyond=0.5)
    assert encoded == [(80, 96, 3)] and np.array_equal(first.amodal, again.amodal)
    predictor.complete_scene(masks, beyond=0.5)  # the same canvas: no new encoding
    predictor.complete(masks[0], beyond=0.25)  # another canvas
    predictor.complete(masks[1], beyond=0.75)  # clear of the border: the canvas is not needed
    assert encoded == [(80, 96, 3), (60, 72, 3)]
    predictor.set_image(random_image(H, W))  # a new image: its own canvas encoding
    predictor.complete(masks[0], beyond=0.25)
    assert encoded[-2:] == [(H, W, 3), (60, 72, 3)]


def test_eval_beyond_scores_the_model_beside_the_baselines_on_crops_of_whole_objects(tmp_path, capsys):
    import json

    import cv2

    from amodal_sam.cli import main

    source = tmp_path / "seq"
    source.mkdir()
    for index in range(2):
        mask = np.zeros((40, 60), np.uint8)
        mask[10:30, 15 + 10 * index : 35 + 10 * index] = 255  # a whole square away from every border
        cv2.imwrite(str(source / f"{index:05d}.jpg"), np.full((40, 60, 3), 80, np.uint8))
        cv2.imwrite(str(source / f"{index:05d}.png"), mask)
    out = tmp_path / "beyond.json"
    assert main(["eval-beyond", str(tmp_path), "--per-object", "2", "--report", str(out)]) == 0
    assert "| mirror |" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["model"] == "demo" and report["per_object"] == 2 and report["beyond"] == 0.5
    visible, mirror, model = (report["means"][name] for name in ("visible", "mirror", "model"))
    assert visible["crops"] == mirror["crops"] == model["crops"] == 4 and len(report["crops"]["model"]) == 4
    assert visible["outside_iou"] == 0 and visible["inside_iou"] == 1 and 0.4 < visible["aiou"] < 0.85
    # the reflection covers the cut columns and as many more as stayed visible (within the margin)
    assert 0 < mirror["outside_iou"] < 1 and mirror["inside_iou"] == 1
    # the model's in-frame mask is its plain completion: the visible square, a plain background hiding nothing
    assert all(0 <= crop["aiou"] <= 1 for crop in report["crops"]["model"]) and model["inside_iou"] > 0.9
