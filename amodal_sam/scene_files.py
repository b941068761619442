"""A scene's masks as files: the visible masks read from a folder or an index PNG, the amodal
masks and ``scene.json`` written out.

``scene.json``::

    {"instances": [{"mask": <input file name or index>, "amodal": <output file name>,
                    "score": float, "layer": int, "hidden_share": float}, ...],
     "occludes": [[i, j], ...],     # i lies in front of j; indices into "instances" (input order)
     "broken": [[i, j], ...]}       # edges dropped to break occlusion cycles
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from amodal_sam.atomic import atomic_output
from amodal_sam.image_io import read_mask, write_mask
from amodal_sam.scene import Scene

SCENE_JSON = "scene.json"


@dataclass
class SceneMasks:
    """Visible masks read from files: (N, H, W) bool ``masks`` and what names each in
    ``scene.json``: the file name (folder input) or the index value (index PNG)."""

    masks: np.ndarray
    names: list[str | int]


def read_scene_masks(path: str | Path, image_size: tuple[int, int], argument: str = "--masks") -> SceneMasks:
    """Visible masks from a folder of PNG masks (one per object, non-zero = object, in sorted
    file-name order) or from one index PNG (0 = background, k > 0 = object k, in increasing k;
    palette PNGs such as DAVIS annotations keep their indices). Every mask must be of the
    image's (H, W) ``image_size``; errors name ``argument`` and the file."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png")
        if not files:
            raise ValueError(f"{argument} folder {str(path)!r} holds no .png masks (one per object)")
        masks = [read_mask(f) for f in files]
        for file, mask in zip(files, masks):
            _check_size(mask.shape, image_size, argument, file)
        return SceneMasks(np.stack(masks), [f.name for f in files])
    if not path.is_file():
        raise ValueError(f"{argument} {str(path)!r} is neither a folder of masks nor an index PNG")
    try:
        with Image.open(path) as picture:
            indices = np.asarray(picture)
    except OSError as error:
        raise ValueError(f"{argument} {str(path)!r} is not a readable image: {error}") from error
    if indices.ndim != 2:
        raise ValueError(
            f"{argument} {str(path)!r} has shape {indices.shape}: an index PNG has one channel "
            "(0 = background, k = object k); give a folder for one mask per object"
        )
    _check_size(indices.shape, image_size, argument, path)
    values = [int(v) for v in np.unique(indices) if v != 0]
    return SceneMasks(np.stack([indices == v for v in values]) if values else np.zeros((0, *image_size), bool), values)


def _check_size(shape: tuple[int, ...], image_size: tuple[int, int], argument: str, file: Path) -> None:
    if tuple(shape[:2]) != tuple(image_size):
        raise ValueError(
            f"{argument}: {str(file)!r} is {tuple(shape[:2])} (H, W) but the image is {tuple(image_size)}; "
            "masks must match the image size"
        )


def write_scene(out_dir: str | Path, scene: Scene, names: list[str | int]) -> dict:
    """Write one amodal PNG per object (``amodal_K.png``, K the object's position) and
    ``scene.json`` into ``out_dir``, each atomically; returns the JSON content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(max(len(scene) - 1, 0))))
    instances = []
    for index, (name, amodal) in enumerate(zip(names, scene.amodal)):
        file_name = f"amodal_{index:0{width}d}.png"
        write_mask(out_dir / file_name, amodal)
        instances.append(
            {
                "mask": name,
                "amodal": file_name,
                "score": round(float(scene.scores[index]), 6),
                "layer": int(scene.layers[index]),
                "hidden_share": round(float(scene.hidden_share[index]), 6),
            }
        )
    content = {
        "instances": instances,
        "occludes": [[int(i), int(j)] for i, j in zip(*np.nonzero(scene.occludes))],
        "broken": [[int(i), int(j)] for i, j in scene.broken],
    }
    with atomic_output(out_dir / SCENE_JSON) as temporary:
        temporary.write_text(json.dumps(content, indent=2) + "\n")
    return content
