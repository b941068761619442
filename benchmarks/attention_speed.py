"""The encoder's attention paths side by side in one process: images/s of the frozen ViT encoder
alone (normalised pixels in, embedding out) with segment-anything's own attention (fp32, the
reference), and the fast path's ``sdpa`` (bias built as a tokens x tokens mask), ``folded``
(bias folded into the dot products), ``chunked`` (matrix products in cache-sized steps)
and, on CUDA, ``flex`` (compiled flex_attention) attention in fp32 and bf16, with each one's
agreement with
the reference embedding (max abs difference, cosine). Seeded random weights, the relative-position
tables drawn at the scale of trained ones: the architecture's cost, not SAM's quality. Beside
them, what ``attention="auto"`` chooses in each precision on this machine (measured afresh, the
attention alone, :mod:`amodal_sam.modeling.attention_choice`), the seconds it measured, and the
CPU model: the chosen path should be the fastest whole-encoder path of its precision.

    python benchmarks/attention_speed.py --model-type vit_b --device cpu --json attention.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from timing import draw_rel_pos_tables, timed  # beside this script

from amodal_sam.config import SAM_SPECS
from amodal_sam.modeling.attention_choice import CPU_CANDIDATES, CUDA_CANDIDATES, cpu_model, time_candidates
from amodal_sam.modeling.fast_encoder import DTYPES, encode, make_fast
from amodal_sam.modeling.sam_builder import build_image_encoder


def run(args: argparse.Namespace) -> dict:
    spec = SAM_SPECS[args.model_type]
    torch.manual_seed(0)
    reference = build_image_encoder(spec).eval()
    draw_rel_pos_tables(reference)
    reference.to(args.device)
    pixels = torch.randn(args.image_batch, 3, spec.image_size, spec.image_size, device=args.device)
    with torch.inference_mode():
        expected = reference(pixels)
    paths = {"reference fp32": reference}
    for attention in args.attentions.split(","):
        for dtype in args.dtypes.split(","):
            paths[f"{attention} {dtype}"] = make_fast(copy.deepcopy(reference), dtype=dtype, attention=attention)
    results = {}
    for name, encoder in paths.items():
        dtype = DTYPES[name.split()[1]]
        seconds = timed(
            lambda encoder=encoder, dtype=dtype: encode(encoder, pixels, dtype), args.device, args.repeats, 1
        )
        actual = encode(encoder, pixels, dtype)
        results[name] = {
            "images_per_s": args.image_batch / seconds,
            "max_abs": (actual - expected).abs().max().item(),
            "cosine": F.cosine_similarity(actual.flatten(), expected.flatten(), dim=0).item(),
        }
        del encoder
    base = results["reference fp32"]["images_per_s"]
    for entry in results.values():
        entry["vs_reference"] = entry["images_per_s"] / base
    candidates = CUDA_CANDIDATES if args.device.startswith("cuda") else CPU_CANDIDATES
    choice = {}
    for dtype in args.dtypes.split(","):
        seconds = time_candidates(reference, dtype, args.device, candidates)
        working = {name: s for name, s in seconds.items() if s is not None}
        choice[dtype] = {"chosen": min(working, key=working.get), "attention_seconds": seconds}
    return {
        "weights": f"seeded random {args.model_type} (architecture cost only)",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "cpu": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "image_batch": args.image_batch,
        "paths": results,
        "auto_choice": choice,
    }


def table(result: dict) -> str:
    lines = ["| attention | images/s | vs reference | max abs | cosine |", "| --- | --- | --- | --- | --- |"]
    for name, r in result["paths"].items():
        lines.append(
            f"| {name} | {r['images_per_s']:.3f} | {r['vs_reference']:.2f}x | {r['max_abs']:.1e} | {r['cosine']:.6f} |"
        )
    for dtype, entry in result["auto_choice"].items():
        measured = ", ".join(
            f"{n} {s:.3f} s" if s is not None else f"{n} refused" for n, s in entry["attention_seconds"].items()
        )
        lines.append(f"\nauto in {dtype}: {entry['chosen']} (attention alone: {measured})")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="vit_b", choices=sorted(SAM_SPECS))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtypes", default="fp32,bf16", help="fast-path precisions, comma-separated")
    parser.add_argument(
        "--attentions",
        default="sdpa,folded,chunked,flex" if torch.cuda.is_available() else "sdpa,folded,chunked",
        help="fast-path attentions, comma-separated (flex runs eagerly off CUDA: slow, not a measure)",
    )
    parser.add_argument("--image-batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
