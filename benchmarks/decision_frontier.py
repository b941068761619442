"""How far any decision can take each model, on one dataset: every decision of ``amodal-sam
calibrate``'s grid (single-object mode; ``--scene``: scene mode) scored from one decoding per
image, as a point of mean OIoU against mean AIoU. Each model's frontier is the decisions that no
other decision of its beats on both; its own decision (the config's) is marked, the visible
masks and the geometric rule (the hull; in scene mode ``hull-occluders``) stand beside them, and
``--target AIOU OIOU`` asks whether any decision reaches both at once.

    python benchmarks/decision_frontier.py --data val/annotations.json --model checkpoints/demo OTHER \
        [--cache DIR] [--target 0.8728 0.1488] --out results/decision_frontier_val

Writes ``OUT.json`` and ``OUT.png`` (the legend beside the plot). A decision chosen here is chosen
on this dataset: the frontier is a bound on what the model's outputs allow, not a calibration.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from amodal_sam.calibration import OCCLUDER_THRESHOLDS, DecisionScore, decision_grid, score_decisions
from amodal_sam.config import DEFAULT_THRESHOLDS
from amodal_sam.data.readers import AmodalDataset, load_dataset
from amodal_sam.decision import Decision
from amodal_sam.embedding_cache import EmbeddingCache
from amodal_sam.evaluate import predict_dataset
from amodal_sam.metrics import summarize
from amodal_sam.model_files import load_pretrained
from amodal_sam.report import write_json


def pareto_frontier(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (OIoU, AIoU) ``points`` that no other point matches or beats on both with
    one strictly better, by rising OIoU (equal points: the first stands for them)."""
    frontier = []
    for i, (oiou, aiou) in enumerate(points):
        dominated = any(
            (o >= oiou and a >= aiou and (o > oiou or a > aiou)) or ((o, a) == (oiou, aiou) and j < i)
            for j, (o, a) in enumerate(points)
        )
        if not dominated:
            frontier.append(i)
    return sorted(frontier, key=lambda i: points[i][0])


def model_row(scores: list[DecisionScore], own: Decision, target: tuple[float, float] | None) -> dict:
    """One model's decisions on one dataset: ``own`` (its config's decision) and the frontier, each
    with its AIoU and OIoU; with ``target`` (AIoU, OIoU), ``best_aiou_at_target_oiou`` (the best AIoU
    among decisions whose OIoU reaches the target's; None if none does) and ``reaches_target``."""
    points = [(s.oiou[0], s.aiou[0]) for s in scores]

    def point(index: int) -> dict:
        return {**dataclasses.asdict(scores[index].decision), "aiou": points[index][1], "oiou": points[index][0]}

    own_index = next(i for i, s in enumerate(scores) if s.decision == own)
    row = {"decisions": len(scores), "own": point(own_index), "frontier": [point(i) for i in pareto_frontier(points)]}
    if target is not None:
        target_aiou, target_oiou = target
        enough = [a for o, a in points if o >= target_oiou]
        row["best_aiou_at_target_oiou"] = max(enough) if enough else None
        row["reaches_target"] = bool(enough) and max(enough) >= target_aiou
    return row


def baselines(dataset: AmodalDataset, scene: bool) -> dict:
    """The visible masks' and the geometric rule's mean AIoU and OIoU on ``dataset``: the rule
    ``calibrate`` measures gains against, the convex hull (``hull``), or in ``scene`` mode the hull
    under the known occluders (``hull-occluders``)."""
    rows = {}
    for name in ("visible", "hull-occluders" if scene else "hull"):
        mean = summarize([p.counts for p in predict_dataset(dataset, baseline_name=name, progress=False)])["mean"]
        rows[name] = {"aiou": mean["aiou"], "oiou": mean["oiou"] if name != "visible" else 0.0}
    return rows


def plot(
    rows: dict[str, dict],
    all_points: dict[str, list[tuple[float, float]]],
    base: dict,
    target: tuple[float, float] | None,
    title: str,
    path: Path,
) -> None:
    """Every decision as a faint dot, each model's frontier as a line, its own decision as a star,
    the baselines (AIoU / OIoU in the legend; "below" when under the plotted range, which starts
    just under the visible masks and the models' own decisions) and the target; the legend beside
    the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9.5, 5.5))
    colours = plt.get_cmap("tab10").colors
    for colour, (name, row) in zip(colours, rows.items()):
        oiou, aiou = np.array(all_points[name]).T
        axes.scatter(oiou, aiou, s=6, color=colour, alpha=0.25)
        frontier = row["frontier"]
        axes.plot([p["oiou"] for p in frontier], [p["aiou"] for p in frontier], color=colour, label=f"{name}: frontier")
        axes.scatter(
            [row["own"]["oiou"]],
            [row["own"]["aiou"]],
            marker="*",
            s=180,
            color=colour,
            edgecolor="black",
            label=f"{name}: its own decision",
            zorder=3,
        )
    low = min(base["visible"]["aiou"], min(row["own"]["aiou"] for row in rows.values())) - 0.01
    for marker, name in zip("sD", base):
        point = base[name]
        label = f"{name} masks: {point['aiou']:.4f} / {point['oiou']:.4f}" + (" (below)" if point["aiou"] < low else "")
        axes.scatter([point["oiou"]], [point["aiou"]], marker=marker, color="grey", label=label, zorder=3)
    if target is not None:
        axes.axhline(target[0], color="black", linestyle="--", linewidth=0.8)
        axes.axvline(target[1], color="black", linestyle="--", linewidth=0.8, label="target (AIoU and OIoU at least)")
    axes.set_ylim(bottom=low)
    axes.set_xlabel("mean OIoU (the hidden part)")
    axes.set_ylabel("mean AIoU (the whole object)")
    axes.set_title(title, fontsize=11)
    axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=9, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="annotation JSON with amodal and visible masks")
    parser.add_argument("--model", required=True, nargs="+", help="amodal checkpoint folders or Hub ids")
    parser.add_argument("--labels", nargs="+", help="a short name per --model (default: the folder names)")
    parser.add_argument("--scene", action="store_true", help="scene mode: each object's known occluders given")
    parser.add_argument("--cache", help="embedding cache folder (read and filled)")
    parser.add_argument("--target", nargs=2, type=float, metavar=("AIOU", "OIOU"), help="a point to reach")
    parser.add_argument("--out", required=True, help="writes OUT.json and OUT.png")
    args = parser.parse_args(argv)
    labels = args.labels or [Path(name).name for name in args.model]
    if len(labels) != len(args.model):
        parser.error(f"--labels: give one per --model ({len(args.model)}); got {len(labels)}")
    dataset = load_dataset(args.data, include_stuff=True)
    grid = (
        decision_grid(DEFAULT_THRESHOLDS)
        if args.scene
        else decision_grid(DEFAULT_THRESHOLDS, occluder=OCCLUDER_THRESHOLDS)
    )
    target = tuple(args.target) if args.target else None
    rows, all_points = {}, {}
    for label, name in zip(labels, args.model):
        model = load_pretrained(name)
        own = model.config.decision_for(args.scene)
        cache = EmbeddingCache(args.cache, model) if args.cache else None
        scores = score_decisions([dataset], model, [*dict.fromkeys([*grid, own])], scene=args.scene, cache=cache)
        rows[label] = model_row(scores, own, target)
        all_points[label] = [(s.oiou[0], s.aiou[0]) for s in scores]
        print(
            f"{label}: own decision {rows[label]['own']['aiou']:.4f} / {rows[label]['own']['oiou']:.4f}; "
            f"{len(rows[label]['frontier'])} decisions on the frontier"
            + (f"; target reached: {rows[label]['reaches_target']}" if target else "")
        )
    base = baselines(dataset, args.scene)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mode = "scene" if args.scene else "single-object"
    write_json(
        out.with_suffix(".json"), {"data": args.data, "mode": mode, "target": target, "baselines": base, "models": rows}
    )
    plot(
        rows,
        all_points,
        base,
        target,
        f"{mode} decisions on {Path(args.data).parent.name or args.data}",
        out.with_suffix(".png"),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
