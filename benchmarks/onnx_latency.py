"""Per-instance latency of the amodal head: PyTorch against its ONNX export run by onnxruntime,
side by side in one process, on the CPU.

Both decode the same prompts of one image (a visible-mask prompt, its box, and in scene mode the
known occluders) from the same image embedding and detail features: the part of a completion
after the encoder, before the decision. Reported: median milliseconds per instance at each
prompt count, the ratio, and the largest logit difference between the two. Seeded random
weights (``--model-type``'s shapes; ``demo``: the demo's) or a saved model (``--model``): the
cost of the architecture, not a model's quality.

    python benchmarks/onnx_latency.py --model-type vit_b --instances 1,8 --json onnx_latency.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

import torch
from timing import timed  # beside this script

from amodal_sam import AmodalSAM
from amodal_sam.modeling.attention_choice import cpu_model
from amodal_sam.modeling.prompts import DecoderPrompts
from amodal_sam.onnx_export import export_onnx


def _inputs(model: AmodalSAM, count: int, scene: bool) -> dict:
    spec = model.spec
    low_res, side = spec.low_res_size, spec.low_res_size // 4
    generator = torch.Generator().manual_seed(count)
    boxes = torch.tensor([[0.2, 0.2, 0.7, 0.8]]).repeat(count, 1) * spec.image_size
    with torch.no_grad():
        detail = model.detail_features(torch.randn(1, 3, spec.image_size, spec.image_size, generator=generator))
    return {
        "image_embeddings": torch.randn(1, spec.prompt_embed_dim, side, side, generator=generator),
        "prompts": DecoderPrompts(
            mask_logits=10 * torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1),
            boxes=boxes,
            occluder_levels=torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1)
            if scene
            else None,
        ),
        "detail_features": detail,
    }


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.model:
        model = AmodalSAM.from_pretrained(args.model).eval()
    else:
        model = AmodalSAM.random(args.model_type, seed=0).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model, Path(folder) / "head.onnx")
        onnx_model = copy.copy(model).use_onnx_decoder(path)
        rows = []
        for scene in (False, True):
            for count in args.instances:
                inputs = _inputs(model, count, scene)
                with torch.no_grad():
                    reference = model.decode(**inputs).amodal_logits
                    exported = onnx_model.decode(**inputs).amodal_logits
                    seconds = {
                        name: timed(lambda m=m, i=inputs: m.decode(**i), "cpu", args.repeats, args.warmup)
                        for name, m in (("torch", model), ("onnxruntime", onnx_model))
                    }
                rows.append(
                    {
                        "mode": "scene" if scene else "single",
                        "instances": count,
                        "torch_ms_per_instance": 1000 * seconds["torch"] / count,
                        "onnxruntime_ms_per_instance": 1000 * seconds["onnxruntime"] / count,
                        "speedup": seconds["torch"] / seconds["onnxruntime"],
                        "max_abs_logit_difference": float((reference - exported).abs().max()),
                    }
                )
    return {
        "model": args.model or f"random {args.model_type}",
        "cpu_model": cpu_model(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": __import__("onnxruntime").__version__,
        "repeats": args.repeats,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        (
            f"{result['model']}, {result['cpu_model']}, {result['threads']} threads, torch {result['torch']}, "
            f"onnxruntime {result['onnxruntime']}"
        ),
        "",
        "| mode | instances | PyTorch ms / instance | onnxruntime ms / instance | speed-up | max logit diff |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['mode']} | {row['instances']} | {row['torch_ms_per_instance']:.1f} | "
            f"{row['onnxruntime_ms_per_instance']:.1f} | {row['speedup']:.2f}x | {row['max_abs_logit_difference']:.1e} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-type", default="vit_b", help="shapes of a seeded random model (vit_b, demo, tiny)")
    parser.add_argument("--model", help="a saved model folder instead")
    parser.add_argument("--instances", default="1,8", help="prompt counts per image, comma-separated")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--threads", type=int, help="torch threads (default: torch's); onnxruntime takes its own default"
    )
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args()
    args.instances = [int(n) for n in args.instances.split(",")]
    result = run(args)
    print(markdown(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
