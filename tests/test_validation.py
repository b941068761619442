"""Bad input gives a clear error that names the argument and what was expected."""

import numpy as np
import pytest

from amodal_sam import AmodalPredictor

from conftest import TEST_DEVICE, ellipse_mask, random_image

SIZE = (60, 80)


@pytest.fixture
def predictor(tiny_model):
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(random_image(*SIZE))
    return predictor


def test_complete_before_set_image(tiny_model):
    with pytest.raises(RuntimeError, match=r"call set_image\(image\) before complete\(\)"):
        AmodalPredictor(tiny_model, device=TEST_DEVICE).complete(visible_mask=ellipse_mask(*SIZE))


@pytest.mark.parametrize(
    "image, message",
    [
        (np.zeros((60, 80), np.uint8), r"image must be RGB with shape \(H, W, 3\); got shape \(60, 80\)"),
        (np.zeros((60, 80, 4), np.uint8), r"image must be RGB .* got shape \(60, 80, 4\)"),
        (np.zeros((60, 80, 3), np.float32), "image must have dtype uint8"),
        ([[1, 2, 3]], "image must be a numpy array"),
    ],
)
def test_bad_images(tiny_model, image, message):
    with pytest.raises(ValueError, match=message):
        AmodalPredictor(tiny_model, device=TEST_DEVICE).set_image(image)


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.ones((60, 80, 1), bool), r"visible_mask must be 2-D with shape \(H, W\)"),
        (np.ones((60, 80), np.float32), "visible_mask must have dtype bool"),
        (np.ones((61, 80), bool), r"visible_mask has shape \(61, 80\) but the image is \(60, 80\)"),
        (np.zeros((60, 80), bool), "visible_mask is empty"),
    ],
)
def test_bad_visible_masks(predictor, mask, message):
    with pytest.raises(ValueError, match=message):
        predictor.complete(visible_mask=mask)


def test_uint8_masks_count_nonzero_pixels(predictor):
    mask = ellipse_mask(*SIZE)
    as_bool = predictor.complete(visible_mask=mask)
    as_uint8 = predictor.complete(visible_mask=mask.astype(np.uint8) * 255)
    np.testing.assert_array_equal(as_bool.amodal, as_uint8.amodal)


def test_bad_mask_in_a_batch_is_named_by_index(predictor):
    with pytest.raises(ValueError, match=r"visible_masks\[1\] is empty"):
        predictor.complete_batch([ellipse_mask(*SIZE), np.zeros(SIZE, bool)])
    with pytest.raises(ValueError, match="at least one"):
        predictor.complete_batch([])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"point_coords": [[90, 10]], "point_labels": [1]}, r"point_coords \[\[90.0, 10.0\]\] lie outside the image"),
        ({"point_coords": [[-1, 10]], "point_labels": [1]}, "lie outside the image"),
        ({"point_coords": [[5, 5]], "point_labels": [1, 0]}, r"point_labels must have shape \(1,\)"),
        ({"point_coords": [[5, 5]], "point_labels": [2]}, "point_labels must be 1 .* or 0"),
        ({"point_coords": [5, 5], "point_labels": [1]}, r"point_coords must have shape \(P, 2\)"),
        ({"point_coords": [[5, 5]]}, "point_coords and point_labels must be given together"),
        ({"box": [50, 10, 20, 40]}, "box must have x0 < x1 and y0 < y1"),
        ({"box": [10, 40, 20, 30]}, "box must have x0 < x1 and y0 < y1"),
        ({"box": [10, 10, 90, 40]}, "lies outside the image"),
        ({"box": [1, 2, 3]}, r"box must be \(x0, y0, x1, y1\), shape \(4,\)"),
        ({"box": [1, 2, float("nan"), 10]}, r"box must be finite pixel coordinates; got \[1.0, 2.0, nan, 10.0\]"),
        ({"point_coords": [[float("nan"), 5]], "point_labels": [1]}, "point_coords must be finite pixel coordinates"),
        ({}, "complete\\(\\) needs visible_mask"),
    ],
)
def test_bad_prompts(predictor, kwargs, message):
    with pytest.raises(ValueError, match=message):
        predictor.complete(**kwargs)


@pytest.mark.parametrize(
    "box, ok",
    [
        ([0, 0, 60, 40], True),  # the whole 40 x 60 image: edges are allowed
        ([-0.5, 0, 10, 10], False),
        ([0, -0.5, 10, 10], False),
        ([0, 0, 60.5, 10], False),
        ([0, 0, 10, 40.5], False),
        ([5, 5, 5, 10], False),  # no width
        ([5, 5, 10, 5], False),  # no height
    ],
)
def test_box_bounds(box, ok):
    from amodal_sam.validation import check_box

    if ok:
        assert check_box(box, (40, 60)).dtype == np.float64
    else:
        with pytest.raises(ValueError, match="box"):
            check_box(box, (40, 60))


@pytest.mark.parametrize(
    "point, ok",
    [((0, 0), True), ((59.5, 39.5), True), ((-0.1, 5), False), ((60, 5), False), ((5, -0.1), False), ((5, 40), False)],
)
def test_point_bounds(point, ok):
    from amodal_sam.validation import check_points

    if ok:
        coords, labels = check_points([point], [1], (40, 60))
        assert coords.tolist() == [list(map(float, point))] and labels.dtype == np.int64
    else:
        with pytest.raises(ValueError, match="outside the image"):
            check_points([point], [1], (40, 60))


def test_points_need_at_least_one_row_of_two_coordinates():
    from amodal_sam.validation import check_points

    for coords in (np.zeros((0, 2)), np.zeros((2, 3))):
        with pytest.raises(ValueError, match=r"shape \(P, 2\)"):
            check_points(coords, [1] * len(coords), (40, 60))
