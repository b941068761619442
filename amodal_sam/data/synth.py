"""Synthetic occlusion: amodal training data from ordinary whole-object masks.

Occluders (other objects, cut out of other images with their masks) are pasted over a whole
object, one after another; optionally other objects are first set *behind* it, partly covered by
it (neighbours that touch an object without hiding it, as in real scenes). Each sample is a small
scene in which every object is annotated: the target (amodal truth: its original mask; visible:
that minus the occluders), each occluder (amodal: where it was pasted; visible: that minus the
occluders pasted after it) and each object behind (amodal: where it was set; visible: that minus
the target and the occluders), so a scene's visible masks are all known, as a user's instance masks
would be. The output is a folder of images
plus a COCOA-cls ``annotations.json`` that :func:`amodal_sam.data.readers.load_dataset` reads;
each annotation also carries ``occluder_mask`` (COCO RLE: the union of the objects pasted over it,
which training uses to teach the decoder where the occluders are) and ``order`` (the depth order,
1 = in front, as original COCOA writes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from amodal_sam.atomic import atomic_output
from amodal_sam.data.masks import encode_rle, mask_bbox
from amodal_sam.data.objects import SourceObject, touches_border
from amodal_sam.geometry import mask_boxes
from amodal_sam.image_io import read_rgb, write_rgb

_BISECTION_STEPS = 14


@dataclass(frozen=True)
class SynthOptions:
    """How occlusions are made.

    Attributes:
        occlusion_range: (low, high) fraction of the object's area the occluders must hide.
        occluders: (fewest, most) occluders pasted per sample.
        behind: (fewest, most) objects set behind the target per sample, each with a share of its
            own area in ``occlusion_range`` covered by the target: a neighbour the target hides,
            so that the known occluders of scene mode are not all in front of it.
        samples_per_object: how many occluded versions of each whole object to make.
        seed: the same seed and sources give the same dataset, byte for byte.
        max_side: downscale output images whose longest side is larger (None: keep sizes).
        attempts: placements tried per sample before it is skipped.
        flip: mirror half of the targets (with their images) left to right.
        max_rotation: rotate each target (with its image) by up to this many degrees.
        scale_range: and scale it by a factor drawn from this range; a target that would then
            touch the border is used as it was.
        background_swap: chance that a target, cut out with its mask, is set on the scene of
            another image (drawn from the occluders' images): new scenes for the same shapes.
    """

    occlusion_range: tuple[float, float] = (0.1, 0.6)
    occluders: tuple[int, int] = (1, 2)
    behind: tuple[int, int] = (0, 0)
    samples_per_object: int = 1
    seed: int = 0
    max_side: int | None = None
    attempts: int = 30
    flip: bool = True
    max_rotation: float = 15.0
    scale_range: tuple[float, float] = (0.8, 1.2)
    background_swap: float = 0.0

    def __post_init__(self) -> None:
        low, high = self.occlusion_range
        if not 0.0 <= low < high < 1.0:
            raise ValueError(f"occlusion_range must satisfy 0 <= low < high < 1; got {self.occlusion_range}")
        if not 1 <= self.occluders[0] <= self.occluders[1]:
            raise ValueError(f"occluders must be (fewest, most) with 1 <= fewest <= most; got {self.occluders}")
        if not 0 <= self.behind[0] <= self.behind[1]:
            raise ValueError(f"behind must be (fewest, most) with 0 <= fewest <= most; got {self.behind}")
        if not 0.0 <= self.background_swap <= 1.0:
            raise ValueError(f"background_swap must be a probability in [0, 1]; got {self.background_swap}")
        if self.samples_per_object < 1:
            raise ValueError(f"samples_per_object must be >= 1; got {self.samples_per_object}")


@dataclass
class Cutout:
    pixels: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) bool


def _image(path: Path, images: dict) -> np.ndarray:
    """The RGB image at ``path``, read once into the ``images`` cache."""
    if path not in images:
        images[path] = read_rgb(path)
    return images[path]


def cut_out(source: SourceObject, images: dict) -> Cutout:
    mask = source.mask()
    x0, y0, x1, y1 = mask_boxes(mask[None])[0].astype(int)
    box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    return Cutout(_image(source.image_path, images)[box], mask[box])


def scaled_cutout(cutout: Cutout, scale: float) -> Cutout:
    h, w = cutout.mask.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    pixels = cv2.resize(cutout.pixels, size, interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(cutout.mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5
    return Cutout(pixels, mask)


def _window(shape: tuple[int, int], size: tuple[int, int], center: np.ndarray):
    """Slices (canvas, cutout) of an (h, w) cutout centred at ``center`` (x, y) on an (H, W)
    canvas, clipped to it; None when nothing of it lands on the canvas."""
    h, w = size
    x0, y0 = round(center[0] - w / 2), round(center[1] - h / 2)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + w, shape[1]), min(y0 + h, shape[0])
    if cx0 >= cx1 or cy0 >= cy1:
        return None
    return (slice(cy0, cy1), slice(cx0, cx1)), (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))


def placed_mask(shape: tuple[int, int], mask: np.ndarray, center: np.ndarray) -> np.ndarray:
    """(H, W) bool canvas with ``mask`` centred at ``center`` (x, y)."""
    canvas = np.zeros(shape, dtype=bool)
    window = _window(shape, mask.shape, center)
    if window is not None:
        canvas[window[0]] = mask[window[1]]
    return canvas


def paste(image: np.ndarray, cutout: Cutout, center: np.ndarray) -> np.ndarray:
    """Paste the cutout's object pixels into ``image`` (in place); return where they went, (H, W)."""
    placed = np.zeros(image.shape[:2], dtype=bool)
    window = _window(image.shape[:2], cutout.mask.shape, center)
    if window is not None:
        on_canvas, on_cutout = window
        mask = cutout.mask[on_cutout]
        image[on_canvas][mask] = cutout.pixels[on_cutout][mask]
        placed[on_canvas] = mask
    return placed


def _place_occluder(
    target: np.ndarray, hidden: np.ndarray, mask: np.ndarray, goal: float, rng: np.random.Generator
) -> np.ndarray | None:
    """Centre (x, y) for ``mask`` that brings the hidden fraction of ``target`` (what ``hidden``
    and the mask cover of it) closest to ``goal``; None when no placement reaches it."""
    area = target.sum()
    return _slide_to_goal(target, mask, lambda placed: float((target & (hidden | placed)).sum() / area), goal, rng)


def _place_behind(target: np.ndarray, mask: np.ndarray, goal: float, rng: np.random.Generator) -> np.ndarray | None:
    """Centre (x, y) for ``mask`` set behind ``target`` so that the target covers about ``goal``
    of the mask's area; None when no placement reaches it."""
    area = mask.sum()
    return _slide_to_goal(target, mask, lambda placed: float((target & placed).sum() / area), goal, rng)


def _slide_to_goal(target: np.ndarray, mask: np.ndarray, share, goal: float, rng: np.random.Generator):
    """Centre (x, y) for ``mask`` on the (H, W) canvas of ``target`` where ``share(placed)`` (a
    fraction that falls as the mask leaves the target) comes down to ``goal``.

    Starts on a random pixel of the target and slides away in a random direction, bisecting
    the distance. None when even the start is below the goal.
    """
    ys, xs = np.nonzero(target)
    pick = rng.integers(len(xs))
    start = np.array([xs[pick], ys[pick]], dtype=np.float64)
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])

    def share_at(distance: float) -> float:
        return share(placed_mask(target.shape, mask, start + distance * direction))

    if share_at(0.0) < goal:
        return None
    near, far = 0.0, float(np.hypot(*target.shape) + max(mask.shape))
    for _ in range(_BISECTION_STEPS):
        middle = (near + far) / 2
        near, far = (middle, far) if share_at(middle) > goal else (near, middle)
    return start + far * direction


def _varied(image: np.ndarray, mask: np.ndarray, options: SynthOptions, rng: np.random.Generator):
    """The target mirrored, rotated and scaled about its centre (a new shape to learn), unless
    that would push it onto the border."""
    if options.flip and rng.random() < 0.5:
        image, mask = image[:, ::-1], mask[:, ::-1]
    angle = rng.uniform(-options.max_rotation, options.max_rotation)
    scale = rng.uniform(*options.scale_range)
    ys, xs = np.nonzero(mask)
    matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), angle, scale)
    size = (mask.shape[1], mask.shape[0])
    moved = cv2.warpAffine(mask.astype(np.float32), matrix, size, flags=cv2.INTER_LINEAR) > 0.5
    if not moved.any() or touches_border(moved):
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
    image = cv2.warpAffine(
        np.ascontiguousarray(image), matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    return image, moved


def _on_new_background(image: np.ndarray, mask: np.ndarray, scene: np.ndarray, rng: np.random.Generator):
    """The ``mask`` pixels of ``image`` set on ``scene``, scaled to cover the image's size and
    cropped at a random offset."""
    height, width = mask.shape
    scale = max(height / scene.shape[0], width / scene.shape[1])
    size = (max(width, round(scene.shape[1] * scale)), max(height, round(scene.shape[0] * scale)))
    scene = cv2.resize(scene, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = int(rng.integers(scene.shape[0] - height + 1))
    left = int(rng.integers(scene.shape[1] - width + 1))
    composed = scene[top : top + height, left : left + width].copy()
    composed[mask] = image[mask]
    return composed


def _one_sample(
    target: SourceObject,
    occluder_pool: list[SourceObject],
    options: SynthOptions,
    rng: np.random.Generator,
    images: dict,
):
    """(image, layers, categories) with the target's occlusion rate in range, or None after every
    attempt failed; ``layers`` are (H, W) bool masks from back to front (the objects set behind the
    target, the target's amodal mask, then each occluder where it was pasted) and ``categories``
    their category names, in the same order."""
    amodal = target.mask()
    base = _image(target.image_path, images)
    base, amodal = _varied(base, amodal, options, rng)
    if options.background_swap and rng.random() < options.background_swap:
        scene = occluder_pool[rng.integers(len(occluder_pool))]
        base = _on_new_background(base, amodal, _image(scene.image_path, images), rng)
    low, high = options.occlusion_range
    area = amodal.sum()
    for _ in range(options.attempts):
        goal = rng.uniform(low, high)
        count = int(rng.integers(options.occluders[0], options.occluders[1] + 1))
        image = base.copy()
        behind, behind_categories = _set_behind(image, amodal, occluder_pool, options, rng, images)
        if behind:
            image[amodal] = base[amodal]  # the target stays in front of what was set behind it
        hidden, pasted, categories = np.zeros_like(amodal), [], []
        for k in range(count):
            source = occluder_pool[rng.integers(len(occluder_pool))]
            cutout = _sized_cutout(source, area, amodal.shape, rng, images)
            if not cutout.mask.any():
                break
            step_goal = goal * (k + 1) / count
            center = _place_occluder(amodal, hidden, cutout.mask, step_goal, rng)
            if center is None:
                break
            pasted.append(paste(image, cutout, center))
            categories.append(source.category)
            hidden |= pasted[-1]
        image, layers = _downscaled(image, [*behind, amodal, *pasted], options.max_side)
        target_layer = layers[len(behind)]
        front = layers[len(behind) + 1 :]
        visible = target_layer & ~np.any(front, axis=0) if front else target_layer
        rate = 1.0 - visible.sum() / max(target_layer.sum(), 1)
        if low <= rate <= high:
            return image, layers, [*behind_categories, target.category, *categories]
    return None


def _sized_cutout(
    source: SourceObject, area: int, shape: tuple[int, int], rng: np.random.Generator, images: dict
) -> Cutout:
    """``source`` cut out of its image and scaled to 0.6-1.6 x ``area`` pixels (at most 0.9 of the
    (H, W) canvas ``shape`` on either side)."""
    cutout = cut_out(source, images)
    scale = np.sqrt(rng.uniform(0.6, 1.6) * area / cutout.mask.sum())
    scale = min(scale, 0.9 * min(shape[0] / cutout.mask.shape[0], shape[1] / cutout.mask.shape[1]))
    return scaled_cutout(cutout, scale)


def _set_behind(
    image: np.ndarray,
    target: np.ndarray,
    pool: list[SourceObject],
    options: SynthOptions,
    rng: np.random.Generator,
    images: dict,
) -> tuple[list[np.ndarray], list[str]]:
    """Paste ``options.behind`` objects into ``image`` (in place) next to the (H, W) ``target``,
    each partly where the target is (a share of its area in ``options.occlusion_range``, which the
    target will cover); return where each went, (H, W) bool, and their categories. Draws nothing
    from ``rng`` when no object is to be set behind."""
    fewest, most = options.behind
    if most == 0:
        return [], []
    placed, categories = [], []
    for _ in range(int(rng.integers(fewest, most + 1))):
        source = pool[rng.integers(len(pool))]
        cutout = _sized_cutout(source, int(target.sum()), target.shape, rng, images)
        center = (
            _place_behind(target, cutout.mask, rng.uniform(*options.occlusion_range), rng)
            if cutout.mask.any()
            else None
        )
        if center is not None:
            placed.append(paste(image, cutout, center))
            categories.append(source.category)
    return placed, categories


def _downscaled(image: np.ndarray, masks: list[np.ndarray], max_side: int | None):
    """(image, masks) downscaled so the longest side is at most ``max_side``."""
    height, width = image.shape[:2]
    if max_side is None or max(height, width) <= max_side:
        return image, masks
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, [cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5 for m in masks]


def scene_layers(layers: list[np.ndarray]) -> list[dict]:
    """Masks pasted from back to front -> per object (same order) ``amodal``, ``visible`` (the
    amodal mask minus everything pasted later), ``occluder`` (the union of what was pasted later)
    and ``order`` (1 = the front one)."""
    objects = []
    for i, amodal in enumerate(layers):
        front = np.any(layers[i + 1 :], axis=0) if i + 1 < len(layers) else np.zeros_like(amodal)
        objects.append({"amodal": amodal, "visible": amodal & ~front, "occluder": front, "order": len(layers) - i})
    return objects


def layer_annotations(objects: list[dict], category_ids: list[int], image_id: int, first_id: int) -> list[dict]:
    """COCOA-cls annotations of one image's objects (:func:`scene_layers`, back to front), ids
    counting from ``first_id``; an object wholly covered by later ones is left out (no visible
    mask to start from)."""
    entries = []
    for layer, category_id in zip(objects, category_ids):
        amodal, visible = layer["amodal"], layer["visible"]
        if not visible.any():
            continue
        entries.append(
            {
                "id": first_id + len(entries),
                "image_id": image_id,
                "category_id": category_id,
                "iscrowd": 0,
                "segmentation": encode_rle(amodal),
                "visible_mask": encode_rle(visible),
                "occluder_mask": encode_rle(layer["occluder"]),
                "bbox": mask_bbox(amodal),
                "area": int(amodal.sum()),
                "occlude_rate": float(1.0 - visible.sum() / amodal.sum()),
                "order": layer["order"],
            }
        )
    return entries


def synthesize(
    objects: list[SourceObject],
    out_dir: str | Path,
    options: SynthOptions,
    occluders: list[SourceObject] | None = None,
    progress: bool = True,
) -> dict:
    """Write occluded samples of every whole object in ``objects`` to ``out_dir``.

    Occluders are drawn from ``occluders`` (default: ``objects``), never from the target's own
    image. Writes ``out_dir/images/*.jpg`` and ``out_dir/annotations.json`` (COCOA-cls).
    Returns counts: written, skipped, targets.
    """
    out_dir = Path(out_dir)
    occluders = objects if occluders is None else occluders
    targets = [o for o in objects if o.whole]
    if not targets:
        raise ValueError("no whole objects to occlude: every object touches the border or another object")
    categories = sorted({o.category for o in targets} | {o.category for o in occluders})
    category_ids = {name: i + 1 for i, name in enumerate(categories)}
    images_json, annotations_json, skipped, cache = [], [], 0, {}
    jobs = [(t, v) for t in range(len(targets)) for v in range(options.samples_per_object)]
    for target_index, variant in tqdm(jobs, desc="synth", disable=not progress):
        target = targets[target_index]
        pool = [o for o in occluders if o.image_path != target.image_path]
        rng = np.random.default_rng([options.seed, target_index, variant])
        sample = _one_sample(target, pool, options, rng, cache) if pool else None
        if len(cache) > 64:
            cache.clear()
        if sample is None:
            skipped += 1
            continue
        image, layers, categories_of = sample
        number = len(images_json) + 1
        file_name = f"images/{number:06d}.jpg"
        write_rgb(out_dir / file_name, image)
        images_json.append(
            {
                "id": number,
                "file_name": file_name,
                "height": int(image.shape[0]),
                "width": int(image.shape[1]),
                "source": str(target.image_path),
            }
        )
        annotations_json += layer_annotations(
            scene_layers(layers), [category_ids[c] for c in categories_of], number, len(annotations_json) + 1
        )
    content = {
        "info": {
            "description": "amodal_sam synthetic occlusion",
            "seed": options.seed,
            "occlusion_range": list(options.occlusion_range),
            "occluders": list(options.occluders),
        },
        "images": images_json,
        "annotations": annotations_json,
        "categories": [{"id": category_ids[name], "name": name} for name in categories],
    }
    with atomic_output(out_dir / "annotations.json") as temporary:
        temporary.write_text(json.dumps(content))
    return {"written": len(images_json), "skipped": skipped, "targets": len(targets)}
