"""Completion past the image border: a model and the rule-based baselines on crops that cut whole
objects.

Each whole object of the sources (one that touches neither the image border nor another
object, so its mask is its whole shape) is cropped ``--per-object`` times so that one border
cuts a share of it off (drawn from ``--shares``, side and share seeded by ``--seed``; see
:mod:`amodal_sam.data.truncation`); the truth is its whole mask on the crop's canvas of margin
``--beyond``. Reported per method: mean AIoU on the canvas, IoU of the part outside the image,
IoU inside it (:mod:`amodal_sam.evaluate_beyond`). With ``--model`` (a model folder, a Hub id or
``demo``) the model's ``complete(visible_mask, beyond=...)`` is scored beside the baselines.

    python benchmarks/beyond.py ../shared/data/davis2016 --include breakdance motocross-jump soapbox bmx-trees \
        --beyond 0.5 --model demo --json beyond.json
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from amodal_sam.atomic import atomic_output
from amodal_sam.data.objects import filter_objects, load_objects
from amodal_sam.data.truncation import DEFAULT_SHARES, truncated_crops
from amodal_sam.evaluate_beyond import BEYOND_BASELINES, METRICS, completion_method, evaluate_beyond, mean_scores


def run(args: argparse.Namespace) -> dict:
    objects = filter_objects([o for s in args.sources for o in load_objects(s)], args.include, args.exclude)
    crops = truncated_crops(objects, beyond=args.beyond, shares=args.shares, per_object=args.per_object, seed=args.seed)
    methods = dict(BEYOND_BASELINES)
    if args.model:
        from amodal_sam.factory import create_model

        methods["model"] = completion_method(create_model(model=args.model), args.beyond)
    scores = evaluate_beyond(crops, methods)
    return {
        "model": args.model,
        "sources": [str(s) for s in args.sources],
        "include": args.include,
        "exclude": args.exclude,
        "beyond": args.beyond,
        "shares": list(args.shares),
        "per_object": args.per_object,
        "seed": args.seed,
        "means": {name: mean_scores(method_scores) for name, method_scores in scores.items()},
        "crops": {name: [asdict(s) for s in method_scores] for name, method_scores in scores.items()},
    }


def markdown(result: dict) -> str:
    lines = [
        "| method | AIoU (canvas) | IoU outside the image | IoU inside | crops |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, means in result["means"].items():
        lines.append(f"| {name} | " + " | ".join(f"{means[m]:.4f}" for m in METRICS) + f" | {means['crops']} |")
    return "\n".join(lines)


def _shares(text: str) -> tuple[float, float]:
    low, high = (float(v) for v in text.split(","))
    return low, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sources", nargs="+", help="object sources, as amodal-sam synth takes them")
    parser.add_argument("--include", nargs="*", default=[], help="only these folders / stems (DAVIS sequences)")
    parser.add_argument("--exclude", nargs="*", default=[], help="not these")
    parser.add_argument("--beyond", type=float, default=0.5, help="canvas margin, a share of the crop's size")
    parser.add_argument("--shares", type=_shares, default=DEFAULT_SHARES, help="LOW,HIGH share of each object cut")
    parser.add_argument("--per-object", type=int, default=1, help="crops per whole object")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", help="also score this model (folder, Hub id or demo)")
    parser.add_argument("--json", type=Path, help="write every crop's scores and the means here")
    args = parser.parse_args()
    result = run(args)
    print(markdown(result))
    if args.json:
        with atomic_output(args.json) as temporary:
            Path(temporary).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
