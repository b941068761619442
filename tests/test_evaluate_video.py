"""Scoring video: flicker, per-frame metrics pooled over clips, the methods side by side."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amodal_sam import AmodalSAM
from amodal_sam.data.synth_video import OcclusionClip
from amodal_sam.evaluate_video import (
    clip_masks,
    clip_scores,
    evaluate_clips,
    flicker,
    format_video_report,
    score_clips,
    summarize_scores,
)
from amodal_sam.metrics import mask_iou
from amodal_sam.video import AmodalVideoPredictor

from conftest import random_image, rect_mask

H, W = 32, 40


def square(left: int) -> np.ndarray:
    return rect_mask((H, W), (8, 24), (left, left + 16))


def test_mask_iou_counts_pixels():
    assert mask_iou(square(0), square(0)) == 1.0
    assert mask_iou(square(0), square(8)) == pytest.approx(128 / 384)  # 8 of 16 columns shared
    assert mask_iou(np.zeros((H, W), bool), np.zeros((H, W), bool)) == 1.0


def test_flicker_is_change_beyond_the_truths_own():
    still = np.stack([square(4)] * 4)
    assert flicker(still, still) == [0.0, 0.0, 0.0]
    blinking = np.stack([square(4), np.zeros((H, W), bool)] * 2)
    assert flicker(blinking, still) == [1.0, 1.0, 1.0]
    moving = np.stack([square(4 * t) for t in range(4)])
    assert flicker(moving, moving) == [0.0, 0.0, 0.0]  # it moves exactly as the truth does
    assert flicker(still, moving) == pytest.approx([1 - mask_iou(square(0), square(4))] * 3)


def make_clip(visible_rows: list[int]) -> OcclusionClip:
    """A still square; frame t's occluder covers its columns from ``visible_rows[t]`` on."""
    amodal = np.stack([square(10)] * len(visible_rows))
    index = np.zeros(amodal.shape, np.uint8)
    for t, edge in enumerate(visible_rows):
        occluder = np.zeros((H, W), bool)
        occluder[:, edge:] = True
        index[t][amodal[t] & ~occluder] = 1
        index[t][occluder] = 2
    frames = np.stack([random_image(H, W, t) for t in range(len(visible_rows))])
    return OcclusionClip(frames, index, amodal, [f"{t:05d}" for t in range(len(visible_rows))], {})


def test_scores_of_a_clip_and_their_summary():
    clip = make_clip([40, 22, 14])  # hidden shares 0, 0.25, 0.75
    np.testing.assert_allclose(clip.hidden_share, [0, 0.25, 0.75])
    visible = clip.visible == 1
    scores = clip_scores(visible, clip)
    np.testing.assert_allclose(scores["aiou"], [1.0, 0.75, 0.25])
    assert math.isnan(scores["oiou"][0]) and scores["oiou"][1:] == [0.0, 0.0]
    whole = clip_scores(clip.amodal, clip)
    summary = summarize_scores([scores, whole])
    assert summary["frames"] == 6
    assert summary["aiou"] == pytest.approx((1 + 0.75 + 0.25 + 3) / 6)
    assert summary["oiou"] == pytest.approx(2 / 4)  # four frames with a hidden part: 0, 0, 1, 1
    assert summary["oiou_heavy"] == pytest.approx(0.5)  # the two 75 %-hidden frames: 0 and 1
    assert summary["flicker"] == pytest.approx(np.mean([0.25, 2 / 3, 0, 0]))


def test_clip_masks_forms():
    clip = make_clip([40, 22])
    assert clip_masks(clip, "single").dtype == bool
    assert set(np.unique(clip_masks(clip, "scene"))) == {0, 1, 2}
    with pytest.raises(ValueError, match="form must be one of"):
        clip_masks(clip, "both")


def test_every_method_is_scored_on_the_same_clips():
    video = AmodalVideoPredictor(AmodalSAM.random("tiny", seed=0), device="cpu")
    report = evaluate_clips([make_clip([40, 22, 14, 22])], video, progress=False)
    assert list(report) == [
        "visible",
        "hull",
        "hull-occluders",
        "video / single",
        "per frame / single",
        "video / scene",
        "per frame / scene",
    ]
    assert all(r["frames"] == 4 for r in report.values())
    assert report["visible"]["oiou"] == 0.0
    assert report["hull"]["aiou"] == report["visible"]["aiou"]  # each visible part is a rectangle: its own hull
    assert report["hull-occluders"]["aiou"] == report["visible"]["aiou"]
    table = format_video_report(report)
    assert table.count("\n") == 1 + len(report) and "| per frame / scene |" in table


def test_hull_occluders_fills_the_hull_only_under_the_occluder():
    """A square cut in two by a vertical bar (columns 16-19 of 10-25): the hull of the two visible
    pieces is the whole square. Where the bar is the occluder, hull ∩ occluder fills it (the
    truth exactly); where the same pixels are background (hidden by something unknown), nothing
    is added, while the plain hull still fills them."""
    amodal = np.stack([square(10)] * 2)
    bar = np.zeros((H, W), bool)
    bar[:, 16:20] = True
    index = np.zeros(amodal.shape, np.uint8)
    index[:, amodal[0] & ~bar] = 1
    index[0][bar] = 2
    frames = np.stack([random_image(H, W, t) for t in range(2)])
    clip = OcclusionClip(frames, index, amodal, ["00000", "00001"], {})
    scores = score_clips([clip], None, forms=(), progress=False)
    assert list(scores) == ["visible", "hull", "hull-occluders"]
    np.testing.assert_allclose(scores["visible"][0]["aiou"], [0.75, 0.75])  # 12 of 16 columns
    np.testing.assert_allclose(scores["hull"][0]["aiou"], [1.0, 1.0])
    np.testing.assert_allclose(scores["hull-occluders"][0]["aiou"], [1.0, 0.75])
    np.testing.assert_allclose(scores["hull-occluders"][0]["oiou"], [1.0, 0.0])
    with pytest.raises(ValueError, match="needs a video predictor"):
        score_clips([clip], None, progress=False)
