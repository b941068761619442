"""The generated simple scenes: seeded, one shape partly behind another, written as COCOA-cls."""

import numpy as np
import pytest

from amodal_sam.data.readers import load_dataset
from amodal_sam.data.shapes import OCCLUSION_RANGE, shape_mask, shape_scene, write_shape_scenes

SHAPE = (100, 120)  # (H, W)
CENTER = np.array([60.0, 50.0])  # (x, y): column 60, row 50


def _extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(first row, last row, first column, last column) of a mask's pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def test_each_shape_has_its_size_and_proportions():
    # size 41: half 20.5, so a shape spans offsets -20..20 (41 pixels) from the centre pixel
    disc = shape_mask("disc", SHAPE, CENTER, 41, np.random.default_rng(0))
    assert _extent(disc) == (30, 70, 40, 80)
    assert abs(disc.sum() - np.pi * 20.5**2) < 0.03 * np.pi * 20.5**2
    assert disc[50, 80] and not disc[70, 80]  # round, not square
    ratio = np.random.default_rng(0).uniform(0.5, 0.8)  # the draw shape_mask makes with the same seed
    ellipse = shape_mask("ellipse", SHAPE, CENTER, 41, np.random.default_rng(0))
    reach = int(np.floor(20.5 * ratio))
    assert _extent(ellipse) == (50 - reach, 50 + reach, 40, 80)
    assert abs(ellipse.sum() - np.pi * 20.5**2 * ratio) < 0.04 * np.pi * 20.5**2 * ratio
    ratio = np.random.default_rng(1).uniform(0.5, 1.0)
    for kind in ("rectangle", "block"):
        box = shape_mask(kind, SHAPE, CENTER, 41, np.random.default_rng(1))
        reach = int(np.floor(20.5 * ratio))
        assert _extent(box) == (50 - reach, 50 + reach, 40, 80) and box.sum() == 41 * (2 * reach + 1)
    triangle = shape_mask("triangle", SHAPE, CENTER, 41, np.random.default_rng(0))
    assert _extent(triangle) == (30, 70, 40, 80)
    assert triangle[30].sum() == 1 and triangle[70].sum() == 41  # apex up, base as wide as the height
    assert triangle[50].sum() == 2 * int(np.floor(10.25)) + 1  # half way down: half the base


def test_a_bar_crosses_the_whole_image():
    draws = np.random.default_rng(3)
    thick, vertical = 20.5 * draws.uniform(0.25, 0.45), draws.random() < 0.5
    bar = shape_mask("bar", SHAPE, CENTER, 41, np.random.default_rng(3))
    width = 2 * int(np.floor(thick)) + 1
    if vertical:
        assert _extent(bar) == (0, 99, 60 - width // 2, 60 + width // 2) and bar.sum() == 100 * width
    else:
        assert _extent(bar) == (50 - width // 2, 50 + width // 2, 0, 119) and bar.sum() == 120 * width
    orientations = {
        bool(shape_mask("bar", SHAPE, CENTER, 41, np.random.default_rng(seed))[:, 0].any()) for seed in range(8)
    }
    assert orientations == {True, False}  # both orientations occur


def test_a_scene_hides_part_of_a_whole_back_shape_behind_the_front_one():
    for seed in range(20):
        image, (back, front) = shape_scene(np.random.default_rng(seed))
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        hidden = (back & front).sum() / back.sum()
        assert OCCLUSION_RANGE[0] <= hidden <= OCCLUSION_RANGE[1]
        rows, cols = np.flatnonzero(back.any(axis=1)), np.flatnonzero(back.any(axis=0))
        assert rows[0] >= 2 and cols[0] >= 2 and rows[-1] <= 237 and cols[-1] <= 317  # whole, off the border
        colors = {tuple(image[back & ~front][0]), tuple(image[front][0]), tuple(image[~back & ~front][0])}
        assert len(colors) == 3  # three plain colours: background, back, front
        assert (image[front] == image[front][0]).all() and (image[back & ~front] == image[back & ~front][0]).all()


def test_written_scenes_read_back_as_their_masks_and_repeat_by_seed(tmp_path):
    path = write_shape_scenes(tmp_path / "a", count=3, seed=4)
    again = write_shape_scenes(tmp_path / "b", count=3, seed=4)
    assert path.read_bytes() == again.read_bytes()
    assert (tmp_path / "a/images/0002.png").read_bytes() == (tmp_path / "b/images/0002.png").read_bytes()
    dataset = load_dataset(path)
    assert len(dataset) == 6
    rng = np.random.default_rng(4)
    for record in dataset.records:
        _, (back, front) = shape_scene(rng)
        visible, amodal = dataset.load_masks(record)
        np.testing.assert_array_equal(amodal, np.stack([back, front]))
        np.testing.assert_array_equal(visible, np.stack([back & ~front, front]))
        assert [i.order for i in record.instances] == [2, 1]  # the front shape is order 1
        assert [i.category for i in record.instances] == [1, 2]  # back shape, front shape
    assert [i.annotation_id for r in dataset.records for i in r.instances] == [1, 2, 3, 4, 5, 6]


def test_an_uncovered_scene_is_the_covered_one_with_the_front_shape_cut_out_in_background_colour():
    for seed in range(10):
        covered, (back, front) = shape_scene(np.random.default_rng(seed))
        image, masks = shape_scene(np.random.default_rng(seed), uncovered=True)
        assert len(masks) == 1
        np.testing.assert_array_equal(masks[0], back & ~front)  # nothing hides it: amodal = visible
        background = covered[~back & ~front][0]
        assert (image[front] == background).all()  # the notch shows the background, no occluder
        np.testing.assert_array_equal(image[~front], covered[~front])  # every other pixel as covered
        assert len({tuple(c) for c in image.reshape(-1, 3)}) == 2


def test_uncovered_share_mixes_scenes_without_changing_sets_written_before(tmp_path):
    default = write_shape_scenes(tmp_path / "default", count=4, seed=4)
    zero = write_shape_scenes(tmp_path / "zero", count=4, seed=4, uncovered_share=0.0)
    assert default.read_bytes() == zero.read_bytes()
    dataset = load_dataset(write_shape_scenes(tmp_path / "all", count=4, seed=4, uncovered_share=1.0))
    for record in dataset.records:
        visible, amodal = dataset.load_masks(record)
        assert len(record.instances) == 1
        np.testing.assert_array_equal(visible, amodal)
    mixed = load_dataset(write_shape_scenes(tmp_path / "mixed", count=20, seed=4, uncovered_share=0.5))
    kinds = [len(record.instances) for record in mixed.records]
    assert set(kinds) == {1, 2}  # both kinds occur


def test_uncovered_share_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"uncovered_share must be in \[0, 1\]; got 1.5"):
        write_shape_scenes(tmp_path, count=1, uncovered_share=1.5)
