"""Seconds per scene: one encoder pass and N objects completed together, beside segment-anything's
``SamPredictor`` on the same image and masks, in one run.

Ours: ``AmodalPredictor.set_image`` then ``complete_scene`` (N decoder calls on the CPU, batched on
a GPU; known occluders; occlusion order). Reference: ``SamPredictor.set_image`` then one
``predict`` per object with its visible mask as ``mask_input`` (SAM's own decoder: no amodal
completion, no order), fp32. Both sides start from the uint8 image and end with N masks at the
original resolution. The N visible masks are the cells of a grid over the image, each touching its
neighbours, so every object has known occluders.

Weights are seeded random (no download): the timings are the architecture's cost, the masks mean
nothing. Prints a table and writes JSON.

    python benchmarks/scene_speed.py --model-type vit_b --objects 10,50 --device cpu --json scene.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from functools import partial
from pathlib import Path

import numpy as np
import torch
from timing import timed  # beside this script

IMAGE_SIZE = (480, 640)  # (H, W)


def grid_masks(count: int, size: tuple[int, int]) -> np.ndarray:
    """(count, H, W) bool: the first ``count`` cells of the smallest near-square grid holding
    them, row by row; neighbouring cells touch."""
    columns = int(np.ceil(np.sqrt(count)))
    rows = int(np.ceil(count / columns))
    height, width = size
    masks = np.zeros((count, height, width), bool)
    for k in range(count):
        r, c = divmod(k, columns)
        masks[k, r * height // rows : (r + 1) * height // rows, c * width // columns : (c + 1) * width // columns] = (
            True
        )
    return masks


def _ours(predictor, image: np.ndarray, masks: np.ndarray):
    predictor.set_image(image)
    return predictor.complete_scene(masks)


def _reference(predictor, image: np.ndarray, low_res: np.ndarray):
    predictor.set_image(image)
    return [predictor.predict(mask_input=low_res[k : k + 1], multimask_output=False) for k in range(len(low_res))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-type", default="vit_b", help="vit_b / vit_l / vit_h / demo / tiny (random weights)")
    parser.add_argument("--objects", default="10,50", help="comma-separated N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    from segment_anything import SamPredictor

    from amodal_sam import AmodalPredictor, AmodalSAM

    torch.set_grad_enabled(False)
    model = AmodalSAM.random(args.model_type, seed=0)
    ours = AmodalPredictor(model, device=args.device)
    reference = SamPredictor(model.sam)
    image = np.random.default_rng(0).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)
    rows = []
    for count in (int(n) for n in args.objects.split(",")):
        masks = grid_masks(count, IMAGE_SIZE)

        low_res = model.frame(IMAGE_SIZE).masks_to_low_res(masks) * 20.0 - 10.0  # SAM-style mask_input logits
        run_ours = partial(_ours, ours, image, masks)
        run_reference = partial(_reference, reference, image, low_res)
        run_ours(), run_reference()  # warm-up
        ours_s = timed(run_ours, args.device, args.repeats, 0)
        reference_s = timed(run_reference, args.device, args.repeats, 0)
        rows.append({"objects": count, "ours_s": ours_s, "reference_s": reference_s, "ratio": reference_s / ours_s})
        print(
            f"N={count}: scene {ours_s:.2f} s, SamPredictor {reference_s:.2f} s, reference / ours {rows[-1]['ratio']:.2f}"
        )
    result = {
        "date": date.today().isoformat(),
        "weights": f"seeded random {args.model_type} (timings only; the masks mean nothing)",
        "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "image_size": list(IMAGE_SIZE),
        "scenes": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
