"""Metrics on small hand-computed cases."""

import math

import numpy as np
import pytest

from amodal_sam.metrics import instance_counts, summarize


def masks(*rows):
    return np.array([[c == "#" for c in row] for row in rows])


# A: the true amodal object (6 px); V: its visible part (2 px); occluded truth A - V = 4 px.
A = masks("###.", "###.", "....")
V = masks("#...", "#...", "....")


def test_hand_computed_instance():
    P = masks("##..", "####", "....")  # prediction: 6 px
    counts = instance_counts(P, A, V)
    # P & A = 5, P | A = 7; P - V = 4 px {(0,1), (1,1), (1,2), (1,3)}, A - V = 4 px; overlap 3, union 5.
    assert counts.aiou == pytest.approx(5 / 7)
    assert counts.oiou == pytest.approx(3 / 5)
    assert counts.occluded_precision == pytest.approx(3 / 4)
    assert counts.occluded_recall == pytest.approx(3 / 4)
    assert math.isnan(counts.viou)  # no visible part was predicted: undefined, not 1
    assert counts.occlusion_rate == pytest.approx(4 / 6)


def test_visible_baseline_has_zero_oiou_and_explicit_visible_prediction():
    counts = instance_counts(V, A, V, predicted_visible=masks("##..", "....", "...."))
    assert counts.aiou == pytest.approx(2 / 6)
    assert counts.oiou == 0.0 and counts.occluded_recall == 0.0
    assert math.isnan(counts.occluded_precision)  # nothing predicted as occluded
    assert counts.viou == pytest.approx(1 / 3)


def test_unoccluded_instance_has_no_oiou():
    counts = instance_counts(A, A, A)
    assert counts.aiou == 1.0 and math.isnan(counts.oiou) and counts.occlusion_rate == 0.0


def test_empty_prediction_and_empty_masks():
    empty = np.zeros_like(A)
    counts = instance_counts(empty, A, V)
    assert counts.aiou == 0.0 and counts.oiou == 0.0
    both_empty = instance_counts(empty, empty, empty)
    assert both_empty.aiou == 1.0 and math.isnan(both_empty.oiou)


def test_mean_and_pooled_protocols_and_bins():
    good = instance_counts(A, A, V)  # OIoU 1, rate 4/6
    unoccluded = instance_counts(A, A, A)  # no OIoU, rate 0
    half = instance_counts(masks("##..", "##..", "...."), A, V)  # P - V = 2 px inside A - V: OIoU 2/4
    summary = summarize([good, unoccluded, half])
    assert summary["instances"] == 3 and summary["occluded_instances"] == 2
    assert summary["mean"]["aiou"] == pytest.approx((1 + 1 + 4 / 6) / 3)
    assert summary["mean"]["oiou"] == pytest.approx((1 + 0.5) / 2)  # over occluded instances only
    assert summary["pooled"]["aiou"] == pytest.approx((6 + 6 + 4) / (6 + 6 + 6))
    assert summary["pooled"]["oiou"] == pytest.approx((4 + 0 + 2) / (4 + 0 + 4))
    assert summary["pooled"]["occluded_precision"] == 1.0
    assert summary["pooled"]["occluded_recall"] == pytest.approx(6 / 8)
    bins = {tuple(b["range"]): b for b in summary["bins"]}
    assert bins[(0.0, 0.2)]["instances"] == 1 and math.isnan(bins[(0.0, 0.2)]["mean"]["oiou"])
    assert bins[(0.6, 1.0)]["instances"] == 2 and bins[(0.6, 1.0)]["mean"]["oiou"] == pytest.approx(0.75)
    assert bins[(0.2, 0.4)]["instances"] == 0 and math.isnan(bins[(0.2, 0.4)]["mean"]["aiou"])


def test_viou_mean_and_pooled_skip_instances_without_a_visible_prediction():
    half_visible = instance_counts(A, A, V, predicted_visible=masks("#...", "....", "...."))  # 1 / 2
    wider = instance_counts(A, A, V, predicted_visible=masks("##..", "##..", "...."))  # 2 / 4
    baseline_like = instance_counts(A, A, V)  # no visible prediction
    summary = summarize([half_visible, wider, baseline_like])
    assert summary["mean"]["viou"] == pytest.approx(0.5)
    assert summary["pooled"]["viou"] == pytest.approx((1 + 2) / (2 + 4))
    assert math.isnan(summarize([baseline_like])["mean"]["viou"])
    assert math.isnan(summarize([baseline_like])["pooled"]["viou"])


def test_no_occluded_instances_at_all():
    summary = summarize([instance_counts(A, A, A)])
    assert math.isnan(summary["mean"]["oiou"]) and math.isnan(summary["pooled"]["oiou"])


def test_rate_one_falls_in_the_last_bin():
    full = instance_counts(A, A, np.zeros_like(A))
    assert full.occlusion_rate == 1.0
    assert summarize([full])["bins"][-1]["instances"] == 1


def test_shape_mismatch_is_named():
    with pytest.raises(ValueError, match="must share one shape"):
        instance_counts(A, A, V[:2])


def test_bin_edges_belong_to_the_upper_bin_and_empty_objects_have_rate_zero():
    amodal = masks("#####", ".....")
    visible = masks("###..", ".....")  # 2 of 5 hidden: rate exactly 0.4
    counts = instance_counts(amodal, amodal, visible)
    assert counts.occlusion_rate == pytest.approx(0.4)
    bins = {tuple(b["range"]): b["instances"] for b in summarize([counts])["bins"]}
    assert bins[(0.4, 0.6)] == 1 and bins[(0.2, 0.4)] == 0
    empty = np.zeros_like(A)
    assert instance_counts(empty, empty, empty).occlusion_rate == 0.0


def test_mean_precision_and_recall_are_reported():
    half = instance_counts(masks("##..", "##..", "...."), A, V)  # P - V = 2 px, both hidden truth
    summary = summarize([half, instance_counts(A, A, V)])
    assert summary["mean"]["occluded_precision"] == pytest.approx(1.0)
    assert summary["mean"]["occluded_recall"] == pytest.approx((2 / 4 + 1) / 2)
