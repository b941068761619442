"""Every option of every command reaches what it configures.

Each command runs with a non-default value for every option; the library functions it calls are
replaced by recorders (the last one stops the run), and each value must arrive where it belongs.
A table of covered options per command is checked against the parser, so an option added later
without a line here fails the suite (the kind of bug where `train` drops an option on its way to
the training options).
"""

import os
from functools import partial

import numpy as np
import pytest

import amodal_sam.app as app_module
import amodal_sam.calibration as calibration_module
import amodal_sam.data.objects as objects_module
import amodal_sam.data.readers as readers_module
import amodal_sam.data.synth as synth_module
import amodal_sam.embedding_cache as cache_module
import amodal_sam.evaluate as evaluate_module
import amodal_sam.factory as factory_module
import amodal_sam.onnx_export as onnx_export_module
import amodal_sam.predictor as predictor_module
import amodal_sam.scene as scene_module
import amodal_sam.train as train_module
import amodal_sam.weight_average as weight_average_module
from amodal_sam import AmodalSAM
from amodal_sam.cli import build_parser, main
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.image_io import write_mask, write_rgb
from amodal_sam.pixel_limit import ENVIRONMENT_VARIABLE

from conftest import random_image, rect_mask

H, W = 40, 48


class Reached(Exception):
    """The command reached its last library call; the recorders have what they need."""


def _recorder(record: dict, name: str, result=None, stop: bool = False):
    """A stand-in for the library call ``name``: it appends its arguments to ``record[name]`` and
    returns ``result`` (called first when callable); with ``stop`` it ends the command there
    (:class:`Reached`), noting the pixel limit in force."""

    def call(*args, **kwargs):
        record.setdefault(name, []).append((args, kwargs))
        if stop:
            record.setdefault("limit at the last call", []).append(os.environ.get(ENVIRONMENT_VARIABLE))
            raise Reached(name)
        return result() if callable(result) else result

    return call


@pytest.fixture
def calls(monkeypatch):
    """Recorders in place of the library calls; ``calls[name]`` holds each call's arguments."""
    record: dict = {}
    tiny = AmodalSAM.random("tiny", seed=0)
    recorder = partial(_recorder, record)

    monkeypatch.delenv(ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(factory_module, "create_model", recorder("create_model", lambda: tiny))
    monkeypatch.setattr(
        readers_module, "load_dataset", recorder("load_dataset", lambda: AmodalDataset([], "cocoa_cls"))
    )
    monkeypatch.setattr(train_module, "fit", recorder("fit", stop=True))
    monkeypatch.setattr(cache_module, "EmbeddingCache", recorder("EmbeddingCache", "cache"))
    monkeypatch.setattr(cache_module, "embed_dataset", recorder("embed_dataset", stop=True))
    monkeypatch.setattr(evaluate_module, "predict_dataset", recorder("predict_dataset", stop=True))
    monkeypatch.setattr(calibration_module, "calibrate_model", recorder("calibrate_model", stop=True))
    monkeypatch.setattr(objects_module, "object_pools", recorder("object_pools", ([], [])))
    monkeypatch.setattr(synth_module, "synthesize", recorder("synthesize", stop=True))
    monkeypatch.setattr(scene_module, "automatic_visible_masks", recorder("automatic", stop=True))
    original_init = predictor_module.AmodalPredictor.__init__

    def predictor_init(self, model, **kwargs):
        record.setdefault("AmodalPredictor", []).append(((model,), kwargs))
        original_init(self, model, **kwargs)

    monkeypatch.setattr(predictor_module.AmodalPredictor, "__init__", predictor_init)
    monkeypatch.setattr(AmodalSAM, "use_onnx_decoder", recorder("use_onnx_decoder", lambda: tiny))
    monkeypatch.setattr(onnx_export_module, "export_onnx", recorder("export_onnx", stop=True))
    monkeypatch.setattr(app_module, "launch_app", recorder("launch_app", stop=True))
    monkeypatch.setattr(weight_average_module, "average_models", recorder("average_models", stop=True))
    monkeypatch.setattr(predictor_module.AmodalPredictor, "complete", recorder("complete", stop=True))
    monkeypatch.setattr(predictor_module.AmodalPredictor, "complete_scene", recorder("complete_scene", stop=True))
    return record


def _run(argv):
    with pytest.raises(Reached):
        main(argv)


def _kwargs(calls, name, index=-1):
    return calls[name][index][1]


@pytest.fixture
def files(tmp_path):
    write_rgb(tmp_path / "image.png", random_image(H, W))
    write_mask(tmp_path / "visible.png", rect_mask((H, W), (5, 30), (5, 20)))
    write_mask(tmp_path / "masks" / "a.png", rect_mask((H, W), (5, 30), (5, 20)))
    write_mask(tmp_path / "masks" / "b.png", rect_mask((H, W), (5, 30), (20, 40)))
    return tmp_path


COMMON = {"--max-pixels"}
# Output options: the files they name are written and checked by the tests named here.
OUTPUTS = {
    "complete": {"--out", "--overlay"},  # test_cli.py: test_complete_writes_mask_and_overlay
    "scene": {"--out", "--overlay"},  # test_scene_cli.py: test_scene_command_writes_amodal_masks_...
    "synth": {"--out"},
    "train": {"--out"},
    "eval": {"--predictions", "--report"},  # test_eval.py
}
COVERED: dict[str, set[str]] = {}


def _covers(command, *options):
    COVERED.setdefault(command, set()).update(options)


def _max_pixels_reached(calls):
    """--max-pixels was the limit while the command ran (recorded at its last call), and is
    gone after it."""
    assert calls["limit at the last call"][-1] == "123456"
    assert ENVIRONMENT_VARIABLE not in os.environ


_covers(
    "complete", "image", "--visible", "--point", "--box", "--model", "--sam-checkpoint", "--encoder-dtype", "--device"
)
_covers("complete", "--attention", "--backend", "--onnx", "--beyond")


def test_complete_options_reach_the_model_the_predictor_and_the_prompt(files, calls):
    base = [
        "complete",
        str(files / "image.png"),
        "--model",
        "M",
        "--sam-checkpoint",
        "S.pth",
        "--encoder-dtype",
        "bf16",
        "--attention",
        "sdpa",
    ]
    base += ["--device", "cpu", "--out", str(files / "a.png"), "--max-pixels", "123456"]
    _run([*base, "--visible", str(files / "visible.png")])
    expected = {"model": "M", "sam_checkpoint": "S.pth", "encoder_dtype": "bf16", "attention": "sdpa"}
    assert _kwargs(calls, "create_model") == expected
    assert calls["use_onnx_decoder"][-1][0][1:] == (None,)  # the PyTorch head by default
    _run([*base, "--visible", str(files / "visible.png"), "--backend", "onnx", "--onnx", "head.onnx"])
    assert calls["use_onnx_decoder"][-1][0][1:] == ("head.onnx",)
    assert _kwargs(calls, "AmodalPredictor") == {"device": "cpu"}
    np.testing.assert_array_equal(_kwargs(calls, "complete")["visible_mask"], rect_mask((H, W), (5, 30), (5, 20)))
    _max_pixels_reached(calls)
    _run([*base, "--point", "7,9", "--point", "11,3"])
    assert _kwargs(calls, "complete") == {
        "point_coords": [[7.0, 9.0], [11.0, 3.0]],
        "point_labels": [1, 1],
        "beyond": None,
    }
    _run([*base, "--box", "1,2,30,20"])
    assert _kwargs(calls, "complete") == {"box": [1.0, 2.0, 30.0, 20.0], "beyond": None}
    _run([*base, "--box", "1,2,30,20", "--beyond", "0.75"])
    assert _kwargs(calls, "complete")["beyond"] == 0.75


_covers("scene", "image", "--masks", "--auto", "--model", "--sam-checkpoint", "--encoder-dtype", "--min-area")
_covers("scene", "--occluder-band", "--device", "--attention", "--backend", "--onnx", "--beyond")


def test_scene_options_reach_the_model_the_predictor_and_the_scene(files, calls):
    base = ["scene", str(files / "image.png"), "--out", str(files / "out"), "--model", "M", "--sam-checkpoint", "S"]
    base += ["--encoder-dtype", "fp16", "--attention", "chunked", "--device", "cpu", "--max-pixels", "123456"]
    _run([*base, "--masks", str(files / "masks"), "--occluder-band", "2", "--backend", "onnx", "--onnx", "h.onnx"])
    assert _kwargs(calls, "complete_scene") == {"occluder_band": 2, "beyond": None}
    assert calls["use_onnx_decoder"][-1][0][1:] == ("h.onnx",)
    _run([*base, "--masks", str(files / "masks"), "--occluder-band", "2", "--beyond", "0.4"])
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "fp16", "attention": "chunked"}
    assert _kwargs(calls, "create_model") == expected
    assert _kwargs(calls, "AmodalPredictor") == {"device": "cpu"}
    (masks,), options = calls["complete_scene"][-1][0][1:], _kwargs(calls, "complete_scene")
    assert options == {"occluder_band": 2, "beyond": 0.4} and masks.shape == (2, H, W)
    _max_pixels_reached(calls)
    _run([*base, "--auto", "--min-area", "37"])
    assert _kwargs(calls, "automatic") == {"min_area": 37}


_covers("synth", "sources", "--occluders-from", "--include", "--exclude", "--occlusion", "--occluders", "--behind")
_covers("synth", "--samples-per-object", "--max-rotation", "--scale", "--seed", "--background-swap", "--max-side")
_covers("synth", "--min-area")


def test_synth_options_reach_the_pools_and_the_synthesis_options(tmp_path, calls):
    argv = ["synth", "src1", "src2", "--out", str(tmp_path / "o"), "--occluders-from", "occ", "--include", "a", "b"]
    argv += ["--exclude", "c", "--occlusion", "0.2,0.4", "--occluders", "2,3", "--behind", "1,2"]
    argv += ["--samples-per-object", "5", "--max-rotation", "7.5", "--scale", "0.9,1.1", "--seed", "4"]
    argv += ["--background-swap", "0.3", "--max-side", "300", "--min-area", "99", "--max-pixels", "123456"]
    _run(argv)
    assert calls["object_pools"][-1][0] == (["src1", "src2"],)
    assert _kwargs(calls, "object_pools") == {
        "include": ["a", "b"],
        "exclude": ["c"],
        "occluders_from": ["occ"],
        "min_area": 99,
    }
    options = calls["synthesize"][-1][0][2]
    assert (options.occlusion_range, options.occluders, options.behind) == ((0.2, 0.4), (2, 3), (1, 2))
    assert (options.samples_per_object, options.seed, options.max_side) == (5, 4, 300)
    assert (options.max_rotation, options.scale_range, options.background_swap) == (7.5, (0.9, 1.1), 0.3)
    assert calls["synthesize"][-1][0][1] == str(tmp_path / "o")
    _max_pixels_reached(calls)


_covers(
    "embed",
    "--data",
    "--images",
    "--sam",
    "--init",
    "--sam-type",
    "--sam-seed",
    "--encoder-dtype",
    "--attention",
    "--cache",
    "--device",
)


def test_embed_options_reach_the_data_the_model_and_the_cache(tmp_path, calls):
    base = ["embed", "--data", "D.json", "--images", "I", "--cache", str(tmp_path / "c"), "--device", "cpu"]
    _run(
        [
            *base,
            "--sam",
            "vit_b",
            "--sam-type",
            "vit_l",
            "--sam-seed",
            "3",
            "--encoder-dtype",
            "bf16",
            "--attention",
            "folded",
            "--max-pixels",
            "123456",
        ]
    )
    assert calls["load_dataset"][-1][0] == ("D.json", "I")
    assert _kwargs(calls, "create_model") == {
        "sam": "vit_b",
        "sam_type": "vit_l",
        "sam_seed": 3,
        "encoder_dtype": "bf16",
        "attention": "folded",
    }
    assert calls["EmbeddingCache"][-1][0][0] == str(tmp_path / "c")
    _max_pixels_reached(calls)
    _run([*base, "--init", "RUN", "--encoder-dtype", "fp16"])
    assert _kwargs(calls, "create_model") == {"model": "RUN", "encoder_dtype": "fp16", "attention": "auto"}


_covers("train", "--data", "--images", "--sam", "--init", "--sam-type", "--sam-seed", "--encoder-dtype", "--val")
_covers("train", "--val-images", "--epochs", "--batch-size", "--lr", "--seed", "--scene-prob", "--workers", "--cache")
_covers("train", "--resume", "--device", "--attention", "--memory-prob", "--occluder-loss-weight")
_covers("train", "--memory-prompt")  # its effect: test_memory_prompt.py, train on the command line


def test_train_options_reach_the_training_options_and_fit(tmp_path, calls):
    argv = ["train", "--data", "A.json", "B.json", "--images", "I", "--sam", "tiny", "--sam-type", "vit_b"]
    argv += [
        "--sam-seed",
        "5",
        "--encoder-dtype",
        "bf16",
        "--attention",
        "sdpa",
        "--val",
        "V.json",
        "--val-images",
        "VI",
    ]
    argv += ["--out", str(tmp_path / "run"), "--epochs", "3", "--batch-size", "6", "--lr", "0.002", "--seed", "9"]
    argv += [
        "--scene-prob",
        "0.25",
        "--memory-prob",
        "0.75",
        "--occluder-loss-weight",
        "3",
        "--workers",
        "2",
        "--cache",
        "C",
        "--resume",
        "--device",
        "cpu",
        "--max-pixels",
        "123456",
    ]
    _run(argv)
    loaded = [call[0][:2] for call in calls["load_dataset"]]
    assert loaded == [("A.json", "I"), ("B.json", "I"), ("V.json", "VI")]
    assert _kwargs(calls, "create_model") == {
        "sam": "tiny",
        "sam_type": "vit_b",
        "sam_seed": 5,
        "encoder_dtype": "bf16",
        "attention": "sdpa",
    }
    (_, _, out, options), fit_kwargs = calls["fit"][-1][0], _kwargs(calls, "fit")
    assert out == str(tmp_path / "run")
    assert (options.epochs, options.batch_size, options.lr, options.seed) == (3, 6, 0.002, 9)
    assert (options.scene_prob, options.memory_prob, options.workers) == (0.25, 0.75, 2)
    assert options.occluder_loss_weight == 3.0
    assert fit_kwargs["cache_dir"] == "C" and fit_kwargs["resume"] is True and fit_kwargs["device"] == "cpu"
    assert fit_kwargs["val_data"] is not None
    _max_pixels_reached(calls)


OUTPUTS["train-encoder"] = {"--out"}  # test_encoder_training.py: the command writes the model there
_covers("train-encoder", "--data", "--images", "--init", "--check", "--epochs", "--batch-size", "--lr", "--seed")
_covers("train-encoder", "--save-every", "--resume", "--device")


def test_train_encoder_options_reach_the_encoder_training(tmp_path, calls, monkeypatch):
    import amodal_sam.encoder_training as encoder_training_module

    monkeypatch.setattr(encoder_training_module, "train_encoder", partial(_recorder, calls)("train_encoder", stop=True))
    argv = ["train-encoder", "--data", "A.json", "B.json", "--images", "I", "--init", "M", "--check", "K.json"]
    argv += ["--out", str(tmp_path / "enc"), "--epochs", "3", "--batch-size", "5", "--lr", "0.002", "--seed", "9"]
    _run([*argv, "--save-every", "7", "--resume", "--device", "cpu", "--max-pixels", "123456"])
    loaded = [call[0][:2] for call in calls["load_dataset"]]
    assert loaded == [("A.json", "I"), ("B.json", "I"), ("K.json",)]
    assert _kwargs(calls, "create_model") == {"model": "M"}
    (_, _, out, options), kwargs = calls["train_encoder"][-1][0], _kwargs(calls, "train_encoder")
    assert out == str(tmp_path / "enc")
    assert (options.epochs, options.batch_size, options.lr, options.seed, options.save_every) == (3, 5, 0.002, 9, 7)
    assert kwargs["check_data"] is not None and kwargs["resume"] is True and kwargs["device"] == "cpu"
    _max_pixels_reached(calls)


_covers("eval", "--data", "--images", "--model", "--baseline", "--scene", "--sam-checkpoint", "--encoder-dtype")
_covers("eval", "--prompt", "--seed", "--cache", "--decoder-batch", "--device", "--attention")


def test_eval_options_reach_the_predictions(tmp_path, calls):
    argv = ["eval", "--data", "D.json", "--images", "I", "--model", "M", "--scene", "--sam-checkpoint", "S"]
    argv += ["--encoder-dtype", "bf16", "--prompt", "box", "--seed", "8", "--cache", "C", "--decoder-batch", "4"]
    _run([*argv, "--attention", "chunked", "--device", "cpu", "--max-pixels", "123456"])
    assert calls["load_dataset"][-1][0] == ("D.json", "I")
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "bf16", "attention": "chunked"}
    assert _kwargs(calls, "create_model") == expected
    assert calls["EmbeddingCache"][-1][0][0] == "C"
    predicted = _kwargs(calls, "predict_dataset")
    assert (predicted["prompt"], predicted["scene"], predicted["seed"]) == ("box", True, 8)
    assert (predicted["cache"], predicted["decoder_batch"], predicted["device"]) == ("cache", 4, "cpu")
    _max_pixels_reached(calls)
    _run(["eval", "--data", "D.json", "--baseline", "hull", "--seed", "3"])
    assert (_kwargs(calls, "predict_dataset")["baseline_name"], _kwargs(calls, "predict_dataset")["seed"]) == (
        "hull",
        3,
    )


_covers("calibrate", "--data", "--images", "--model", "--thresholds", "--scene", "--sam-checkpoint", "--encoder-dtype")
_covers("calibrate", "--cache", "--device", "--attention")


def test_calibrate_options_reach_calibrate_model(calls):
    argv = ["calibrate", "--data", "A.json", "B.json", "--images", "I", "--model", "M", "--thresholds", "0.3,0.6"]
    argv += ["--scene", "--sam-checkpoint", "S", "--encoder-dtype", "bf16", "--cache", "C", "--device", "cpu"]
    _run([*argv, "--attention", "sdpa", "--max-pixels", "123456"])
    assert [call[0][:2] for call in calls["load_dataset"]] == [("A.json", "I"), ("B.json", "I")]
    (datasets, model, thresholds), options = calls["calibrate_model"][-1][0], _kwargs(calls, "calibrate_model")
    assert (len(datasets), model, thresholds) == (2, "M", [0.3, 0.6])
    assert options == {
        "scene": True,
        "cache_dir": "C",
        "sam_checkpoint": "S",
        "encoder_dtype": "bf16",
        "attention": "sdpa",
        "device": "cpu",
    }
    _max_pixels_reached(calls)


def test_every_option_of_every_command_is_covered_here():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, command in commands.items():
        options = {(a.option_strings[0] if a.option_strings else a.dest) for a in command._actions if a.dest != "help"}
        missing = options - COVERED.get(name, set()) - COMMON - OUTPUTS.get(name, set())
        assert not missing, f"{name}: add a test that {sorted(missing)} reach what they configure"


OUTPUTS["video"] = {"--out", "--overlay"}  # test_video_cli.py: test_index_maps_in_one_folder_per_object_out, ...
OUTPUTS["synth-video"] = {"--out"}  # test_synth_video.py
OUTPUTS["eval-video"] = {"--report"}  # test_video_cli.py: test_synth_video_and_eval_video_commands
_covers("video", "frames", "--visible", "--model", "--sam-checkpoint", "--encoder-dtype", "--bidirectional")
_covers("video", "--fps", "--device", "--attention")


@pytest.fixture
def video_calls(calls, monkeypatch):
    """``calls`` with the video commands' library calls recorded too."""
    import amodal_sam.data.synth_video as synth_video_module
    import amodal_sam.evaluate_video as evaluate_video_module
    import amodal_sam.video as video_module
    import amodal_sam.video_job as video_job_module

    def record(name, stop):
        return _recorder(calls, name, "predictor" if name == "AmodalVideoPredictor" else ["clip"], stop)

    monkeypatch.setattr(video_module, "AmodalVideoPredictor", record("AmodalVideoPredictor", False))
    monkeypatch.setattr(video_job_module, "complete_video_files", record("complete_video_files", True))
    monkeypatch.setattr(synth_video_module, "synthesize_clips", record("synthesize_clips", True))
    monkeypatch.setattr(synth_video_module, "read_clips", record("read_clips", False))
    monkeypatch.setattr(evaluate_video_module, "evaluate_clips", record("evaluate_clips", True))
    return calls


def test_video_options_reach_the_video_run(tmp_path, video_calls):
    argv = ["video", "F", "--visible", "V", "--out", str(tmp_path / "out"), "--model", "M", "--sam-checkpoint", "S"]
    argv += ["--encoder-dtype", "bf16", "--overlay", str(tmp_path / "o.mp4"), "--bidirectional", "--fps", "24"]
    _run([*argv, "--attention", "folded", "--device", "cpu", "--max-pixels", "123456"])
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "bf16", "attention": "folded"}
    assert _kwargs(video_calls, "create_model") == expected
    assert _kwargs(video_calls, "AmodalVideoPredictor") == {"device": "cpu"}
    (predictor, frames, visible, out), options = video_calls["complete_video_files"][-1]
    assert (predictor, frames, visible, out) == ("predictor", "F", "V", str(tmp_path / "out"))
    assert options == {"overlay": str(tmp_path / "o.mp4"), "bidirectional": True, "fps": 24.0}
    _max_pixels_reached(video_calls)


_covers("synth-video", "root", "--targets", "--occluders", "--count", "--length", "--peak", "--seed", "--max-side")


def test_synth_video_options_reach_the_clip_options(tmp_path, video_calls):
    argv = ["synth-video", "R", "--targets", "a", "b", "--occluders", "c", "--out", str(tmp_path / "o")]
    _run([*argv, "--count", "5", "--length", "7", "--peak", "0.2,0.4", "--seed", "9", "--max-side", "99"])
    (root, out, count), options = video_calls["synthesize_clips"][-1]
    assert (root, out, count) == ("R", str(tmp_path / "o"), 5)
    assert (options["targets"], options["occluders"]) == (["a", "b"], ["c"])
    clip = options["options"]
    assert (clip.length, clip.peak_range, clip.seed, clip.max_side) == (7, (0.2, 0.4), 9, 99)


_covers("eval-video", "clips", "--model", "--sam-checkpoint", "--encoder-dtype", "--bidirectional", "--device")
_covers("eval-video", "--attention")


def test_eval_video_options_reach_the_evaluation(video_calls):
    argv = ["eval-video", "C", "--model", "M", "--sam-checkpoint", "S", "--encoder-dtype", "fp16", "--bidirectional"]
    _run([*argv, "--attention", "chunked", "--device", "cpu", "--max-pixels", "123456"])
    assert video_calls["read_clips"][-1][0] == ("C",)
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "fp16", "attention": "chunked"}
    assert _kwargs(video_calls, "create_model") == expected
    (clips, predictor), options = video_calls["evaluate_clips"][-1]
    assert (clips, predictor, options) == (["clip"], "predictor", {"bidirectional": True})
    _max_pixels_reached(video_calls)


OUTPUTS["export-onnx"] = {"--out"}  # test_onnx.py: test_the_demo_exported_on_the_command_line_completes_...
_covers("export-onnx", "--model", "--sam-checkpoint", "--encoder-dtype", "--attention", "--opset")


def test_export_onnx_options_reach_the_model_and_the_export(tmp_path, calls):
    argv = ["export-onnx", "--model", "M", "--sam-checkpoint", "S", "--encoder-dtype", "bf16", "--attention", "sdpa"]
    _run([*argv, "--out", str(tmp_path / "h.onnx"), "--opset", "18", "--max-pixels", "123456"])
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "bf16", "attention": "sdpa"}
    assert _kwargs(calls, "create_model") == expected
    assert calls["export_onnx"][-1][0][1:] == (str(tmp_path / "h.onnx"),)
    assert _kwargs(calls, "export_onnx") == {"opset": 18}
    _max_pixels_reached(calls)


OUTPUTS["average"] = {"--out"}  # test_weight_average.py: the command writes the average there
_covers("average", "models", "--weights")


def test_average_options_reach_the_averaging(tmp_path, calls):
    _run(["average", "A", "B", "C", "--weights", "1,2,3", "--out", str(tmp_path / "m"), "--max-pixels", "123456"])
    assert calls["average_models"][-1][0] == (["A", "B", "C"], str(tmp_path / "m"), [1.0, 2.0, 3.0])
    _max_pixels_reached(calls)


_covers("app", "--model", "--sam-checkpoint", "--encoder-dtype", "--attention", "--host", "--port")


def test_app_options_reach_the_model_and_the_server(calls):
    argv = ["app", "--model", "M", "--sam-checkpoint", "S", "--encoder-dtype", "fp16", "--attention", "chunked"]
    _run([*argv, "--host", "0.0.0.0", "--port", "7861", "--max-pixels", "123456"])
    expected = {"model": "M", "sam_checkpoint": "S", "encoder_dtype": "fp16", "attention": "chunked"}
    assert _kwargs(calls, "create_model") == expected
    assert _kwargs(calls, "launch_app") == {"host": "0.0.0.0", "port": 7861}
    _max_pixels_reached(calls)


OUTPUTS["synth-beyond"] = {"--out"}  # test_truncation.py: test_a_written_truncation_set_reads_back_...
_covers("synth-beyond", "sources", "--include", "--exclude", "--beyond", "--shares", "--per-object", "--seed")


def test_synth_beyond_options_reach_the_crops_and_the_writer(tmp_path, calls, monkeypatch):
    import amodal_sam.data.truncation as truncation_module

    record = partial(_recorder, calls)

    monkeypatch.setattr(objects_module, "load_objects", record("load_objects", ["a"]))
    monkeypatch.setattr(objects_module, "filter_objects", record("filter_objects", ["kept"]))
    monkeypatch.setattr(truncation_module, "truncated_crops", record("truncated_crops", "crops"))
    monkeypatch.setattr(truncation_module, "write_truncation_dataset", record("write", None, stop=True))
    argv = ["synth-beyond", "S1", "S2", "--out", str(tmp_path / "o"), "--include", "x", "--exclude", "y", "z"]
    _run(
        [*argv, "--beyond", "0.3", "--shares", "0.1,0.4", "--per-object", "3", "--seed", "7", "--max-pixels", "123456"]
    )
    assert [call[0] for call in calls["load_objects"]] == [("S1",), ("S2",)]
    assert calls["filter_objects"][-1][0] == (["a", "a"], ["x"], ["y", "z"])
    (objects,), options = calls["truncated_crops"][-1]
    assert objects == ["kept"] and options == {"beyond": 0.3, "shares": (0.1, 0.4), "per_object": 3, "seed": 7}
    assert calls["write"][-1][0] == ("crops", str(tmp_path / "o"))
    _max_pixels_reached(calls)


OUTPUTS["eval-beyond"] = {"--report"}  # test_beyond.py: test_eval_beyond_scores_the_model_beside_...
_covers("eval-beyond", "sources", "--include", "--exclude", "--beyond", "--shares", "--per-object", "--seed")
_covers("eval-beyond", "--model", "--sam-checkpoint", "--encoder-dtype", "--attention", "--device")


def test_eval_beyond_options_reach_the_crops_the_model_and_the_report(calls, monkeypatch):
    import amodal_sam.data.objects as objects_module
    import amodal_sam.data.truncation as truncation_module
    import amodal_sam.evaluate_beyond as evaluate_beyond_module

    record = partial(_recorder, calls)

    monkeypatch.setattr(objects_module, "load_objects", record("load_objects", ["a"]))
    monkeypatch.setattr(objects_module, "filter_objects", record("filter_objects", ["kept"]))
    monkeypatch.setattr(truncation_module, "truncated_crops", record("truncated_crops", "crops"))
    monkeypatch.setattr(evaluate_beyond_module, "beyond_report", record("beyond_report", None, stop=True))
    argv = ["eval-beyond", "S1", "--include", "x", "--exclude", "y", "--beyond", "0.3", "--shares", "0.1,0.4"]
    argv += ["--per-object", "3", "--seed", "7", "--model", "M", "--sam-checkpoint", "S", "--encoder-dtype", "bf16"]
    _run([*argv, "--attention", "sdpa", "--device", "cpu", "--max-pixels", "123456"])
    assert calls["filter_objects"][-1][0] == (["a"], ["x"], ["y"])
    (objects,), options = calls["truncated_crops"][-1]
    assert objects == ["kept"] and options == {"beyond": 0.3, "shares": (0.1, 0.4), "per_object": 3, "seed": 7}
    assert _kwargs(calls, "create_model") == {
        "model": "M",
        "sam_checkpoint": "S",
        "encoder_dtype": "bf16",
        "attention": "sdpa",
    }
    (crops, model, beyond), options = calls["beyond_report"][-1]
    assert (crops, beyond, options) == ("crops", 0.3, {"device": "cpu"}) and model is not None
    _max_pixels_reached(calls)
