"""Training speed on cached embeddings: instances/s of the training step and peak memory, with the
batches prepared in the training process and by DataLoader workers, side by side in one run.

A synthetic scene dataset is written first (JPEG images of ``--size``, each with
``--objects-per-image`` ellipses drawn back to front, so that every object's visible mask and
amodal mask are known), its images are embedded into a cache by the chosen model (timed apart:
embedding images/s), then one epoch of :func:`amodal_sam.train.fit` runs per ``--workers`` value
on the warm cache. On CUDA the step runs under bf16 autocast (as ``fit`` does there). The weights
are seeded random: the figures are the architecture's cost, not a model's quality.

    python benchmarks/train_speed.py --model-type vit_b --device cuda --workers 0,4 --json train.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from timing import peak_memory_mb  # beside this script

from amodal_sam import AmodalSAM
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import load_dataset
from amodal_sam.embedding_cache import EmbeddingCache, embed_dataset
from amodal_sam.image_io import write_rgb
from amodal_sam.train import TrainOptions, fit, steps_per_epoch


def write_scenes(root: Path, images: int, objects: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``images`` JPEG scenes of (H, W) ``size`` with ``objects`` textured ellipses each, drawn back
    to front; writes ``root/annotations.json`` (COCOA-cls, with each object's ``order``) and returns it."""
    rng = np.random.default_rng(seed)
    height, width = size
    rows, cols = np.mgrid[:height, :width]
    image_entries, annotations = [], []
    for number in range(1, images + 1):
        image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        image = cv2.GaussianBlur(image, (0, 0), 3)
        layers = []
        for _ in range(objects):
            cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
            ry, rx = rng.uniform(0.08, 0.2) * height, rng.uniform(0.08, 0.2) * width
            mask = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            image[mask] = rng.integers(0, 256, 3)
            layers.append(mask)
        for depth, amodal in enumerate(layers):
            front = np.any(layers[depth + 1 :], axis=0) if depth + 1 < len(layers) else np.zeros_like(amodal)
            visible = amodal & ~front
            if not visible.any():
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": 1,
                    "segmentation": encode_rle(amodal),
                    "visible_mask": encode_rle(visible),
                    "bbox": [0, 0, 1, 1],
                    "order": len(layers) - depth,
                }
            )
        write_rgb(root / f"{number:05d}.jpg", image)
        image_entries.append({"id": number, "file_name": f"{number:05d}.jpg", "height": height, "width": width})
    path = root / "annotations.json"
    content = {"images": image_entries, "annotations": annotations, "categories": [{"id": 1, "name": "ellipse"}]}
    path.write_text(json.dumps(content))
    return path


def run(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="train_speed_"))
    size = tuple(int(v) for v in args.size.split(","))
    dataset = load_dataset(write_scenes(work / "data", args.images, args.objects_per_image, size), include_stuff=True)
    model = AmodalSAM.random(args.model_type, seed=0).to(args.device)
    cache_dir = work / "cache"
    began = time.perf_counter()
    embed_dataset(dataset, EmbeddingCache(cache_dir, model), progress=False)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    embed_seconds = time.perf_counter() - began
    runs = []
    for workers in (int(v) for v in args.workers.split(",")):
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        options = TrainOptions(epochs=1, batch_size=args.batch_size, workers=workers, progress=False)
        history = fit(
            AmodalSAM.random(args.model_type, seed=0),
            dataset,
            work / f"run_{workers}",
            options,
            cache_dir=cache_dir,
            device=args.device,
        )
        steps = steps_per_epoch(len(dataset), args.batch_size)
        seconds = history[-1]["seconds"]
        runs.append(
            {
                "workers": workers,
                "steps": steps,
                "epoch_s": seconds,
                "instances_per_s": steps * args.batch_size / seconds,
                "peak_memory_mb": peak_memory_mb(args.device),
            }
        )
    alone = next((r for r in runs if r["workers"] == 0), None)
    for entry in runs:
        entry["speed_vs_no_workers"] = entry["instances_per_s"] / alone["instances_per_s"] if alone else None
    return {
        "weights": f"seeded random {args.model_type} (architecture cost only, not a model's quality)",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "images": args.images,
        "instances": len(dataset),
        "image_size": list(size),
        "batch_size": args.batch_size,
        "embedding_images_per_s": args.images / embed_seconds,
        "runs": runs,
    }


def table(result: dict) -> str:
    lines = [
        "| DataLoader workers | instances/s | vs no workers | epoch s | peak memory MB |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in result["runs"]:
        ratio = f"{r['speed_vs_no_workers']:.2f}x" if r["speed_vs_no_workers"] else "-"
        lines.append(
            f"| {r['workers']} | {r['instances_per_s']:.1f} | {ratio} | {r['epoch_s']:.1f} | {r['peak_memory_mb']:.0f} |"
        )
    return "\n".join(lines) + f"\n\nembedding: {result['embedding_images_per_s']:.2f} images/s"


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="vit_b", help="vit_b, vit_l, vit_h, demo or tiny (random weights)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=64, help="synthetic scenes to write and embed")
    parser.add_argument("--objects-per-image", type=int, default=6)
    parser.add_argument("--size", default="480,640", help="H,W of the synthetic images")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="0,4", help="DataLoader worker counts to compare, comma-separated")
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_arguments(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
