"""Readers of amodal datasets; the format is detected from the file.

Supported, with the keys that identify each:

* **COCOA-cls / aistron** COCO JSON: ``images``, ``annotations`` with ``segmentation`` (amodal)
  and ``visible_mask`` (visible), ``bbox``, ``category_id``, optional ``occlude_rate`` and
  ``occluder_mask`` (what covers the object; written by ``amodal-sam synth``).
* **KINS 2020** COCO JSON: annotations with ``a_segm`` / ``i_segm`` (amodal / visible),
  ``a_bbox`` / ``i_bbox``, ``oco_id``, ``ico_id``.
* **KINS (older files)** COCO JSON: annotations with ``segmentation`` (amodal) and
  ``inmodal_seg`` (visible).
* **Original COCOA**: one JSON object per image with a ``regions`` list (``segmentation`` amodal
  polygon, ``order``, ``occlude_rate``, ``isStuff``; occluded regions also carry
  ``visible_mask`` / ``invisible_mask`` RLE). A single file (one record or a list of records)
  or a folder of per-image files. Stuff regions are skipped unless asked for.
* **A plain folder**: ``images/NAME.jpg``, ``amodal/NAME_K.png``, ``visible/NAME_K.png``.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amodal_sam.data.masks import decode_segmentation
from amodal_sam.image_io import read_rgb
from amodal_sam.mask_files import mask_folder_files, read_mask

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
FORMAT_KEYS = {
    "cocoa_cls": "annotations with 'segmentation' (amodal) + 'visible_mask' (visible)",
    "kins_2020": "annotations with 'a_segm' (amodal) + 'i_segm' (visible)",
    "kins_legacy": "annotations with 'segmentation' (amodal) + 'inmodal_seg' (visible)",
    "cocoa": "per-image records with a 'regions' list",
    "folder": "a folder with images/, amodal/ and visible/",
}


@dataclass
class InstanceRecord:
    """One annotated object; masks stay encoded until a sample is loaded.

    ``visible`` is None when the visible mask is the amodal mask (an unoccluded object);
    ``occluder`` (whatever covers the object, anywhere in the image) is None when not annotated.
    ``order`` is the depth order where the format records it (original COCOA, ``synth``: 1 = in
    front; an object with a smaller order lies in front of one it overlaps). ``is_stuff`` marks a
    background region (COCOA stuff): it can hide objects but is not an object to complete.
    ``fields`` are the file's names of the amodal, visible and occluder segmentations (for errors).
    """

    annotation_id: int | str
    amodal: Any
    visible: Any
    category: int | str | None = None
    occlusion_rate: float | None = None
    occluder: Any = None
    order: int | None = None
    is_stuff: bool = False
    fields: tuple[str, str, str] = ("segmentation", "visible_mask", "occluder_mask")


@dataclass
class ImageRecord:
    """One image and its objects. ``height``/``width`` are None until known from the file;
    ``source`` is the annotation file the record was read from (for errors). ``scene_only``: its
    objects are only ever completed with their known occluders (an image on a beyond-the-frame
    canvas, whose margins are always known; a COCOA-cls image's ``"scene_only": true``), so
    training gives them in every sample."""

    image_id: int | str
    image_path: Path
    instances: list[InstanceRecord] = field(default_factory=list)
    height: int | None = None
    width: int | None = None
    source: Path | None = None
    scene_only: bool = False


@dataclass
class AmodalSample:
    """One object of one image, decoded: image (H, W, 3) uint8 RGB, masks (H, W) bool."""

    image: np.ndarray
    visible: np.ndarray
    amodal: np.ndarray
    occlusion_rate: float
    category: int | str | None
    annotation_id: int | str
    image_id: int | str


class AmodalDataset:
    """Images with amodal instance annotations, in any supported format.

    ``len(dataset)`` counts the objects (stuff regions are not counted: they only hide objects);
    ``dataset[i]`` decodes object i. ``records`` lists the images in file order, each with its
    instances (stuff included) in file order; ``index`` maps object i to (record, instance).
    ``source``: the file or folder it was read from (several joined by ``" + "``; empty when built
    in memory), for records such as the model card's.
    """

    def __init__(self, records: list[ImageRecord], format_name: str, source: str = "") -> None:
        self.records = records
        self.format = format_name
        self.source = source
        self.index = [
            (r, i)
            for r, record in enumerate(records)
            for i, instance in enumerate(record.instances)
            if not instance.is_stuff
        ]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> AmodalSample:
        record_index, instance_index = self.index[item]
        record = self.records[record_index]
        image = self.load_image(record)
        visible, amodal = self.load_masks(record, [instance_index])
        return _sample(record, record.instances[instance_index], image, visible[0], amodal[0])

    def samples_of(self, record: ImageRecord) -> list[AmodalSample]:
        """Every instance of one image, decoded (the image is read once)."""
        image = self.load_image(record)
        visible, amodal = self.load_masks(record)
        return [_sample(record, inst, image, v, a) for inst, v, a in zip(record.instances, visible, amodal)]

    @staticmethod
    def load_image(record: ImageRecord) -> np.ndarray:
        """(H, W, 3) uint8 RGB image of ``record``; fills in its size."""
        image = read_rgb(record.image_path)
        size = image.shape[:2]
        if record.height is not None and (record.height, record.width) != size:
            raise ValueError(
                f"image {str(record.image_path)!r} is {size} (H, W) but its annotation says "
                f"{(record.height, record.width)}"
            )
        record.height, record.width = size
        return image

    @staticmethod
    def image_size(record: ImageRecord) -> tuple[int, int]:
        """(H, W) of ``record``'s image; read from the image file when the annotation lacks it."""
        if record.height is None:
            AmodalDataset.load_image(record)
        return record.height, record.width

    @staticmethod
    def load_masks(record: ImageRecord, which: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, H, W) bool visible and amodal masks of the chosen instances (all by default)."""
        height, width = AmodalDataset.image_size(record)
        instances = record.instances if which is None else [record.instances[i] for i in which]
        shape = (len(instances), height, width)
        visible, amodal = np.zeros(shape, bool), np.zeros(shape, bool)
        for k, instance in enumerate(instances):
            if isinstance(instance.amodal, Path):
                amodal[k], visible[k] = read_mask(instance.amodal), read_mask(instance.visible)
                continue
            amodal[k] = decode_segmentation(instance.amodal, height, width, _where(record, instance, 0))
            if instance.visible is None:
                visible[k] = amodal[k]
            else:
                visible[k] = decode_segmentation(instance.visible, height, width, _where(record, instance, 1))
        for k, instance in enumerate(instances):
            _check_visible_inside(visible[k], amodal[k], record, instance)
        return visible, amodal

    @staticmethod
    def load_occluder(record: ImageRecord, which: int) -> np.ndarray | None:
        """(H, W) bool occluder mask of instance ``which``, or None when not annotated."""
        instance = record.instances[which]
        if instance.occluder is None:
            return None
        return decode_segmentation(instance.occluder, *AmodalDataset.image_size(record), _where(record, instance, 2))


VISIBLE_OUTSIDE_NOISE = 0.05  # visible pixels outside the amodal mask up to this share: annotation noise
VISIBLE_OUTSIDE_REFUSED = 0.5  # beyond this share the two masks are not of one object


def _check_visible_inside(
    visible: np.ndarray, amodal: np.ndarray, record: ImageRecord, instance: InstanceRecord
) -> None:
    """The visible part of an object lies inside its whole: a share of the visible pixels outside
    the amodal mask above :data:`VISIBLE_OUTSIDE_NOISE` is reported (a warning: drawn by hand, the
    two masks often disagree along the border), above :data:`VISIBLE_OUTSIDE_REFUSED` refused
    (the masks belong to different objects or images)."""
    area = np.count_nonzero(visible)
    if area == 0:
        return
    outside = np.count_nonzero(visible & ~amodal) / area
    if outside <= VISIBLE_OUTSIDE_NOISE:
        return
    where = f"annotation {instance.annotation_id!r} of image {record.image_id!r} ({str(record.source or record.image_path)!r})"
    if outside > VISIBLE_OUTSIDE_REFUSED:
        raise ValueError(
            f"{where}: {outside:.0%} of its visible mask lies outside its amodal mask; the visible part of an "
            "object lies inside its whole (are the two masks swapped, or of different objects?)"
        )
    warnings.warn(
        f"{where}: {outside:.0%} of its visible mask lies outside its amodal mask (more than the "
        f"{VISIBLE_OUTSIDE_NOISE:.0%} of annotation noise)",
        stacklevel=3,
    )


def _where(record: ImageRecord, instance: InstanceRecord, which: int) -> str:
    """Names one segmentation in errors: the file, the annotation id and the field."""
    source = record.source if record.source is not None else record.image_path
    return f"{str(source)!r} annotation {instance.annotation_id!r} field {instance.fields[which]!r}"


def _required(entry: dict, key: str, what: str, path: Path) -> Any:
    """``entry[key]``, or an error naming the file, the entry and the missing key."""
    if not isinstance(entry, dict):
        raise ValueError(f"{str(path)!r}: {what} must be a JSON object; got {type(entry).__name__}")
    if key not in entry:
        raise ValueError(f"{str(path)!r}: {what} has no {key!r}")
    return entry[key]


def _rate(value: Any, what: str, path: Path) -> float | None:
    """An ``occlude_rate`` as a float in [0, 1] (None when absent), or an error naming it."""
    if value is None:
        return None
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = float("nan")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{str(path)!r}: {what} has 'occlude_rate' {value!r}; expected a number in [0, 1]")
    return rate


def _sample(record, instance, image, visible, amodal) -> AmodalSample:
    rate = instance.occlusion_rate
    if rate is None:
        rate = 1.0 - visible.sum() / max(int(amodal.sum()), 1)
    return AmodalSample(
        image=image,
        visible=visible,
        amodal=amodal,
        occlusion_rate=float(rate),
        category=instance.category,
        annotation_id=instance.annotation_id,
        image_id=record.image_id,
    )


def load_dataset(path: str | Path, images_dir: str | Path | None = None, include_stuff: bool = False) -> AmodalDataset:
    """Read an amodal dataset, detecting its format from ``path``.

    Arguments:
        path: an annotation JSON file, a folder of COCOA per-image JSON files, or a plain folder
            (``images/``, ``amodal/``, ``visible/``).
        images_dir: where the images of a JSON file are; by default the file's folder, then its
            ``images/`` subfolder.
        include_stuff: keep COCOA's stuff regions (skipped by default).
    """
    path = Path(path)
    if path.is_dir():
        if (path / "amodal").is_dir() and (path / "visible").is_dir():
            return _checked(AmodalDataset(_read_folder(path), "folder"), path)
        files = sorted(path.glob("*.json"))
        records = [_load_json(f) for f in files]
        if files and all(_is_cocoa_record(r) or _is_cocoa_list(r) for r in records):
            images = Path(images_dir) if images_dir else path
            parsed = [rec for f, r in zip(files, records) for rec in _read_cocoa(r, f, images, include_stuff)]
            return _checked(AmodalDataset(parsed, "cocoa"), path)
        raise ValueError(
            f"{str(path)!r} is a folder but neither a plain amodal folder (images/, amodal/, "
            "visible/) nor a folder of COCOA per-image JSON files"
        )
    if not path.is_file():
        raise FileNotFoundError(f"dataset {str(path)!r} does not exist")
    content = _load_json(path)
    images = Path(images_dir) if images_dir else None
    if _is_cocoa_record(content) or _is_cocoa_list(content):
        return _checked(AmodalDataset(_read_cocoa(content, path, images or path.parent, include_stuff), "cocoa"), path)
    if isinstance(content, dict) and "annotations" in content and "images" in content:
        format_name = _coco_style_format(content["annotations"], path)
        return _checked(AmodalDataset(_read_coco_style(content, format_name, path, images), format_name), path)
    raise ValueError(
        f"{str(path)!r} matches no supported amodal format; expected one of: "
        + "; ".join(f"{name}: {keys}" for name, keys in FORMAT_KEYS.items())
    )


def _checked(dataset: AmodalDataset, path: Path) -> AmodalDataset:
    """``dataset`` when no two of its images share an id (predictions and scores are keyed by
    it); otherwise a ValueError naming the id and ``path``."""
    seen: dict = {}
    for record in dataset.records:
        if record.image_id in seen:
            raise ValueError(
                f"image id {record.image_id!r} names two images in {str(path)!r} ({str(seen[record.image_id])!r} and "
                f"{str(record.image_path)!r}): each image needs its own id"
            )
        seen[record.image_id] = record.image_path
    dataset.source = str(path)
    return dataset


def combine_datasets(datasets: list[AmodalDataset]) -> AmodalDataset:
    """One dataset of every image of ``datasets``, in order (their records are shared, not copied);
    its format names theirs joined by ``+`` (``"cocoa-cls+cocoa"``), each once."""
    if not datasets:
        raise ValueError("combine_datasets needs at least one dataset")
    if len(datasets) == 1:
        return datasets[0]
    formats = list(dict.fromkeys(d.format for d in datasets))
    sources = " + ".join(d.source for d in datasets if d.source)
    return AmodalDataset([record for d in datasets for record in d.records], "+".join(formats), sources)


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from error


def _is_cocoa_record(content: Any) -> bool:
    return isinstance(content, dict) and isinstance(content.get("regions"), list)


def _is_cocoa_list(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(_is_cocoa_record(c) for c in content)


def _coco_style_format(annotations: list, path: Path) -> str:
    if not isinstance(annotations, list) or not all(isinstance(a, dict) for a in annotations):
        raise ValueError(f"{str(path)!r}: 'annotations' must be a list of JSON objects")
    keys = set().union(*(a.keys() for a in annotations)) if annotations else set()
    if {"a_segm", "i_segm"} <= keys:
        return "kins_2020"
    if {"segmentation", "inmodal_seg"} <= keys:
        return "kins_legacy"
    if {"segmentation", "visible_mask"} <= keys:
        return "cocoa_cls"
    raise ValueError(
        f"{str(path)!r} has COCO-style images/annotations, but its annotation keys "
        f"{sorted(keys)} match no amodal format; expected one of: "
        + "; ".join(f"{n}: {FORMAT_KEYS[n]}" for n in ("cocoa_cls", "kins_2020", "kins_legacy"))
    )


def _find_image(candidates: list[Path]) -> Path:
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return candidates[0]  # reading it later gives an error naming the path


def find_coco_image(annotation_file: Path, file_name: str, images_dir: Path | None) -> Path:
    """Where a COCO-style file's image is: in ``images_dir`` when given, else beside the file,
    else in its ``images/`` folder (the first candidate when none exists)."""
    roots = [images_dir] if images_dir else [annotation_file.parent, annotation_file.parent / "images"]
    return _find_image([root / file_name for root in roots])


def _read_coco_style(content: dict, format_name: str, path: Path, images_dir: Path | None) -> list[ImageRecord]:
    amodal_key, visible_key = {
        "cocoa_cls": ("segmentation", "visible_mask"),
        "kins_2020": ("a_segm", "i_segm"),
        "kins_legacy": ("segmentation", "inmodal_seg"),
    }[format_name]
    records: dict = {}
    for number, image in enumerate(content["images"]):
        image_id = _required(image, "id", f"images[{number}]", path)
        if image_id in records:
            raise ValueError(
                f"image id {image_id!r} appears twice in 'images' of {str(path)!r} (the second at images[{number}]): "
                "each image needs its own id, or its annotations would be scored against another image"
            )
        records[image_id] = ImageRecord(
            image_id=image_id,
            image_path=find_coco_image(path, _required(image, "file_name", f"image {image_id!r}", path), images_dir),
            height=image.get("height"),
            width=image.get("width"),
            source=path,
            scene_only=image.get("scene_only") is True,
        )
    annotation_ids: set = set()
    for number, annotation in enumerate(content["annotations"]):
        what = (
            f"annotation {annotation.get('id', number)!r}" if isinstance(annotation, dict) else f"annotations[{number}]"
        )
        if isinstance(annotation, dict) and annotation.get("id") is not None:
            if annotation["id"] in annotation_ids:
                raise ValueError(
                    f"annotation id {annotation['id']!r} appears twice in {str(path)!r} (the second at "
                    f"annotations[{number}]): each annotation needs its own id, or its predictions are ambiguous"
                )
            annotation_ids.add(annotation["id"])
        amodal, visible = _required(annotation, amodal_key, what, path), _required(annotation, visible_key, what, path)
        if annotation.get("image_id") not in records:
            raise ValueError(
                f"annotation {annotation.get('id')!r} in {str(path)!r} names image_id "
                f"{annotation.get('image_id')!r}, which 'images' does not list"
            )
        rate = annotation.get("occlude_rate")
        records[annotation["image_id"]].instances.append(
            InstanceRecord(
                annotation_id=annotation.get("id"),
                amodal=amodal,
                visible=visible,
                category=annotation.get("category_id"),
                occlusion_rate=_rate(rate, what, path),
                occluder=annotation.get("occluder_mask"),
                order=annotation.get("order"),
                fields=(amodal_key, visible_key, "occluder_mask"),
            )
        )
    return [r for r in records.values() if r.instances]


def _read_cocoa(content: Any, path: Path, images_dir: Path, include_stuff: bool) -> list[ImageRecord]:
    records = []
    for number, record in enumerate(content if isinstance(content, list) else [content]):
        url_name = Path(str(record.get("url", ""))).name
        candidates = [path.with_suffix(s) for s in IMAGE_SUFFIXES] if not isinstance(content, list) else []
        if url_name:
            candidates += [images_dir / url_name, path.parent / url_name]
        image_id = record.get("image_id", f"{path.stem}:{number}")
        if not candidates:
            raise ValueError(f"COCOA record {image_id!r} in {str(path)!r} has no 'url' to find its image by")
        instances = []
        for index, region in enumerate(record["regions"]):
            amodal = _required(region, "segmentation", f"record {image_id!r} region {index}", path)
            is_stuff = str(region.get("isStuff", 0)) in ("1", "True", "true")
            if is_stuff and not include_stuff:
                continue
            rate = region.get("occlude_rate")
            instances.append(
                InstanceRecord(
                    annotation_id=index,
                    amodal=amodal,
                    visible=region.get("visible_mask"),  # absent: unoccluded, visible = amodal
                    category=str(region.get("name", "")).strip() or None,
                    occlusion_rate=_rate(rate, f"record {image_id!r} region {index}", path),
                    order=region.get("order"),
                    is_stuff=is_stuff,
                )
            )
        records.append(
            ImageRecord(image_id=image_id, image_path=_find_image(candidates), instances=instances, source=path)
        )
    return [r for r in records if r.instances]


def _read_folder(root: Path) -> list[ImageRecord]:
    images = {p.stem: p for p in sorted((root / "images").iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    records: dict = {}
    for amodal_path in mask_folder_files(root / "amodal", "amodal folder"):
        name, _, number = amodal_path.stem.rpartition("_")
        if not name or not number.isdigit():
            raise ValueError(f"{str(amodal_path)!r}: amodal masks must be named NAME_K.png (K a number)")
        if name not in images:
            raise ValueError(f"{str(amodal_path)!r} has no image {name}.* in {str(root / 'images')!r}")
        visible_path = root / "visible" / amodal_path.name
        if not visible_path.is_file():
            raise ValueError(f"{str(amodal_path)!r} has no visible mask {str(visible_path)!r} (same file name)")
        record = records.setdefault(name, ImageRecord(image_id=name, image_path=images[name]))
        record.instances.append(
            InstanceRecord(annotation_id=amodal_path.stem, amodal=amodal_path, visible=visible_path)
        )
    for record in records.values():
        record.instances.sort(key=lambda inst: int(str(inst.annotation_id).rpartition("_")[2]))
    return list(records.values())
