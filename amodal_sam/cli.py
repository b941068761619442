"""The ``amodal-sam`` command line."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from amodal_sam.defaults import RANDOM_MODEL_WARNING


def _numbers(count: int, what: str):
    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) != count:
            raise argparse.ArgumentTypeError(f"{what} must be {count} comma-separated numbers; got {text!r}")
        return values

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amodal-sam", description="Amodal segmentation on a frozen SAM encoder.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("complete", help="complete one object of an image; write its amodal mask")
    run.add_argument("image", help="RGB image file")
    prompt = run.add_mutually_exclusive_group(required=True)
    prompt.add_argument("--visible", metavar="MASK.png", help="visible-part mask (non-zero = object)")
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
    run.add_argument("--model", metavar="ID_OR_DIR", help="amodal checkpoint folder or Hub id (default: demo model)")
    run.add_argument("--sam-checkpoint", help="SAM weights to use instead of the ones the model's config names")
    run.add_argument("--out", required=True, metavar="AMODAL.png", help="where to write the amodal mask")
    run.add_argument("--overlay", metavar="OVERLAY.png", help="also write a picture: visible green, occluded magenta")
    run.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    return parser


def _run_complete(args: argparse.Namespace) -> int:
    from amodal_sam.image_io import read_mask, read_rgb, write_mask, write_rgb
    from amodal_sam.modeling.amodal_sam import AmodalSAM
    from amodal_sam.predictor import AmodalPredictor
    from amodal_sam.visualize import overlay

    image = read_rgb(args.image)
    if args.model:
        model = AmodalSAM.from_pretrained(args.model, sam_checkpoint=args.sam_checkpoint)
    else:
        from amodal_sam.defaults import default_model

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = default_model()
        print(f"WARNING: {RANDOM_MODEL_WARNING}", file=sys.stderr)
    predictor = AmodalPredictor(model, device=args.device)
    predictor.set_image(image)
    if args.visible:
        result = predictor.complete(visible_mask=read_mask(args.visible))
    elif args.point:
        result = predictor.complete(point_coords=args.point, point_labels=[1] * len(args.point))
    else:
        result = predictor.complete(box=args.box)
    write_mask(args.out, result.amodal)
    print(
        f"amodal mask: {args.out} ({int(result.amodal.sum())} px; visible {int(result.visible.sum())} px, "
        f"occluded {int(result.occluded.sum())} px; predicted IoU {result.score:.3f})"
    )
    if args.overlay:
        write_rgb(args.overlay, overlay(image, result.visible, result.occluded))
        print(f"overlay: {args.overlay}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``amodal-sam``; returns the exit code (0 ok, 2 bad input)."""
    args = build_parser().parse_args(argv)
    try:
        return {"complete": _run_complete}[args.command](args)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"amodal-sam {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
