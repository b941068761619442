"""Peak memory and seconds of scene mode against the number of objects and the image size.

Each case runs in a fresh process (its peak resident memory is its own): the shipped demo model
(``default_model()``) on the CPU, a random image of the given megapixels (4:3), and N visible masks,
the cells of a grid over the image (every object has known occluders), then
``AmodalPredictor.set_image`` and ``complete_scene``. Reported per case: the process's peak
resident memory (everything: Python, torch, the model, the image, the N input masks and the
scene), the N input masks' own bytes (N x H x W, the floor any (N, H, W) API pays) and the seconds
of ``complete_scene``. The demo's weights are a random frozen encoder and a trained head; memory
and time are the pipeline's, not a function of the weights.

    python benchmarks/scene_memory.py --megapixels 0.3,3,12 --objects 10,50,100,200 \
        --json benchmarks/results/cpu_demo_scene_memory_DATE.json --plot scene_memory.png
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
from timing import peak_memory_mb  # beside this script

HERE = Path(__file__).resolve().parent


def image_size(megapixels: float) -> tuple[int, int]:
    """(H, W) of a 4:3 landscape image of about ``megapixels`` million pixels."""
    height = round(math.sqrt(megapixels * 1e6 * 3 / 4))
    return height, round(height * 4 / 3)


def one_case(megapixels: float, count: int) -> dict:
    """Run one scene in this process; its figures as a dict."""
    import torch
    from scene_speed import grid_masks  # beside this script

    from amodal_sam import AmodalPredictor, default_model

    torch.set_grad_enabled(False)
    size = image_size(megapixels)
    image = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    masks = grid_masks(count, size)
    predictor = AmodalPredictor(default_model(), device="cpu")
    predictor.set_image(image)
    before_mb = peak_memory_mb("cpu")
    began = time.perf_counter()
    scene = predictor.complete_scene(masks)
    seconds = time.perf_counter() - began
    return {
        "megapixels": megapixels,
        "image_size": list(size),
        "objects": count,
        "completed": len(scene),
        "peak_mb": peak_memory_mb("cpu"),
        "peak_before_scene_mb": before_mb,
        "input_masks_mb": masks.nbytes / 2**20,
        "scene_s": seconds,
    }


def plot(rows: list[dict], path: str) -> None:
    """Peak memory against N, one line per image size, the 4 GB target dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for megapixels in sorted({r["megapixels"] for r in rows}):
        mine = [r for r in rows if r["megapixels"] == megapixels and "peak_mb" in r]
        axes.plot(
            [r["objects"] for r in mine], [r["peak_mb"] / 1024 for r in mine], marker="o", label=f"{megapixels} MP"
        )
    axes.axhline(4, color="grey", linestyle="--", label="4 GB: the target at 100 objects, 12 MP")
    axes.set_xlabel("objects in the scene (N)")
    axes.set_ylabel("peak resident memory (GB)")
    axes.set_title("scene mode, demo model, CPU")
    axes.legend(loc="upper left")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", default="0.3,3,12", help="comma-separated image sizes")
    parser.add_argument("--objects", default="10,50,100,200", help="comma-separated N")
    parser.add_argument("--one", nargs=2, metavar=("MEGAPIXELS", "N"), help=argparse.SUPPRESS)  # a child process
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write a plot of peak memory against N here")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_case(float(args.one[0]), int(args.one[1]))))
        return 0
    import torch

    rows = []
    for megapixels in (float(v) for v in args.megapixels.split(",")):
        for count in (int(v) for v in args.objects.split(",")):
            child = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "--one", str(megapixels), str(count)],
                check=False,
                capture_output=True,
                text=True,
                cwd=HERE,
            )
            if child.returncode != 0:
                rows.append({"megapixels": megapixels, "objects": count, "error": child.stderr.strip()[-300:]})
                print(f"{megapixels} MP, N={count}: failed ({rows[-1]['error'].splitlines()[-1]})")
                continue
            rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
            row = rows[-1]
            print(
                f"{megapixels} MP {tuple(row['image_size'])}, N={count}: peak {row['peak_mb'] / 1024:.2f} GB "
                f"(input masks {row['input_masks_mb'] / 1024:.2f} GB), {row['scene_s']:.1f} s"
            )
    result = {
        "date": date.today().isoformat(),
        "weights": "the shipped demo model (random frozen encoder); memory and time are the pipeline's",
        "device": "cpu",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "scenes": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
