"""Simple generated scenes: one plain shape partly behind another on a plain background.

The cases a completion must never miss (the README's disc behind a bar is one): the hidden part
continues the visible one in a straight or round line, and what covers it is known. Seeded, so
a set is the same on every machine; written as a COCOA-cls dataset (``images/*.png``,
``annotations.json``) that every command reads.

An *uncovered* scene is the same geometry with nothing in front: the front shape's pixels are
cut out of the back shape and painted the background's colour, so the back shape is a concave
object that nothing hides (its amodal mask is its visible mask). Beside the covered scenes it
says that a notch alone is no evidence of a hidden part; what fills the notch is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from amodal_sam.atomic import atomic_output
from amodal_sam.data.synth import layer_annotations, scene_layers
from amodal_sam.image_io import write_rgb

BACK_SHAPES = ("disc", "ellipse", "rectangle", "triangle")
FRONT_SHAPES = ("bar", "block", "disc")
OCCLUSION_RANGE = (0.15, 0.5)  # share of the back shape the front one hides


def shape_mask(
    kind: str, shape: tuple[int, int], center: np.ndarray, size: float, rng: np.random.Generator
) -> np.ndarray:
    """(H, W) bool mask of one shape, centred at (x, y) ``center``: a ``disc`` of diameter ``size``;
    an ``ellipse`` ``size`` wide and 0.5-0.8 of that high; a ``rectangle`` / ``block`` ``size``
    wide and 0.5-1 of that high; a ``bar`` 0.25-0.45 x ``size`` thick across the whole image,
    vertical or horizontal; a ``triangle`` ``size`` high, apex up, base ``size`` wide. The random
    proportions are drawn from ``rng``."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width]
    dx, dy = xs - center[0], ys - center[1]
    half = size / 2
    if kind == "disc":
        return dx**2 + dy**2 <= half**2
    if kind == "ellipse":
        ratio = rng.uniform(0.5, 0.8)
        return (dx / half) ** 2 + (dy / (half * ratio)) ** 2 <= 1
    if kind in ("rectangle", "block"):
        ratio = rng.uniform(0.5, 1.0)
        return (np.abs(dx) <= half) & (np.abs(dy) <= half * ratio)
    if kind == "bar":
        thick = half * rng.uniform(0.25, 0.45)
        vertical = rng.random() < 0.5
        return (np.abs(dx) <= thick) if vertical else (np.abs(dy) <= thick)
    if kind == "triangle":  # apex up, base down
        inside_height = (dy >= -half) & (dy <= half)
        return inside_height & (np.abs(dx) <= (dy + half) / 2)
    raise ValueError(f"unknown shape {kind!r}")


def _colors(rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """``count`` plain colours, each at least 120 apart (sum of channel differences)."""
    colors: list[np.ndarray] = []
    while len(colors) < count:
        color = rng.integers(0, 256, 3)
        if all(np.abs(color - c).sum() >= 120 for c in colors):
            colors.append(color)
    return colors


def shape_scene(
    rng: np.random.Generator, shape: tuple[int, int] = (240, 320), uncovered: bool = False
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One scene: (H, W, 3) uint8 RGB image and its two (H, W) bool masks, back to front. The back
    shape lies wholly inside the image (2 px clear of the border); the front one hides
    :data:`OCCLUSION_RANGE` of it. ``uncovered``: the same draws, but the front shape is cut out of
    the back one and painted the background's colour; the one mask returned is the back shape
    minus the front one (an object nothing hides)."""
    height, width = shape
    while True:
        size = rng.uniform(0.3, 0.55) * min(shape)
        center = rng.uniform([size / 2 + 2, size / 2 + 2], [width - size / 2 - 3, height - size / 2 - 3])
        back = shape_mask(str(rng.choice(BACK_SHAPES)), shape, center, size, rng)  # within size / 2 of center
        front_center = center + rng.uniform(-0.6, 0.6, 2) * size
        front = shape_mask(str(rng.choice(FRONT_SHAPES)), shape, front_center, size * rng.uniform(0.5, 0.9), rng)
        hidden = (back & front).sum() / back.sum()
        if OCCLUSION_RANGE[0] <= hidden <= OCCLUSION_RANGE[1]:
            break
    background, back_color, front_color = _colors(rng, 3)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = background
    image[back] = back_color
    if uncovered:
        image[front] = background
        return image, [back & ~front]
    image[front] = front_color
    return image, [back, front]


def write_shape_scenes(out_dir: str | Path, count: int = 24, seed: int = 0, uncovered_share: float = 0.0) -> Path:
    """Write ``count`` seeded scenes (:func:`shape_scene`) as a COCOA-cls dataset; returns its
    ``annotations.json``. The same ``seed`` writes the same files. Each scene is uncovered with
    probability ``uncovered_share`` (in [0, 1]; 0, the default, draws nothing for it, so a set
    written before the option existed is written the same)."""
    if not 0.0 <= uncovered_share <= 1.0:
        raise ValueError(f"uncovered_share must be in [0, 1]; got {uncovered_share}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for number in range(1, count + 1):
        uncovered = uncovered_share > 0 and bool(rng.random() < uncovered_share)
        image, layers = shape_scene(rng, uncovered=uncovered)
        file_name = f"images/{number:04d}.png"
        write_rgb(out_dir / file_name, image)
        images.append({"id": number, "file_name": file_name, "height": image.shape[0], "width": image.shape[1]})
        annotations += layer_annotations(scene_layers(layers), [1, 2], number, len(annotations) + 1)
    info = {"description": "amodal_sam simple shape scenes", "seed": seed}
    if uncovered_share > 0:
        info["uncovered_share"] = uncovered_share
    content = {
        "info": info,
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "back shape"}, {"id": 2, "name": "front shape"}],
    }
    path = out_dir / "annotations.json"
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(content))
    return path
