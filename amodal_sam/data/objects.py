"""Whole-object sources for synthetic occlusion: mask folders, YOLO-seg polygons, COCO instances.

Each source yields :class:`SourceObject` entries: an image, one object's mask (kept as COCO RLE
until used) and whether the object is *whole*: it touches neither the image border nor another
annotated object, so its mask can serve as amodal truth.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from amodal_sam.data.masks import decode_segmentation
from amodal_sam.data.readers import IMAGE_SUFFIXES, find_coco_image
from amodal_sam.mask_files import read_mask

# Objects within this many pixels of another annotated object may be hidden by it: not whole.
TOUCH_MARGIN = 3
_YOLO_SLACK = 0.01  # how far a YOLO coordinate may stray outside [0, 1] (rounding in exports)


@dataclass
class SourceObject:
    """One object of a source image. ``rle`` is its mask as COCO RLE (pycocotools bytes form)."""

    image_path: Path
    rle: dict
    category: str
    whole: bool

    def mask(self) -> np.ndarray:
        """(H, W) bool mask."""
        return mask_utils.decode(self.rle).astype(bool)


def load_objects(source: str | Path, min_area: int = 400) -> list[SourceObject]:
    """Objects of one source, detected by its layout.

    Arguments:
        source: a folder of image + mask pairs (``X.jpg`` beside ``X.png``, searched
            recursively, as DAVIS), a YOLO-seg root (``images/`` and ``labels/`` with polygon
            ``.txt`` files), or a COCO instance JSON (images beside it or in ``images/``).
        min_area: objects smaller than this many pixels are dropped.
    """
    source = Path(source)
    if source.is_file() and source.suffix == ".json":
        objects = _coco_objects(source)
    elif source.is_dir() and (source / "labels").is_dir() and (source / "images").is_dir():
        objects = _yolo_objects(source)
    elif source.is_dir():
        objects = _pair_objects(source)
    else:
        raise FileNotFoundError(f"synthetic-occlusion source {str(source)!r} does not exist")
    if not objects:
        raise ValueError(
            f"{str(source)!r} holds no objects: expected image + mask pairs (X.jpg and X.png), "
            "a YOLO-seg root (images/, labels/) or a COCO instance JSON"
        )
    return [o for o in objects if int(mask_utils.area(o.rle)) >= min_area]


def filter_objects(
    objects: list[SourceObject], include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> list[SourceObject]:
    """Objects whose image path has a folder or file stem in ``include`` (when given) and none in
    ``exclude``; e.g. DAVIS sequence names."""

    def names(o: SourceObject) -> set:
        return set(o.image_path.parts) | {o.image_path.stem}

    return [o for o in objects if (not include or names(o) & set(include)) and not names(o) & set(exclude)]


def _encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def touches_border(mask: np.ndarray) -> bool:
    """True when an (H, W) mask reaches the image's first or last row or column."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def _image_objects(image_path: Path, masks: list[np.ndarray], categories: list[str]) -> list[SourceObject]:
    """Objects of one image; whole = off the border and clear of every other object."""
    kernel = np.ones((2 * TOUCH_MARGIN + 1, 2 * TOUCH_MARGIN + 1), np.uint8)
    objects = []
    for index, (mask, category) in enumerate(zip(masks, categories)):
        if not mask.any():
            continue
        grown = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
        touches_other = any((grown & other).any() for j, other in enumerate(masks) if j != index)
        objects.append(
            SourceObject(image_path, _encode(mask), category, not touches_border(mask) and not touches_other)
        )
    return objects


def _image_size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image file {str(path)!r} is not a readable image")
    return image.shape[:2]


def _pair_objects(root: Path) -> list[SourceObject]:
    objects = []
    for image_path in sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")):
        mask_path = image_path.with_suffix(".png")
        if mask_path.is_file():
            mask, size = read_mask(mask_path), _image_size(image_path)
            if mask.shape != size:
                raise ValueError(
                    f"mask {str(mask_path)!r} is {mask.shape} (H, W) but its image {str(image_path)!r} is "
                    f"{size}: a mask must match its image pixel for pixel"
                )
            objects += _image_objects(image_path, [mask], [image_path.parent.name])
    return objects


def _yolo_objects(root: Path) -> list[SourceObject]:
    objects = []
    for image_path in sorted(p for p in (root / "images").rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        label_path = root / "labels" / image_path.relative_to(root / "images").with_suffix(".txt")
        if not label_path.is_file():
            continue
        height, width = _image_size(image_path)
        masks, categories = [], []
        for number, line in enumerate(label_path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{str(label_path)!r} line {number}"
            category, polygon = _yolo_polygon(line, where)
            pixels = (polygon.reshape(-1, 2) * (width, height)).ravel().tolist()
            masks.append(decode_segmentation(pixels, height, width, where))
            categories.append(f"class_{category}")
        objects += _image_objects(image_path, masks, categories)
    return objects


def _yolo_polygon(line: str, where: str) -> tuple[int, np.ndarray]:
    """(class, flat polygon in [0, 1] image fractions) of one YOLO segmentation label line
    ``class x1 y1 x2 y2 ...``; an error naming ``where`` when it is not one."""
    values = line.split()
    try:
        category, polygon = int(values[0]), np.asarray(values[1:], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{where}: expected 'class x1 y1 x2 y2 ...' with an integer class and numbers") from None
    if not np.isfinite(polygon).all():
        raise ValueError(f"{where}: has a non-finite coordinate (NaN or infinity)")
    if len(polygon) % 2 or len(polygon) < 6:
        raise ValueError(f"{where}: needs an even count of at least 6 coordinates (3 points); got {len(polygon)}")
    if polygon.min() < -_YOLO_SLACK or polygon.max() > 1 + _YOLO_SLACK:
        raise ValueError(
            f"{where}: YOLO coordinates are fractions of the image in [0, 1]; got {polygon.min():g} to {polygon.max():g}"
        )
    return category, polygon


def _coco_objects(path: Path, images_dir: Path | None = None) -> list[SourceObject]:
    content = json.loads(path.read_text())
    if not isinstance(content, dict) or "images" not in content or "annotations" not in content:
        raise ValueError(f"{str(path)!r} is not a COCO instance file: expected 'images' and 'annotations'")
    names = {c["id"]: c.get("name", str(c["id"])) for c in content.get("categories", [])}
    by_image: dict = {}
    for annotation in content["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    objects = []
    for image in sorted(content["images"], key=lambda i: i["id"]):
        annotations = [a for a in by_image.get(image["id"], []) if not a.get("iscrowd")]
        image_path = find_coco_image(path, image["file_name"], images_dir)
        if "height" not in image or "width" not in image:
            raise ValueError(f"{str(path)!r}: image {image.get('id')!r} needs 'height' and 'width'")
        height, width = image["height"], image["width"]
        masks = [
            decode_segmentation(
                a["segmentation"], height, width, f"{str(path)!r} annotation {a.get('id')!r} field 'segmentation'"
            )
            for a in annotations
        ]
        categories = [str(names.get(a.get("category_id"), a.get("category_id"))) for a in annotations]
        objects += _image_objects(image_path, masks, categories)
    return objects


def object_pools(
    sources: Sequence[str | Path],
    *,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    occluders_from: Sequence[str | Path] | None = None,
    min_area: int = 400,
) -> tuple[list[SourceObject], list[SourceObject]]:
    """(targets, occluders) for :func:`amodal_sam.data.synth.synthesize`: the objects of
    ``sources`` filtered by ``include`` / ``exclude``, and the occluders: every object of
    ``occluders_from`` when given, else the targets themselves."""
    objects = [o for source in sources for o in load_objects(source, min_area=min_area)]
    targets = filter_objects(objects, include, exclude)
    if not occluders_from:
        return targets, targets
    return targets, [o for source in occluders_from for o in load_objects(source, min_area=min_area)]
