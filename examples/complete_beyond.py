"""Complete an object that the image border cuts, past the border: the README's disc, cropped so
that the left border cuts it (and the bar still hides part of it), completed on a canvas.

Run from the project root:  python examples/complete_beyond.py [MODEL] [OUT.png]
Uses the demo model shipped in checkpoints/demo unless a model folder or Hub id is given (the
demo was never trained on cut objects; checkpoints/candidates/beyond-h was).
"""

import sys
from pathlib import Path

import numpy as np

from amodal_sam import AmodalPredictor, AmodalSAM, default_model
from amodal_sam.canvas import Canvas
from amodal_sam.image_io import read_rgb, write_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.visualize import scene_overlay

HERE = Path(__file__).parent
CUT = 120  # the crop keeps columns 120 onward: the disc (columns 80-220) loses its left part
BEYOND = 0.5


def main() -> None:
    model = AmodalSAM.from_pretrained(sys.argv[1]) if len(sys.argv) > 1 else default_model()
    out = sys.argv[2] if len(sys.argv) > 2 else "beyond_completed.png"
    image = read_rgb(HERE / "scene.png")[:, CUT:]
    disc = read_mask(HERE / "scene_visible.png")[:, CUT:]
    bar = read_mask(HERE / "scene_objects.png")[:, CUT:] & ~disc

    predictor = AmodalPredictor(model)
    predictor.set_image(image)
    scene = predictor.complete_scene(np.stack([disc, bar]), beyond=BEYOND)

    canvas = Canvas.around(image.shape[:2], BEYOND)
    truth = np.zeros(canvas.size, bool)  # the whole disc, where it lies on the canvas
    x0, y0 = canvas.origin
    whole = read_mask(HERE / "scene_amodal.png")
    start = x0 - CUT  # the canvas column of the uncut image's column 0
    low, high = max(start, 0), min(start + whole.shape[1], canvas.size[1])
    truth[y0 : y0 + whole.shape[0], low:high] = whole[:, low - start : high - start]
    completed = scene.amodal[0]
    iou = (completed & truth).sum() / (completed | truth).sum()
    visible_iou = (scene.visible[0] & truth).sum() / (scene.visible[0] | truth).sum()
    print(
        f"disc: {scene.out_of_frame[0].sum()} px beyond the border, {scene.occluded[0].sum()} px hidden in all; "
        f"IoU with the whole disc {iou:.2f} (its visible part alone: {visible_iou:.2f})"
    )
    picture = scene_overlay(image, scene.visible, scene.amodal, scene.layers, ["disc", "bar"], scene.canvas)
    write_rgb(out, picture)
    print(f"picture: {out} (the image's border outlined; hidden parts hatched)")


if __name__ == "__main__":
    main()
