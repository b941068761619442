"""Scene mode: complete every object of the example scene together and recover which hides which.

Run from the project root:  python examples/complete_scene.py
The scene's visible masks come from examples/scene_objects.png (1 = the disc, 2 = the bar in front
of it). Uses the demo model shipped in checkpoints/demo (pass another folder or Hub id as the
first argument to use your own). The command line does the same:
    amodal-sam scene examples/scene.png --masks examples/scene_objects.png --out out --overlay scene_layers.png
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from amodal_sam import AmodalPredictor, AmodalSAM, default_model
from amodal_sam.image_io import read_rgb, write_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.visualize import scene_overlay

HERE = Path(__file__).parent
NAMES = ["disc", "bar"]


def main() -> None:
    model = AmodalSAM.from_pretrained(sys.argv[1]) if len(sys.argv) > 1 else default_model()
    image = read_rgb(HERE / "scene.png")
    indices = np.asarray(Image.open(HERE / "scene_objects.png"))
    visible_masks = np.stack([indices == 1, indices == 2])

    predictor = AmodalPredictor(model)
    predictor.set_image(image)
    scene = predictor.complete_scene(visible_masks)  # each object's known occluders: the other one

    truth = read_mask(HERE / "scene_amodal.png")
    disc = scene.amodal[0]
    print(
        f"disc: IoU with the true disc {(disc & truth).sum() / (disc | truth).sum():.2f} "
        f"(visible part alone {(visible_masks[0] & truth).sum() / truth.sum():.2f}); "
        f"{scene.hidden_share[0]:.0%} of it hidden"
    )
    # the problem is ambiguous: the decoder gives several completions, ranked by its predicted IoU
    result = scene.results[0]
    for mask, predicted in zip(result.hypotheses, result.hypothesis_scores):
        print(
            f"  disc hypothesis: IoU {(mask & truth).sum() / (mask | truth).sum():.2f} "
            f"(predicted {predicted:.2f}{', chosen' if predicted == result.hypothesis_scores.max() else ''})"
        )
    for i, j in zip(*np.nonzero(scene.occludes)):
        print(f"{NAMES[i]} is in front of {NAMES[j]}")
    print("layers:", {name: int(layer) for name, layer in zip(NAMES, scene.layers)})
    write_rgb("scene_layers.png", scene_overlay(image, scene.visible, scene.amodal, scene.layers, NAMES))
    print("picture: scene_layers.png (each object its colour, hidden parts hatched, legend front to back)")


if __name__ == "__main__":
    main()
