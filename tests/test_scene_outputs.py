"""A scene's outputs are one run, published whole: a rerun with fewer objects leaves nothing of
the earlier one, a failed run leaves the earlier one intact, and outputs that would overwrite or
join the inputs (or a folder of someone else's files) are refused before any compute. Through the
command line; the cases a user meets first run in a fresh process, as the shell runs them."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

import amodal_sam.factory as factory_module
from amodal_sam.atomic import atomic_folder
from amodal_sam.cli import main
from amodal_sam.image_io import write_mask, write_rgb
from amodal_sam.scene_files import check_scene_output

from conftest import random_image, rect_mask

H, W = 48, 64


def _objects(count: int) -> list[np.ndarray]:
    cells = [((0, 24), (0, 32)), ((0, 24), (32, 64)), ((24, 48), (0, 32)), ((24, 48), (32, 64))]
    return [rect_mask((H, W), rows, cols) for rows, cols in cells[:count]]


@pytest.fixture
def files(tmp_path, tiny_model):
    write_rgb(tmp_path / "image.png", random_image(H, W))
    for count in (3, 2):
        for k, mask in enumerate(_objects(count)):
            write_mask(tmp_path / f"masks{count}" / f"m{k}.png", mask)
    tiny_model.save_pretrained(tmp_path / "model")
    return tmp_path


def _scene(files, masks, out, *extra):
    return [
        "scene",
        str(files / "image.png"),
        "--masks",
        str(masks),
        "--out",
        str(out),
        "--model",
        str(files / "model"),
        *extra,
    ]


def test_a_rerun_with_fewer_objects_leaves_nothing_of_the_earlier_run(files):
    out = files / "out"
    assert main(_scene(files, files / "masks3", out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["amodal_000.png", "amodal_001.png", "amodal_002.png", "scene.json"]
    assert main(_scene(files, files / "masks2", out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["amodal_000.png", "amodal_001.png", "scene.json"]
    assert len(json.loads((out / "scene.json").read_text())["instances"]) == 2
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def test_a_run_that_fails_while_writing_leaves_the_earlier_run_whole(files, monkeypatch):
    out = files / "out"
    assert main(_scene(files, files / "masks3", out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import amodal_sam.scene_files as scene_files_module

    calls = []

    def failing_write(path, mask):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        write_mask(path, mask)

    monkeypatch.setattr(scene_files_module, "write_mask", failing_write)
    assert main(_scene(files, files / "masks2", out)) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in files.iterdir() if p.name.startswith(".")] == []


def test_atomic_folder_replaces_the_whole_folder_or_nothing(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as staging:
        (staging / "a").write_text("1")
        (staging / "b").write_text("2")
    with pytest.raises(RuntimeError), atomic_folder(target) as staging:
        (staging / "a").write_text("changed")
        raise RuntimeError("interrupted")
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "1", "b": "2"}
    with atomic_folder(target) as staging:
        (staging / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_outputs_that_would_overwrite_or_join_the_inputs_are_refused_before_loading(files, monkeypatch, capsys):
    monkeypatch.setattr(factory_module, "create_model", lambda **_: pytest.fail("the model was loaded"))
    masks = files / "masks3"
    (files / "mine").mkdir()
    (files / "mine" / "notes.txt").write_text("keep me")
    cases = [
        (_scene(files, masks, masks), r"--out '.*masks3' would overwrite the input '.*masks3'"),
        (_scene(files, masks, files), r"--out '.*' would overwrite the input '.*image\.png'"),
        (_scene(files, masks, files / "mine"), r"holds files that are not a scene's outputs \(notes\.txt\)"),
        (_scene(files, masks, files / "o", "--overlay", str(files / "o" / "x.png")), r"--overlay .* lies in --out"),
        (_scene(files, masks, files / "o", "--overlay", str(masks / "x.png")), r"--overlay .* would overwrite or join"),
        (_scene(files, masks, files / "o", "--overlay", str(files / "image.png")), r"--overlay .* would overwrite"),
        (_scene(files, masks, files / "o", "--device", "gpu"), r"--device 'gpu' is not a device"),
        (_scene(files, masks, files / "o", "--occluder-band", "1000000000"), r"--occluder-band must be .* 0 to 3 "),
        (
            ["complete", str(files / "image.png"), "--visible", str(masks / "m0.png"), "--out", str(files / "a.jpg")],
            r"--out '.*a\.jpg' must end in \.png or \.bmp or \.tif or \.tiff",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        error = capsys.readouterr().err
        assert error.count("\n") == 1 and __import__("re").search(message, error), (argv, error)
    assert (files / "mine" / "notes.txt").read_text() == "keep me"


def test_only_a_scenes_own_files_may_be_in_the_output_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    check_scene_output(out, [tmp_path / "image.png"])  # empty
    for name in ("scene.json", "amodal_000.png", "visible_0012.png"):
        (out / name).write_bytes(b"")
    check_scene_output(out, [tmp_path / "image.png"])
    (out / "amodal_final.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"not a scene's outputs \(amodal_final\.png\)"):
        check_scene_output(out, [tmp_path / "image.png"])


def _fresh_process(argv: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-m", "amodal_sam.cli", *argv], capture_output=True, text=True, env=environment, check=False
    )


def test_untidy_inputs_in_a_fresh_process_end_in_a_result_or_one_line(files):
    """A JPEG index map, a header claiming 1200 MP and an unknown device: one line each, exit 2;
    a folder with a JPEG mask and macOS's ._ file: a result and a one-line warning."""
    index = np.zeros((H, W), np.uint8)
    index[:, :32], index[:, 32:] = 1, 2
    cv2.imwrite(str(files / "index.jpg"), index)
    huge = files / "huge.png"
    from test_mask_files import _png_header_only

    _png_header_only(huge, 40000, 30000)
    refused = [
        (_scene(files, files / "index.jpg", files / "o1"), r"--masks '.*index\.jpg' is lossy"),
        (["complete", str(huge), "--visible", str(huge), "--out", str(files / "a.png")], r"is 40000 x 30000 pixels"),
        (_scene(files, files / "masks2", files / "o2", "--device", "gpu"), r"--device 'gpu' is not a device"),
    ]
    for argv, message in refused:
        done = _fresh_process(argv)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and __import__("re").search(message, done.stderr), done.stderr
    untidy = files / "masks2"
    cv2.imwrite(str(untidy / "m2.jpg"), _objects(3)[2].astype(np.uint8) * 255)
    (untidy / "._m0.png").write_bytes(b"\x00\x05\x16\x07")
    done = _fresh_process(_scene(files, untidy, files / "o3"))
    assert done.returncode == 0, done.stderr
    assert (
        done.stderr.strip().startswith("amodal-sam scene: warning: --masks file '")
        and "m2.jpg' is lossy" in done.stderr
    )
    assert done.stderr.count("\n") == 1
    content = json.loads((files / "o3" / "scene.json").read_text())
    assert [i["mask"] for i in content["instances"]] == ["m0.png", "m1.png", "m2.jpg"]


def test_bounds_and_identities_in_a_fresh_process_end_in_one_line(files):
    """A band of a billion pixels, --out over the masks, a lossy mask output, a broken mask file,
    a dataset with one image id twice: exit 2 and one line each, before any model loads."""
    import json as json_module

    from conftest import write_occlusion_dataset

    (files / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 30)
    annotations = write_occlusion_dataset(files / "data", count=2)
    content = json_module.loads(annotations.read_text())
    content["images"][1]["id"] = content["images"][0]["id"]
    annotations.write_text(json_module.dumps(content))
    visible = str(files / "masks2" / "m0.png")
    refused = [
        (
            _scene(files, files / "masks2", files / "o", "--occluder-band", "1000000000"),
            r"--occluder-band must be a whole",
        ),
        (_scene(files, files / "masks2", files / "masks2"), r"--out .*masks2' would overwrite the input"),
        (
            ["complete", str(files / "image.png"), "--visible", visible, "--out", str(files / "a.jpg")],
            r"must end in \.png",
        ),
        (
            [
                "complete",
                str(files / "image.png"),
                "--visible",
                str(files / "broken.png"),
                "--out",
                str(files / "a.png"),
            ],
            r"--visible .*broken\.png' is not a readable image",
        ),
        (["eval", "--data", str(annotations), "--baseline", "hull"], r"image id 1 appears twice in 'images'"),
    ]
    for argv, message in refused:
        done = _fresh_process(argv)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1 and __import__("re").search(message, done.stderr), done.stderr


def test_the_scene_file_records_broken_edges_and_writes_visible_masks_only_when_asked(tmp_path, tiny_model):
    from dataclasses import replace

    from amodal_sam.predictor import AmodalPredictor
    from amodal_sam.scene_files import write_scene

    predictor = AmodalPredictor(tiny_model)
    predictor.set_image(random_image(H, W))
    scene = replace(predictor.complete_scene(np.stack(_objects(2))), broken=[(1, 0)])
    content = write_scene(tmp_path / "out", scene, ["a", "b"])
    assert content["broken"] == [[1, 0]]
    assert json.loads((tmp_path / "out" / "scene.json").read_text())["broken"] == [[1, 0]]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["amodal_000.png", "amodal_001.png", "scene.json"]
    write_scene(tmp_path / "out", scene, ["a", "b"], write_visible=True)
    assert (tmp_path / "out" / "visible_001.png").is_file()
