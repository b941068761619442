"""The amodal-sam command line: files written, messages, exit codes."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from amodal_sam.cli import main
from amodal_sam.image_io import read_rgb, write_mask, write_rgb
from amodal_sam.mask_files import read_mask

from conftest import ellipse_mask, random_image, write_occlusion_dataset


@pytest.fixture
def files(tmp_path):
    write_rgb(tmp_path / "image.png", random_image(120, 160))
    write_mask(tmp_path / "visible.png", ellipse_mask(120, 160))
    return tmp_path


def test_complete_from_visible_mask_writes_mask_and_overlay(files, tiny_model, capsys, monkeypatch):
    from amodal_sam import defaults

    tiny_model.save_pretrained(files / "demo")
    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (files / "demo",))
    code = main(
        [
            "complete",
            str(files / "image.png"),
            "--visible",
            str(files / "visible.png"),
            "--out",
            str(files / "amodal.png"),
            "--overlay",
            str(files / "overlay.png"),
        ]
    )
    assert code == 0
    amodal = read_mask(files / "amodal.png")
    assert amodal.shape == (120, 160)
    assert not (ellipse_mask(120, 160) & ~amodal).any()
    overlay = read_rgb(files / "overlay.png")
    assert overlay.shape[0] == 120 and overlay.shape[1] > 160  # the image, its legend beside it
    assert not np.array_equal(overlay[:120], read_rgb(files / "image.png"))
    captured = capsys.readouterr()
    assert "Using the DEMO model" in captured.err and "amodal mask:" in captured.out


@pytest.mark.parametrize(
    "prompt", [["--point", "80,60"], ["--point", "80,60", "--point", "70,50"], ["--box", "30,20,130,100"]]
)
def test_complete_from_point_or_box(files, tiny_model, prompt, capsys):
    out = files / "amodal.png"
    tiny_model.save_pretrained(files / "model")  # prompts allowed: the mechanics are under test
    assert (
        main(["complete", str(files / "image.png"), *prompt, "--model", str(files / "model"), "--out", str(out)]) == 0
    )
    assert read_mask(out).shape == (120, 160)
    # the demo's SAM is random: it refuses, saying why, instead of returning noise
    assert main(["complete", str(files / "image.png"), *prompt, "--out", str(files / "demo.png")]) == 2
    assert "point and box prompts need a frozen SAM with real weights" in capsys.readouterr().err


def _complete_with_saved_model(files):
    """`complete` arguments: the test image, its visible mask and the model saved in files/model."""
    return [
        "complete",
        str(files / "image.png"),
        "--visible",
        str(files / "visible.png"),
        "--model",
        str(files / "model"),
    ]


def test_complete_with_a_saved_model(files, tiny_model, capsys):
    tiny_model.save_pretrained(files / "model")
    assert main([*_complete_with_saved_model(files), "--out", str(files / "amodal.png")]) == 0
    assert "RANDOM" not in capsys.readouterr().err


def test_complete_names_the_demo_model_when_it_is_used(files, tiny_model, capsys, monkeypatch):
    from amodal_sam import defaults

    tiny_model.save_pretrained(files / "demo")
    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (files / "absent", files / "demo"))
    assert main(["complete", str(files / "image.png"), "--box", "30,20,130,100", "--out", str(files / "a.png")]) == 0
    assert f"DEMO model ({files / 'demo'})" in capsys.readouterr().err


def test_without_a_demo_model_complete_exits_2_saying_how_to_get_one(files, capsys, monkeypatch):
    from amodal_sam import defaults

    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (files / "absent",))
    code = main(
        ["complete", str(files / "image.png"), "--visible", str(files / "visible.png"), "--out", str(files / "a.png")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "the demo model is not installed" in err and "--model DIR_OR_HUB_ID" in err
    assert not (files / "a.png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--box", "130,20,30,100"], "box must have x0 < x1"),
        (["--point", "500,60"], "lie outside the image"),
        (["--visible", "MISSING"], "--visible .*missing.png.* does not exist"),
    ],
)
def test_bad_input_exits_non_zero_with_a_message(files, capsys, args, message):
    args = [a.replace("MISSING", str(files / "missing.png")) for a in args]
    code = main(["complete", str(files / "image.png"), *args, "--out", str(files / "amodal.png")])
    assert code == 2
    assert __import__("re").search(message, capsys.readouterr().err)
    assert not (files / "amodal.png").exists()


def test_mask_of_another_size_is_rejected(files, capsys):
    write_mask(files / "small.png", ellipse_mask(60, 80))
    code = main(
        [
            "complete",
            str(files / "image.png"),
            "--visible",
            str(files / "small.png"),
            "--out",
            str(files / "amodal.png"),
        ]
    )
    assert code == 2 and "visible_mask has shape (60, 80) but the image is (120, 160)" in capsys.readouterr().err


def test_console_script_is_installed(files):
    script = Path(sys.executable).parent / "amodal-sam"
    assert script.exists(), "pip install should put the amodal-sam script beside the interpreter"
    command = [str(script), "complete", str(files / "image.png"), "--box", "1,2", "--out", str(files / "a.png")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--box must be 4 comma-separated numbers" in done.stderr


def test_encoder_dtype_runs_the_fast_encoder(files, tiny_model, monkeypatch):
    import amodal_sam.modeling.amodal_sam as model_module

    tiny_model.save_pretrained(files / "model")
    common = _complete_with_saved_model(files)
    fast_calls = []
    fast_encode = model_module.encode
    monkeypatch.setattr(model_module, "encode", lambda *a, **k: fast_calls.append(1) or fast_encode(*a, **k))
    assert main([*common, "--out", str(files / "reference.png")]) == 0
    assert fast_calls == []
    assert main([*common, "--encoder-dtype", "fp32", "--out", str(files / "fast.png")]) == 0
    assert fast_calls == [1]
    same = (read_mask(files / "reference.png") == read_mask(files / "fast.png")).mean()
    assert same > 0.999  # the fast path gives the reference embeddings (to 1e-4)


def test_init_refuses_sam_options_it_would_ignore(files, tiny_model, capsys):
    tiny_model.save_pretrained(files / "model")
    data = write_occlusion_dataset(files / "data", count=2)
    args = ["train", "--data", str(data), "--init", str(files / "model"), "--out", str(files / "run")]
    with pytest.raises(SystemExit) as exit_info:  # the parser refuses --sam beside --init
        main([*args, "--sam", "vit_b"])
    assert exit_info.value.code == 2 and "argument --sam: not allowed with argument --init" in capsys.readouterr().err
    assert main([*args, "--sam-type", "vit_b"]) == 2
    assert "--init starts from a saved model" in capsys.readouterr().err
    assert (
        main(
            [
                "complete",
                str(files / "image.png"),
                "--visible",
                str(files / "visible.png"),
                "--sam-checkpoint",
                "s.pth",
                "--out",
                str(files / "a.png"),
            ]
        )
        == 2
    )
    assert "sam_checkpoint replaces the SAM weights of a saved model" in capsys.readouterr().err


def _subparsers():
    import argparse

    from amodal_sam.cli import build_parser

    parser = build_parser()
    (group,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return group.choices


@pytest.mark.parametrize("command", ["complete", "scene", "synth", "embed", "train", "eval", "calibrate"])
def test_every_subcommand_explains_its_options_and_ends_with_an_example(command):
    parser = _subparsers()[command]
    text = parser.format_help()
    for action in parser._actions:
        if action.option_strings == ["-h", "--help"]:
            continue
        assert action.help, f"{command} {action.option_strings or action.dest} has no help text"
        if action.default not in (None, False) and action.default is not __import__("argparse").SUPPRESS:
            assert "(default" in parser._get_formatter()._get_help_string(action), (command, action.dest)
    examples = text.split("examples:\n")[1]
    assert examples.strip().startswith(f"amodal-sam {command} ")


def test_train_needs_sam_or_init_and_an_unknown_sam_name_fails_at_once(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x.json", "--out", "run"])
    assert exit_info.value.code == 2 and "one of the arguments --sam --init is required" in capsys.readouterr().err
    assert main(["train", "--data", "missing.json", "--out", "run", "--sam", "vit_q"]) == 2
    err = capsys.readouterr().err
    assert "--sam 'vit_q' is not a file, a Hub id (owner/name) or a spec name" in err
    assert "vit_b, vit_l, vit_h, demo, tiny" in err and "missing.json" not in err  # before reading any data


def test_the_overlay_draws_each_part_in_its_colour_with_a_legend():
    from amodal_sam.visualize import OCCLUDED_COLOR, OCCLUDER_COLOR, VISIBLE_COLOR, overlay

    image = np.zeros((60, 80, 3), np.uint8)
    visible = np.zeros((60, 80), bool)
    visible[20:40, 10:30] = True
    occluded = np.zeros_like(visible)
    occluded[20:40, 30:45] = True
    occluder = np.zeros_like(visible)
    occluder[5:55, 30:50] = True
    picture = overlay(image, visible, occluded, occluder, alpha=1.0)
    assert picture.shape[0] == 60 and picture.shape[1] > 80
    assert tuple(picture[30, 20]) == VISIBLE_COLOR and tuple(picture[30, 37]) == OCCLUDED_COLOR
    assert tuple(picture[10, 30]) == OCCLUDER_COLOR  # the occluder's outline, where nothing else is drawn
    assert tuple(picture[30, 55]) == (0, 0, 0)  # outside everything: the image itself
    band = picture[:, 80:]
    for color in (VISIBLE_COLOR, OCCLUDED_COLOR, OCCLUDER_COLOR):  # each colour has its swatch in the legend
        assert (band == np.asarray(color, np.uint8)).all(axis=2).sum() >= 9
    without = overlay(image, visible, occluded, alpha=1.0)
    assert not (without[:60] == np.asarray(OCCLUDER_COLOR, np.uint8)).all(axis=2).any()


def test_the_demo_model_can_be_named_demo(tiny_model, tmp_path, monkeypatch):
    from amodal_sam import defaults
    from amodal_sam.factory import create_model

    tiny_model.save_pretrained(tmp_path / "shipped")
    monkeypatch.setattr(defaults, "DEMO_MODEL_DIRS", (tmp_path / "shipped",))
    monkeypatch.chdir(tmp_path)
    named = create_model(model="demo")
    assert named.config.sam_type == "tiny"
    (tmp_path / "demo").mkdir()  # a folder of that name wins: it is what the user means
    with pytest.raises(FileNotFoundError, match="config.json"):
        create_model(model="demo")
