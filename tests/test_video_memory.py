"""Shape memory: motion measured from the visible part, memory carried, hidden only where allowed."""

from __future__ import annotations

import numpy as np
import pytest

from amodal_sam.video_memory import (
    IDENTITY,
    MemoryRule,
    ShapeMemory,
    invert,
    object_motion,
    remembered_hidden,
    warp_mask,
    within_lost_area,
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


def test_with_no_known_occluder_the_part_the_object_lost_is_hidden():
    """Single-object mode: a bar (not given) covers the disc's right side; everything memory
    holds outside the visible part is the area the disc lost, so all of it is hidden."""
    whole = disc(60, 48, 20)
    covered = whole & (np.mgrid[0:H, 0:W][1] >= 56)
    hidden, memory = remembered_hidden(ShapeMemory(whole), IDENTITY, whole & ~covered, allowed=None)
    assert (hidden & ~covered).sum() == 0
    assert hidden.sum() >= 0.95 * covered.sum()  # the opening may round the part's corners
    np.testing.assert_array_equal(memory.shape, (whole & ~covered) | hidden)


def test_with_no_known_occluder_an_object_that_lost_no_area_hides_nothing():
    """The disc moved 9 px that the motion missed (or deformed): memory leaves a crescent up to
    9 px thick, thicker than any sliver, outside the visible part, but the object shows all of its
    area: nothing covers it, and the crescent is not a hidden part."""
    remembered, seen = disc(60, 48, 20), disc(69, 48, 20)
    hidden, memory = remembered_hidden(ShapeMemory(remembered), IDENTITY, seen, allowed=None)
    assert not hidden.any()
    np.testing.assert_array_equal(memory.shape, seen)
    with_occluder_known, _ = remembered_hidden(ShapeMemory(remembered), IDENTITY, seen, np.ones((H, W), bool))
    assert with_occluder_known.sum() > 200  # where something could hide it, the crescent stays


@pytest.mark.parametrize("known", [True, False], ids=["occluder known", "occluder unknown"])
def test_a_strip_thinner_than_a_sliver_is_remembered_until_it_grows(known):
    """A bar advances 2 px a frame over a still disc: the first strip it hides (2 px) is thinner
    than a sliver (an opening of radius 1 for this disc) and is not shown, but remembered; the
    next frame's 4 px strip is the hidden part. Forgotten, each frame would show only its own
    2 px strip, never a hidden part."""
    whole = disc(60, 48, 20)
    columns = np.mgrid[0:H, 0:W][1]
    bars = [columns >= 79, columns >= 77]  # the disc spans columns 40-80: strips of 2 and 4 px
    memory = ShapeMemory(whole)
    rule = MemoryRule(single_min_lost=0)  # a strip this thin is no loss worth showing otherwise
    first, memory = remembered_hidden(memory, IDENTITY, whole & ~bars[0], bars[0] if known else None, rule)
    assert not first.any()
    np.testing.assert_array_equal(memory.shape, whole)
    second, memory = remembered_hidden(memory, IDENTITY, whole & ~bars[1], bars[1] if known else None, rule)
    truth = whole & bars[1]
    assert (second & ~truth).sum() == 0 and second.sum() >= 0.8 * truth.sum()
    np.testing.assert_array_equal(memory.shape, (whole & ~bars[1]) | second)


def test_the_gap_memory_leaves_in_the_visible_hull_is_hidden():
    """A 40 px square; something unknown covers the block of rows 20-49, columns 50-57 (the top
    of its right side, columns 58-59 still seen: the visible part's hull is the whole square).
    Memory, moved 3 px too far left by a poor motion, covers columns 17-56: its hidden part stops
    at column 56; the pixels of the visible part's hull next to it (column 57) complete it. With
    no gap filled, column 57 stays out."""
    square = np.zeros((H, W), bool)
    square[20:60, 20:60] = True
    covered = np.zeros((H, W), bool)
    covered[20:50, 50:58] = True
    carried = np.zeros((H, W), bool)
    carried[20:60, 17:57] = True
    rule = MemoryRule(single_min_lost=0)  # the square lost 15 % of its area: shown only without the gate
    hidden, memory = remembered_hidden(ShapeMemory(carried), IDENTITY, square & ~covered, None, rule)
    assert (hidden & ~covered).sum() == 0
    assert hidden.sum() >= 0.97 * covered.sum()
    assert not (memory.shape & ~square).any()  # the 3 px sliver left of the square is forgotten
    without_gap, _ = remembered_hidden(
        ShapeMemory(carried), IDENTITY, square & ~covered, None, MemoryRule(single_gap=0, single_min_lost=0)
    )
    assert not without_gap[20:50, 57].any() and hidden[20:50, 57].all()


def test_with_no_known_occluder_a_small_loss_is_remembered_but_not_shown():
    """Single-object mode: a disc of radius 20 (about 1257 px) loses the cap right of column 70
    (about 21 % of its area: as much as a deforming body varies, nothing shown) and then the cap
    right of column 64 (about 37 %: past the 35 % gate, shown). The first cap is remembered all
    along, so the second frame shows all of the larger one."""
    whole = disc(60, 48, 20)
    columns = np.mgrid[0:H, 0:W][1]
    small, large = whole & (columns >= 70), whole & (columns >= 64)
    assert 0.15 < small.sum() / whole.sum() < 0.25 and 0.35 < large.sum() / whole.sum() < 0.45
    first, memory = remembered_hidden(ShapeMemory(whole), IDENTITY, whole & ~small, allowed=None)
    assert not first.any()
    assert not (memory.shape & ~whole).any() and (whole & ~memory.shape).sum() <= 0.05 * small.sum()  # corners opened
    second, memory = remembered_hidden(memory, IDENTITY, whole & ~large, allowed=None)
    assert (second & ~large).sum() == 0 and second.sum() >= 0.95 * large.sum()
    with_occluder_known, _ = remembered_hidden(ShapeMemory(whole), IDENTITY, whole & ~small, small)
    assert with_occluder_known.sum() >= 0.9 * small.sum()  # the gate is for unknown occluders only


def test_the_lost_area_is_taken_nearest_the_visible_part():
    """Two candidate parts of 40 pixels each, one touching the visible part, one 30 px away; the
    object lost 40 pixels: the touching part is its hidden part, exactly."""
    visible = np.zeros((H, W), bool)
    visible[40:60, 20:40] = True  # 400 px
    near = np.zeros((H, W), bool)
    near[40:60, 40:42] = True  # 40 px, adjoining the visible part
    far = np.zeros((H, W), bool)
    far[40:60, 70:72] = True  # 40 px, 30 px away
    carried = visible | near | far  # the memory: 480 px
    visible_now = visible.copy()
    visible_now[70:80, 0:4] = True  # 40 more visible px elsewhere: 440 seen, 40 lost
    kept = within_lost_area(near | far, carried, visible_now)
    np.testing.assert_array_equal(kept, near)
    assert not within_lost_area(near | far, carried, carried).any()  # nothing lost, nothing hidden
    np.testing.assert_array_equal(within_lost_area(near, carried, visible), near)  # less than lost: all


def test_first_frame_starts_the_memory_with_what_is_seen():
    seen = disc(40, 40)
    hidden, memory = remembered_hidden(None, None, seen, allowed=np.ones((H, W), bool))
    assert not hidden.any()
    np.testing.assert_array_equal(memory.shape, seen)
    np.testing.assert_array_equal(memory.velocity, IDENTITY)


@pytest.mark.parametrize("allowed", [np.ones((H, W), bool), None], ids=["anywhere", "occluder unknown"])
def test_a_wholly_hidden_object_keeps_moving_at_its_last_velocity(allowed):
    moving = np.array([[1.0, 0.0, 5.0], [0.0, 1.0, 0.0]])
    memory = ShapeMemory(disc(40, 48), velocity=moving)
    for step in (1, 2):
        hidden, memory = remembered_hidden(memory, None, np.zeros((H, W), bool), allowed)
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


def test_slivers_scale_with_the_object():
    """The same 5 px crescent (a motion missed by 5 px, anywhere hideable) is a sliver of a disc
    of radius 120 (a share of its size a deforming edge leaves) but a third of the radius of a
    disc of 15: gone from the first, a hidden part of the second."""
    ys, xs = np.mgrid[0:300, 0:300]
    for radius, kept in ((120, False), (15, True)):
        remembered = (xs - 150) ** 2 + (ys - 150) ** 2 <= radius**2
        seen = (xs - 155) ** 2 + (ys - 150) ** 2 <= radius**2
        hidden, _ = remembered_hidden(ShapeMemory(remembered), IDENTITY, seen, np.ones((300, 300), bool))
        assert hidden.any() == kept, radius


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
