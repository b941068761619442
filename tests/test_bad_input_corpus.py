"""A corpus of bad inputs, written by the tests, through the command line: each ends with exit 2
and one line naming the file or argument; never a traceback, a crash, or exit 0 with a wrong
result. Output paths are checked before any compute."""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

import amodal_sam.factory as factory_module
from amodal_sam import AmodalSAM
from amodal_sam.atomic import atomic_output
from amodal_sam.cli import main
from amodal_sam.image_io import write_mask, write_rgb

from conftest import ellipse_mask, random_image, write_occlusion_dataset

H, W = 64, 80


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Files for each bad case, beside a good dataset and a good saved model."""
    root = tmp_path_factory.mktemp("corpus")
    good = write_occlusion_dataset(root / "good", count=2)
    content = json.loads(good.read_text())
    files = {"good": good, "image": root / "image.png", "visible": root / "visible.png"}
    write_rgb(files["image"], random_image(H, W))
    write_mask(files["visible"], ellipse_mask(H, W))

    def variant(name, change):
        changed = json.loads(json.dumps(content))
        change(changed)
        path = root / "good" / f"{name}.json"
        path.write_text(json.dumps(changed))
        files[name] = path

    variant("huge_polygon", lambda c: c["annotations"][0].update(visible_mask=[[1, 1, 1e9, 1, 5, 1e9]]))
    variant("nan_polygon", lambda c: c["annotations"][0].update(visible_mask=[[1, 1, float("nan"), 1, 5, 5]]))
    variant("odd_polygon", lambda c: c["annotations"][0].update(visible_mask=[[1, 1, 9, 1, 5]]))
    variant("short_rle", lambda c: c["annotations"][0].update(visible_mask={"size": [H, W], "counts": [10, 20]}))
    variant("missing_key", lambda c: c["annotations"][0].pop("visible_mask"))
    model = root / "model"
    AmodalSAM.random("tiny", seed=0).save_pretrained(model)
    truncated = root / "truncated_model"
    truncated.mkdir()
    for name in ("config.json", "sam.safetensors"):
        (truncated / name).write_bytes((model / name).read_bytes())
    weights = (model / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    listed = root / "list_config"
    listed.mkdir()
    for name in ("model.safetensors", "sam.safetensors"):
        (listed / name).write_bytes((model / name).read_bytes())
    (listed / "config.json").write_text("[1, 2]")
    files.update(model=model, truncated_model=truncated, list_config=listed, a_file=root / "image.png")
    return files


def _eval(data, *extra):
    return ["eval", "--data", str(data), "--baseline", "hull", *extra]


def _complete_visible(files):
    """`complete` of the corpus image from its visible mask (no model, no output yet)."""
    return ["complete", str(files["image"]), "--visible", str(files["visible"])]


def _complete_with(files, model):
    """`complete` of the corpus image from its visible mask with the model ``files[model]``."""
    return [*_complete_visible(files), "--model", str(files[model]), "--out", str(files["image"].parent / "out.png")]


CASES = {
    "polygon of 1e9": (lambda f: _eval(f["huge_polygon"]), "annotation 1 field 'visible_mask' polygon 0"),
    "NaN polygon": (lambda f: _eval(f["nan_polygon"]), "non-finite coordinate"),
    "a baseline given a model's attention": (
        lambda f: _eval(f["nan_polygon"], "--attention", "sdpa"),
        "--baseline takes no --attention: those options are for --model",
    ),
    "odd polygon": (lambda f: _eval(f["odd_polygon"]), "even count of at least 6"),
    "RLE short of H x W": (lambda f: _eval(f["short_rle"]), "RLE counts add up to 30 pixels"),
    "missing annotation key": (lambda f: _eval(f["missing_key"]), "annotation 1 has no 'visible_mask'"),
    "truncated weights": (
        lambda f: _complete_with(f, "truncated_model"),
        "is not a readable safetensors file",
    ),
    "config that is a list": (
        lambda f: _complete_with(f, "list_config"),
        "config.json must hold a JSON object",
    ),
    "train on bad annotations": (
        lambda f: [
            "train",
            "--data",
            str(f["nan_polygon"]),
            "--sam",
            "tiny",
            "--epochs",
            "1",
            "--out",
            str(f["image"].parent / "run"),
        ],
        "non-finite coordinate",
    ),
    "a diverging training run": (
        lambda f: [
            "train",
            "--data",
            str(f["good"]),
            "--sam",
            "tiny",
            "--epochs",
            "2",
            "--batch-size",
            "1",
            "--lr",
            "1e30",
            "--out",
            str(f["image"].parent / "diverged"),
        ],
        "training diverged",
    ),
    "synth from a missing source": (
        lambda f: ["synth", str(f["image"].parent / "absent"), "--out", str(f["image"].parent / "synth")],
        "absent' does not exist",
    ),
    "a point outside the image": (
        lambda f: [
            "complete",
            str(f["image"]),
            "--point",
            "500,5",
            "--model",
            str(f["model"]),
            "--out",
            str(f["image"].parent / "out.png"),
        ],
        "lie outside the image",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inputs_end_with_exit_2_and_one_line(corpus, case, capsys):
    argv, expected = CASES[case]
    code = main(argv(corpus))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert code == 2, err
    assert "Traceback" not in err and len(errors) == 1, err
    assert errors[0] == err.strip().splitlines()[-1]  # the last word, after any note on the model used
    assert errors[0].startswith(f"amodal-sam {argv(corpus)[0]}: error: ")
    lines = errors
    assert expected in lines[0]


def test_the_polygon_that_crashed_pycocotools_now_exits_2_in_a_fresh_process(corpus):
    result = subprocess.run(
        [sys.executable, "-m", "amodal_sam.cli", *_eval(corpus["huge_polygon"])],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "lies far outside the image's width" in result.stderr


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            lambda f, t: [*_complete_visible(f), "--out", str(f["a_file"] / "x.png")],
            "--out .*image.png/x.png': .*image.png' is a file, not a folder",
        ),
        (
            lambda f, t: [*_complete_visible(f), "--out", str(t / "x.png"), "--overlay", str(t / "overlay.txt")],
            r"--overlay .*overlay.txt' must end in .png or .jpg",
        ),
        (
            lambda f, t: ["scene", str(f["image"]), "--masks", str(f["visible"]), "--out", str(f["a_file"])],
            "--out .*image.png' is a file; expected a folder",
        ),
        (lambda f, t: [*_eval(f["good"]), "--report", str(t)], "--report .* is a folder; expected a file name"),
        (
            lambda f, t: [*_eval(f["good"]), "--predictions", str(t / "p.csv")],
            r"--predictions .*p.csv' must end in .json",
        ),
        (
            lambda f, t: ["train", "--data", str(f["good"]), "--sam", "tiny", "--out", str(f["a_file"])],
            "--out .*image.png' is a file; expected a folder",
        ),
    ],
)
def test_output_paths_are_checked_before_any_compute(corpus, tmp_path, monkeypatch, capsys, argv, expected):
    def no_compute(*args, **kwargs):
        raise AssertionError("a model was built before the output path was checked")

    monkeypatch.setattr(factory_module, "create_model", no_compute)
    monkeypatch.setattr("amodal_sam.data.readers.load_dataset", no_compute)
    assert main(argv(corpus, tmp_path)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert re.search(expected, err), err


def test_temporaries_of_killed_writers_are_removed_on_the_next_start(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname().replace(".", "_")
    stale = tmp_path / f".model.safetensors.{host}-{dead.pid}.abc123.tmp"
    live = tmp_path / f".model.safetensors.{host}-{os.getpid()}.def456.tmp"
    other_host = tmp_path / f".model.safetensors.elsewhere-{dead.pid}.ghi789.tmp"
    for path in (stale, live, other_host):
        path.write_bytes(b"")
    with atomic_output(tmp_path / "config.json") as temporary:
        temporary.write_text("{}")
    assert not stale.exists()  # its writer is dead
    assert live.exists() and other_host.exists()  # a running writer's; another machine's
    assert (tmp_path / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["config.json", live.name, other_host.name])


def test_atomic_temporaries_carry_host_and_pid(tmp_path):
    with atomic_output(tmp_path / "x.json") as temporary:
        assert f"-{os.getpid()}." in temporary.name and temporary.name.startswith(".x.json.")
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--data", "x.json", "--sam", "tiny", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["train", "--data", "x.json", "--sam", "tiny", "--out", "o", "--epochs", "-2"], "--epochs"),
        (["synth", "src", "--out", "o", "--samples-per-object", "zero"], "--samples-per-object"),
    ],
)
def test_counts_below_one_are_refused_by_the_parser(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert f"argument {flag}: must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "two"])
def test_a_negative_worker_count_is_refused_by_the_parser(value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x.json", "--sam", "tiny", "--out", "o", "--workers", value])
    assert exit_info.value.code == 2
    assert f"argument --workers: must be a non-negative integer; got {value}" in capsys.readouterr().err
