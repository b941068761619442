"""The coordinate frames: original pixels <-> encoder input <-> low-res mask frame."""

import dataclasses

import numpy as np
import pytest
import torch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from amodal_sam.config import SAM_SPECS
from amodal_sam.geometry import ImageFrame, convex_hull, mask_boxes, visible_prompt_levels

from conftest import ellipse_mask, random_image

SIZES = [(480, 854), (854, 480), (333, 517), (256, 256), (37, 1000), (1000, 37), (1, 5)]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.mark.parametrize("size", SIZES)
def test_input_size_keeps_aspect_ratio_and_fills_longest_side(size):
    frame = ImageFrame(original_size=size, encoder_size=1024, low_res_size=256)
    h, w = frame.input_size
    scale = 1024 / max(size)
    assert max(h, w) == 1024
    assert abs(h - size[0] * scale) <= 0.5 and abs(w - size[1] * scale) <= 0.5


# Frames at least 4 low-res pixels wide; a thinner one keeps no shape.
ROUND_TRIPS = [(size, side) for size in SIZES[:-1] for side in (256, 1024) if min(size) * side / max(size) >= 16]


@pytest.mark.parametrize("size, encoder_size", ROUND_TRIPS)
def test_mask_round_trip_through_low_res_frame(size, encoder_size):
    mask = ellipse_mask(*size, center=(0.45, 0.55), radii=(0.3, 0.35))
    frame = ImageFrame(original_size=size, encoder_size=encoder_size, low_res_size=encoder_size // 4)
    coverage = frame.masks_to_low_res(mask[None])
    assert coverage.shape == (1, encoder_size // 4, encoder_size // 4)
    h, w = frame.input_size
    assert coverage[0, int(np.ceil(h / 4)) :, :].sum() == 0 and coverage[0, :, int(np.ceil(w / 4)) :].sum() == 0
    logits = torch.from_numpy(coverage - 0.5)[:, None]
    back = frame.low_res_to_original(logits)[0, 0].numpy() > 0
    assert back.shape == size
    low_res_width = min(frame.input_size) / 4
    # Thin frames lose up to one low-res pixel of boundary; all others come back nearly exactly.
    assert iou(back, mask) > (0.8 if low_res_width < 16 else 0.95)


def test_whole_image_mask_comes_back_covering_the_image():
    size = (333, 517)
    frame = ImageFrame(original_size=size, encoder_size=1024, low_res_size=256)
    full = np.ones(size, dtype=bool)
    logits = torch.from_numpy(frame.masks_to_low_res(full[None]) - 0.5)[:, None]
    assert (frame.low_res_to_original(logits)[0, 0] > 0).all()


@pytest.mark.parametrize("size", SIZES[:4])
def test_points_and_boxes_match_segment_anything(size):
    frame = ImageFrame(original_size=size, encoder_size=1024, low_res_size=256)
    points = np.array([[0.0, 0.0], [size[1] - 1, size[0] - 1], [10.5, 20.25]])
    reference = ResizeLongestSide(1024)
    np.testing.assert_allclose(frame.points_to_input(points), reference.apply_coords(points, size))
    box = np.array([[3.0, 4.0, 100.0, 120.0]])
    np.testing.assert_allclose(frame.boxes_to_input(box), reference.apply_boxes(box, size))


@pytest.mark.parametrize("size", [(480, 854), (854, 480), (333, 517), (256, 256), (255, 37), (37, 255), (1, 2)])
@pytest.mark.parametrize("encoder_size", [256, 96])  # 4 x and 1.5 x the low-res side
def test_low_res_to_original_equals_sam_postprocess(tiny_model, size, encoder_size):
    """Bit for bit: cropping the padding before upsampling computes the same pixels."""
    frame = ImageFrame(original_size=size, encoder_size=encoder_size, low_res_size=64)
    logits = torch.randn(2, 3, 64, 64)
    tiny_model.sam.image_encoder.img_size = encoder_size  # postprocess_masks reads the input side here
    reference = Sam.postprocess_masks(tiny_model.sam, logits, frame.input_size, size)
    assert torch.equal(frame.low_res_to_original(logits), reference)


@pytest.mark.parametrize("size", [(480, 854), (333, 517)])
def test_prepare_image_matches_sam_preprocess(tiny_model, size):
    image = random_image(*size)
    frame = ImageFrame(original_size=size, encoder_size=256, low_res_size=64)
    sam = tiny_model.sam
    resized = ResizeLongestSide(256).apply_image(image)
    reference = sam.preprocess(torch.as_tensor(resized).permute(2, 0, 1)[None].float())
    torch.testing.assert_close(frame.prepare_image(image, sam.pixel_mean, sam.pixel_std), reference)


def test_mask_boxes_are_inclusive_pixel_extents():
    mask = np.zeros((2, 10, 12), dtype=bool)
    mask[0, 2:5, 3:9] = True
    mask[1, 9, 11] = True
    np.testing.assert_array_equal(mask_boxes(mask), [[3, 2, 8, 4], [11, 9, 11, 9]])
    with pytest.raises(ValueError, match="empty"):
        mask_boxes(np.zeros((1, 4, 4), dtype=bool))


def test_visible_prompt_levels_mark_visible_hull_and_outside():
    frame = ImageFrame(
        original_size=(64, 64), encoder_size=256, low_res_size=64
    )  # low-res frame 64 x 64: one pixel each
    visible = np.zeros((1, 64, 64), dtype=bool)
    visible[0, 10:40, 10:20] = visible[0, 10:40, 40:50] = True  # two bars; the gap between is in the hull
    plain = visible_prompt_levels(frame, visible, with_hull=False)[0]
    hull = visible_prompt_levels(frame, visible, with_hull=True)[0]
    assert plain[20, 15] == 1 and plain[20, 30] == -1 and plain[60, 60] == -1
    assert hull[20, 15] == 1 and hull[20, 30] == 0 and hull[60, 60] == -1
    assert hull.min() >= -1 and hull.max() <= 1  # edge pixels take coverage-weighted levels
    np.testing.assert_array_equal(convex_hull(visible[0])[10:40, 10:50], True)


def test_low_res_frame_follows_the_patch_size():
    sam_frame = ImageFrame.for_spec((480, 640), SAM_SPECS["vit_b"])  # 1024 / 16 = 64 tokens, x 4
    fine = ImageFrame.for_spec((480, 640), dataclasses.replace(SAM_SPECS["vit_b"], image_size=512, patch_size=8))
    demo = ImageFrame.for_spec((480, 640), SAM_SPECS["demo"])  # 512 / 16 = 32 tokens, x 4
    assert (sam_frame.low_res_size, fine.low_res_size, demo.low_res_size) == (256, 256, 128)
    mask = ellipse_mask(480, 640)
    coverage = fine.masks_to_low_res(mask[None])
    back = fine.low_res_to_original(torch.from_numpy(coverage - 0.5)[:, None])[0, 0].numpy() > 0
    assert iou(back, mask) > 0.95


def test_convex_hull_of_three_pixels_is_their_triangle():
    mask = np.zeros((8, 8), bool)
    mask[0, 0] = mask[0, 6] = mask[6, 0] = True
    hull = convex_hull(mask)
    # the right triangle with legs of 7 px: rows 0-6, row r covering columns 0..6-r
    expected = np.zeros((8, 8), bool)
    for row in range(7):
        expected[row, : 7 - row] = True
    np.testing.assert_array_equal(hull, expected)
    two = np.zeros((8, 8), bool)
    two[1, 1] = two[5, 5] = True
    np.testing.assert_array_equal(convex_hull(two), two)  # under 3 pixels: the mask itself
