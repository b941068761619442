"""`amodal-sam video`, `synth-video` and `eval-video`: files in, per-frame masks and video.json out,
one-line errors that name the frame."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
from PIL import Image
from test_video import disc_clip, hidden_frames

from amodal_sam import AmodalSAM
from amodal_sam.cli import main
from amodal_sam.image_io import write_rgb
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
    assert "16 frames, objects [1, 2] (scene mode" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["1", "2", "video.json"]
    for t in hidden_frames():
        assert mask_iou(read_mask(out / "1" / f"{t:05d}.png"), truths[t]) >= 0.8
    content = json.loads((out / "video.json").read_text())
    assert content["objects"] == [1, 2] and len(content["frames"]) == FRAMES
    hidden = content["frames"][hidden_frames()[0]]["objects"]["1"]
    assert hidden["score"] is None and hidden["layer"] == -1 and hidden["hidden_share"] == 1.0
    assert content["frames"][0]["objects"]["2"]["layer"] == 0


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
