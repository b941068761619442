"""`amodal-sam scene` and its files: mask folders and index PNGs in, amodal PNGs, scene.json and
an overlay out, one-line errors for bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from amodal_sam.cli import main
from amodal_sam.image_io import read_rgb, write_mask, write_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.scene_files import read_scene_masks
from amodal_sam.visualize import object_colors, scene_picture

from conftest import random_image, rect_mask

H, W = 48, 64


def _rect(rows, cols) -> np.ndarray:
    return rect_mask((H, W), rows, cols)


def _objects() -> list[np.ndarray]:
    return [_rect((10, 40), (5, 25)), _rect((0, H), (25, 32)), _rect((12, 36), (32, 55))]


@pytest.fixture
def scene_files(tmp_path, tiny_model):
    write_rgb(tmp_path / "image.png", random_image(H, W))
    for name, mask in zip(("c.png", "a.png", "b.png"), _objects()):  # sorted order: a, b, c
        write_mask(tmp_path / "masks" / name, mask)
    index = np.zeros((H, W), np.uint8)
    for value, mask in zip((3, 7, 9), _objects()):
        index[mask] = value
    palette = Image.fromarray(index, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0] * 128)
    palette.save(tmp_path / "index.png")
    tiny_model.save_pretrained(tmp_path / "model")
    return tmp_path


def test_masks_come_from_a_folder_in_name_order_or_from_index_values(scene_files):
    folder = read_scene_masks(scene_files / "masks", (H, W))
    assert folder.names == ["a.png", "b.png", "c.png"]
    objects = _objects()
    np.testing.assert_array_equal(folder.masks, np.stack([objects[1], objects[2], objects[0]]))
    index = read_scene_masks(scene_files / "index.png", (H, W))  # a palette PNG keeps its indices
    assert index.names == [3, 7, 9]
    np.testing.assert_array_equal(index.masks, np.stack(objects))


def test_scene_command_writes_amodal_masks_scene_json_and_overlay(scene_files, capsys):
    out = scene_files / "out"
    args = ["scene", str(scene_files / "image.png"), "--masks", str(scene_files / "masks"), "--out", str(out)]
    assert main([*args, "--model", str(scene_files / "model"), "--overlay", str(scene_files / "o.png")]) == 0
    content = json.loads((out / "scene.json").read_text())
    assert [i["mask"] for i in content["instances"]] == ["a.png", "b.png", "c.png"]
    assert [i["amodal"] for i in content["instances"]] == ["amodal_000.png", "amodal_001.png", "amodal_002.png"]
    visible = read_scene_masks(scene_files / "masks", (H, W)).masks
    for k, entry in enumerate(content["instances"]):
        amodal = read_mask(out / entry["amodal"])
        assert not (visible[k] & ~amodal).any()  # the visible part is kept
        hidden = (amodal & ~visible[k]).sum() / amodal.sum()
        assert entry["hidden_share"] == pytest.approx(hidden, abs=1e-6)
        assert isinstance(entry["layer"], int) and 0 <= entry["score"] <= 1.5
        assert entry["score"] != round(entry["score"])  # six decimals kept, not rounded to a whole
    for i, j in content["occludes"]:
        assert content["instances"][i]["layer"] < content["instances"][j]["layer"]  # in front: a lower layer
    assert content["broken"] == []
    overlay = read_rgb(scene_files / "o.png")
    assert overlay.shape[0] >= H and overlay.shape[1] > W  # the picture and its legend beside it
    assert "3 objects completed; front to back:" in capsys.readouterr().out


def test_scene_command_passes_the_occluder_band(scene_files, monkeypatch):
    from amodal_sam.predictor import AmodalPredictor

    bands = []
    real = AmodalPredictor.complete_scene

    def spy(self, masks, **options):
        bands.append(options.get("occluder_band"))
        return real(self, masks, **options)

    monkeypatch.setattr(AmodalPredictor, "complete_scene", spy)
    args = ["scene", str(scene_files / "image.png"), "--masks", str(scene_files / "masks"), "--out"]
    model = ["--model", str(scene_files / "model")]
    assert main([*args, str(scene_files / "out0"), *model]) == 0
    assert main([*args, str(scene_files / "out2"), *model, "--occluder-band", "2"]) == 0
    assert bands == [0, 2]


def test_scene_command_refuses_a_negative_band(scene_files, capsys):
    args = ["scene", str(scene_files / "image.png"), "--masks", str(scene_files / "masks"), "--out", "o"]
    with pytest.raises(SystemExit) as stop:
        main([*args, "--occluder-band", "-1"])
    assert stop.value.code == 2 and "--occluder-band" in capsys.readouterr().err


def test_scene_command_reads_an_index_png(scene_files):
    out = scene_files / "out"
    args = ["scene", str(scene_files / "image.png"), "--masks", str(scene_files / "index.png"), "--out", str(out)]
    assert main([*args, "--model", str(scene_files / "model")]) == 0
    content = json.loads((out / "scene.json").read_text())
    assert [i["mask"] for i in content["instances"]] == [3, 7, 9]


def _bad_input(scene_files, name):
    """(masks path, expected message) for each bad input."""
    if name == "empty folder":
        (scene_files / "none").mkdir()
        return scene_files / "none", r"--masks folder .*none' holds no masks"
    if name == "another size":
        write_mask(scene_files / "sized" / "a.png", np.ones((10, 10), bool))
        return scene_files / "sized", r"--masks: .*a\.png' is \(10, 10\) \(H, W\) but the image is \(48, 64\)"
    if name == "mostly inside":
        write_mask(scene_files / "parts" / "a.png", _rect((0, 40), (0, 40)))
        write_mask(scene_files / "parts" / "b.png", _rect((5, 15), (5, 15)))
        return scene_files / "parts", r"--masks b\.png lies mostly inside --masks a\.png"
    if name == "empty mask":
        write_mask(scene_files / "holes" / "a.png", _rect((0, 40), (0, 40)))
        write_mask(scene_files / "holes" / "b.png", np.zeros((H, W), bool))
        return scene_files / "holes", r"--masks b\.png is empty"
    write_rgb(scene_files / "colour.png", random_image(H, W))
    return scene_files / "colour.png", r"has shape \(48, 64, 3\): an index map has one channel"


@pytest.mark.parametrize("name", ["empty folder", "another size", "mostly inside", "empty mask", "rgb index"])
def test_bad_scene_input_exits_2_with_one_line(scene_files, capsys, name):
    masks, message = _bad_input(scene_files, name)
    code = main(
        ["scene", str(scene_files / "image.png"), "--masks", str(masks), "--out", str(scene_files / "out")]
        + ["--model", str(scene_files / "model")]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("amodal-sam scene: error: ") and error.count("\n") == 1
    assert pytest.importorskip("re").search(message, error), error


def test_the_overlay_tints_visible_parts_and_hatches_hidden_ones():
    image = np.zeros((H, W, 3), np.uint8)
    visible = np.stack([_rect((10, 20), (10, 20))])
    amodal = np.stack([_rect((10, 20), (10, 40))])  # hidden: columns 20-39
    colors = np.array([[200, 100, 0]], np.uint8)
    picture = scene_picture(image, visible, amodal, np.zeros(1, int), colors)
    assert picture[15, 15].tolist() == [100, 50, 0]  # half-tinted visible pixel
    strong, faint = picture[15, 25], picture[15, 29]  # (15 + 25) // 4 = 10 even: strong; (15 + 29) // 4 = 11: faint
    assert strong.tolist() == [160, 80, 0] and faint.tolist() == [40, 20, 0]
    assert picture[5, 5].tolist() == [0, 0, 0]  # untouched outside
    assert len({tuple(c) for c in object_colors(12).tolist()}) == 12


def test_auto_masks_become_a_scene_of_wholes(scene_files, monkeypatch, capsys):
    """--auto: SAM's automatic masks (stubbed here: a random SAM finds nothing useful) lose their
    parts and overlaps, are written as visible_K.png and completed like given masks."""
    import segment_anything

    person, face, cup = _rect((0, 40), (0, 30)), _rect((5, 12), (5, 15)), _rect((30, 48), (28, 60))
    found = [{"segmentation": m, "area": int(m.sum())} for m in (face, person, cup)]
    monkeypatch.setattr(segment_anything.SamAutomaticMaskGenerator, "generate", lambda self, image: found)
    out = scene_files / "auto"
    args = ["scene", str(scene_files / "image.png"), "--auto", "--out", str(out), "--min-area", "10"]
    assert main([*args, "--model", str(scene_files / "model")]) == 0
    content = json.loads((out / "scene.json").read_text())
    assert [i["mask"] for i in content["instances"]] == ["visible_000.png", "visible_001.png"]
    first, second = read_mask(out / "visible_000.png"), read_mask(out / "visible_001.png")
    np.testing.assert_array_equal(second, cup)  # the smaller keeps the shared pixels
    np.testing.assert_array_equal(first, person & ~cup)  # the face, a part of the person, is gone
    assert "only as good as the frozen SAM" in capsys.readouterr().out


def test_auto_that_finds_nothing_writes_an_empty_scene(scene_files, monkeypatch, capsys):
    import segment_anything

    monkeypatch.setattr(segment_anything.SamAutomaticMaskGenerator, "generate", lambda self, image: [])
    out = scene_files / "nothing"
    args = [
        "scene",
        str(scene_files / "image.png"),
        "--auto",
        "--out",
        str(out),
        "--overlay",
        str(scene_files / "o.png"),
    ]
    assert main([*args, "--model", str(scene_files / "model")]) == 0
    assert json.loads((out / "scene.json").read_text()) == {"instances": [], "occludes": [], "broken": []}
    assert (
        read_rgb(scene_files / "o.png").shape[1] > W
        and "0 objects completed; front to back: none" in capsys.readouterr().out
    )


def test_automatic_masks_use_the_models_sam_and_the_options(tiny_model, monkeypatch):
    import segment_anything

    from amodal_sam.scene import automatic_visible_masks

    seen = {}

    def init(self, model, **options):
        seen.update(model=model, **options)

    def generate(self, image):
        seen["image"] = image
        return [{"segmentation": _rect((0, 10), (0, 10))}, {"segmentation": _rect((20, 40), (20, 40))}]

    monkeypatch.setattr(segment_anything.SamAutomaticMaskGenerator, "__init__", init)
    monkeypatch.setattr(segment_anything.SamAutomaticMaskGenerator, "generate", generate)
    image = random_image(H, W)
    masks = automatic_visible_masks(tiny_model, image)
    assert seen["model"] is tiny_model.sam and seen["image"] is image
    assert seen["points_per_side"] == 32 and seen["min_mask_region_area"] == 100
    assert [int(m.sum()) for m in masks] == [400, 100]  # largest first
    automatic_visible_masks(tiny_model, image, min_area=150, points_per_side=8)
    assert seen["points_per_side"] == 8 and seen["min_mask_region_area"] == 150
    assert [int(m.sum()) for m in automatic_visible_masks(tiny_model, image, min_area=150)] == [400]
