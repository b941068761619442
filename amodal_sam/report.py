"""Metric tables for people and JSON files for programs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from amodal_sam.atomic import atomic_output

_COLUMNS = (
    ("AIoU", "mean", "aiou"),
    ("OIoU", "mean", "oiou"),
    ("VIoU", "mean", "viou"),
    ("pooled AIoU", "pooled", "aiou"),
    ("pooled OIoU", "pooled", "oiou"),
    ("pooled occ. precision", "pooled", "occluded_precision"),
    ("pooled occ. recall", "pooled", "occluded_recall"),
)


def _cell(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.4f}"


def format_table(summaries: dict) -> str:
    """A Markdown table: one row per method (``{name: summarize(...) result}``, with the
    occlusion-order columns where a summary has an ``order`` entry), then one row per
    occlusion-rate bin and method with its mean AIoU / OIoU."""
    with_order = any("order" in summary for summary in summaries.values())
    titles = [c[0] for c in _COLUMNS] + (["order pairs", "order accuracy", "occludes F1"] if with_order else [])
    lines = ["| method | instances | " + " | ".join(titles) + " |", "|" + " --- |" * (len(titles) + 2)]
    for name, summary in summaries.items():
        cells = [_cell(summary[group][key]) for _, group, key in _COLUMNS]
        if with_order:
            order = summary.get("order", {})
            cells += [str(order.get("pairs", "-")), _cell(order.get("accuracy")), _cell(order.get("f1"))]
        lines.append(f"| {name} | {summary['instances']} | " + " | ".join(cells) + " |")
    lines += ["", "| method | occlusion rate | instances | AIoU | OIoU |", "| --- | --- | --- | --- | --- |"]
    for name, summary in summaries.items():
        for bin_ in summary["bins"]:
            low, high = bin_["range"]
            lines.append(
                f"| {name} | {low:.1f}-{high:.1f} | {bin_['instances']} | {_cell(bin_['mean']['aiou'])} | "
                f"{_cell(bin_['mean']['oiou'])} |"
            )
    return "\n".join(lines)


def write_json(path: str | Path, content: Any) -> None:
    """Write ``content`` as JSON atomically; NaN becomes null."""

    def clean(value):
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(clean(content), indent=1) + "\n")
