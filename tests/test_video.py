"""Video mode: a disc that passes behind a bar keeps its shape while hidden; directions, inputs, errors."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.geometry import ImageFrame, mask_prompt_levels
from amodal_sam.metrics import mask_iou
from amodal_sam.video import AmodalVideoPredictor, iter_frames, object_masks, video_tracks

from conftest import smooth_texture

H, W, R = 96, 128, 14
FRAMES = 16
BAR = (45, 95)  # columns of the bar: it hides the disc wholly when the disc's centre is in [59, 81]


def disc_center(t: int) -> tuple[float, float]:
    return 20 + 6 * t, 48


def disc_at(t: int) -> np.ndarray:
    ys, xs = np.mgrid[0:H, 0:W]
    cx, cy = disc_center(t)
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= R * R


def bar() -> np.ndarray:
    mask = np.zeros((H, W), bool)
    mask[:, BAR[0] : BAR[1]] = True
    return mask


def disc_clip(frames: int = FRAMES) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(frames (H, W, 3) uint8, index maps 1 = disc's visible part / 2 = bar, true discs): a
    textured disc moving right 6 px a frame behind a static textured bar."""
    disc_texture = smooth_texture((2 * R + 1, 2 * R + 1), seed=3)
    bar_texture = smooth_texture((H, W), seed=4)
    images, maps, truths = [], [], []
    for t in range(frames):
        gray = np.full((H, W), 90, np.uint8)
        whole = disc_at(t)
        cx, cy = disc_center(t)
        ys, xs = np.nonzero(whole)
        gray[ys, xs] = disc_texture[ys - cy + R, xs - int(cx) + R]
        gray[bar()] = bar_texture[bar()]
        images.append(np.repeat(gray[..., None], 3, axis=2))
        index = np.zeros((H, W), np.int64)
        index[whole & ~bar()] = 1
        index[bar()] = 2
        maps.append(index)
        truths.append(whole)
    return images, maps, truths


def hidden_frames() -> list[int]:
    return [t for t in range(FRAMES) if not (disc_at(t) & ~bar()).any()]


@pytest.fixture
def shy_model() -> AmodalSAM:
    """A tiny random model that by itself hides (almost) nothing: what the video adds is memory's."""
    model = AmodalSAM.random("tiny", seed=0)
    model.config = dataclasses.replace(model.config, hidden_threshold=0.999, scene_hidden_threshold=0.999)
    return model


def test_the_clip_hides_the_disc_wholly_for_a_few_frames():
    assert hidden_frames() == [7, 8, 9, 10]


@pytest.mark.parametrize("scene", [True, False])
def test_a_disc_wholly_behind_a_bar_keeps_its_shape(shy_model, scene):
    images, maps, truths = disc_clip()
    masks = maps if scene else [m == 1 for m in maps]
    tracks = AmodalVideoPredictor(shy_model, device="cpu").complete_video(images, masks, scene=scene, progress=False)
    track = tracks[1]
    for t in hidden_frames():
        assert not track.visible[t].any()
        assert mask_iou(track.amodal[t], truths[t]) >= 0.8, t
        assert track.hidden_share[t] == 1.0 and np.array_equal(track.occluded[t], track.amodal[t])
    assert track.hidden_share[0] == 0.0  # in the open: nothing hidden
    frame_by_frame = video_tracks(
        AmodalVideoPredictor(shy_model, device="cpu").observe_video(images, masks, scene=scene, progress=False),
        memory=False,
    )[1]
    assert all(mask_iou(frame_by_frame.amodal[t], truths[t]) < 0.1 for t in hidden_frames())


def test_propagate_streams_what_complete_video_gives(shy_model):
    images, maps, _ = disc_clip(10)
    video = AmodalVideoPredictor(shy_model, device="cpu")
    tracks = video.complete_video(images, maps, progress=False)
    state = video.init_state(iter(images))
    seen = 0
    for t, ids, result in video.propagate(state, iter(maps)):
        assert ids == [1, 2]
        np.testing.assert_array_equal(result.amodal[0], tracks[1].amodal[t])
        np.testing.assert_array_equal(result.amodal[1], tracks[2].amodal[t])
        np.testing.assert_array_equal(result.visible[0], maps[t] == 1)
        assert result.layers.tolist()[1] == 0  # the bar: nothing in front of it
        seen += 1
    assert seen == 10 and state.names == [f"{t:05d}" for t in range(10)]


def test_bidirectional_fills_the_frames_before_the_object_was_seen(shy_model):
    """From frame 7 on, the disc starts wholly hidden: memory run forward knows nothing of it yet;
    run backward too, the frames before it appears get its shape."""
    images, maps, truths = (part[7:] for part in disc_clip())
    video = AmodalVideoPredictor(shy_model, device="cpu")
    first_seen = next(t for t in range(FRAMES) if (maps[t] == 1).any())
    assert first_seen > 0
    forward = video.complete_video(images, maps, progress=False)[1]
    both = video.complete_video(images, maps, bidirectional=True, progress=False)[1]
    for t in range(first_seen - 2, first_seen):
        assert not forward.amodal[t].any()
        assert mask_iou(both.amodal[t], truths[t]) >= 0.8


def test_bidirectional_result_of_a_reversed_clip_is_the_reversed_result(shy_model):
    images, maps, _ = disc_clip()
    video = AmodalVideoPredictor(shy_model, device="cpu")
    ahead = video.complete_video(images, maps, bidirectional=True, progress=False)
    back = video.complete_video(images[::-1], maps[::-1], bidirectional=True, progress=False)
    for k in (1, 2):
        for t in range(FRAMES):
            assert mask_iou(ahead[k].amodal[t], back[k].amodal[FRAMES - 1 - t]) >= 0.95, (k, t)


def test_a_video_file_and_a_folder_of_its_frames_give_the_same_result(shy_model, tmp_path):
    images, maps, _ = disc_clip(8)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 5, (W, H))
    for image in images:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    writer.release()
    folder = tmp_path / "frames"
    folder.mkdir()
    names = []
    for name, frame in iter_frames(path):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        names.append(name)
    assert names == [f"{t:05d}" for t in range(8)]
    video = AmodalVideoPredictor(shy_model, device="cpu")
    from_file = video.complete_video(path, maps, progress=False)
    from_folder = video.complete_video(folder, maps, progress=False)
    for k in (1, 2):
        np.testing.assert_array_equal(from_file[k].amodal, from_folder[k].amodal)
    np.testing.assert_array_equal(np.stack([f for _, f in iter_frames(folder)]), np.stack(images))  # FFV1: lossless


def test_frames_of_another_size_are_named(shy_model):
    images = disc_clip(3)[0]
    images[2] = np.zeros((H, W + 8, 3), np.uint8)
    with pytest.raises(ValueError, match="frame 00002 is 136 x 96; the first frame is 128 x 96"):
        list(iter_frames(images))


def test_masks_of_another_size_name_the_frame():
    with pytest.raises(ValueError, match="frame 00004 have shape"):
        object_masks(np.zeros((H, W + 1), np.int64), (H, W), "00004")


def test_masks_and_frames_must_match_in_number(shy_model):
    images, maps, _ = disc_clip(3)
    video = AmodalVideoPredictor(shy_model, device="cpu")
    with pytest.raises(ValueError, match="frame 00002 has no visible masks"):
        video.complete_video(images, maps[:2], progress=False)
    with pytest.raises(ValueError, match="more frames than the video's 3"):
        video.complete_video(images, maps + maps[:1], progress=False)


def test_mask_forms_give_object_ids():
    index = np.zeros((4, 5), np.int64)
    index[0, 0], index[1, 1] = 3, 7
    ids, masks = object_masks(index, (4, 5), "a")
    assert ids == [3, 7] and masks[0, 0, 0] and masks[1, 1, 1] and masks.sum() == 2
    ids, masks = object_masks(np.ones((2, 4, 5), bool), (4, 5), "a")
    assert ids == [1, 2]
    ids, masks = object_masks(index > 0, (4, 5), "a")
    assert ids == [1] and masks.sum() == 2
    with pytest.raises(ValueError, match="index map of frame a must hold integers >= 0"):
        object_masks(-index, (4, 5), "a")


# ------------------------------------------------------------------------------- the memory prompt
def _remembering_model(shy: bool = True) -> AmodalSAM:
    """A tiny random model with a trained memory input (its last convolution no longer zero);
    ``shy``: by itself it hides (almost) nothing."""
    model = AmodalSAM.random("tiny", seed=0)
    if shy:
        model.config = dataclasses.replace(model.config, hidden_threshold=0.999, scene_hidden_threshold=0.999)
    with torch.no_grad():
        model.memory_prompt.layers[-1].weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    return model


@pytest.mark.parametrize("scene", [True, False])
def test_each_frame_is_prompted_with_the_memory_carried_into_it(scene):
    """From the second frame on, the disc's completion reads its memory as a prompt: the disc as
    the first frames showed it, moved by its motion (6 px a frame), not its visible part now."""
    model = _remembering_model()
    images, maps, _ = disc_clip(6)
    masks = maps if scene else [m == 1 for m in maps]
    given = []
    model.memory_prompt.register_forward_pre_hook(lambda _, args: given.append((args[0].clone(), args[1].clone())))
    video = AmodalVideoPredictor(model, device="cpu")
    results = list(video.propagate(video.init_state(images), masks, scene=scene))
    assert len(results) == 6
    # frames 1..5, each object decoded alone on a CPU (the bar is an object too in scene mode); the
    # first frame has no memory
    assert len(given) == 5 * (2 if scene else 1)
    low_res = ImageFrame.for_spec((H, W), model.spec)
    levels, known = given[0]  # frame 1, the disc
    assert known.tolist() == [True]
    remembered = levels[0, 0].numpy() > 0
    first_seen = mask_prompt_levels(low_res, (disc_at(0) & ~bar())[None])[0] > 0
    moved = mask_prompt_levels(low_res, np.roll(disc_at(0) & ~bar(), 6, axis=1)[None])[0] > 0
    assert mask_iou(remembered, moved) > mask_iou(remembered, first_seen) and mask_iou(remembered, moved) > 0.8


def test_memory_changes_the_completion_only_where_memory_is_used():
    """The frame-by-frame tracks (memory=False) are the completions of each frame alone; with
    memory, the completions that read the memory prompt."""
    model = _remembering_model(shy=False)
    images, maps, _ = disc_clip(8)
    masks = [m == 1 for m in maps]
    video = AmodalVideoPredictor(model, device="cpu")
    observations = video.observe_video(images, masks, scene=False, progress=False)
    recalled = [t for t, (_, o) in enumerate(observations) if 1 in o.recalled]
    assert recalled == [t for t in range(1, 8) if t not in hidden_frames()]  # seen, after the first frame
    alone = video_tracks(observations, video.rule, memory=False)[1]
    for t, (_, observation) in enumerate(observations):
        np.testing.assert_array_equal(alone.amodal[t], observation.completed[1] | observation.visible[1])
    with_memory = video_tracks(observations, video.rule)[1]
    changed = [t for t in recalled if (observations[t][1].recalled[1] != observations[t][1].completed[1]).any()]
    assert changed  # the trained memory input moves some completion
    for t in changed:
        assert (with_memory.amodal[t] >= observations[t][1].recalled[1]).all()


def test_a_model_without_a_memory_input_is_never_prompted_with_one(shy_model):
    shy_model.memory_prompt = None
    shy_model.config = dataclasses.replace(shy_model.config, memory_prompt=False)
    images, maps, _ = disc_clip(4)
    observations = AmodalVideoPredictor(shy_model, device="cpu").observe_video(images, maps, progress=False)
    assert all(not o.recalled for _, o in observations)


def test_memory_masks_of_the_wrong_shape_are_named():
    predictor = AmodalPredictor(_remembering_model(), device="cpu")
    predictor.set_image(disc_clip(1)[0][0])
    visible = disc_at(0)
    with pytest.raises(ValueError, match=r"memory_mask has shape \(10, 128\) but the image is \(96, 128\)"):
        predictor.complete(visible, memory_mask=visible[:10])
    with pytest.raises(ValueError, match=r"memory_masks must be a bool array of shape \(1, 96, 128\)"):
        predictor.complete_scene(visible[None], memory_masks=np.zeros((2, H, W), bool))
