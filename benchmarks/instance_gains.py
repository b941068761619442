"""Where a model's completions gain or lose AIoU against the visible masks it was given, instance
by instance: the mean gain on objects that something covers and on objects that nothing covers
(their true amodal mask is the visible mask), and how many of the latter were given hidden
pixels anyway, with the AIoU those cost. One row per model, single-object mode (``--scene``:
scene mode), on one dataset.

    python benchmarks/instance_gains.py --data val/annotations.json --model checkpoints/demo OTHER
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from amodal_sam.data.readers import load_dataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.model_files import load_pretrained


def instance_gains(model_predictions: list, visible_predictions: list) -> dict:
    """The AIoU gain of each model prediction over the visible mask's, summarised: ``instances``,
    ``occluded``, ``gain`` (mean over all), ``gain_occluded``, ``gain_unoccluded``,
    ``unoccluded_completed`` (objects nothing covers that were given hidden pixels) and
    ``unoccluded_loss`` (the AIoU those lost, summed). Predictions in the same instance order."""
    gains, occluded, completed = [], [], []
    for model, visible in zip(model_predictions, visible_predictions, strict=True):
        gains.append(model.counts.aiou - visible.counts.aiou)
        occluded.append(model.counts.occluded_truth > 0)
        completed.append(model.counts.occluded_predicted > 0)
    gains, occluded, completed = np.array(gains), np.array(occluded, bool), np.array(completed, bool)
    false_completions = completed & ~occluded
    return {
        "instances": len(gains),
        "occluded": int(occluded.sum()),
        "gain": float(gains.mean()),
        "gain_occluded": float(gains[occluded].mean()) if occluded.any() else float("nan"),
        "gain_unoccluded": float(gains[~occluded].mean()) if (~occluded).any() else float("nan"),
        "unoccluded_completed": int(false_completions.sum()),
        "unoccluded_loss": float(-gains[false_completions].sum()),
    }


def table(rows: dict[str, dict]) -> str:
    lines = [
        (
            "| model | instances (occluded / not) | AIoU gain over visible | on occluded | on unoccluded "
            "| unoccluded given hidden pixels (summed AIoU loss) |"
        ),
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['instances']} ({row['occluded']} / {row['instances'] - row['occluded']}) "
            f"| {row['gain']:+.4f} | {row['gain_occluded']:+.4f} | {row['gain_unoccluded']:+.4f} "
            f"| {row['unoccluded_completed']} ({row['unoccluded_loss']:.2f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="annotation JSON with amodal and visible masks")
    parser.add_argument("--model", required=True, nargs="+", help="amodal checkpoint folders or Hub ids")
    parser.add_argument("--scene", action="store_true", help="scene mode: each object's known occluders given")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    dataset = load_dataset(args.data, include_stuff=True)
    visible = predict_dataset(dataset, baseline_name="visible", progress=False)
    rows = {}
    for name in args.model:
        predictions = predict_dataset(dataset, load_pretrained(name), scene=args.scene, progress=False)
        rows[name] = instance_gains(predictions, visible)
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, "scene": args.scene, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
