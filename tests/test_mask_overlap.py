"""Pairwise pixel counts between masks, against the dense count on random and edge-case masks."""

import numpy as np

from amodal_sam.mask_overlap import mask_extents, pairwise_overlap

from conftest import rect_mask


def test_pairwise_overlap_equals_the_dense_count():
    rng = np.random.default_rng(0)
    first = rng.random((6, 30, 40)) < 0.05
    second = rng.random((4, 30, 40)) < 0.3
    first[2] = False  # an empty mask
    second[1] = rect_mask((30, 40), (0, 30), (39, 40))  # the last column only
    dense = (first[:, None] & second[None]).sum(axis=(2, 3))
    np.testing.assert_array_equal(pairwise_overlap(first, second), dense)


def test_extents_are_half_open_and_empty_masks_have_none():
    masks = np.stack(
        [rect_mask((10, 12), (2, 5), (0, 12)), np.zeros((10, 12), bool), rect_mask((10, 12), (9, 10), (11, 12))]
    )
    assert mask_extents(masks).tolist() == [[2, 5, 0, 12], [0, 0, 0, 0], [9, 10, 11, 12]]
    touching = (
        rect_mask((10, 12), (0, 5), (0, 6)),
        rect_mask((10, 12), (0, 5), (6, 12)),
    )  # side by side: no pixel shared
    assert pairwise_overlap(np.stack(touching), np.stack(touching)).tolist() == [[30, 0], [0, 30]]
