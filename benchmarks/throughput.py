"""Throughput of amodal_sam beside the reference segment-anything pipeline, in one run.

Reference: segment-anything's ``SamPredictor`` in fp32: ``set_image``, then one ``predict`` per
instance with the visible mask as ``mask_input``. Ours: the encoder (reference or fast path,
chosen precision, optional ``torch.compile``, several images per call), then the instances of an
image through ``AmodalPredictor.complete_batch``. Both sides are timed the same way: the encoder
from the uint8 image (resizing, normalising and padding included) to the embedding; the decoder
from the prompts to masks at the original resolution; end to end from the image to every
instance's masks, measured as one span on each side. Each side runs in its own child process so
that peak memory (CUDA max allocated, or the process's max RSS on CPU) is its own.

Weights are seeded random (no download): the timings are those of the real architecture, the
masks mean nothing. Prints a table and writes JSON.

    python benchmarks/throughput.py --model-type vit_b --dtype bf16 --device cpu --json cpu.json
    python benchmarks/throughput.py --model-type vit_b --dtype bf16 --device cuda --image-batch 16
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from timing import draw_rel_pos_tables, peak_memory_mb, timed  # beside this script

from amodal_sam.modeling.attention_choice import cpu_flags, cpu_model

if TYPE_CHECKING:
    from amodal_sam import AmodalSAM

IMAGE_SIZE = (480, 640)  # (H, W) of the synthetic test image


def _inputs(count: int):
    """A synthetic image and ``count`` visible masks (ellipses) on it."""
    rng = np.random.default_rng(0)
    height, width = IMAGE_SIZE
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    masks = []
    for _ in range(count):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        rx, ry = rng.uniform(0.05, 0.2) * width, rng.uniform(0.05, 0.2) * height
        masks.append(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1)
    return image, masks


def seeded_model(model_type: str) -> AmodalSAM:
    """The seeded random model both sides time, built alike in each child process. Its
    relative-position tables are drawn at a trained model's scale from a seeded generator
    (:func:`timing.draw_rel_pos_tables`), so that the embeddings' agreement covers the attention's
    bias."""
    from amodal_sam import AmodalSAM

    model = AmodalSAM.random(model_type, seed=0)
    draw_rel_pos_tables(model.sam.image_encoder, torch.Generator().manual_seed(0))
    return model


def _reference_side(args, out_path: str) -> None:
    """Child process: SamPredictor in fp32."""
    from segment_anything import SamPredictor

    from amodal_sam.geometry import ImageFrame, visible_prompt_levels

    if args.threads:
        torch.set_num_threads(args.threads)
    model = seeded_model(args.model_type).to(args.device)
    predictor = SamPredictor(model.sam)
    image, masks = _inputs(max(args.instances))
    frame = ImageFrame.for_spec(IMAGE_SIZE, model.spec)
    levels = visible_prompt_levels(frame, np.stack(masks), with_hull=False)  # SAM's plain mask prompt
    mask_inputs = model.mask_prompt(torch.as_tensor(levels)).numpy()
    encoder_s = timed(lambda: predictor.set_image(image), args.device, args.repeats, args.warmup)
    decoder = {}
    for count in args.instances:

        def run(count=count):
            for mask_input in mask_inputs[:count]:
                predictor.predict(mask_input=mask_input, multimask_output=True, return_logits=True)

        decoder[count] = timed(run, args.device, args.repeats, 1)
    end_to_end = {}
    for count in args.instances:

        def image_to_masks(count=count):
            predictor.set_image(image)
            for mask_input in mask_inputs[:count]:
                predictor.predict(mask_input=mask_input, multimask_output=True, return_logits=True)

        end_to_end[count] = timed(image_to_masks, args.device, max(1, args.repeats // 2), 0)
    with torch.no_grad():
        logits = predictor.predict(mask_input=mask_inputs[0], multimask_output=True, return_logits=True)[0]
    torch.save(
        {
            "encoder_s": encoder_s,
            "decoder_s": decoder,
            "end_to_end_s": end_to_end,
            "peak_mb": peak_memory_mb(args.device),
            "embedding": predictor.get_image_embedding().cpu(),
            "sam_logits": torch.as_tensor(logits),
        },
        out_path,
    )


def _our_side(args, out_path: str) -> None:
    """Child process: amodal_sam's encoder path and batched decoder."""
    from amodal_sam import AmodalPredictor

    if args.threads:
        torch.set_num_threads(args.threads)
    model = seeded_model(args.model_type).to(args.device)
    if args.attention != "reference":
        model.accelerate_encoder(dtype=args.dtype, compile=args.compile, attention=args.attention)
    image, masks = _inputs(max(args.instances))
    images = [image] * args.image_batch

    def encode_batch():  # from uint8 images, preprocessing included, as SamPredictor.set_image
        return model.encode_images(torch.cat([model.input_pixels(im) for im in images]))

    encoder_s = timed(encode_batch, args.device, args.repeats, args.warmup) / args.image_batch
    encoder_mode = model.encoder_mode
    predictor = AmodalPredictor(model, device=args.device)
    predictor.set_image(image)
    decoder = {
        count: timed(lambda count=count: predictor.complete_batch(masks[:count]), args.device, args.repeats, 1)
        for count in args.instances
    }
    end_to_end = {}
    for count in args.instances:

        def run(count=count):
            predictor.set_image(image)
            predictor.complete_batch(masks[:count])

        end_to_end[count] = timed(run, args.device, max(1, args.repeats // 2), 0)
    embedding = model.encode_images(model.input_pixels(image)).cpu()
    torch.save(
        {
            "encoder_s": encoder_s,
            "decoder_s": decoder,
            "end_to_end_s": end_to_end,
            "peak_mb": peak_memory_mb(args.device),
            "embedding": embedding,
            "encoder_mode": encoder_mode,
            "decoder_dtype": model.decoder_dtype,
        },
        out_path,
    )


def _agreement(args, reference_embedding: torch.Tensor, our_embedding: torch.Tensor, decoder_dtype: str) -> dict:
    """Max abs difference and cosine similarity of embeddings, and of the amodal decoder's mask
    logits computed from each embedding (same decoder weights, same prompts; ours in
    ``decoder_dtype``, the precision our side chose, the reference's in fp32)."""
    from amodal_sam import AmodalPredictor

    model = seeded_model(args.model_type)
    image, masks = _inputs(8)
    logits = []
    for embedding, dtype in ((reference_embedding, "fp32"), (our_embedding, decoder_dtype)):
        model.accelerate_decoder(dtype)
        predictor = AmodalPredictor(model, device="cpu")
        predictor.set_embedding(embedding, IMAGE_SIZE, image=image)
        logits.append(torch.as_tensor(np.stack([r.low_res_logits for r in predictor.complete_batch(masks)])))

    def compare(a, b):
        return {
            "max_abs_diff": float((a - b).abs().max()),
            "cosine": float(F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0)),
        }

    return {"embedding": compare(our_embedding, reference_embedding), "mask_logits": compare(logits[1], logits[0])}


def _child(target, args) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "result.pt")
        process = multiprocessing.get_context("spawn").Process(target=target, args=(args, path))
        process.start()
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"{target.__name__} failed with exit code {process.exitcode}")
        return torch.load(path, weights_only=True)


def run(args) -> dict:
    reference = _child(_reference_side, args)
    ours = _child(_our_side, args)
    result = {
        "date": date.today().isoformat(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_model": cpu_model(),
            "cpu_flags": cpu_flags(),
            "cpu_threads": args.threads or torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        },
        "weights": "seeded random (architecture timing only)",
        "settings": {k: v for k, v in vars(args).items() if k != "json"},
        "reference": {
            "encoder_images_per_s": 1 / reference["encoder_s"],
            "decoder_instances_per_s": {n: n / s for n, s in reference["decoder_s"].items()},
            "end_to_end_s": reference["end_to_end_s"],
            "peak_memory_mb": reference["peak_mb"],
        },
        "ours": {
            "encoder_images_per_s": 1 / ours["encoder_s"],
            "encoder_mode": ours["encoder_mode"],
            "decoder_dtype": ours["decoder_dtype"],
            "decoder_instances_per_s": {n: n / s for n, s in ours["decoder_s"].items()},
            "end_to_end_s": ours["end_to_end_s"],
            "peak_memory_mb": ours["peak_mb"],
        },
    }
    result["speedup"] = {
        "encoder": reference["encoder_s"] / ours["encoder_s"],
        "decoder": {n: reference["decoder_s"][n] / ours["decoder_s"][n] for n in args.instances},
        "end_to_end": {n: result["reference"]["end_to_end_s"][n] / ours["end_to_end_s"][n] for n in args.instances},
        "peak_memory_ratio": ours["peak_mb"] / reference["peak_mb"],
    }
    result["agreement"] = _agreement(args, reference["embedding"], ours["embedding"], ours["decoder_dtype"])
    return result


def table(result: dict) -> str:
    reference, ours, speedup = result["reference"], result["ours"], result["speedup"]
    lines = [
        (
            f"| measure | reference (SamPredictor fp32) | amodal_sam (encoder {ours['encoder_mode']}, "
            f"decoder {ours['decoder_dtype']}) | ratio |"
        ),
        "| --- | --- | --- | --- |",
        (
            f"| encoder images/s | {reference['encoder_images_per_s']:.3f} | {ours['encoder_images_per_s']:.3f} | "
            f"{speedup['encoder']:.2f}x |"
        ),
    ]
    for n in result["settings"]["instances"]:
        lines.append(
            f"| decoder instances/s, {n} per image | {reference['decoder_instances_per_s'][n]:.1f} | "
            f"{ours['decoder_instances_per_s'][n]:.1f} | {speedup['decoder'][n]:.2f}x |"
        )
    for n in result["settings"]["instances"]:
        lines.append(
            f"| end to end s/image, {n} instances | {reference['end_to_end_s'][n]:.3f} | "
            f"{ours['end_to_end_s'][n]:.3f} | {speedup['end_to_end'][n]:.2f}x |"
        )
    lines.append(
        f"| peak memory MB | {reference['peak_memory_mb']:.0f} | {ours['peak_memory_mb']:.0f} | "
        f"{speedup['peak_memory_ratio']:.2f}x |"
    )
    agreement = result["agreement"]
    lines.append(
        f"| embedding vs fp32 reference | | max abs {agreement['embedding']['max_abs_diff']:.2e}, "
        f"cosine {agreement['embedding']['cosine']:.6f} | |"
    )
    lines.append(
        f"| mask logits vs fp32 reference | | max abs {agreement['mask_logits']['max_abs_diff']:.2e}, "
        f"cosine {agreement['mask_logits']['cosine']:.6f} | |"
    )
    return "\n".join(lines)


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="vit_b", help="vit_b, vit_l, vit_h, demo or tiny")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="bf16")
    parser.add_argument(
        "--attention",
        choices=("reference", "auto", "folded", "sdpa", "chunked", "flex"),
        default="auto",
        help="our encoder's attention (reference = segment-anything's own modules; auto: the path "
        "measured fastest on this machine, as the library chooses it; folded / sdpa / chunked: the "
        "relative-position bias folded into the dot products, built and passed as the mask, or "
        "applied in cache-sized steps of plain matrix products; flex: flex_attention's score_mod)",
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile our encoder")
    parser.add_argument("--image-batch", type=int, default=1, help="images per encoder call (ours)")
    parser.add_argument("--instances", default="1,8,64", help="instances per image, comma-separated")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    args.instances = [int(v) for v in args.instances.split(",")]
    if args.dtype == "fp16" and not args.device.startswith("cuda"):
        parser.error("--dtype fp16 needs a CUDA device; use bf16 on CPU")
    if args.attention == "reference" and (args.dtype != "fp32" or args.compile):
        parser.error("--attention reference runs segment-anything's modules as they are: fp32, not compiled")
    return args


def main(argv=None) -> int:
    args = parse_arguments(argv)
    result = run(args)
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
