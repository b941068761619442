"""The beyond-the-frame canvas: geometry, round trips, the mirror baseline, bad values."""

import math

import numpy as np
import pytest

from amodal_sam.canvas import MAX_BEYOND, Canvas, check_beyond, mirrored_beyond, touched_borders


def test_the_canvas_grows_each_side_by_its_share_of_the_image():
    canvas = Canvas.around((10, 20), 0.5)  # 10 rows, 20 columns: 5 rows and 10 columns on each side
    assert (canvas.origin, canvas.size, canvas.image_size) == ((10, 5), (20, 40), (10, 20))
    assert canvas.to_json() == {"canvas_origin": [10, 5], "canvas_size": [20, 40], "image_size": [10, 20]}
    assert Canvas.around((7, 9), 0.25).origin == (2, 2)  # round(2.25), round(1.75)
    assert Canvas.around((10, 20), 0).is_image and not canvas.is_image
    region = canvas.image_region()
    assert region.sum() == 200 and region[5:15, 10:30].all()


@pytest.mark.parametrize(
    "side, canvas_pixel",
    [("left", (7, 9)), ("right", (7, 30)), ("top", (4, 15)), ("bottom", (15, 15)), ("corner", (0, 0))],
)
def test_a_pixel_just_beyond_each_border_is_out_of_frame_and_not_in_the_image(side, canvas_pixel):
    canvas = Canvas.around((10, 20), 0.5)
    on_canvas = np.zeros(canvas.size, bool)
    on_canvas[canvas_pixel] = True
    assert not canvas.crop(on_canvas).any()
    assert np.array_equal(canvas.out_of_frame(on_canvas), on_canvas)


def test_place_and_crop_round_trip_at_every_border():
    canvas = Canvas.around((10, 20), 0.3)  # origin (6, 3)
    image_mask = np.zeros((2, 10, 20), bool)
    image_mask[0, 0, :] = True  # the top row
    image_mask[0, :, 0] = True  # the left column
    image_mask[1, -1, :] = True  # the bottom row
    image_mask[1, :, -1] = True  # the right column
    placed = canvas.place(image_mask)
    assert placed.shape == (2, 16, 32)
    assert placed[0, 3, 6:26].all() and placed[0, 3:13, 6].all() and placed[1, 12, 6:26].all()
    assert placed[1, 3:13, 25].all() and placed.sum() == image_mask.sum()
    assert np.array_equal(canvas.crop(placed), image_mask)
    assert not canvas.out_of_frame(placed).any()


def test_masks_of_another_size_are_refused():
    canvas = Canvas.around((10, 20), 0.5)
    with pytest.raises(ValueError, match=r"masks must be \(\.\.\., 10, 20\)"):
        canvas.place(np.zeros((10, 21), bool))
    with pytest.raises(ValueError, match=r"\(\.\.\., 20, 40\) on the canvas"):
        canvas.crop(np.zeros((10, 20), bool))


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, MAX_BEYOND + 0.5, 1e9, "wide", None, True])
def test_bad_beyond_values_are_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match=r"beyond must be a number from 0 to 2 .*got"):
        check_beyond(bad)
    with pytest.raises(ValueError, match="beyond must be"):
        Canvas.around((10, 20), bad)


def test_check_beyond_takes_numbers_and_numeric_strings():
    assert check_beyond(0) == 0.0 and check_beyond("0.5") == 0.5 and check_beyond(np.float32(2)) == 2.0


def test_touched_borders():
    mask = np.zeros((6, 8), bool)
    assert touched_borders(mask) == {"left": False, "right": False, "top": False, "bottom": False}
    mask[0, 3] = mask[2, 7] = True
    assert touched_borders(mask) == {"left": False, "right": True, "top": True, "bottom": False}


def test_the_mirror_reflects_about_the_left_border_only_where_the_mask_touches_it():
    image = np.zeros((10, 20), bool)
    image[2:6, 0:3] = True  # touches the left border only: columns 0, 1, 2 of rows 2-5
    canvas = Canvas.around((10, 20), 0.5)  # origin (10, 5)
    mirrored = mirrored_beyond(image, canvas)
    expected = canvas.place(image)
    expected[7:11, 7:10] = True  # columns 0-2 reflected to canvas columns 9, 8, 7
    assert np.array_equal(mirrored, expected)


def test_the_mirror_is_cut_at_the_margin_and_fills_the_corner_between_two_borders():
    image = np.zeros((10, 20), bool)
    image[0:4, 0:6] = True  # the top-left corner: 4 rows, 6 columns
    canvas = Canvas.around((10, 20), 0.2)  # 2 rows and 4 columns beyond: origin (4, 2)
    mirrored = mirrored_beyond(image, canvas)
    expected = np.zeros(canvas.size, bool)
    expected[0:6, 0:10] = True  # image rows 0-3 at canvas rows 2-5, reflections: rows 0-1 and columns 0-3
    assert np.array_equal(mirrored, expected)


def test_the_mirror_adds_nothing_for_an_object_away_from_the_border():
    image = np.zeros((10, 20), bool)
    image[3:7, 5:15] = True
    canvas = Canvas.around((10, 20), 0.5)
    assert np.array_equal(mirrored_beyond(image, canvas), canvas.place(image))
