"""The scene rules on hand-made masks: overlapping input, occlusion order and depth layers."""

import numpy as np
import pytest

from amodal_sam.geometry import convex_hull
from amodal_sam.occlusion import (
    check_scene_masks,
    depth_layers,
    non_overlapping_masks,
    occlusion_order,
    occlusion_strengths,
    order_from_strengths,
)

from conftest import rect_mask

H, W = 60, 80


def _rect(rows, cols) -> np.ndarray:
    return rect_mask((H, W), rows, cols)


def _stacked_scene():
    """A over B over C, three rectangles overlapping in a staircase; visible = amodal minus
    whatever lies in front."""
    c = _rect((10, 30), (10, 50))
    b = _rect((20, 40), (30, 60))
    a = _rect((25, 45), (45, 70))
    amodal = np.stack([a, b, c])
    visible = np.stack([a, b & ~a, c & ~a & ~b])
    return visible, amodal


def test_a_over_b_over_c():
    visible, amodal = _stacked_scene()
    strengths = occlusion_strengths(visible, amodal)
    # A's visible pixels on B's hidden part: rows 25-39 x cols 45-59 = 15 x 15
    assert strengths[0, 1] == 225 and strengths[1, 0] == 0
    # B's on C's hidden part: rows 20-29 x cols 30-49 minus A's rows 25-29 x cols 45-49 = 200 - 25
    assert strengths[1, 2] == 175
    occludes = occlusion_order(visible, amodal)
    assert occludes.tolist() == [[False, True, True], [False, False, True], [False, False, False]]
    layers = depth_layers(occludes)
    assert layers.layers.tolist() == [0, 1, 2] and layers.broken == []


def test_two_objects_side_by_side_have_no_edge():
    left, right = _rect((10, 40), (5, 35)), _rect((10, 40), (35, 70))  # they touch, nothing hidden
    masks = np.stack([left, right])
    assert not occlusion_order(masks, masks).any()
    assert depth_layers(occlusion_order(masks, masks)).layers.tolist() == [0, 0]


def test_the_larger_claim_wins_and_noise_makes_no_edge():
    a, b = _rect((10, 30), (10, 30)), _rect((10, 30), (30, 50))
    a_amodal = a | _rect((10, 30), (30, 34))  # A's completion runs 4 columns under B: 80 px
    b_amodal = b | _rect((10, 12), (28, 30))  # B's claims 4 px under A
    occludes = occlusion_order(np.stack([a, b]), np.stack([a_amodal, b_amodal]))
    assert occludes.tolist() == [[False, False], [True, False]]  # B is in front of A
    tiny_claim = a | _rect((10, 11), (30, 32))  # 2 px under B: under 1% of A's 402 px
    assert not occlusion_order(np.stack([a, b]), np.stack([tiny_claim, b])).any()


def test_a_cycle_is_broken_at_its_weakest_edge():
    occludes = np.zeros((3, 3), bool)
    occludes[0, 1] = occludes[1, 2] = occludes[2, 0] = True  # 0 > 1 > 2 > 0
    strengths = np.zeros((3, 3))
    strengths[0, 1], strengths[1, 2], strengths[2, 0] = 5, 3, 9
    with_cycle = depth_layers(occludes, strengths)
    assert with_cycle.broken == [(1, 2)]
    assert not with_cycle.occludes[1, 2] and with_cycle.occludes[0, 1] and with_cycle.occludes[2, 0]
    # left: 2 in front of 0, 0 in front of 1
    assert with_cycle.layers.tolist() == [1, 2, 0]


def test_two_disjoint_cycles_and_a_self_contained_chain_terminate():
    occludes = np.zeros((5, 5), bool)
    occludes[0, 1] = occludes[1, 0] = True
    occludes[2, 3] = occludes[3, 4] = occludes[4, 2] = True
    result = depth_layers(occludes)
    assert len(result.broken) == 2 and sorted(result.layers.tolist()) == [0, 0, 1, 1, 2]


def test_a_few_pixels_of_overlap_go_to_the_smaller_mask():
    big, small = _rect((0, 40), (0, 40)), _rect((39, 60), (10, 60))  # share row 39, cols 10-39: 30 px, 3%
    resolved = check_scene_masks(np.stack([big, small]))
    assert resolved[1].sum() == small.sum() and resolved[0].sum() == big.sum() - 30
    assert not (resolved[0] & resolved[1]).any()
    untouched = np.stack([_rect((0, 10), (0, 10)), _rect((20, 30), (20, 30))])
    np.testing.assert_array_equal(check_scene_masks(untouched), untouched)


def test_bad_scene_masks_name_the_masks():
    whole, part = _rect((0, 40), (0, 40)), _rect((5, 15), (5, 15))
    with pytest.raises(ValueError, match=r"visible_masks\[1\] lies mostly inside visible_masks\[0\] \(100%"):
        check_scene_masks(np.stack([whole, part]))
    half = _rect((0, 40), (30, 60))  # 10 of its 30 columns inside: 33% of it
    with pytest.raises(ValueError, match=r"visible_masks\[0\] and visible_masks\[1\] overlap on 400 pixels \(33%"):
        check_scene_masks(np.stack([whole, half]))
    with pytest.raises(ValueError, match=r"visible_masks\[1\] is empty"):
        check_scene_masks(np.stack([whole, np.zeros((H, W), bool)]))


def test_automatic_masks_keep_wholes_and_drop_their_parts():
    person = _rect((0, 50), (0, 30))
    face = _rect((2, 10), (5, 15))  # inside the person: a part
    cup = _rect((40, 55), (25, 45))  # overlaps the person on rows 40-49 x cols 25-29: 50 px, 17% of the cup
    masks, kept = non_overlapping_masks(np.stack([face, person, cup]))
    assert kept.tolist() == [1, 2]
    assert masks[1].sum() == cup.sum() and masks[0].sum() == person.sum() - 50  # the smaller keeps the overlap
    assert not (masks[0] & masks[1]).any()
    empty, none_kept = non_overlapping_masks(np.zeros((0, H, W), bool))
    assert empty.shape == (0, H, W) and none_kept.tolist() == []


def test_equal_areas_give_contested_pixels_to_the_lower_index():
    left, right = _rect((0, 50), (0, 20)), _rect((0, 50), (19, 39))  # 1000 px each, column 19 shared: 5 %
    resolved = check_scene_masks(np.stack([left, right]))
    assert resolved[0, :50, 19].all() and not resolved[1, :, 19].any()
    half = _rect((0, 50), (10, 30))  # 1000 px, half of it inside `left`
    with pytest.raises(ValueError, match=r"overlap on 500 pixels \(50%"):
        check_scene_masks(np.stack([left, half]))


def test_order_ties_floors_and_tiny_objects():
    a, b = _rect((10, 20), (10, 20)), _rect((10, 20), (20, 30))  # 100 px each, side by side
    a_amodal, b_amodal = a | _rect((10, 12), (20, 22)), b | _rect((10, 12), (18, 20))  # 4 px claims each
    assert not occlusion_order(np.stack([a, b]), np.stack([a_amodal, b_amodal])).any()  # a tie: no edge
    small = _rect((10, 20), (10, 19))  # 90 px: 1 % of its 91-px completion is under one pixel
    one_pixel = small | _rect((10, 11), (20, 21))
    assert occlusion_order(np.stack([small, b]), np.stack([one_pixel, b])).tolist() == [[False, False], [True, False]]
    c = _rect((10, 22), (10, 18))  # 96 px + a 4 px claim = 100: at min_share 0.04 the floor is exactly 4
    claim = c | _rect((10, 12), (20, 22))
    assert occlusion_order(np.stack([c, b]), np.stack([claim, b]), min_share=0.04).tolist()[1] == [True, False]
    assert not occlusion_order(np.stack([c, b]), np.stack([claim, b]), min_share=0.05).any()


def test_a_cycle_is_found_behind_an_object_that_leads_into_it():
    """Node 0 lies behind node 1, which is in a cycle 1 > 2 > 3 > 1: the walk from 0 must break
    the cycle's weakest edge, not the edge that leads into it."""
    occludes = np.zeros((4, 4), bool)
    weights = np.zeros((4, 4))
    for (i, j), weight in {(1, 0): 0.5, (1, 2): 5, (2, 3): 3, (3, 1): 9}.items():
        occludes[i, j], weights[i, j] = True, weight
    result = depth_layers(occludes, weights)
    assert result.broken == [(2, 3)]
    assert result.layers.tolist() == [2, 1, 2, 0]  # 3 > 1 > {0, 2}


def test_automatic_masks_boundaries():
    whole = _rect((0, 40), (0, 40))  # 1600 px
    exactly_half = _rect((30, 50), (10, 30))  # 400 px, 200 of them inside the whole: kept (a part is more)
    empty = np.zeros((H, W), bool)
    masks, kept = non_overlapping_masks(np.stack([empty, whole, exactly_half]))
    assert kept.tolist() == [1, 2]  # the empty mask is skipped and the rest still considered
    assert masks[1].sum() == 400 and masks[0].sum() == 1400
    corner = _rect((50, 60), (70, 80))  # 100 px
    assert non_overlapping_masks(np.stack([whole, corner]), min_area=100)[1].tolist() == [0, 1]
    assert non_overlapping_masks(np.stack([whole, corner]), min_area=101)[1].tolist() == [0]


def test_the_part_is_named_first_whatever_the_input_order():
    whole, part = _rect((0, 40), (0, 40)), _rect((5, 15), (5, 15))
    with pytest.raises(ValueError, match=r"visible_masks\[0\] lies mostly inside visible_masks\[1\]"):
        check_scene_masks(np.stack([part, whole]))


def _post_between_two_arms():
    """B, a U opening upward (two arms joined at the bottom), and A, a post standing between
    its arms in front of it: A's visible pixels lie in B's convex hull, B's in A's do not. A
    careful completion of B adds nothing there (it is not sure)."""
    b = _rect((10, 50), (10, 20)) | _rect((10, 50), (50, 60)) | _rect((40, 50), (10, 60))
    a = _rect((5, 38), (28, 42))
    return np.stack([a, b])


def test_the_hulls_give_the_order_a_careful_completion_misses():
    visible = _post_between_two_arms()
    amodal = visible.copy()  # no hidden pixel added: no evidence from the completions alone
    hulls = np.stack([convex_hull(v) for v in visible])
    assert not occlusion_order(visible, amodal).any()
    # A's 33 x 14 pixels inside B's hull: rows 10-37 of them (28 x 14 = 392) lie in it
    strengths = occlusion_strengths(visible, amodal, hulls=hulls)
    assert strengths.tolist() == [[0, 392], [0, 0]]
    assert occlusion_order(visible, amodal, hulls=hulls).tolist() == [[False, True], [False, False]]


def test_a_completion_past_the_hull_still_counts_and_chunks_add_up():
    visible, amodal = _stacked_scene()
    hulls = np.stack([convex_hull(v) for v in visible])  # rectangles and L shapes: hull beyond the L
    whole = occlusion_strengths(visible, amodal, hulls=hulls)
    assert (whole >= occlusion_strengths(visible, amodal)).all()  # the hull only adds evidence
    left = occlusion_strengths(visible, amodal[:1], visible[:1], hulls[:1])
    right = occlusion_strengths(visible, amodal[1:], visible[1:], hulls[1:])
    np.testing.assert_array_equal(np.concatenate([left, right], axis=1), whole)
    areas = amodal.reshape(3, -1).sum(axis=1)
    np.testing.assert_array_equal(order_from_strengths(whole, areas), occlusion_order(visible, amodal, hulls=hulls))
    assert occlusion_order(visible, amodal, hulls=hulls).tolist() == occlusion_order(visible, amodal).tolist()
