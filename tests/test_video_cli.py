"""`amodal-sam video`, `synth-video` and `eval-video`: files in, per-frame masks and video.json out,
one-line errors that name the frame."""

from __future__ import annotations

import dataclasses
import json
import re

import cv2
import numpy as np
import pytest
from PIL import Image
from test_video import disc_clip, hidden_frames

from amodal_sam import AmodalSAM
from amodal_sam.cli import main
from amodal_sam.image_io import read_rgb, write_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.metrics import mask_iou
from amodal_sam.video_files import read_visible_frame

FRAMES = 16


def write_index(path, index: np.ndarray) -> None:
    Image.fromarray(index.astype(np.uint8)).save(path)


@pytest.fixture
def video_files(tmp_path):
    """Frames of the disc clip as PNGs, its index maps (disc 1, bar 2), the disc alone as binary
    masks, and a tiny model that hides nothing by itself (what memory adds is what is scored)."""
    images, maps, truths = disc_clip(FRAMES)
    for sub in ("frames", "index", "binary"):
        (tmp_path / sub).mkdir()
    for t, (image, index) in enumerate(zip(images, maps)):
        write_rgb(tmp_path / "frames" / f"{t:05d}.png", image)
        write_index(tmp_path / "index" / f"{t:05d}.png", index)
        write_index(tmp_path / "binary" / f"{t:05d}.png", (index == 1) * 255)
    model = AmodalSAM.random("tiny", seed=0)
    model.config = dataclasses.replace(model.config, hidden_threshold=0.999, scene_hidden_threshold=0.999)
    model.save_pretrained(tmp_path / "model")
    return tmp_path, truths


def run(tmp_path, *args: str) -> int:
    return main(["video", str(tmp_path / "frames"), *args, "--model", str(tmp_path / "model"), "--device", "cpu"])


def test_index_maps_in_one_folder_per_object_out(video_files, capsys):
    tmp_path, truths = video_files
    out = tmp_path / "out"
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(out)) == 0
    assert re.search(r"(?m)^16 frames, objects \[1, 2\] \(scene mode", capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["1", "2", "video.json"]
    for t in hidden_frames():
        assert mask_iou(read_mask(out / "1" / f"{t:05d}.png"), truths[t]) >= 0.8
    content = json.loads((out / "video.json").read_text())
    assert content["objects"] == [1, 2] and len(content["frames"]) == FRAMES
    hidden = content["frames"][hidden_frames()[0]]["objects"]["1"]
    assert hidden["score"] is None and hidden["layer"] == -1 and hidden["hidden_share"] == 1.0
    assert content["frames"][0]["objects"]["2"]["layer"] == 0
    for t, frame in enumerate(content["frames"]):  # every record, from the masks written and given
        assert frame["frame"] == f"{t:05d}"
        index = np.array(Image.open(tmp_path / "index" / f"{t:05d}.png"))
        for k, record in frame["objects"].items():
            amodal, visible = read_mask(out / k / f"{t:05d}.png"), index == int(k)
            share = np.count_nonzero(amodal & ~visible) / max(np.count_nonzero(amodal), 1)
            assert record["hidden_share"] == pytest.approx(share, abs=1e-6)
            assert (record["score"] is None) == (not visible.any())
            if record["score"] is not None:  # a predicted IoU, to 6 decimals
                assert type(record["score"]) is float and 0 < record["score"] < 1
                assert record["score"] == round(record["score"], 6)


def test_a_binary_mask_per_frame_is_one_object(video_files, capsys):
    tmp_path, truths = video_files
    out = tmp_path / "out"
    overlay = tmp_path / "overlay"
    assert run(tmp_path, "--visible", str(tmp_path / "binary"), "--out", str(out), "--overlay", str(overlay)) == 0
    assert "objects [1] (single-object mode)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"{t:05d}.png" for t in range(FRAMES)] + ["video.json"]
    assert len(list(overlay.iterdir())) == FRAMES
    for t in hidden_frames():
        assert mask_iou(read_mask(out / f"{t:05d}.png"), truths[t]) >= 0.8


def test_an_overlay_video_has_every_frame(video_files):
    tmp_path, _ = video_files
    overlay = tmp_path / "overlay.avi"
    assert (
        run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "out"), "--overlay", str(overlay))
        == 0
    )
    capture = cv2.VideoCapture(str(overlay))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES
    capture.release()


def test_bidirectional_from_the_command_line(video_files):
    tmp_path, truths = video_files
    out = tmp_path / "out"
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(out), "--bidirectional") == 0
    for t in hidden_frames():
        assert mask_iou(read_mask(out / "1" / f"{t:05d}.png"), truths[t]) >= 0.8


def test_a_rerun_replaces_the_output_whole(video_files):
    tmp_path, _ = video_files
    out = tmp_path / "out"
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(out)) == 0
    assert run(tmp_path, "--visible", str(tmp_path / "binary"), "--out", str(out)) == 0
    assert not (out / "1").exists() and not (out / "2").exists()  # nothing of the first run stays


def test_a_missing_mask_names_the_frame(video_files, capsys):
    tmp_path, _ = video_files
    (tmp_path / "index" / "00005.png").unlink()
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "out")) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "frame 00005 has no visible mask" in error
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_a_mask_of_another_size_names_the_frame(video_files, capsys):
    tmp_path, _ = video_files
    write_index(tmp_path / "index" / "00003.png", np.zeros((10, 10)))
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "out")) == 2
    assert "the visible mask of frame 00003" in capsys.readouterr().err


def test_frames_of_another_size_name_the_frame(video_files, capsys):
    tmp_path, _ = video_files
    write_rgb(tmp_path / "frames" / "00004.png", np.zeros((20, 20, 3), np.uint8))
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "out")) == 2
    assert "frame 00004 is 20 x 20" in capsys.readouterr().err


def test_an_output_holding_other_files_is_refused(video_files, capsys):
    tmp_path, _ = video_files
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "out")) == 2
    assert "not a video's outputs" in capsys.readouterr().err
    assert run(tmp_path, "--visible", str(tmp_path / "index"), "--out", str(tmp_path / "frames")) == 2


def test_binary_masks_read_as_object_one(tmp_path):
    write_index(tmp_path / "a.png", np.array([[0, 255], [255, 0]]))
    np.testing.assert_array_equal(read_visible_frame(tmp_path, "a", (2, 2)), [[0, 1], [1, 0]])
    write_index(tmp_path / "b.png", np.array([[0, 3], [7, 0]]))
    np.testing.assert_array_equal(read_visible_frame(tmp_path, "b", (2, 2)), [[0, 3], [7, 0]])


def test_synth_video_and_eval_video_commands(tmp_path, capsys):
    from test_synth_video import write_sequence

    write_sequence(tmp_path / "seq" / "a", 6, 0, 0.02)
    write_sequence(tmp_path / "seq" / "b", 6, 50, 0.0)
    clips = tmp_path / "clips"
    argv = ["synth-video", str(tmp_path / "seq"), "--targets", "a", "b", "--out", str(clips), "--count", "2"]
    assert main([*argv, "--length", "4", "--max-side", "80"]) == 0
    assert "2 clips" in capsys.readouterr().out
    AmodalSAM.random("tiny", seed=0).save_pretrained(tmp_path / "model")
    report = tmp_path / "report.json"
    argv = ["eval-video", str(clips), "--model", str(tmp_path / "model"), "--report", str(report), "--device", "cpu"]
    assert main(argv) == 0
    assert "| video / scene |" in capsys.readouterr().out
    assert json.loads(report.read_text())["visible"]["frames"] == 8
    assert main(["eval-video", str(tmp_path / "seq"), "--model", str(tmp_path / "model")]) == 2
    assert "holds no clips" in capsys.readouterr().err


def test_a_single_object_output_refuses_a_second_object(tmp_path):
    from amodal_sam.video_files import video_output

    masks = np.zeros((1, 4, 4), bool)
    refused = pytest.raises(ValueError, match="frame f holds objects \\[2\\]; a single-object video has object 1 only")
    with refused, video_output(tmp_path / "out", several=False) as output:
        output.add("f", [2], masks, masks, np.zeros(1), np.zeros(1))
    assert not (tmp_path / "out").exists()  # an error leaves nothing behind


def test_an_overlay_inside_the_output_is_refused(tmp_path):
    from amodal_sam.video_files import check_video_output

    with pytest.raises(ValueError, match="would replace --overlay"):
        check_video_output(tmp_path / "out", [tmp_path / "frames"], overlay=tmp_path / "out" / "o.mp4")


def test_only_an_earlier_video_output_may_be_replaced(tmp_path):
    from amodal_sam.video_files import check_video_output

    frames = tmp_path / "frames"
    single = tmp_path / "single"  # one object's masks: frame PNGs and video.json
    single.mkdir()
    (single / "00000.png").write_bytes(b"")
    (single / "video.json").write_text("{}")
    several = tmp_path / "several"  # one folder of frame PNGs per object
    (several / "2").mkdir(parents=True)
    (several / "2" / "00000.png").write_bytes(b"")
    check_video_output(single, [frames])
    check_video_output(several, [frames])
    for folder, file in [("photos", "a.png"), ("3", "notes.txt")]:  # a user's PNGs; an object folder with more
        out = tmp_path / f"out-{folder}"
        (out / folder).mkdir(parents=True)
        (out / folder / file).write_bytes(b"")
        with pytest.raises(ValueError, match=rf"holds files that are not a video's outputs \({folder}\)"):
            check_video_output(out, [frames])


GREYS = (100, 150, 200)  # each overlay picture one flat grey


def _write_overlays(out, overlay, sizes):
    from amodal_sam.video_files import video_output

    mask = np.zeros((8, 8), bool)
    mask[2:5, 2:5] = True
    with video_output(out, several=False, overlay=overlay, fps=5) as output:
        for t, (height, width) in enumerate(sizes):
            picture = np.full((height, width, 3), GREYS[t], np.uint8)
            output.add(f"{t:05d}", [1], mask[None], mask[None], np.array([0.9]), np.array([0]), picture)


@pytest.mark.parametrize("suffix, codecs", [(".avi", {"mjpg"}), (".mp4", {"mp4v", "fmp4"})])  # FFmpeg's tag
def test_an_overlay_video_has_its_suffixs_codec_and_every_frame_at_the_first_ones_size(suffix, codecs, tmp_path):
    overlay = tmp_path / f"overlay{suffix}"
    _write_overlays(tmp_path / "out", overlay, [(48, 64), (64, 80), (32, 48)])  # the first, a larger, a smaller
    capture = cv2.VideoCapture(str(overlay))
    fourcc = int(capture.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1].astype(float))
    capture.release()
    assert fourcc.lower() in codecs  # MPEG-4 part 2 in an MP4, Motion JPEG in an AVI
    assert [frame.shape for frame in frames] == [(48, 64, 3)] * 3  # the larger one cut at the right and bottom
    for frame, grey in zip(frames, GREYS):  # lossy codecs: within a few levels
        assert abs(frame[4:28, 4:44].mean() - grey) < 12
    smaller = frames[2]  # padded with black at the right and bottom
    assert smaller[36:].mean() < 40 and smaller[:, 52:].mean() < 40


def test_an_overlay_folder_is_made_with_its_parents(tmp_path):
    overlay = tmp_path / "pictures" / "clip"
    _write_overlays(tmp_path / "out", overlay, [(48, 64), (48, 64)])
    assert sorted(p.name for p in overlay.iterdir()) == ["00000.png", "00001.png"]


def test_bidirectional_files_are_the_librarys_tracks_and_their_overlays(video_files, capsys):
    from amodal_sam.video import AmodalVideoPredictor, iter_frames, video_tracks
    from amodal_sam.visualize import video_overlay

    tmp_path, _ = video_files
    out, overlay = tmp_path / "out", tmp_path / "overlay"
    args = ["--visible", str(tmp_path / "index"), "--out", str(out), "--overlay", str(overlay), "--bidirectional"]
    assert run(tmp_path, *args) == 0
    assert re.search(r"(?m)^16 frames, objects \[1, 2\] \(scene mode", capsys.readouterr().out)
    video = AmodalVideoPredictor(AmodalSAM.from_pretrained(tmp_path / "model"), device="cpu")
    observations = video.observe_video(tmp_path / "frames", tmp_path / "index", progress=False)
    tracks = video_tracks(observations, video.rule, bidirectional=True)
    ids = [1, 2]
    for (name, _), (_, image) in zip(observations, iter_frames(tmp_path / "frames"), strict=True):
        t = int(name)
        for k in ids:
            np.testing.assert_array_equal(read_mask(out / str(k) / f"{name}.png"), tracks[k].amodal[t])
        expected = video_overlay(
            image,
            ids,
            np.stack([tracks[k].visible[t] for k in ids]),
            np.stack([tracks[k].amodal[t] for k in ids]),
            np.array([tracks[k].layers[t] for k in ids]),
            ids,
        )
        np.testing.assert_array_equal(read_rgb(overlay / f"{name}.png"), expected)
    assert len(json.loads((out / "video.json").read_text())["frames"]) == FRAMES


def test_the_objects_of_every_frame_count_and_missing_masks_are_counted(tmp_path):
    from amodal_sam.video_job import check_visible_files, objects_in_folder

    (tmp_path / "visible").mkdir()
    (tmp_path / "frames").mkdir()
    for t, index in enumerate([[0, 2], [1, 0], [1, 0]]):  # object 2 only in the first frame
        write_index(tmp_path / "visible" / f"{t:05d}.png", np.array([index * 4] * 4))
    assert objects_in_folder(tmp_path / "visible") == [1, 2]
    for t in range(6):
        write_rgb(tmp_path / "frames" / f"{t:05d}.png", np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(FileNotFoundError, match=r"^frame 00003 and 2 more has no visible mask: '.*00003.png'"):
        check_visible_files(tmp_path / "frames", tmp_path / "visible")
