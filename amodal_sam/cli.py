"""The ``amodal-sam`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from amodal_sam.config import ATTENTION_PATHS, DEFAULT_THRESHOLDS, SAM_SPECS
from amodal_sam.pixel_limit import DEFAULT_MAX_PIXELS, ENVIRONMENT_VARIABLE


def _numbers(count: int | None, what: str):
    """An argparse type: ``count`` comma-separated numbers (any number of them when None)."""

    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if not values or (count is not None and len(values) != count):
            amount = "" if count is None else f"{count} "
            raise argparse.ArgumentTypeError(f"{what} must be {amount}comma-separated numbers; got {text!r}")
        return values

    return parse


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _integer_at_least(text, 1, "a positive integer")


def _beyond(text: str) -> float:
    """An argparse type: a canvas margin share (:func:`amodal_sam.canvas.check_beyond`)."""
    from amodal_sam.canvas import check_beyond

    try:
        return check_beyond(text, "it")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    return _integer_at_least(text, 0, "a non-negative integer")


def _integer_at_least(text: str, least: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {what}; got {text}")
    return value


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option help with its default (unless it has none, or says it itself); the examples below
    each command's help kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "(default" in text
            or action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
        ):
            return text
        return super()._get_help_string(action)


_EXAMPLES = {
    "complete": """examples:
  amodal-sam complete examples/scene.png --visible examples/scene_visible.png --out amodal.png --overlay overlay.png
  amodal-sam complete photo.jpg --box 40,30,200,180 --model runs/vit_b --out amodal.png""",
    "scene": """examples:
  amodal-sam scene examples/scene.png --masks examples/scene_objects.png --out out --overlay layers.png
  amodal-sam scene photo.jpg --masks masks_dir/ --model runs/vit_b --out out""",
    "synth": """examples:
  amodal-sam synth ../shared/data/davis2016 ../shared/data/coco128-seg --out data/train \\
      --samples-per-object 12 --max-side 512 --seed 0""",
    "embed": """examples:
  amodal-sam embed --data data/train/annotations.json --sam sam_vit_b_01ec64.pth --cache cache
  torchrun --nproc_per_node 8 $(which amodal-sam) embed --data data/train/annotations.json \\
      --sam sam_vit_b_01ec64.pth --cache cache      (each process embeds its share of the images)""",
    "train": """examples:
  amodal-sam train --data data/train/annotations.json --init checkpoints/demo --out runs/ft --epochs 2
  amodal-sam train --data data/train/annotations.json --val data/val/annotations.json \\
      --sam facebook/sam-vit-base --encoder-dtype bf16 --out runs/vit_b --epochs 12""",
    "train-encoder": """examples:
  amodal-sam train-encoder --init checkpoints/demo --data data/train/annotations.json \\
      --check data/calib/annotations.json --out runs/encoder --epochs 2
  amodal-sam train --init runs/encoder --data data/train/annotations.json --out runs/head   # its head next""",
    "eval": """examples:
  amodal-sam eval --data data/val/annotations.json --model runs/vit_b --scene --report report.json
  amodal-sam eval --data data/val/annotations.json --baseline hull-occluders""",
    "video": """examples:
  amodal-sam video clip/frames --visible clip/visible --out out --overlay overlay.mp4
  amodal-sam video walk.mp4 --visible masks/ --out out --bidirectional --model runs/vit_b""",
    "synth-video": """examples:
  amodal-sam synth-video ../shared/data/davis2016-video --targets breakdance motocross-jump soapbox \\
      --out clips/val --count 12 --seed 1""",
    "synth-beyond": """examples:
  amodal-sam synth-beyond ../shared/data/davis2016 ../shared/data/coco128-seg \\
      --exclude breakdance motocross-jump soapbox bmx-trees --beyond 0.5 --per-object 4 --out data/beyond""",
    "eval-beyond": """examples:
  amodal-sam eval-beyond ../shared/data/davis2016 --include breakdance motocross-jump soapbox bmx-trees --beyond 0.5
  amodal-sam eval-beyond data/objects --model runs/vit_b --per-object 4 --report beyond.json""",
    "eval-video": """examples:
  amodal-sam eval-video clips/val --report video.json
  amodal-sam eval-video clips/val --model runs/vit_b --bidirectional""",
    "app": """examples:
  amodal-sam app                          # the demo model, http://127.0.0.1:7860
  amodal-sam app --model runs/vit_b --port 8080""",
    "export-onnx": """examples:
  amodal-sam export-onnx --out amodal_decoder.onnx
  amodal-sam export-onnx --model runs/vit_b --out amodal_decoder.onnx --opset 18
  amodal-sam complete examples/scene.png --visible examples/scene_visible.png --out amodal.png \\
      --backend onnx --onnx amodal_decoder.onnx""",
    "average": """examples:
  amodal-sam average runs/epoch2 runs/epoch4 --out runs/average
  amodal-sam average runs/a runs/b --weights 3,1 --out runs/average   # then: amodal-sam calibrate --model runs/average""",
    "calibrate": """examples:
  amodal-sam calibrate --data data/calib/annotations.json --model runs/vit_b --cache cache
  amodal-sam calibrate --data data/calib/annotations.json --model runs/vit_b --cache cache --scene""",
}


def _command(commands, name: str, help_text: str) -> argparse.ArgumentParser:
    """A subcommand whose help lists every option's default and ends with examples."""
    command = commands.add_parser(
        name, help=help_text, description=help_text, epilog=_EXAMPLES[name], formatter_class=_HelpFormatter
    )
    command.add_argument(
        "--max-pixels",
        type=_positive_int,
        metavar="N",
        help="refuse image and mask files of more pixels than this, checked from their headers before decoding "
        f"(default: {DEFAULT_MAX_PIXELS:,}, or ${ENVIRONMENT_VARIABLE})",
    )
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amodal-sam",
        description="Amodal segmentation on a frozen SAM encoder: the whole shape of each object, hidden parts "
        "included. Without --model, commands use the small demo model (a random encoder: a shape prior, not SAM).",
        epilog="Each command has its own --help, with defaults and examples.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = _command(commands, "complete", "complete one object of an image; write its amodal mask")
    run.add_argument("image", help="RGB image file")
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument(
        "--visible", metavar="MASK.png", help="visible-part mask (non-zero = object; the rules of the scene's --masks)"
    )
    prompt.add_argument(
        "--point",
        metavar="X,Y",
        action="append",
        type=_numbers(2, "--point"),
        help="a click on the object, in pixels; repeat for several",
    )
    prompt.add_argument(
        "--box", metavar="X0,Y0,X1,Y1", type=_numbers(4, "--box"), help="a box around the visible object, in pixels"
    )
    _add_trained_model_arguments(run)
    _add_backend_arguments(run)
    run.add_argument("--out", required=True, metavar="AMODAL.png", help="where to write the amodal mask")
    _add_beyond_argument(run, "OUT.png is then the canvas mask, and OUT.json says where the image lies on it")
    run.add_argument(
        "--overlay",
        metavar="OVERLAY.png",
        help="also write a picture: visible green, hidden magenta, the occluder's outline amber, with a legend",
    )
    _add_device_argument(run)

    scene = _command(
        commands, "scene", "complete every object of an image together, the others as known occluders; order them"
    )
    scene.add_argument("image", help="RGB image file")
    visible = scene.add_mutually_exclusive_group(required=True)
    visible.add_argument(
        "--masks",
        metavar="DIR|INDEX.png",
        help="a folder with one mask file per object (non-zero = object, alpha for cut-outs, palette 255 is void; "
        "sorted file-name order; JPEG read at half brightness with a warning), or one index map "
        "(0 = background, k = object k; not JPEG)",
    )
    visible.add_argument(
        "--auto",
        action="store_true",
        help="find the visible masks with SAM's automatic mask generator on the model's frozen SAM "
        "(real SAM weights needed: with the demo's random SAM it finds nonsense)",
    )
    scene.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder: amodal_K.png per object, scene.json; replaced whole on each run, so it must be new, "
        "empty or an earlier scene output",
    )
    _add_trained_model_arguments(scene)
    _add_backend_arguments(scene)
    _add_beyond_argument(scene, "every amodal_K.png is then on the canvas, and scene.json says where the image lies")
    scene.add_argument(
        "--overlay", metavar="OVERLAY.png", help="also write a picture: objects coloured, hidden parts hatched"
    )
    scene.add_argument(
        "--min-area", type=_non_negative_int, default=100, help="--auto: drop masks smaller than this (pixels)"
    )
    scene.add_argument(
        "--occluder-band",
        type=_non_negative_int,
        default=0,
        metavar="PX",
        help="grow each object's known occluders by PX pixels, for masks that leave gaps of a pixel or two "
        "between neighbours (an annotator's, a segmenter's; 2 is a start; at most 5%% of the image's longer side); "
        "0 for exact masks (default)",
    )
    _add_device_argument(scene)

    video = _command(
        commands, "video", "complete the objects of a video frame after frame, each with a memory of its shape"
    )
    video.add_argument("frames", help="a folder of frames (sorted by file name) or a video file (OpenCV reads it)")
    video.add_argument(
        "--visible",
        required=True,
        metavar="DIR",
        help="one PNG per frame named by the frame's stem (frame K of a video file: K as 5 digits): a binary mask "
        "is one object; an index map (0 = background, k = object k) gives several, completed with each other as "
        "known occluders",
    )
    video.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder: STEM.png per frame (one object) or K/STEM.png per object K, and video.json; replaced "
        "whole on each run",
    )
    _add_trained_model_arguments(video)
    video.add_argument(
        "--overlay", metavar="OVERLAY.mp4|DIR", help="also write overlays: a video (.mp4, .avi) or a folder of PNGs"
    )
    video.add_argument(
        "--bidirectional",
        action="store_true",
        help="run the shape memory forward and backward and join the two (offline: holds the video's masks in memory)",
    )
    video.add_argument("--fps", type=float, default=10.0, help="frames per second of an overlay video")
    _add_device_argument(video)

    synth_video = _command(
        commands, "synth-video", "make occlusion clips: an occluder slides across or parks over a tracked object"
    )
    synth_video.add_argument("root", help="a folder of sequences, each of FRAME.jpg + FRAME.png pairs (DAVIS layout)")
    synth_video.add_argument("--targets", required=True, nargs="+", metavar="SEQUENCE", help="sequences to occlude")
    synth_video.add_argument(
        "--occluders", nargs="+", metavar="SEQUENCE", help="sequences to cut occluders from (default: --targets)"
    )
    synth_video.add_argument("--out", required=True, metavar="DIR", help="output folder: clip_NNN/ per clip")
    synth_video.add_argument("--count", type=_positive_int, default=12, help="clips to make")
    synth_video.add_argument("--length", type=_positive_int, default=16, help="frames per clip")
    synth_video.add_argument(
        "--peak", type=_numbers(2, "--peak"), default=(0.5, 1.0), metavar="LOW,HIGH", help="hidden share at mid-clip"
    )
    synth_video.add_argument("--seed", type=int, default=0, help="the same seed gives the same clips")
    synth_video.add_argument("--max-side", type=_positive_int, default=480, help="downscale larger frames")

    synth_beyond = _command(
        commands, "synth-beyond", "make training data for completion past the border: crops that cut whole objects"
    )
    _add_crop_arguments(synth_beyond)
    synth_beyond.add_argument("--out", required=True, help="output folder: images/ and annotations.json (COCOA-cls)")

    eval_beyond = _command(
        commands,
        "eval-beyond",
        "score completion past the border on crops that cut whole objects, beside the visible part and its mirror",
    )
    _add_crop_arguments(eval_beyond)
    _add_trained_model_arguments(eval_beyond)
    eval_beyond.add_argument("--report", metavar="REPORT.json", help="also write every crop's scores as JSON")
    _add_device_argument(eval_beyond)

    eval_video = _command(
        commands, "eval-video", "score video mode on occlusion clips beside the same model frame by frame"
    )
    eval_video.add_argument("clips", help="a folder of clips from synth-video (clip_NNN/ folders)")
    _add_trained_model_arguments(eval_video)
    eval_video.add_argument("--bidirectional", action="store_true", help="score the bidirectional memory")
    eval_video.add_argument("--report", metavar="REPORT.json", help="also write the scores as JSON")
    _add_device_argument(eval_video)

    synth = _command(commands, "synth", "make amodal training data by pasting occluders on whole objects")
    synth.add_argument("sources", nargs="+", help="image+mask folders, YOLO-seg roots or COCO instance JSON files")
    synth.add_argument("--out", required=True, help="output folder: images/ and annotations.json (COCOA-cls)")
    synth.add_argument("--occluders-from", nargs="+", metavar="SOURCE", help="occluder sources (default: sources)")
    synth.add_argument("--include", nargs="+", default=(), metavar="NAME", help="keep only targets under these names")
    synth.add_argument("--exclude", nargs="+", default=(), metavar="NAME", help="drop targets under these names")
    synth.add_argument(
        "--occlusion",
        type=_numbers(2, "--occlusion"),
        default=[0.1, 0.6],
        metavar="LOW,HIGH",
        help="occlusion-rate range of the targets",
    )
    synth.add_argument(
        "--occluders",
        type=_numbers(2, "--occluders"),
        default=[1, 2],
        metavar="MIN,MAX",
        help="occluders pasted per sample",
    )
    synth.add_argument(
        "--behind",
        type=_numbers(2, "--behind"),
        default=[0, 0],
        metavar="MIN,MAX",
        help="objects set behind the target per sample (neighbours it partly hides)",
    )
    synth.add_argument(
        "--samples-per-object", type=_positive_int, default=1, help="occluded scenes made of each target"
    )
    synth.add_argument("--max-rotation", type=float, default=15.0, help="rotate targets by up to this (degrees)")
    synth.add_argument(
        "--scale",
        type=_numbers(2, "--scale"),
        default=[0.8, 1.2],
        metavar="LOW,HIGH",
        help="scale targets by a factor in this range",
    )
    synth.add_argument("--seed", type=int, default=0, help="the same seed writes the same dataset, byte for byte")
    synth.add_argument(
        "--background-swap",
        type=float,
        default=0.0,
        help="chance a target is set on another image's scene",
    )
    synth.add_argument("--max-side", type=_positive_int, help="downscale larger output images to this longest side")
    synth.add_argument(
        "--min-area", type=_non_negative_int, default=400, help="ignore objects smaller than this (pixels)"
    )

    embed = _command(commands, "embed", "cache the frozen encoder's embeddings of a dataset's images")
    _add_data_arguments(embed)
    _add_model_arguments(embed)
    embed.add_argument("--cache", required=True, help="embedding cache folder (shared by any number of encoders)")
    _add_device_argument(embed)

    train = _command(commands, "train", "fine-tune the amodal decoder (the SAM encoder stays frozen)")
    _add_data_arguments(train, several="trained on together")
    _add_model_arguments(train)
    train.add_argument(
        "--val", help="validation annotations (any supported format): the best epoch by OIoU is kept, else the last"
    )
    train.add_argument("--val-images", help="images of --val, if not beside it")
    train.add_argument("--out", required=True, help="output folder; loads with AmodalSAM.from_pretrained")
    train.add_argument("--epochs", type=_positive_int, default=10, help="passes over the training data")
    train.add_argument("--batch-size", type=_positive_int, default=8, help="global batch, split over DDP processes")
    train.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, warm-up then cosine)")
    train.add_argument("--seed", type=int, default=0, help="seed of sample order and prompt augmentation")
    train.add_argument(
        "--scene-prob",
        type=float,
        default=0.5,
        help="chance each sample is given its known occluders (the other objects' visible masks; scene mode)",
    )
    train.add_argument(
        "--occluder-loss-weight",
        type=float,
        default=1.0,
        help="weight of the occluder output's loss (what lies in front of the object), beside the amodal, "
        "visible, hidden-part and IoU terms' 1",
    )
    train.add_argument(
        "--memory-prompt",
        action="store_true",
        help="give an --init model that has none a shape-memory input (video), untrained until this run "
        "(new models have one)",
    )
    train.add_argument(
        "--memory-prob",
        type=float,
        default=0.5,
        help="chance each sample of a model with a memory input is given a shape memory: its true shape, "
        "moved a little, part of its hidden part left out",
    )
    train.add_argument(
        "--workers",
        type=_non_negative_int,
        default=0,
        help="DataLoader worker processes preparing the batches (0: the training process itself)",
    )
    train.add_argument("--cache", help="embedding cache folder (default: OUT/embeddings)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/trainer_state.pt")
    _add_device_argument(train)

    encoder = _command(
        commands,
        "train-encoder",
        "train a non-SAM encoder (the demo's) on synthetic scenes' occlusion edges, outlines and hidden "
        "parts, then freeze it: the head is trained next",
    )
    _add_data_arguments(encoder, several="their images are trained on together")
    encoder.add_argument("--init", required=True, metavar="ID_OR_DIR", help="the model whose encoder is trained")
    encoder.add_argument("--check", help="held-out annotations: each epoch's losses there, beside the best constant's")
    encoder.add_argument("--out", required=True, help="output folder: the model with its new encoder bundled")
    encoder.add_argument("--epochs", type=_positive_int, default=2, help="passes over the training images")
    encoder.add_argument("--batch-size", type=_positive_int, default=4, help="images per step")
    encoder.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (AdamW, warm-up then cosine)")
    encoder.add_argument("--seed", type=int, default=0, help="seed of image order and mirroring")
    encoder.add_argument("--save-every", type=_positive_int, default=100, help="steps between resume points")
    encoder.add_argument("--resume", action="store_true", help="continue from OUT/encoder_state.pt")
    _add_device_argument(encoder)

    evaluate = _command(commands, "eval", "score a model or a baseline on an amodal dataset (AIoU, OIoU, order)")
    _add_data_arguments(evaluate)
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", metavar="ID_OR_DIR", help="amodal checkpoint folder or Hub id")
    source.add_argument(
        "--baseline",
        choices=("visible", "hull", "hull-occluders"),
        help="the visible mask; its convex hull; or visible | (hull & the other instances' visible masks)",
    )
    evaluate.add_argument(
        "--scene",
        action="store_true",
        help="scene mode: each instance's known occluders are the other instances' visible masks (stuff too)",
    )
    evaluate.add_argument("--sam-checkpoint", help="SAM weights to use instead of the ones the model's config names")
    _add_encoder_argument(evaluate)
    evaluate.add_argument(
        "--prompt",
        choices=("visible", "box", "point"),
        default="visible",
        help="what each instance is prompted with: its true visible mask, its box, or one point in it",
    )
    evaluate.add_argument("--predictions", metavar="PRED.json", help="write one prediction per instance")
    evaluate.add_argument("--report", metavar="REPORT.json", help="write the full metrics")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of --prompt point")
    evaluate.add_argument("--cache", help="embedding cache folder (default: none, every image is encoded)")
    evaluate.add_argument(
        "--decoder-batch",
        type=_positive_int,
        help="instances per decoder call (default: all on GPU, 1 on CPU, where that is faster)",
    )
    _add_device_argument(evaluate)

    calibrate = _command(
        commands,
        "calibrate",
        "choose a model's decision (hidden thresholds inside and outside the hull) on held-out data and save it",
    )
    _add_data_arguments(
        calibrate,
        several="the decision must do no harm on each (AIoU at least the visible masks') and gain most on average",
    )
    calibrate.add_argument("--model", required=True, metavar="DIR", help="amodal checkpoint folder (rewritten)")
    calibrate.add_argument(
        "--thresholds",
        type=_numbers(None, "--thresholds"),
        default=list(DEFAULT_THRESHOLDS),
        help="candidate probabilities, comma-separated",
    )
    calibrate.add_argument(
        "--scene",
        action="store_true",
        help="score scene mode (known occluders: the other instances' visible masks) against hull-occluders",
    )
    calibrate.add_argument("--sam-checkpoint", help="SAM weights to use instead of the ones the model's config names")
    _add_encoder_argument(calibrate)
    calibrate.add_argument("--cache", help="embedding cache folder (default: none, every image is encoded)")
    _add_device_argument(calibrate)
    average = _command(
        commands, "average", "average the weights of heads fine-tuned from one another (then calibrate the result)"
    )
    average.add_argument("models", nargs="+", metavar="DIR", help="two or more model folders on one frozen SAM")
    average.add_argument(
        "--weights",
        type=_numbers(None, "--weights"),
        help="one positive number per model, comma-separated, normalised to sum to 1 (default: equal)",
    )
    average.add_argument("--out", required=True, metavar="DIR", help="folder of the averaged model")
    export = _command(
        commands, "export-onnx", "export the amodal head (prompt encoder, decoder) to ONNX for onnxruntime"
    )
    _add_trained_model_arguments(export)
    export.add_argument("--out", required=True, metavar="FILE.onnx", help="the ONNX file to write")
    export.add_argument(
        "--opset", type=_positive_int, default=17, metavar="N", help="ONNX opset of the graph (17 or later)"
    )

    app = _command(commands, "app", "serve the web demo (Gradio): complete objects in a browser")
    _add_trained_model_arguments(app)
    app.add_argument(
        "--host", default="127.0.0.1", help="address to bind (0.0.0.0 serves other machines: mind who can reach it)"
    )
    app.add_argument("--port", type=_positive_int, help="port (default: the first free one from 7860)")

    return parser


def _add_crop_arguments(parser: argparse.ArgumentParser) -> None:
    """The crops that cut whole objects at one border (:func:`amodal_sam.data.truncation.truncated_crops`)."""
    parser.add_argument("sources", nargs="+", help="image+mask folders, YOLO-seg roots or COCO instance JSON files")
    parser.add_argument("--include", nargs="+", default=(), metavar="NAME", help="keep only objects under these")
    parser.add_argument("--exclude", nargs="+", default=(), metavar="NAME", help="drop objects under these names")
    parser.add_argument(
        "--beyond", type=_beyond, default=0.5, metavar="SHARE", help="the canvas's margin, a share of the crop's size"
    )
    parser.add_argument(
        "--shares",
        type=_numbers(2, "--shares"),
        default=(0.2, 0.5),
        metavar="LOW,HIGH",
        help="share of each object's area the border cuts off, drawn uniformly",
    )
    parser.add_argument("--per-object", type=_positive_int, default=1, help="crops of each whole object")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same crops")


def _add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available, else cpu)")


def _add_data_arguments(parser: argparse.ArgumentParser, several: str | None = None) -> None:
    """``--data`` (one set; with ``several``, what the command does with one or more) and ``--images``."""
    if several is None:
        parser.add_argument(
            "--data", required=True, help="annotation JSON (COCOA-cls, KINS, COCOA) or a dataset folder"
        )
    else:
        parser.add_argument(
            "--data",
            required=True,
            nargs="+",
            help=f"one or more annotation JSONs (COCOA-cls, KINS, COCOA) or dataset folders; {several}",
        )
    parser.add_argument("--images", help="image folder, if not beside the annotations (for every --data)")


def _add_encoder_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoder-dtype",
        choices=("fp32", "bf16", "fp16"),
        help="run the frozen encoder through the fast path (fused attention) in this precision; "
        "bf16 is about 6.8x faster on CPU for ViT-B (default: the precision a saved model was trained "
        "with, as its config records; else segment-anything's own modules, fp32)",
    )
    parser.add_argument(
        "--attention",
        choices=("auto", *ATTENTION_PATHS),
        help="the fast encoder path's attention (default: auto, the fastest on this machine, measured once and "
        "remembered; same as $AMODAL_SAM_ATTENTION); a path named here turns the fast path on, in fp32 when neither "
        "--encoder-dtype nor the model's config names a precision",
    )


def _add_trained_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--sam-checkpoint`` and ``--encoder-dtype``: the amodal model a command runs."""
    parser.add_argument("--model", metavar="ID_OR_DIR", help="amodal checkpoint folder or Hub id (default: demo model)")
    parser.add_argument("--sam-checkpoint", help="SAM weights to use instead of the ones the model's config names")
    _add_encoder_argument(parser)


def _add_beyond_argument(parser: argparse.ArgumentParser, outputs: str) -> None:
    parser.add_argument(
        "--beyond",
        metavar="SHARE",
        type=_beyond,
        help="complete objects that the image border cuts past it too, on a canvas grown by SHARE x the width left "
        f"and right and SHARE x the height above and below (0 to 2); {outputs}",
    )


def _add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend`` and ``--onnx``: run the amodal head with PyTorch or an exported ONNX file."""
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="what runs the amodal head: PyTorch, or onnxruntime on the file --onnx names (the encoder and the "
        "decision stay PyTorch's)",
    )
    parser.add_argument(
        "--onnx", metavar="FILE", help="the head exported from this --model by amodal-sam export-onnx (--backend onnx)"
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument(
        "--sam",
        help="a new amodal head on these SAM weights: a segment-anything .pth, a safetensors file or a Hub id "
        "(facebook/sam-vit-base); or a spec name for a seeded RANDOM SAM, for tests and smoke runs only: "
        f"{', '.join(SAM_SPECS)} (tiny and demo are small test encoders)",
    )
    start.add_argument(
        "--init",
        metavar="DIR_OR_ID",
        help="start from this amodal checkpoint and its SAM instead ('demo': the shipped demo model, to fine-tune "
        "offline)",
    )
    parser.add_argument(
        "--sam-type", help="vit_b / vit_l / vit_h for --sam weights (default: from the Hub id, else vit_b)"
    )
    parser.add_argument("--sam-seed", type=int, default=0, help="seed of a random --sam spec")
    _add_encoder_argument(parser)


def _trained_model(args: argparse.Namespace):
    """The model of a command with :func:`_add_trained_model_arguments`: ``--model`` (default: the
    demo), ``--sam-checkpoint``, ``--encoder-dtype`` and ``--attention``."""
    from amodal_sam.factory import create_model

    return create_model(
        model=args.model,
        sam_checkpoint=args.sam_checkpoint,
        encoder_dtype=args.encoder_dtype,
        attention=args.attention or "auto",
    )


def _new_or_initial_model(args: argparse.Namespace):
    """The model of ``embed`` / ``train``: the ``--init`` checkpoint, or a new head on ``--sam``."""
    from amodal_sam.factory import create_model

    if args.init:
        if args.sam or args.sam_type:
            raise ValueError("--init starts from a saved model with its own SAM: it takes no --sam or --sam-type")
        return create_model(model=args.init, encoder_dtype=args.encoder_dtype, attention=args.attention or "auto")
    return create_model(
        sam=args.sam,
        sam_type=args.sam_type,
        sam_seed=args.sam_seed,
        encoder_dtype=args.encoder_dtype,
        attention=args.attention or "auto",
    )


def _run_complete(args: argparse.Namespace) -> int:
    from amodal_sam.atomic import atomic_output
    from amodal_sam.canvas import Canvas
    from amodal_sam.image_io import read_rgb, write_mask, write_rgb
    from amodal_sam.mask_files import read_mask
    from amodal_sam.predictor import AmodalPredictor
    from amodal_sam.visualize import overlay

    image = read_rgb(args.image)
    visible = read_mask(args.visible, "--visible") if args.visible else None
    model = _trained_model(args)
    model.use_onnx_decoder(args.onnx)
    predictor = AmodalPredictor(model, device=args.device)
    predictor.set_image(image)
    if visible is not None:
        result = predictor.complete(visible_mask=visible, beyond=args.beyond)
    elif args.point:
        result = predictor.complete(point_coords=args.point, point_labels=[1] * len(args.point), beyond=args.beyond)
    else:
        result = predictor.complete(box=args.box, beyond=args.beyond)
    write_mask(args.out, result.amodal)
    beyond = ""
    if args.beyond is not None:
        canvas = result.canvas or Canvas.around(image.shape[:2], 0)
        where = Path(args.out).with_suffix(".json")
        with atomic_output(where) as temporary:
            Path(temporary).write_text(json.dumps(canvas.to_json(), indent=2) + "\n")
        beyond = f", {int(result.out_of_frame.sum())} px beyond the image border; canvas in {where}"
    print(
        f"amodal mask: {args.out} ({int(result.amodal.sum())} px; visible {int(result.visible.sum())} px, "
        f"occluded {int(result.occluded.sum())} px{beyond}; predicted IoU {result.score:.3f})"
    )
    if args.overlay:
        write_rgb(args.overlay, overlay(image, result.visible, result.occluded, result.occluder, canvas=result.canvas))
        print(f"overlay: {args.overlay}")
    return 0


def _run_scene(args: argparse.Namespace) -> int:
    from amodal_sam.canvas import Canvas
    from amodal_sam.image_io import read_rgb, write_rgb
    from amodal_sam.occlusion import check_scene_masks
    from amodal_sam.predictor import AmodalPredictor
    from amodal_sam.scene import automatic_visible_masks, check_occluder_band
    from amodal_sam.scene_files import check_scene_output, read_scene_masks, write_scene
    from amodal_sam.visualize import scene_overlay

    inputs = [args.image] + ([args.masks] if args.masks else [])
    check_scene_output(args.out, inputs, overlay=args.overlay)
    image = read_rgb(args.image)
    check_occluder_band(args.occluder_band, image.shape[:2], "--occluder-band")
    if not args.auto:
        read = read_scene_masks(args.masks, image.shape[:2])
        names: list = read.names
        masks = check_scene_masks(read.masks, labels=[f"--masks {name}" for name in names])
    model = _trained_model(args)
    model.use_onnx_decoder(args.onnx)
    predictor = AmodalPredictor(model, device=args.device)
    if args.auto:
        masks = automatic_visible_masks(predictor.model, image, min_area=args.min_area)
        names = [f"visible_{k:03d}.png" for k in range(len(masks))]
        print(
            f"--auto: {len(masks)} objects from SAM's automatic mask generator (visible_K.png in {args.out}); "
            "only as good as the frozen SAM: with the demo's random SAM they are nonsense"
        )
    predictor.set_image(image)
    scene = predictor.complete_scene(masks, occluder_band=args.occluder_band, beyond=args.beyond)
    canvas = None if args.beyond is None else scene.canvas or Canvas.around(image.shape[:2], 0)
    write_scene(args.out, scene, names, write_visible=args.auto, canvas=canvas)
    front_to_back = sorted(range(len(scene)), key=lambda k: (int(scene.layers[k]), k))
    print(
        f"{len(scene)} objects completed; front to back: "
        + (", ".join(f"{names[k]} (layer {int(scene.layers[k])})" for k in front_to_back) or "none")
        + f"; {Path(args.out) / 'scene.json'}"
    )
    if scene.broken:
        print(f"occlusion cycles broken at (front, behind): {scene.broken}")
    if args.overlay:
        write_rgb(
            args.overlay,
            scene_overlay(image, scene.visible, scene.amodal, scene.layers, [str(n) for n in names], scene.canvas),
        )
        print(f"overlay: {args.overlay}")
    return 0


def _run_app(args: argparse.Namespace) -> int:
    from amodal_sam.app import launch_app

    model = _trained_model(args)
    launch_app(model, host=args.host, port=args.port)
    return 0


def _run_average(args: argparse.Namespace) -> int:
    from amodal_sam.weight_average import average_models

    folder = average_models(args.models, args.out, args.weights)
    print(f"the average of {len(args.models)} models in {folder}; choose its decisions with amodal-sam calibrate")
    return 0


def _run_export_onnx(args: argparse.Namespace) -> int:
    from amodal_sam.onnx_export import export_onnx

    model = _trained_model(args)
    path = export_onnx(model, args.out, opset=args.opset)
    print(
        f"ONNX amodal head: {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}); run it with "
        f"--backend onnx --onnx {path}"
    )
    return 0


def _video_predictor(args: argparse.Namespace):
    from amodal_sam.video import AmodalVideoPredictor

    model = _trained_model(args)
    return AmodalVideoPredictor(model, device=args.device)


def _run_video(args: argparse.Namespace) -> int:
    from amodal_sam.video_files import check_video_output
    from amodal_sam.video_job import complete_video_files

    check_video_output(args.out, [args.frames, args.visible], overlay=args.overlay)
    summary = complete_video_files(
        _video_predictor(args),
        args.frames,
        args.visible,
        args.out,
        overlay=args.overlay,
        bidirectional=args.bidirectional,
        fps=args.fps,
    )
    mode = "scene mode, each with the others as known occluders" if summary.scene else "single-object mode"
    print(f"{summary.frames} frames, objects {summary.objects} ({mode}); {Path(args.out) / 'video.json'}")
    if args.overlay:
        print(f"overlay: {args.overlay}")
    return 0


def _run_synth_video(args: argparse.Namespace) -> int:
    from amodal_sam.data.synth_video import ClipOptions, synthesize_clips

    options = ClipOptions(length=args.length, peak_range=tuple(args.peak), seed=args.seed, max_side=args.max_side)
    folders = synthesize_clips(
        args.root, args.out, args.count, targets=args.targets, occluders=args.occluders, options=options
    )
    print(f"{len(folders)} clips in {args.out}")
    return 0


def _crops(args: argparse.Namespace):
    """The crops of ``synth-beyond`` / ``eval-beyond``'s arguments."""
    from amodal_sam.data.objects import filter_objects, load_objects
    from amodal_sam.data.truncation import truncated_crops

    objects = filter_objects([o for s in args.sources for o in load_objects(s)], args.include, args.exclude)
    return truncated_crops(
        objects, beyond=args.beyond, shares=tuple(args.shares), per_object=args.per_object, seed=args.seed
    )


def _run_synth_beyond(args: argparse.Namespace) -> int:
    from amodal_sam.data.truncation import write_truncation_dataset

    counts = write_truncation_dataset(_crops(args), args.out)
    print(
        f"{counts['written']} crops of whole objects in {Path(args.out) / 'annotations.json'} "
        f"(mean share cut off {counts['mean_share']:.2f})"
    )
    return 0


def _run_eval_beyond(args: argparse.Namespace) -> int:
    import json

    from amodal_sam.evaluate_beyond import beyond_report, format_beyond_report

    report = beyond_report(_crops(args), _trained_model(args), args.beyond, device=args.device)
    print(format_beyond_report(report))
    if args.report:
        from amodal_sam.atomic import atomic_output

        options = {
            k: getattr(args, k) for k in ("sources", "include", "exclude", "beyond", "shares", "per_object", "seed")
        }
        with atomic_output(args.report) as temporary:
            temporary.write_text(json.dumps({"model": args.model or "demo", **options, **report}, indent=1) + "\n")
    return 0


def _run_eval_video(args: argparse.Namespace) -> int:
    import json

    from amodal_sam.data.synth_video import read_clips
    from amodal_sam.evaluate_video import evaluate_clips, format_video_report

    clips = read_clips(args.clips)
    report = evaluate_clips(clips, _video_predictor(args), bidirectional=args.bidirectional)
    print(format_video_report(report))
    if args.report:
        from amodal_sam.atomic import atomic_output

        with atomic_output(args.report) as temporary:
            temporary.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _run_synth(args: argparse.Namespace) -> int:
    from amodal_sam.data.objects import object_pools
    from amodal_sam.data.synth import SynthOptions, synthesize

    options = SynthOptions(
        occlusion_range=tuple(args.occlusion),
        occluders=tuple(int(v) for v in args.occluders),
        behind=tuple(int(v) for v in args.behind),
        samples_per_object=args.samples_per_object,
        seed=args.seed,
        max_side=args.max_side,
        max_rotation=args.max_rotation,
        scale_range=tuple(args.scale),
        background_swap=args.background_swap,
    )
    targets, occluders = object_pools(
        args.sources,
        include=args.include,
        exclude=args.exclude,
        occluders_from=args.occluders_from,
        min_area=args.min_area,
    )
    counts = synthesize(targets, args.out, options, occluders=occluders)
    print(
        f"{counts['written']} samples written to {args.out} ({counts['targets']} whole objects, "
        f"{counts['skipped']} skipped: no placement in the occlusion range)"
    )
    return 0


def _run_embed(args: argparse.Namespace) -> int:
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.device import default_device
    from amodal_sam.distributed import barrier, join_process_group, leave_process_group, summed
    from amodal_sam.embedding_cache import EmbeddingCache, embed_dataset

    dataset = load_dataset(args.data, args.images)
    device = default_device(args.device)
    rank, world = join_process_group(device)
    model = _new_or_initial_model(args).to(device)
    cache = EmbeddingCache(args.cache, model)
    embed_dataset(dataset, cache, progress=rank == 0, rank=rank, world=world)
    barrier(world)
    computed, hits, rejected = summed([cache.stats.computed, cache.stats.hits, cache.stats.rejected], world)
    if rank == 0:
        split = f" over {world} processes" if world > 1 else ""
        print(
            f"{len(dataset.records)} images{split}: {computed} embedded, {hits} already cached, "
            f"{rejected} bad entries replaced ({cache.folder})"
        )
    leave_process_group()
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from amodal_sam.data.readers import combine_datasets, load_dataset
    from amodal_sam.distributed import leave_process_group
    from amodal_sam.train import TrainOptions, fit

    # stuff regions (original COCOA) are known occluders in scene samples, never targets
    train_data = combine_datasets([load_dataset(data, args.images, include_stuff=True) for data in args.data])
    val_data = load_dataset(args.val, args.val_images, include_stuff=True) if args.val else None
    model = _new_or_initial_model(args)
    if args.memory_prompt:
        model.add_memory_prompt()
    options = TrainOptions(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        scene_prob=args.scene_prob,
        memory_prob=args.memory_prob,
        occluder_loss_weight=args.occluder_loss_weight,
        workers=args.workers,
    )
    history = fit(
        model,
        train_data,
        args.out,
        options,
        val_data=val_data,
        cache_dir=args.cache,
        resume=args.resume,
        device=args.device,
    )
    if history:
        last = history[-1]
        validation = f"validation AIoU {last['val_aiou']:.4f} OIoU {last['val_oiou']:.4f}; " if val_data else ""
        print(
            f"done: {last['epoch']} epochs, last training loss {last['train_loss']:.4f}, {validation}model in {args.out}"
        )
    leave_process_group()  # under torchrun
    return 0


def _run_train_encoder(args: argparse.Namespace) -> int:
    from amodal_sam.data.readers import combine_datasets, load_dataset
    from amodal_sam.encoder_training import TARGETS, EncoderTrainOptions, train_encoder
    from amodal_sam.factory import create_model

    sets = [load_dataset(annotations, args.images, include_stuff=True) for annotations in args.data]
    train_data = combine_datasets(sets)
    check_data = load_dataset(args.check, include_stuff=True) if args.check else None
    options = EncoderTrainOptions(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, save_every=args.save_every
    )
    history = train_encoder(
        create_model(model=args.init),
        train_data,
        args.out,
        options,
        check_data=check_data,
        resume=args.resume,
        device=args.device,
    )
    last = history[-1]
    check = ""
    if check_data is not None:
        check = "; held out (learnt / constant): " + ", ".join(
            f"{name} {last[name]:.4f} / {last[name + '_constant']:.4f}" for name in TARGETS
        )
    print(
        f"done: {last['epoch']} epochs, last training loss {last['train_loss']:.4f}{check}; model in {args.out} "
        f"(train its head next: amodal-sam train --init {args.out} ...)"
    )
    return 0


# eval options that only a model can use (a baseline would ignore them)
_MODEL_ONLY_EVAL_OPTIONS = ("sam_checkpoint", "encoder_dtype", "attention", "cache", "decoder_batch", "device", "scene")


def _run_eval(args: argparse.Namespace) -> int:
    from amodal_sam.data.readers import load_dataset
    from amodal_sam.embedding_cache import EmbeddingCache
    from amodal_sam.evaluate import evaluation_report, predict_dataset
    from amodal_sam.report import format_table, write_json

    if args.baseline:
        given = [f"--{name.replace('_', '-')}" for name in _MODEL_ONLY_EVAL_OPTIONS if getattr(args, name)]
        if args.prompt != "visible":
            given.insert(0, "--prompt")
        if given:
            raise ValueError(f"--baseline takes no {', '.join(given)}: those options are for --model")
    dataset = load_dataset(args.data, args.images, include_stuff=True)  # stuff hides objects, is not scored
    model = cache = None
    if args.model:
        model = _trained_model(args)
        cache = EmbeddingCache(args.cache, model) if args.cache else None
    predictions = predict_dataset(
        dataset,
        model,
        baseline_name=args.baseline,
        prompt=args.prompt,
        scene=args.scene,
        cache=cache,
        seed=args.seed,
        device=args.device,
        decoder_batch=args.decoder_batch,
    )
    report = evaluation_report(
        predictions,
        data=str(args.data),
        model=model,
        model_name=args.model,
        baseline_name=args.baseline,
        prompt=args.prompt,
        scene=args.scene,
        seed=args.seed,
        cache=cache,
        decoder_batch=args.decoder_batch,
        dataset=dataset,
    )
    print(format_table({report["method"]: report}))
    print(f"occlusion order truth: {report['order']['truth']}")
    if args.predictions:
        write_json(args.predictions, [p.as_json() for p in predictions])
    if args.report:
        write_json(args.report, report)
    return 0


def _run_calibrate(args: argparse.Namespace) -> int:
    from amodal_sam.calibration import calibrate_model, format_decision_scores
    from amodal_sam.data.readers import load_dataset

    datasets = [load_dataset(data, args.images, include_stuff=True) for data in args.data]
    chosen, scores = calibrate_model(
        datasets,
        args.model,
        args.thresholds,
        scene=args.scene,
        cache_dir=args.cache,
        sam_checkpoint=args.sam_checkpoint,
        encoder_dtype=args.encoder_dtype,
        attention=args.attention or "auto",
        device=args.device,
    )
    print(format_decision_scores(scores, args.data))
    prefix = "scene_" if args.scene else ""
    occluder = "" if args.scene else f", occluder_threshold {chosen.occluder_threshold:g}"
    print(
        f"{prefix}hidden_threshold {chosen.threshold:g}, {prefix}outside_threshold {chosen.outside_threshold:g}, "
        f"{prefix}plausible_share {chosen.plausible_share:g}{occluder} saved in {Path(args.model, 'config.json')}"
    )
    return 0


# Each command's output arguments: a folder, or a file with one of these suffixes
_OUTPUTS = {
    "complete": {"out": "mask", "overlay": "image"},
    "scene": {"out": "folder", "overlay": "image"},
    "synth": {"out": "folder"},
    "embed": {"cache": "folder"},
    "train": {"out": "folder"},
    "train-encoder": {"out": "folder"},
    "eval": {"predictions": "json", "report": "json"},
    "video": {"out": "folder"},
    "synth-video": {"out": "folder"},
    "synth-beyond": {"out": "folder"},
    "eval-video": {"report": "json"},
    "eval-beyond": {"report": "json"},
    "export-onnx": {"out": "onnx"},
    "average": {"out": "folder"},
}


def _check_arguments(args: argparse.Namespace) -> None:
    """Fail before any compute on a SAM name that names nothing, or an output that cannot be written."""
    from amodal_sam.config import check_sam_name

    if getattr(args, "sam", None):
        check_sam_name(args.sam)
    backend = getattr(args, "backend", None)
    if backend == "onnx" and not args.onnx:
        raise ValueError("--backend onnx runs the head exported to an ONNX file: name it with --onnx FILE")
    if backend == "torch" and args.onnx:
        raise ValueError("--onnx FILE is run with --backend onnx; without it the head runs in PyTorch")
    if getattr(args, "device", None) is not None:
        from amodal_sam.device import check_device

        check_device(args.device, "--device")
    _check_outputs(args)


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail before any compute when an output argument cannot be written."""
    from amodal_sam.output_paths import IMAGE_SUFFIXES, MASK_SUFFIXES, check_output_file, check_output_folder

    for name, kind in _OUTPUTS.get(args.command, {}).items():
        value, flag = getattr(args, name, None), "--" + name.replace("_", "-")
        if value is None:
            continue
        if kind == "folder":
            check_output_folder(value, flag)
        else:
            suffixes = {"image": IMAGE_SUFFIXES, "mask": MASK_SUFFIXES, "onnx": (".onnx",)}.get(kind, (".json",))
            check_output_file(value, flag, suffixes)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``amodal-sam``; returns the exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings(), _pixel_limit(args.max_pixels):
            warnings.showwarning = partial(_warning_line, args.command)
            return _run(args)
    except _bad_input_errors() as error:
        print(f"amodal-sam {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2


@contextmanager
def _pixel_limit(limit: int | None) -> Iterator[None]:
    """Within: ``--max-pixels`` as the pixel limit (its environment variable, which torchrun's
    processes inherit too); the variable as it was afterwards."""
    if limit is None:
        yield
        return
    before = os.environ.get(ENVIRONMENT_VARIABLE)
    os.environ[ENVIRONMENT_VARIABLE] = str(limit)
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENVIRONMENT_VARIABLE]
        else:
            os.environ[ENVIRONMENT_VARIABLE] = before


def _warning_line(command: str, message, category, filename, lineno, file=None, line=None) -> None:
    """A warning of the library as one line on stderr, in the command's name."""
    print(f"amodal-sam {command}: warning: {message}", file=sys.stderr)


def _bad_input_errors() -> tuple[type[BaseException], ...]:
    """What bad input raises: ValueError and friends, and the decoders' own errors (OpenCV's,
    Pillow's decompression bomb) when those libraries are loaded."""
    errors: list[type[BaseException]] = [
        ValueError,
        RuntimeError,
        OSError,
        ImportError,
    ]  # ImportError: an extra missing
    if "cv2" in sys.modules:
        errors.append(sys.modules["cv2"].error)
    if "PIL.Image" in sys.modules:
        errors.append(sys.modules["PIL.Image"].DecompressionBombError)
    return tuple(errors)


def _one_line(error: BaseException) -> str:
    """An error's message on one line (OpenCV's span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _run(args: argparse.Namespace) -> int:
    """Check the arguments, then run the command."""
    _check_arguments(args)
    commands = {
        "complete": _run_complete,
        "scene": _run_scene,
        "synth": _run_synth,
        "embed": _run_embed,
        "train": _run_train,
        "train-encoder": _run_train_encoder,
        "eval": _run_eval,
        "calibrate": _run_calibrate,
        "video": _run_video,
        "export-onnx": _run_export_onnx,
        "average": _run_average,
        "app": _run_app,
        "synth-video": _run_synth_video,
        "synth-beyond": _run_synth_beyond,
        "eval-video": _run_eval_video,
        "eval-beyond": _run_eval_beyond,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
