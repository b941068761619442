"""Every cut, crop and paste keeps its box's last row and column (the off-by-one a half-open
slice of an inclusive box makes). Masks here have pixels only at their box's corners, so a lost
edge loses a pixel that the counts below miss."""

import numpy as np
import pytest

from amodal_sam.data.masks import encode_rle, mask_bbox
from amodal_sam.data.objects import SourceObject
from amodal_sam.data.synth import Cutout, _on_new_background, cut_out, paste, placed_mask
from amodal_sam.geometry import mask_boxes
from amodal_sam.image_io import write_rgb
from amodal_sam.mask_overlap import mask_extents, pairwise_overlap
from amodal_sam.modeling.completion import clean_completion

H, W = 30, 40


def _corners(top: int, left: int, bottom: int, right: int) -> np.ndarray:
    """(H, W) bool with the four corner pixels of the inclusive box [top, bottom] x [left, right]."""
    mask = np.zeros((H, W), bool)
    mask[[top, top, bottom, bottom], [left, right, left, right]] = True
    return mask


@pytest.mark.parametrize("box", [(3, 4, 20, 30), (0, 0, H - 1, W - 1), (5, 7, 5, 7)])
def test_boxes_and_extents_reach_the_last_pixel(box):
    top, left, bottom, right = box
    mask = _corners(*box)
    np.testing.assert_array_equal(mask_boxes(mask[None])[0], [left, top, right, bottom])  # inclusive
    np.testing.assert_array_equal(mask_extents(mask[None])[0], [top, bottom + 1, left, right + 1])  # half-open
    assert mask_bbox(mask) == [left, top, right - left + 1, bottom - top + 1]  # COCO: x, y, width, height
    assert pairwise_overlap(mask[None], mask[None])[0, 0] == mask.sum()


def test_a_cutout_keeps_its_last_row_and_column(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    write_rgb(tmp_path / "image.png", image)
    mask = _corners(3, 4, 20, 30)
    source = SourceObject(tmp_path / "image.png", encode_rle(mask), "thing", True)
    cutout = cut_out(source, {})
    assert cutout.mask.shape == (18, 27) and cutout.mask.sum() == 4
    assert cutout.mask[-1, -1] and cutout.mask[0, 0]
    np.testing.assert_array_equal(cutout.pixels[-1, -1], image[20, 30])


@pytest.mark.parametrize("size", [(5, 7), (6, 8)])  # odd and even sides: the centre rounds both ways
def test_placing_and_pasting_keep_every_pixel_of_a_cutout_inside_the_canvas(size):
    h, w = size
    mask = np.zeros(size, bool)
    mask[[0, 0, -1, -1], [0, -1, 0, -1]] = True
    center = np.array([20.0, 15.0])
    placed = placed_mask((H, W), mask, center)
    assert placed.sum() == 4
    rows, cols = np.nonzero(placed)
    assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (h, w)

    pixels = np.full((h, w, 3), 200, np.uint8)
    canvas = np.zeros((H, W, 3), np.uint8)
    where = paste(canvas, Cutout(pixels, mask), center)
    np.testing.assert_array_equal(where, placed)
    assert (canvas[placed] == 200).all() and canvas[~placed].max() == 0


def test_a_cutout_overhanging_the_canvas_keeps_the_canvas_last_row_and_column():
    mask = np.ones((10, 10), bool)
    placed = placed_mask((H, W), mask, np.array([W - 1.0, H - 1.0]))  # centred on the last pixel
    # its box starts at the centre minus half its side, 39 - 5 = 34 (29 - 5 = 24 down): columns
    # 34-39 and rows 24-29 land on the canvas, 6 x 6, up to the canvas's last row and column
    assert placed[-1, -1] and placed.sum() == 36 and placed[24:, 34:].all()


def test_a_new_background_is_cropped_to_the_whole_image_size():
    rng = np.random.default_rng(0)
    image = np.full((H, W, 3), 255, np.uint8)
    mask = _corners(0, 0, H - 1, W - 1)
    scene = rng.integers(0, 200, (H + 7, W + 3, 3), dtype=np.uint8)
    composed = _on_new_background(image, mask, scene, rng)
    assert composed.shape == (H, W, 3)
    assert (composed[mask] == 255).all()  # the corner pixels, last row and column included


def test_cleaning_keeps_a_hidden_part_in_the_images_last_row_and_column():
    visible = np.zeros((H, W), bool)
    visible[10:, 20:] = True
    amodal = visible.copy()
    amodal[H - 1, 10:20] = True  # hidden run along the last row, touching the visible part
    amodal[5:10, W - 1] = True  # and along the last column
    occluder = ~visible
    cleaned = clean_completion(amodal, visible, occluder)
    np.testing.assert_array_equal(cleaned, amodal)
