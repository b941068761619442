"""Dataset readers: every supported format, written by the tests, plus the real COCOA sample."""

import json

import numpy as np
import pytest

from amodal_sam.data.masks import decode_segmentation, encode_rle
from amodal_sam.data.readers import load_dataset
from amodal_sam.image_io import write_mask, write_rgb

from conftest import SHARED_DATA, random_image

H, W = 40, 60
# Amodal: a 20 x 20 square at (10..30, 10..30); a second object hides its right part (x >= 22).
SQUARE = [10, 10, 30, 10, 30, 30, 10, 30]
VISIBLE_SQUARE = [10, 10, 22, 10, 22, 30, 10, 30]


def _truth():
    amodal = decode_segmentation(SQUARE, H, W)
    visible = decode_segmentation(VISIBLE_SQUARE, H, W)
    return visible, amodal


@pytest.fixture
def image_file(tmp_path):
    write_rgb(tmp_path / "a.png", random_image(H, W))
    return tmp_path / "a.png"


def _write_json(path, content):
    path.write_text(json.dumps(content))
    return path


def _check_square(dataset, expected_format, count=1):
    assert dataset.format == expected_format
    assert len(dataset) == count
    sample = dataset[0]
    visible, amodal = _truth()
    assert sample.image.shape == (H, W, 3)
    np.testing.assert_array_equal(sample.amodal, amodal)
    np.testing.assert_array_equal(sample.visible, visible)
    return sample


def test_cocoa_cls_polygons_and_rle(tmp_path, image_file):
    visible, _ = _truth()
    path = _write_json(
        tmp_path / "ann.json",
        {
            "images": [{"id": 7, "file_name": "a.png", "height": H, "width": W}],
            "annotations": [
                {
                    "id": 3,
                    "image_id": 7,
                    "category_id": 2,
                    "bbox": [10, 10, 20, 20],
                    "segmentation": [SQUARE],
                    "visible_mask": encode_rle(visible),
                    "occluder_mask": encode_rle(~visible),
                    "occlude_rate": 0.4,
                },
                {
                    "id": 4,
                    "image_id": 7,
                    "category_id": 1,
                    "bbox": [0, 0, 5, 5],
                    "segmentation": encode_rle(visible),
                    "visible_mask": encode_rle(visible),
                },
            ],
            "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
        },
    )
    dataset = load_dataset(path)
    sample = _check_square(dataset, "cocoa_cls", count=2)
    assert (sample.annotation_id, sample.image_id, sample.category, sample.occlusion_rate) == (3, 7, 2, 0.4)
    assert dataset[1].occlusion_rate == 0.0  # computed from the masks when the file has none
    record = dataset.records[0]
    np.testing.assert_array_equal(dataset.load_occluder(record, 0), ~visible)
    assert dataset.load_occluder(record, 1) is None  # not annotated


def test_kins_2020(tmp_path, image_file):
    path = _write_json(
        tmp_path / "kins.json",
        {
            "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "annotations": [
                {
                    "id": 9,
                    "image_id": 1,
                    "category_id": 1,
                    "a_segm": [SQUARE],
                    "i_segm": [VISIBLE_SQUARE],
                    "a_bbox": [10, 10, 20, 20],
                    "i_bbox": [10, 10, 12, 20],
                    "oco_id": 0,
                    "ico_id": 0,
                }
            ],
        },
    )
    sample = _check_square(load_dataset(path), "kins_2020")
    assert sample.occlusion_rate == pytest.approx(1 - sample.visible.sum() / sample.amodal.sum())


def test_kins_legacy(tmp_path, image_file):
    (tmp_path / "images").mkdir()
    (tmp_path / "a.png").rename(tmp_path / "images" / "a.png")  # images/ beside the file is searched too
    path = _write_json(
        tmp_path / "kins_old.json",
        {
            "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "annotations": [
                {"id": 9, "image_id": 1, "category_id": 1, "segmentation": [SQUARE], "inmodal_seg": [VISIBLE_SQUARE]}
            ],
        },
    )
    _check_square(load_dataset(path), "kins_legacy")


def _cocoa_record(visible):
    return {
        "image_id": 5,
        "url": "http://x/a.png",
        "size": 3,
        "regions": [
            {
                "segmentation": SQUARE,
                "order": 2,
                "occlude_rate": 0.4,
                "isStuff": 0,
                "name": "box",
                "visible_mask": encode_rle(visible),
                "invisible_mask": encode_rle(np.zeros((H, W), bool)),
            },
            {"segmentation": [0, 0, 5, 0, 5, 5, 0, 5], "order": 1, "occlude_rate": 0, "isStuff": 0, "name": "corner"},
            {
                "segmentation": [0, 30, 59, 30, 59, 39, 0, 39],
                "order": 3,
                "occlude_rate": 0,
                "isStuff": 1,
                "name": "floor",
            },
        ],
    }


def test_original_cocoa_file_and_folder(tmp_path, image_file):
    visible, _ = _truth()
    single = _write_json(tmp_path / "a.json", _cocoa_record(visible))
    for path in (single, tmp_path):
        dataset = load_dataset(path)
        sample = _check_square(dataset, "cocoa", count=2)  # the stuff region is skipped
        assert sample.category == "box" and sample.annotation_id == 0
        unoccluded = dataset[1]
        np.testing.assert_array_equal(unoccluded.visible, unoccluded.amodal)  # no visible_mask: visible = amodal
        assert unoccluded.annotation_id == 1
    with_stuff = load_dataset(single, include_stuff=True)
    assert len(with_stuff) == 2 and len(with_stuff.records[0].instances) == 3  # stuff hides, is not an object
    assert [i.is_stuff for i in with_stuff.records[0].instances] == [False, False, True]
    assert [i.order for i in with_stuff.records[0].instances] == [2, 1, 3]


def test_original_cocoa_list_file_finds_images_by_url(tmp_path, image_file):
    visible, _ = _truth()
    path = _write_json(tmp_path / "all.json", [_cocoa_record(visible)])
    _check_square(load_dataset(path), "cocoa", count=2)


def test_plain_folder(tmp_path):
    visible, amodal = _truth()
    write_rgb(tmp_path / "images" / "scene_1.png", random_image(H, W))
    write_mask(tmp_path / "amodal" / "scene_1_0.png", amodal)
    write_mask(tmp_path / "visible" / "scene_1_0.png", visible)
    write_mask(tmp_path / "amodal" / "scene_1_1.png", visible)
    write_mask(tmp_path / "visible" / "scene_1_1.png", visible)
    dataset = load_dataset(tmp_path)
    _check_square(dataset, "folder", count=2)
    assert [s.annotation_id for s in (dataset[0], dataset[1])] == ["scene_1_0", "scene_1_1"]


def test_unknown_format_names_the_expected_keys(tmp_path):
    path = _write_json(tmp_path / "x.json", {"images": [], "annotations": [{"id": 1, "segmentation": []}]})
    with pytest.raises(ValueError, match="visible_mask.*a_segm.*inmodal_seg"):
        load_dataset(path)
    with pytest.raises(ValueError, match="matches no supported amodal format.*regions"):
        load_dataset(_write_json(tmp_path / "y.json", {"foo": 1}))


def test_missing_image_is_named(tmp_path):
    path = _write_json(
        tmp_path / "ann.json",
        {
            "images": [{"id": 1, "file_name": "gone.png", "height": H, "width": W}],
            "annotations": [{"id": 1, "image_id": 1, "segmentation": [SQUARE], "visible_mask": [VISIBLE_SQUARE]}],
        },
    )
    with pytest.raises(ValueError, match="gone.png"):
        load_dataset(path)[0]


@pytest.mark.skipif(
    not (SHARED_DATA / "cocoa-sample").is_dir(),
    reason="../shared/data/cocoa-sample (real COCOA records) is not beside the project",
)
def test_real_cocoa_sample():
    dataset = load_dataset(SHARED_DATA / "cocoa-sample")
    assert dataset.format == "cocoa" and len(dataset.records) == 2 and len(dataset) == 13
    for record in dataset.records:
        for sample in dataset.samples_of(record):
            assert sample.image.shape[:2] == sample.amodal.shape
            assert not (sample.visible & ~sample.amodal).any()
            computed = 1 - sample.visible.sum() / sample.amodal.sum()
            assert computed == pytest.approx(sample.occlusion_rate, abs=0.01)  # file's rate matches the masks


def test_an_image_of_another_size_than_its_annotation_is_an_error(tmp_path):
    write_rgb(tmp_path / "a.png", random_image(H + 1, W))
    path = _write_json(
        tmp_path / "ann.json",
        {
            "images": [{"id": 1, "file_name": "a.png", "height": H, "width": W}],
            "annotations": [{"id": 1, "image_id": 1, "segmentation": [SQUARE], "visible_mask": [VISIBLE_SQUARE]}],
        },
    )
    with pytest.raises(ValueError, match=rf"a.png.*is \({H + 1}, {W}\).*annotation says \({H}, {W}\)"):
        load_dataset(path)[0]


def test_original_cocoa_fields_are_read_as_written(tmp_path, image_file):
    """image ids, stuff flags in every spelling, occlusion rates and names, from a hand-made file."""
    visible, _ = _truth()
    record = _cocoa_record(visible)
    record["regions"] += [
        dict(record["regions"][1], isStuff=value, name=f"stuff {value}") for value in ("1", "True", "true", True)
    ]
    path = _write_json(tmp_path / "a.json", record)
    dataset = load_dataset(path)
    (image,) = dataset.records
    assert image.image_id == 5 and [i.category for i in image.instances] == ["box", "corner"]
    assert [i.occlusion_rate for i in image.instances] == [0.4, 0.0] and dataset[0].occlusion_rate == 0.4
    with_stuff = load_dataset(path, include_stuff=True)
    assert [i.category for i in with_stuff.records[0].instances][2:] == [
        "floor",
        *(f"stuff {v}" for v in ("1", "True", "true", True)),
    ]
    del record["image_id"], record["regions"][0]["occlude_rate"], record["regions"][1]["name"]
    dataset = load_dataset(_write_json(tmp_path / "a.json", record))
    assert dataset.records[0].image_id == "a:0"  # the file's stem and the record's position
    assert dataset.records[0].instances[1].category is None
    # without a stored rate it is measured: 12 of 20 columns of the square are hidden (x >= 22)
    assert dataset[0].occlusion_rate == pytest.approx(1 - 240 / 400, abs=0.03)
