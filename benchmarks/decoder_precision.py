"""How much a reduced-precision decoder changes the completed masks: a model's amodal masks on a
dataset with its decoder in fp32 and in ``--dtype`` (autocast, as
:mod:`amodal_sam.modeling.decoder_precision` may choose at inference), compared instance by
instance (IoU of the two masks), in single-object and scene mode, beside each one's mean AIoU
with the ground truth. The same embeddings feed both (the model's encoder, as loaded).

    python benchmarks/decoder_precision.py --model checkpoints/demo --data val/annotations.json \\
        --json decoder_precision.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

import numpy as np

from amodal_sam.data.readers import load_dataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.metrics import mask_iou
from amodal_sam.model_files import load_pretrained


def _mean_aiou(predictions) -> float:
    """Mean IoU of the predictions with their instances' true amodal masks (from their counts)."""
    return float(np.mean([p.counts.amodal_intersection / max(p.counts.amodal_union, 1) for p in predictions]))


def run(args: argparse.Namespace) -> dict:
    model = load_pretrained(args.model)
    dataset = load_dataset(args.data)
    modes = {}
    for mode, scene in (("single", False), ("scene", True)):
        predictions = {}
        for dtype in ("fp32", args.dtype):
            model.accelerate_decoder(dtype)
            predictions[dtype] = predict_dataset(dataset, model, scene=scene, progress=args.progress)
        agreement = [
            mask_iou(full.amodal, reduced.amodal)
            for full, reduced in zip(predictions["fp32"], predictions[args.dtype], strict=True)
        ]
        modes[mode] = {
            "instances": len(agreement),
            "mean_iou_between": float(np.mean(agreement)),
            "min_iou_between": float(np.min(agreement)),
            "share_at_least_0.99": float(np.mean(np.asarray(agreement) >= 0.99)),
            "mean_aiou": {dtype: _mean_aiou(p) for dtype, p in predictions.items()},
        }
    return {
        "date": date.today().isoformat(),
        "model": args.model,
        "data": args.data,
        "dtype": args.dtype,
        "modes": modes,
    }


def table(result: dict) -> str:
    dtype = result["dtype"]
    lines = [
        f"| mode | instances | mean IoU fp32 vs {dtype} | min | share >= 0.99 | mean AIoU fp32 | mean AIoU {dtype} |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, row in result["modes"].items():
        lines.append(
            f"| {mode} | {row['instances']} | {row['mean_iou_between']:.5f} | {row['min_iou_between']:.4f} | "
            f"{row['share_at_least_0.99']:.3f} | {row['mean_aiou']['fp32']:.4f} | {row['mean_aiou'][dtype]:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="amodal checkpoint folder or Hub id")
    parser.add_argument("--data", required=True, help="annotation JSON with amodal and visible masks")
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16", help="the reduced precision")
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
