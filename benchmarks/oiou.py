"""Accuracy of a model, single-object and in scene mode, beside the baselines on one dataset:
AIoU, OIoU, pooled, bins and the occlusion order.

Baselines: the visible mask, its convex hull, and ``hull-occluders`` (visible | hull & the other
instances' visible masks). Scene mode gives each instance the other instances' visible masks
(stuff included) as known occluders; it runs with ``--prompt visible`` only.

Writes OUT/report.json (every number), OUT/table.md (the table printed) and OUT/cases.png: the
model's best and worst completions by OIoU (visible part green, predicted occluded part magenta,
true amodal outline yellow). With ``--thresholds`` it also reports the model's mean AIoU / OIoU at
other values of ``hidden_threshold`` (one decoding for all): a sensitivity check on this split,
never a way to choose the threshold (``amodal-sam calibrate`` does that on held-out data).

    python benchmarks/oiou.py --data VAL/annotations.json --model checkpoints/demo --out results/
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from amodal_sam.calibration import score_thresholds
from amodal_sam.data.readers import load_dataset
from amodal_sam.evaluate import BASELINES, order_report, predict_dataset
from amodal_sam.image_io import write_rgb
from amodal_sam.metrics import summarize
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.report import format_table, write_json
from amodal_sam.visualize import overlay

TILE = (320, 240)  # (width, height) of one case in the picture
TRUTH_COLOR = (255, 220, 0)


def _case_tile(dataset, prediction) -> np.ndarray:
    record = next(r for r in dataset.records if r.image_id == prediction.image_id)
    sample = dataset.samples_of(record)[prediction.index]
    picture = overlay(sample.image, sample.visible, prediction.amodal & ~sample.visible)
    contours, _ = cv2.findContours(sample.amodal.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, TRUTH_COLOR, 2)
    tile = cv2.resize(picture, TILE, interpolation=cv2.INTER_AREA)
    label = f"OIoU {prediction.counts.oiou:.2f}  AIoU {prediction.counts.aiou:.2f}"
    cv2.putText(tile, label, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def cases_picture(dataset, predictions, count: int = 4) -> np.ndarray:
    """Two rows of tiles: the ``count`` best and the ``count`` worst instances by OIoU."""
    scored = [(p.counts.oiou, i) for i, p in enumerate(predictions) if not math.isnan(p.counts.oiou)]
    scored.sort()
    count = min(count, len(scored) // 2) or min(count, len(scored))
    rows = [[i for _, i in scored[::-1][:count]], [i for _, i in scored[:count]]]
    return np.vstack([np.hstack([_case_tile(dataset, predictions[i]) for i in row]) for row in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images")
    parser.add_argument("--model", required=True, help="amodal checkpoint folder or Hub id")
    parser.add_argument("--prompt", choices=("visible", "box", "point"), default="visible")
    parser.add_argument("--out", required=True, help="folder for report.json, table.md and cases.png")
    parser.add_argument("--device")
    parser.add_argument("--thresholds", help="also score these hidden_threshold values, comma-separated")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.data, args.images, include_stuff=True)
    model = AmodalSAM.from_pretrained(args.model)
    runs = {f"model ({args.prompt} prompt)": predict_dataset(dataset, model, prompt=args.prompt, device=args.device)}
    if args.prompt == "visible":
        runs["model (scene mode)"] = predict_dataset(dataset, model, scene=True, device=args.device)
    for name in BASELINES:
        runs[f"baseline {name}"] = predict_dataset(dataset, baseline_name=name)
    summaries = {
        name: {
            **summarize([p.counts for p in predictions]),
            "order": order_report(dataset, predictions, hull_evidence=name == "model (scene mode)"),
        }
        for name, predictions in runs.items()
    }
    text = format_table(summaries)
    report = {"data": args.data, "model": args.model, "summaries": summaries}
    if args.thresholds:
        sweep = score_thresholds(dataset, model, [float(v) for v in args.thresholds.split(",")], device=args.device)
        report["threshold_sensitivity"] = [vars(score) for score in sweep]
        text += "\n\n| hidden_threshold (sensitivity only) | AIoU | OIoU |\n| --- | --- | --- |\n"
        text += "\n".join(f"| {s.threshold:g} | {s.aiou:.4f} | {s.oiou:.4f} |" for s in sweep)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "report.json", report)
    (out / "table.md").write_text(text + "\n")
    model_predictions = next(iter(runs.values()))
    write_rgb(out / "cases.png", cases_picture(dataset, model_predictions))
    print(f"report, table and best/worst cases in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
