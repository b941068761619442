"""Shape memory: motion measured from the visible part, memory carried, hidden only where allowed."""

from __future__ import annotations

import numpy as np

from amodal_sam.video_memory import (
    IDENTITY,
    MemoryRule,
    ShapeMemory,
    invert,
    object_motion,
    remembered_hidden,
    warp_mask,
)

from conftest import smooth_texture

H, W = 96, 128


def disc(cx: float, cy: float, r: float = 18) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def textured_frame(mask: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    """Grey frame: a flat background and, inside ``mask``, a random texture fixed to the object
    (drawn from a texture shifted by ``offset`` (dx, dy), so it moves with the object)."""
    texture = smooth_texture((H + 40, W + 40), seed=1)
    dx, dy = offset
    moved = texture[20 - dy : 20 - dy + H, 20 - dx : 20 - dx + W]
    return np.where(mask, moved, 90).astype(np.uint8)


def test_motion_of_a_translated_object_is_its_translation():
    before, after = disc(50, 45), disc(56, 42)
    matrix = object_motion(textured_frame(before, (0, 0)), textured_frame(after, (6, -3)), before, after)
    assert matrix is not None
    np.testing.assert_allclose(matrix[:, :2], np.eye(2), atol=0.02)
    np.testing.assert_allclose(matrix[:, 2], [6, -3], atol=0.3)


def test_motion_ignores_corners_that_land_on_the_occluder():
    """The right half of the object goes behind a static textured bar: its corners cannot land on
    the object's visible part and are left out; the motion is still the object's."""
    before, after = disc(50, 45), disc(54, 45)
    bar = np.zeros((H, W), bool)
    bar[:, 56:80] = True
    previous = textured_frame(before, (0, 0))
    current = textured_frame(after, (4, 0))
    bar_texture = smooth_texture((H, W), seed=7)
    current[bar] = bar_texture[bar]
    matrix = object_motion(previous, current, before, after & ~bar)
    assert matrix is not None
    np.testing.assert_allclose(matrix[:, 2], [4, 0], atol=0.5)


def test_no_motion_without_a_visible_part_or_corners():
    before = disc(50, 45)
    frame = textured_frame(before, (0, 0))
    empty = np.zeros((H, W), bool)
    assert object_motion(frame, frame, before, empty) is None
    assert object_motion(frame, frame, empty, before) is None
    flat = np.full((H, W), 90, np.uint8)  # nothing to track on a flat object
    assert object_motion(flat, flat, before, before) is None


def test_warp_and_invert_are_each_others_undoing():
    shift = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, -4.0]])
    np.testing.assert_array_equal(warp_mask(disc(50, 45), shift), disc(57, 41))
    np.testing.assert_allclose(invert(shift), [[1, 0, -7], [0, 1, 4]])
    np.testing.assert_array_equal(warp_mask(disc(50, 45), IDENTITY), disc(50, 45))


def test_hidden_part_is_the_remembered_shape_under_what_can_hide_it():
    whole = disc(60, 48, 20)
    bar = np.zeros((H, W), bool)
    bar[:, 60:90] = True
    hidden, memory = remembered_hidden(ShapeMemory(whole), IDENTITY, whole & ~bar, allowed=bar)
    truth = whole & bar
    assert (hidden & ~truth).sum() == 0
    assert hidden.sum() >= 0.95 * truth.sum()  # the opening may round the part's corners
    np.testing.assert_array_equal(memory.shape, (whole & ~bar) | hidden)


def test_nothing_is_hidden_where_nothing_can_hide_it():
    whole = disc(60, 48, 20)
    half = whole & (np.mgrid[0:H, 0:W][1] < 60)
    hidden, memory = remembered_hidden(ShapeMemory(whole), IDENTITY, half, allowed=np.zeros((H, W), bool))
    assert not hidden.any()
    np.testing.assert_array_equal(memory.shape, half)  # what it cannot be hiding is forgotten


def test_first_frame_starts_the_memory_with_what_is_seen():
    seen = disc(40, 40)
    hidden, memory = remembered_hidden(None, None, seen, allowed=np.ones((H, W), bool))
    assert not hidden.any()
    np.testing.assert_array_equal(memory.shape, seen)
    np.testing.assert_array_equal(memory.velocity, IDENTITY)


def test_a_wholly_hidden_object_keeps_moving_at_its_last_velocity():
    moving = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 0.0]])
    memory = ShapeMemory(disc(40, 48), velocity=moving)
    everywhere = np.ones((H, W), bool)
    for step in (1, 2):
        hidden, memory = remembered_hidden(memory, None, np.zeros((H, W), bool), everywhere)
        expected = disc(40 + 5 * step, 48)
        assert (hidden ^ expected).sum() <= 0.03 * expected.sum()  # the opening trims the disc's tips
        np.testing.assert_allclose(np.argwhere(hidden).mean(axis=0), [48, 40 + 5 * step], atol=0.3)


def test_an_object_reappearing_far_away_resets_the_memory():
    memory = ShapeMemory(disc(30, 48))
    elsewhere = disc(100, 48)
    hidden, after = remembered_hidden(memory, IDENTITY, elsewhere, allowed=np.ones((H, W), bool))
    assert not hidden.any()
    np.testing.assert_array_equal(after.shape, elsewhere)


def test_a_small_sliver_outside_the_memory_does_not_reset_it():
    """A few visible pixels past the memory (less than reset_area of it) say too little about
    where the object is: the memory stays and still gives the hidden part."""
    remembered = disc(40, 48, 20)
    sliver = disc(66, 48, 4)  # outside the memory, an eighth of its area at most
    everywhere = np.ones((H, W), bool)
    hidden, after = remembered_hidden(ShapeMemory(remembered), IDENTITY, sliver, everywhere)
    assert hidden.sum() >= 0.95 * remembered.sum()
    assert (after.shape & remembered).sum() >= 0.95 * remembered.sum()


def test_slivers_a_deforming_edge_leaves_are_not_hidden_parts():
    remembered = disc(60, 48, 20)
    seen = disc(61, 48, 20)  # the object moved a pixel that the motion did not catch
    hidden, _ = remembered_hidden(ShapeMemory(remembered), IDENTITY, seen, np.ones((H, W), bool))
    assert not hidden.any()
    kept, _ = remembered_hidden(ShapeMemory(remembered), IDENTITY, seen, np.ones((H, W), bool), MemoryRule(sliver=0))
    assert kept.any()


def test_a_rotation_goes_on_as_the_shift_of_the_centre():
    """A turn about the object's own centre moves the centre nowhere: a wholly hidden object
    keeps still, where the fit's translation column (a turn about the image origin) would fling it."""
    import cv2

    whole = disc(60, 48, 12)
    turn = cv2.getRotationMatrix2D((60.0, 48.0), 10.0, 1.0)
    assert abs(turn[0, 2]) > 5  # the translation column alone is far from zero
    _, memory = remembered_hidden(ShapeMemory(whole), turn, whole, np.ones((H, W), bool))
    np.testing.assert_allclose(memory.velocity, IDENTITY, atol=1e-9)


def test_corners_carried_off_by_a_moving_occluder_do_not_move_the_object():
    """A still object; an occluder slides over 59 % of it carrying a texture like the object's,
    so the covered corners track the occluder's motion (8 px right). They land on the occluder,
    not inside the object's visible part, and are left out: the object has not moved."""
    texture = smooth_texture((H, W + 16), seed=5)
    whole = disc(60, 48, 30)
    previous = np.where(whole, texture[:, 8 : 8 + W], 90).astype(np.uint8)
    occluder = np.zeros((H, W), bool)
    occluder[:, 56:] = True
    current = np.where(occluder, texture[:, :W], previous).astype(np.uint8)
    matrix = object_motion(previous, current, whole, whole & ~occluder)
    assert matrix is not None
    np.testing.assert_allclose(matrix[:, 2], [0, 0], atol=0.5)
