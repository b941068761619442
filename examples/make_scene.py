"""Draw the small synthetic scene in examples/: a disc partly hidden behind a bar.

Writes scene.png (the image), scene_visible.png (the disc's visible part),
scene_amodal.png (the whole disc, the truth an amodal model should recover) and
scene_objects.png, an index PNG of both objects' visible masks for scene mode (1 = the disc,
2 = the bar; 0 = background).
Run: python examples/make_scene.py
"""

from pathlib import Path

import numpy as np
from PIL import Image

from amodal_sam.image_io import write_mask, write_rgb

HERE = Path(__file__).parent


def write_index(path: Path, indices: np.ndarray) -> None:
    """An (H, W) uint8 index image as a single-channel PNG (value k = object k)."""
    Image.fromarray(indices, mode="L").save(path)


def main() -> None:
    height, width = 240, 320
    ys, xs = np.mgrid[0:height, 0:width]
    disc = (xs - 150) ** 2 + (ys - 120) ** 2 <= 70**2
    bar = (xs >= 170) & (xs < 215) & (ys >= 20) & (ys < 230)
    image = np.full((height, width, 3), (200, 215, 230), dtype=np.uint8)  # pale sky
    image[ys > 180] = (120, 150, 90)  # grass
    image[disc] = (220, 120, 40)  # orange disc
    image[bar] = (70, 70, 160)  # blue bar in front of it
    write_rgb(HERE / "scene.png", image)
    write_mask(HERE / "scene_visible.png", disc & ~bar)
    write_mask(HERE / "scene_amodal.png", disc)
    objects = np.zeros((height, width), dtype=np.uint8)
    objects[disc & ~bar] = 1
    objects[bar] = 2
    write_index(HERE / "scene_objects.png", objects)
    for name, what in (
        ("scene.png", "the image: an orange disc behind a blue bar, 320 x 240"),
        ("scene_visible.png", "the disc's visible part (what the bar leaves)"),
        ("scene_amodal.png", "the disc's whole shape, the truth a completion is scored against"),
        ("scene_objects.png", "both visible masks as one index PNG: 1 = disc, 2 = bar"),
    ):
        print(f"wrote {HERE / name}: {what}")


if __name__ == "__main__":
    main()
