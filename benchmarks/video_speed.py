"""Frames per second of video mode beside the same model run frame by frame, in one run.

Video mode (``AmodalVideoPredictor.complete_video``): each frame encoded once, its objects
completed, each object's motion measured and its shape memory carried. Frame by frame: the same
``AmodalPredictor`` calls on each frame alone (``complete`` for one object, ``complete_scene`` for
several), nothing remembered. The ratio is what memory costs. Prints a table and writes JSON.

    python benchmarks/video_speed.py --clip clips/val/clip_000 --model checkpoints/demo --json video.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import torch
from timing import timed  # beside this script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clip", required=True, help="a clip folder from amodal-sam synth-video")
    parser.add_argument("--model", default="demo", help="amodal model folder or Hub id (default: the demo)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    from amodal_sam.data.synth_video import read_clip
    from amodal_sam.evaluate_video import clip_masks
    from amodal_sam.factory import create_model
    from amodal_sam.predictor import AmodalPredictor
    from amodal_sam.video import AmodalVideoPredictor

    torch.set_grad_enabled(False)
    model = create_model(model=args.model)
    clip = read_clip(args.clip)
    frames = list(clip.frames)
    video = AmodalVideoPredictor(model, device=args.device)
    alone = AmodalPredictor(model, device=args.device)
    rows = []
    for form in ("single", "scene"):
        masks = list(clip_masks(clip, form))

        def frame_by_frame(masks=masks, form=form) -> None:
            for frame, mask in zip(frames, masks):
                alone.set_image(frame)
                if form == "scene":
                    alone.complete_scene([mask == k for k in (1, 2) if (mask == k).any()])
                elif mask.any():
                    alone.complete(mask)

        def with_memory(masks=masks, form=form) -> None:
            video.complete_video(frames, masks, scene=form == "scene", progress=False)

        per_frame_s = timed(frame_by_frame, args.device, args.repeats, 1)
        video_s = timed(with_memory, args.device, args.repeats, 1)
        rows.append(
            {
                "form": form,
                "frames": len(frames),
                "video_fps": len(frames) / video_s,
                "per_frame_fps": len(frames) / per_frame_s,
                "ratio": video_s / per_frame_s,
            }
        )
        print(
            f"{form}: video {rows[-1]['video_fps']:.2f} frames/s, frame by frame {rows[-1]['per_frame_fps']:.2f} "
            f"frames/s, video / frame-by-frame time {rows[-1]['ratio']:.2f}"
        )
    result = {
        "date": date.today().isoformat(),
        "model": args.model,
        "device": args.device,
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "frame_size": list(clip.frames.shape[1:3]),
        "forms": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
