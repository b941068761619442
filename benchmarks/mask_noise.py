"""What imperfect visible masks cost: the model (scene mode and single-object) and the baselines
when every given visible mask's boundary is moved by R pixels.

Real visible masks (human polygons, an instance segmenter's output) miss or overrun an object's
boundary by a few pixels, and neighbouring objects' masks rarely abut exactly; synthetic scenes'
masks are exact. For each radius R of ``--radii`` every visible mask of an image (stuff
included) is eroded by R pixels, or grown by R into pixels no other mask holds: an even chance,
mask by mask, seeded by ``--seed``, the image's place in the dataset and R. The known occluders
of scene mode are the other moved masks. The truth is unchanged: amodal masks, and the true
visible masks that the hidden part is scored against. R = 0 gives ``benchmarks/oiou.py``'s
numbers.

Prints a table (mean AIoU / OIoU per method and radius), writes JSON and, with ``--plot``, a
picture: mean AIoU and OIoU against R, one line per method.

    python benchmarks/mask_noise.py --data VAL/annotations.json --model checkpoints/demo --radii 0,1,2 \
        --json noise.json --plot noise.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from amodal_sam.atomic import atomic_output
from amodal_sam.data.readers import AmodalDataset, load_dataset
from amodal_sam.device import default_device
from amodal_sam.embedding_cache import EmbeddingCache
from amodal_sam.evaluate import BASELINES, baseline_amodal, encode_record, scored_indices
from amodal_sam.mask_noise import moved_boundary
from amodal_sam.metrics import InstanceCounts, instance_counts, summarize
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.report import write_json
from amodal_sam.scene import known_occluders

METHODS = ["model (scene mode)", "model (visible prompt)", *(f"baseline {name}" for name in BASELINES)]


def moved_visible_masks(visible: np.ndarray, radius: int, rng: np.random.Generator) -> np.ndarray:
    """(N, H, W) bool visible masks of one image -> each eroded by ``radius`` or grown by it into
    pixels no mask holds (an even chance, mask by mask): gaps and overruns, never overlaps."""
    held = visible.any(axis=0)
    moved = []
    for mask in visible:
        grow = bool(rng.random() < 0.5)
        shifted = moved_boundary(mask, radius, grow)
        moved.append(mask | (shifted & ~held) if grow else shifted)
    return np.stack(moved) if moved else visible.copy()


def score_radii(
    dataset: AmodalDataset,
    model: AmodalSAM,
    radii: list[int],
    seed: int = 0,
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> dict[int, dict[str, list[InstanceCounts]]]:
    """Per radius, per-instance counts of every method of :data:`METHODS` with the visible masks
    moved by that many pixels (the truth unchanged); each image is encoded once for all radii."""
    counts = {radius: {name: [] for name in METHODS} for radius in radii}
    for place, record in enumerate(tqdm(dataset.records, desc="mask noise", disable=not progress)):
        visible, amodal = dataset.load_masks(record)
        usable = scored_indices(record, visible)
        if not usable:
            continue
        encoded = encode_record(dataset, record, model, cache)
        for radius in radii:
            given = moved_visible_masks(visible, radius, np.random.default_rng([seed, place, radius]))
            occluders = known_occluders(given)[usable]
            scene = model.complete(encoded, visible_masks=given[usable], occluder_masks=occluders).amodal.cpu().numpy()
            single = model.complete(encoded, visible_masks=given[usable]).amodal.cpu().numpy()
            for row, index in enumerate(usable):
                truth = (amodal[index], visible[index])
                counts[radius]["model (scene mode)"].append(instance_counts(scene[row], *truth))
                counts[radius]["model (visible prompt)"].append(instance_counts(single[row], *truth))
                for name in BASELINES:
                    predicted = baseline_amodal(name, given[index], occluders[row])
                    counts[radius][f"baseline {name}"].append(instance_counts(predicted, *truth))
    return counts


def format_noise_table(summaries: dict[int, dict[str, dict]]) -> str:
    """Markdown: one row per method, one column per radius, mean AIoU / OIoU."""
    radii = list(summaries)
    lines = [
        "| method | " + " | ".join(f"{r} px: AIoU / OIoU" for r in radii) + " |",
        "|" + " --- |" * (len(radii) + 1),
    ]
    for method in METHODS:
        cells = [summaries[r][method]["mean"] for r in radii]
        lines.append(f"| {method} | " + " | ".join(f"{c['aiou']:.4f} / {c['oiou']:.4f}" for c in cells) + " |")
    return "\n".join(lines)


def plot_noise(summaries: dict[int, dict[str, dict]], path: Path, title: str) -> None:
    """Two panels, mean AIoU and mean OIoU against the radius, one line per method, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    radii = list(summaries)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for metric, panel in zip(("aiou", "oiou"), axes):
        for method in METHODS:
            values = [summaries[r][method]["mean"][metric] for r in radii]
            panel.plot(radii, values, marker="o", label=method, linestyle="--" if "baseline" in method else "-")
        panel.set(xlabel="visible masks moved by (px)", ylabel=f"mean {metric.upper()}", xticks=radii)
        panel.set_title(f"{metric.upper()}: {title}", fontsize=9)
    axes[1].legend(fontsize=8, loc="best")
    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--images")
    parser.add_argument("--model", required=True, help="amodal checkpoint folder or Hub id")
    parser.add_argument("--radii", default="0,1,2", help="boundary moves in pixels, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="embedding cache folder to read (and fill)")
    parser.add_argument("--device")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--plot", help="write a PNG of AIoU and OIoU against the radius here")
    args = parser.parse_args(argv)

    radii = [int(value) for value in args.radii.split(",")]
    dataset = load_dataset(args.data, args.images, include_stuff=True)
    model = AmodalSAM.from_pretrained(args.model).to(default_device(args.device)).eval()
    cache = EmbeddingCache(args.cache, model) if args.cache else None
    counts = score_radii(dataset, model, radii, args.seed, cache)
    summaries = {radius: {method: summarize(counts[radius][method]) for method in METHODS} for radius in radii}
    print(format_noise_table(summaries))
    if args.json:
        result = {"data": args.data, "model": args.model, "seed": args.seed, "summaries": summaries}
        write_json(Path(args.json), result)
    if args.plot:
        data = Path(args.data)
        plot_noise(summaries, Path(args.plot), f"{data.parent.name if data.is_file() else data.name}, {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
