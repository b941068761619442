"""Datasets whose identities are wrong are refused, naming what is wrong: two images with one id,
two annotations with one id, a visible mask that is not inside its amodal mask; several
datasets train together."""

import json
import warnings

import numpy as np
import pytest

from amodal_sam.cli import main
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import combine_datasets, load_dataset

from conftest import ellipse_mask, write_occlusion_dataset


def _rewritten(path, change):
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))
    return path


def test_two_images_with_one_id_are_refused(tmp_path):
    path = _rewritten(write_occlusion_dataset(tmp_path, count=3), lambda c: c["images"][2].update(id=1))
    with pytest.raises(
        ValueError, match=r"image id 1 appears twice in 'images' of .*annotations\.json' \(the second at images\[2\]\)"
    ):
        load_dataset(path)


def test_two_annotations_with_one_id_are_refused(tmp_path):
    path = _rewritten(write_occlusion_dataset(tmp_path, count=3), lambda c: c["annotations"][1].update(id=3))
    with pytest.raises(ValueError, match=r"annotation id 3 appears twice in .* \(the second at annotations\[2\]\)"):
        load_dataset(path)


def test_two_cocoa_records_with_one_image_id_are_refused(tmp_path):
    amodal = encode_rle(ellipse_mask(32, 40))
    for name in ("a", "b"):
        (tmp_path / f"{name}.png").write_bytes(b"")
        record = {"image_id": 7, "url": f"x/{name}.png", "regions": [{"segmentation": amodal, "name": "cup"}]}
        (tmp_path / f"{name}.json").write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"image id 7 names two images in .* \('.*a\.png' and '.*b\.png'\)"):
        load_dataset(tmp_path)


def _with_visible(tmp_path, shift: int):
    """The first annotation's visible mask moved ``shift`` pixels to the right of its amodal mask."""
    height, width = 64, 80

    def change(content):
        amodal = ellipse_mask(height, width, (0.5, 0.5), (0.2, 0.2))
        content["annotations"][0]["segmentation"] = encode_rle(amodal)
        content["annotations"][0]["visible_mask"] = encode_rle(np.roll(amodal, shift, axis=1))

    return load_dataset(_rewritten(write_occlusion_dataset(tmp_path, count=2), change))


def test_a_visible_mask_inside_its_amodal_mask_passes_quietly(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # (pycocotools itself raises a DeprecationWarning)
        _with_visible(tmp_path, 0)[0]


def test_a_visible_mask_a_little_outside_is_reported(tmp_path):
    dataset = _with_visible(tmp_path, 3)  # a 32-pixel-wide ellipse moved 3 px: about a tenth outside
    with pytest.warns(
        UserWarning, match=r"annotation 1 of image 1 .*: \d+% of its visible mask lies outside its amodal mask"
    ):
        dataset[0]


def test_a_visible_mask_mostly_outside_is_refused(tmp_path):
    dataset = _with_visible(tmp_path, 40)  # moved past its own width: wholly outside
    with pytest.raises(ValueError, match=r"annotation 1 of image 1 .*: 100% of its visible mask lies outside"):
        dataset[0]


def test_datasets_combine_in_order_and_train_from_the_command_line(tmp_path, tiny_model):
    first = load_dataset(write_occlusion_dataset(tmp_path / "a", count=2))
    second = load_dataset(write_occlusion_dataset(tmp_path / "b", count=3, seed=1))
    both = combine_datasets([first, second])
    assert len(both) == 5 and both.format == "cocoa_cls"
    assert [r.image_path for r in both.records] == [r.image_path for r in first.records + second.records]
    assert combine_datasets([first]) is first
    with pytest.raises(ValueError, match="at least one dataset"):
        combine_datasets([])
    tiny_model.save_pretrained(tmp_path / "start")
    argv = ["train", "--data", str(tmp_path / "a" / "annotations.json"), str(tmp_path / "b" / "annotations.json")]
    argv += ["--init", str(tmp_path / "start"), "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "5"]
    assert main(argv) == 0
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(log) == 2  # one epoch of one step: all 5 objects of both sets in one batch of 5


def test_a_plain_folder_dataset_reads_every_mask_file_and_names_any_other(tmp_path):
    import cv2

    from amodal_sam.image_io import write_mask, write_rgb

    from conftest import random_image, rect_mask

    write_rgb(tmp_path / "images" / "x.png", random_image(32, 40))
    for folder in ("amodal", "visible"):
        write_mask(tmp_path / folder / "x_0.png", rect_mask((32, 40), (2, 20), (2, 20)))
        cv2.imwrite(str(tmp_path / folder / "x_1.jpg"), rect_mask((32, 40), (5, 30), (22, 38)).astype(np.uint8) * 255)
    (tmp_path / "amodal" / ".DS_Store").write_bytes(b"\x00")
    dataset = load_dataset(tmp_path)
    assert [i.annotation_id for i in dataset.records[0].instances] == ["x_0", "x_1"]
    with pytest.warns(UserWarning, match="x_1.jpg' is lossy"):
        sample = dataset[1]
    assert sample.amodal.sum() == 25 * 16  # rows 5-29, columns 22-37
    (tmp_path / "amodal" / "notes.txt").write_text("")
    with pytest.raises(ValueError, match=r"amodal folder .* holds files that are not masks: notes\.txt"):
        load_dataset(tmp_path)
