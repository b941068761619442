"""Occlusion clips: the truth is the source masks, the occluder rises and falls (slide) or stays
(park), the same seed gives the same clips, a folder round trip keeps them."""

from __future__ import annotations

import numpy as np
import pytest

from amodal_sam.data.synth_video import (
    OCCLUDER_INDEX,
    TARGET_INDEX,
    ClipOptions,
    make_clip,
    occluder_path,
    read_clip,
    read_clips,
    sequence_frames,
    synthesize_clips,
)
from amodal_sam.evaluate_video import clip_masks
from amodal_sam.image_io import write_mask, write_rgb

from conftest import ellipse_mask, random_image

H, W = 60, 80


def write_sequence(folder, frames: int, seed: int, step: float) -> None:
    """A DAVIS-like sequence: an ellipse moving right by ``step`` (a fraction of the width) a frame."""
    folder.mkdir(parents=True)
    for t in range(frames):
        write_rgb(folder / f"{t:05d}.jpg", random_image(H, W, seed + t))
        write_mask(folder / f"{t:05d}.png", ellipse_mask(H, W, center=(0.3 + step * t, 0.5), radii=(0.15, 0.2)))


@pytest.fixture
def sequences(tmp_path):
    write_sequence(tmp_path / "a", 12, 0, 0.02)
    write_sequence(tmp_path / "b", 12, 50, 0.0)
    return tmp_path


def test_paths_slide_through_and_park():
    centre = np.array([40.0, 30.0])
    slide = occluder_path("slide", centre, travel=30, angle=0.0, length=7)
    np.testing.assert_allclose(slide[:, 0], [10, 20, 30, 40, 50, 60, 70])
    np.testing.assert_allclose(slide[:, 1], 30)
    park = occluder_path("park", centre, travel=30, angle=np.pi / 2, length=9)
    np.testing.assert_allclose(park[:, 1], [60, 50, 40, 30, 30, 30, 30, 30, 30])
    with pytest.raises(ValueError, match="motion must be one of"):
        occluder_path("hover", centre, 30, 0.0, 5)


@pytest.mark.parametrize("motion", ["slide", "park"])
def test_a_clip_hides_its_object_as_its_path_says(sequences, motion):
    options = ClipOptions(length=9, peak_range=(0.6, 0.6), motions=(motion,), max_side=None)
    clip = make_clip(
        sequence_frames(sequences / "a"), sequence_frames(sequences / "b"), options, np.random.default_rng(0)
    )
    start = int(clip.stems[0])
    assert clip.stems == [f"{t:05d}" for t in range(start, start + 9)]
    truth = [ellipse_mask(H, W, center=(0.3 + 0.02 * t, 0.5), radii=(0.15, 0.2)) for t in range(start, start + 9)]
    np.testing.assert_array_equal(clip.amodal, np.stack(truth))  # the truth: the source masks
    visible = clip.visible == TARGET_INDEX
    occluder = clip.visible == OCCLUDER_INDEX
    np.testing.assert_array_equal(visible, clip.amodal & ~occluder)  # visible: the truth minus the occluder
    share = clip.hidden_share
    assert abs(share[4] - 0.6) < 0.05  # sized to hide 60 % when centred on the middle frame's object
    if motion == "slide":
        assert share[0] < 0.1 and share[-1] < 0.1  # it comes in and goes out
    else:
        assert share[0] < 0.1 and share[3:].min() > 0.3  # parked from a third of the way on


def test_same_seed_same_clips_other_seed_other_clips(sequences, tmp_path):
    options = ClipOptions(length=5, seed=3, max_side=None)
    first = synthesize_clips(sequences, tmp_path / "one", 3, targets=["a", "b"], options=options, progress=False)
    again = synthesize_clips(sequences, tmp_path / "two", 3, targets=["a", "b"], options=options, progress=False)
    for x, y in zip(first, again):
        for sub in ("frames", "visible", "amodal"):
            for file in sorted((x / sub).iterdir()):
                assert file.read_bytes() == (y / sub / file.name).read_bytes()
    other = synthesize_clips(
        sequences,
        tmp_path / "three",
        3,
        targets=["a", "b"],
        options=ClipOptions(length=5, seed=4, max_side=None),
        progress=False,
    )
    assert any(not np.array_equal(read_clip(x).visible, read_clip(z).visible) for x, z in zip(first, other))


def test_a_written_clip_reads_back_as_made(sequences, tmp_path):
    folders = synthesize_clips(sequences, tmp_path / "clips", 2, targets=["a"], occluders=["b"], progress=False)
    clips = read_clips(tmp_path / "clips")
    assert len(clips) == 2 and [f.name for f in folders] == ["clip_000", "clip_001"]
    for clip in clips:
        assert clip.info["target"] == "a" and clip.info["occluder"] == "b"
        assert set(np.unique(clip.visible)) <= {0, TARGET_INDEX, OCCLUDER_INDEX}
        assert np.array_equal(clip_masks(clip, "single"), clip.visible == TARGET_INDEX)
        assert np.array_equal(clip_masks(clip, "scene"), clip.visible)


def test_a_rerun_replaces_the_clips_whole(sequences, tmp_path):
    out = tmp_path / "clips"
    synthesize_clips(sequences, out, 3, targets=["a", "b"], progress=False)
    synthesize_clips(sequences, out, 1, targets=["a", "b"], progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["clip_000"]  # no clip of the first run left
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds files that are not clips"):
        synthesize_clips(sequences, out, 1, targets=["a", "b"], progress=False)


def test_bad_requests_are_named(sequences, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"\['nowhere'\] not found"):
        synthesize_clips(sequences, tmp_path / "x", 1, targets=["a", "nowhere"], progress=False)
    with pytest.raises(ValueError, match="at least two sequences"):
        synthesize_clips(sequences, tmp_path / "x", 1, targets=["a"], progress=False)
    with pytest.raises(ValueError, match="peak_range"):
        ClipOptions(peak_range=(0.5, 1.2))
    with pytest.raises(ValueError, match="length must be at least 3"):
        ClipOptions(length=2)
    with pytest.raises(FileNotFoundError, match="holds no clips"):
        read_clips(tmp_path)
