"""Complete the hidden part of an object from its visible mask, and save a picture of it.

Run from the project root:  python examples/complete_image.py
Uses the demo model shipped in checkpoints/demo (pass another folder or Hub id as the first
argument to use your own, e.g. one trained on SAM ViT-B weights).
"""

import sys
from pathlib import Path

from amodal_sam import AmodalPredictor, AmodalSAM, default_model
from amodal_sam.image_io import read_rgb, write_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.visualize import overlay

HERE = Path(__file__).parent


def main() -> None:
    model = AmodalSAM.from_pretrained(sys.argv[1]) if len(sys.argv) > 1 else default_model()
    image = read_rgb(HERE / "scene.png")
    visible = read_mask(HERE / "scene_visible.png")

    predictor = AmodalPredictor(model)  # CUDA when available, else the CPU
    predictor.set_image(image)  # the frozen encoder runs once per image
    result = predictor.complete(visible_mask=visible)

    truth = read_mask(HERE / "scene_amodal.png")
    iou = (result.amodal & truth).sum() / (result.amodal | truth).sum()
    print(
        f"visible {result.visible.sum()} px + occluded {result.occluded.sum()} px = amodal {result.amodal.sum()} px; "
        f"predicted IoU {result.score:.2f}, IoU with the true disc {iou:.2f}"
    )
    write_rgb("scene_completed.png", overlay(image, result.visible, result.occluded, result.occluder))
    print("picture: scene_completed.png (visible green, occluded magenta)")


if __name__ == "__main__":
    main()
