"""Boundary noise on masks, on shapes whose pixel counts are worked out by hand."""

import numpy as np
import pytest

from amodal_sam.mask_noise import moved_boundary


def _square(side: int, canvas: int = 20) -> np.ndarray:
    mask = np.zeros((canvas, canvas), bool)
    start = (canvas - side) // 2
    mask[start : start + side, start : start + side] = True
    return mask


def test_a_one_pixel_move_peels_or_adds_one_ring():
    """Radius 1 is a 3 x 3 cross: a 10 x 10 square erodes to its 8 x 8 core (64 px) and grows to
    12 x 12 less its 4 corners (140 px)."""
    square = _square(10)
    eroded = moved_boundary(square, 1, grow=False)
    assert eroded.sum() == 64 and (eroded <= square).all()
    np.testing.assert_array_equal(eroded, _square(8))
    grown = moved_boundary(square, 1, grow=True)
    assert grown.sum() == 140 and (grown >= square).all()
    assert not grown[4, 4] and grown[4, 5] and grown[5, 4]  # the corners of the 12 x 12 stay out


def test_a_larger_radius_moves_the_edge_that_far():
    """Radius 3 moves a straight edge by 3 px: the middle row of a 10 x 10 square spans
    columns 8-11 eroded (4 px) and 2-17 grown (16 px)."""
    square = _square(10)
    row = 9
    assert np.flatnonzero(moved_boundary(square, 3, grow=False)[row]).tolist() == list(range(8, 12))
    assert np.flatnonzero(moved_boundary(square, 3, grow=True)[row]).tolist() == list(range(2, 18))


def test_an_erosion_that_would_empty_the_mask_keeps_it_and_zero_changes_nothing():
    dot = _square(2)
    np.testing.assert_array_equal(moved_boundary(dot, 2, grow=False), dot)
    unchanged = moved_boundary(dot, 0, grow=True)
    np.testing.assert_array_equal(unchanged, dot)
    assert unchanged is not dot  # a copy: the caller's mask is never shared
    with pytest.raises(ValueError, match="radius must be a non-negative number of pixels; got -1"):
        moved_boundary(dot, -1, grow=True)
