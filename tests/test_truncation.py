"""Synthetic truncation: where the cut falls, the crop, and the truth on the crop's canvas."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from amodal_sam.data.objects import SourceObject
from amodal_sam.data.truncation import cut_line, truncate, truncated_crops


def _band(shape=(10, 12), rows=(3, 7), columns=(2, 8)) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], columns[0] : columns[1]] = True
    return mask


def test_the_cut_line_leaves_at_least_the_share_beyond_it():
    mask = _band()  # columns 2-7, 4 pixels each: 24 pixels
    assert cut_line(mask, "left", 0.5) == 5  # columns 2, 3, 4 (12 pixels) beyond: columns 5- kept
    assert cut_line(mask, "right", 0.5) == 5  # columns 5, 6, 7 beyond: columns 0-4 kept
    assert cut_line(mask, "left", 0.2) == 4  # 0.2 of 24 is 4.8: two columns (8 pixels)
    assert cut_line(mask, "top", 0.5) == 5  # rows 3, 4 beyond
    assert cut_line(mask, "bottom", 0.25) == 6  # row 6 beyond
    assert cut_line(mask, "left", 0.99) == 7  # never the whole object: its last column stays


@pytest.mark.parametrize("side, share", [("middle", 0.3), ("left", 0.0), ("left", 1.0)])
def test_bad_cuts_are_refused(side, share):
    with pytest.raises(ValueError, match="side must be|share must lie"):
        cut_line(_band(), side, share)


def test_a_left_cut_keeps_the_rest_and_puts_the_whole_object_on_the_canvas():
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    crop = truncate(image, _band(), "left", 0.5, beyond=0.5)
    assert np.array_equal(crop.image, image[:, 5:])  # columns 5-11: a 10 x 7 crop
    assert np.array_equal(crop.visible, _band()[:, 5:])
    assert (crop.canvas.origin, crop.canvas.size) == ((4, 5), (20, 15))  # round(3.5) = 4, round(5) = 5
    expected = np.zeros((20, 15), bool)
    expected[5 + 3 : 5 + 7, 4 - 3 : 4 + 3] = True  # source columns 2-7 at crop columns -3..2
    assert np.array_equal(crop.truth, expected)
    assert np.array_equal(crop.canvas.crop(crop.truth), crop.visible)
    assert crop.canvas.out_of_frame(crop.truth).sum() == 12 and crop.share == 0.5


def test_a_cut_wider_than_the_margin_is_clipped_to_the_canvas():
    crop = truncate(np.zeros((10, 12, 3), np.uint8), _band(), "left", 0.5, beyond=0.1)  # one column beyond
    assert crop.canvas.origin == (1, 1)
    assert crop.canvas.out_of_frame(crop.truth).sum() == 4  # of the 3 cut columns, the nearest


def test_each_side_is_the_left_cut_turned():
    mask = _band(shape=(12, 12), rows=(2, 9), columns=(3, 10))
    image = np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8)
    left = truncate(image, mask, "left", 0.3, beyond=0.5)
    for turns, side in ((1, "bottom"), (2, "right"), (3, "top")):  # np.rot90 turns counter-clockwise
        turned = truncate(np.rot90(image, turns), np.rot90(mask, turns), side, 0.3, beyond=0.5)
        assert np.array_equal(turned.visible, np.rot90(left.visible, turns)), side
        assert np.array_equal(turned.truth, np.rot90(left.truth, turns)), side
        assert np.array_equal(turned.image, np.rot90(left.image, turns)), side


def _source(tmp_path: Path, name: str, mask: np.ndarray, whole: bool) -> SourceObject:
    path = tmp_path / f"{name}.png"
    cv2.imwrite(str(path), np.full((*mask.shape, 3), 100, np.uint8))
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return SourceObject(path, rle, "thing", whole)


def test_crops_are_seeded_and_skip_objects_without_a_whole_shape(tmp_path):
    objects = [_source(tmp_path, "a", _band(), True), _source(tmp_path, "b", _band(), False)]
    first = list(truncated_crops(objects, per_object=3, seed=4))
    again = list(truncated_crops(objects, per_object=3, seed=4))
    assert len(first) == 3 and all("a.png" in crop.name for crop in first)
    assert [(c.side, c.share) for c in first] == [(c.side, c.share) for c in again]
    assert all(0.2 <= c.share <= 0.75 for c in first)  # whole columns / rows: a little above the drawn share
    assert all(np.array_equal(c.canvas.crop(c.truth), c.visible) for c in first)
    with pytest.raises(ValueError, match="shares must be"):
        next(truncated_crops(objects, shares=(0.6, 0.4)))


def test_scores_on_the_canvas_outside_and_inside_the_image():
    from amodal_sam.evaluate_beyond import BEYOND_BASELINES, evaluate_beyond, mean_scores, score_crop

    crop = truncate(np.zeros((10, 12, 3), np.uint8), _band(), "left", 0.5, beyond=0.5)  # 12 of 24 pixels cut
    visible_only = score_crop(BEYOND_BASELINES["visible"](crop), crop)
    assert (visible_only.aiou, visible_only.outside_iou, visible_only.inside_iou) == (0.5, 0.0, 1.0)
    mirror = score_crop(BEYOND_BASELINES["mirror"](crop), crop)  # three columns reflected: exactly the cut ones
    assert (mirror.aiou, mirror.outside_iou, mirror.inside_iou) == (1.0, 1.0, 1.0)
    spilled = crop.truth.copy()
    spilled[crop.canvas.image_slices] = True  # the whole image too: 70 pixels inside, 12 of them the object
    assert score_crop(spilled, crop).inside_iou == pytest.approx(12 / 70)
    assert score_crop(spilled, crop).outside_iou == 1.0
    scores = evaluate_beyond([crop, crop], BEYOND_BASELINES, progress=False)
    assert mean_scores(scores["visible"]) == {"aiou": 0.5, "outside_iou": 0.0, "inside_iou": 1.0, "crops": 2}
    with pytest.raises(ValueError, match="on the crop's canvas"):
        score_crop(crop.visible, crop)


def test_the_beyond_report_keeps_each_crops_source_and_tables_the_means():
    from amodal_sam.evaluate_beyond import beyond_report, format_beyond_report, mean_scores

    crop = truncate(np.zeros((10, 12, 3), np.uint8), _band(), "left", 0.5, beyond=0.5, name="band.png#0")
    report = beyond_report([crop], model=None, beyond=0.5, progress=False)
    assert report["crops"]["visible"] == [
        {"aiou": 0.5, "outside_iou": 0.0, "inside_iou": 1.0, "side": "left", "share": crop.share, "name": "band.png#0"}
    ]
    assert format_beyond_report(report) == (
        "| method | AIoU (canvas) | IoU outside the image | IoU inside | crops |\n"
        "| --- | --- | --- | --- | --- |\n"
        "| visible | 0.5000 | 0.0000 | 1.0000 | 1 |\n"
        "| mirror | 1.0000 | 1.0000 | 1.0000 | 1 |"
    )
    empty = mean_scores([])  # no crops: no means, not an error
    assert empty["crops"] == 0 and all(np.isnan(empty[m]) for m in ("aiou", "outside_iou", "inside_iou"))


def test_a_written_truncation_set_reads_back_with_the_margins_as_the_occluder(tmp_path):
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.data.truncation import write_truncation_dataset

    objects = [_source(tmp_path, "a", _band(), True), _source(tmp_path, "b", _band(columns=(3, 9)), True)]
    crops = list(truncated_crops(objects, beyond=0.5, seed=1))
    counts = write_truncation_dataset(crops, tmp_path / "set", fill=(10, 20, 30))
    assert counts["written"] == 2
    dataset = load_dataset(tmp_path / "set" / "annotations.json")
    assert len(dataset) == 2
    for crop, record in zip(crops, dataset.records):
        image = dataset.load_image(record)
        visible, amodal = dataset.load_masks(record)
        assert image.shape[:2] == crop.canvas.size
        assert np.array_equal(amodal[0], crop.truth) and np.array_equal(visible[0], crop.canvas.place(crop.visible))
        assert np.array_equal(dataset.load_occluder(record, 0), ~crop.canvas.image_region())
        corner = image[0, 0].astype(int)
        assert np.abs(corner - [10, 20, 30]).max() <= 3  # the margin's fill, through JPEG


def test_training_gives_a_truncation_sets_samples_their_margins_every_time(tmp_path):
    import amodal_sam.train as train_module
    from amodal_sam import AmodalSAM
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.data.truncation import write_truncation_dataset
    from amodal_sam.train import TrainOptions

    objects = [_source(tmp_path, "a", _band(), True), _source(tmp_path, "b", _band(columns=(3, 9)), True)]
    write_truncation_dataset(truncated_crops(objects, beyond=0.5, per_object=2, seed=1), tmp_path / "set")
    dataset = load_dataset(tmp_path / "set" / "annotations.json")
    assert all(record.scene_only for record in dataset.records)
    model = AmodalSAM.random("tiny", seed=0)
    options = TrainOptions(scene_prob=0.0, occluder_noise_prob=0.0)  # scene input never drawn
    keys = [str(k) for k in range(len(dataset.records))]
    for epoch in range(2):
        for index in range(len(dataset)):
            sample = train_module._sample(dataset, keys, index, epoch, options, model)
            assert sample.dense.occluders_known[0] and sample.dense.occluder.max() == 1  # the margins, given
    dataset.records[0].scene_only = False  # an ordinary image: scene input as scene_prob draws it
    assert not train_module._sample(dataset, keys, 0, 0, options, model).dense.occluders_known[0]
