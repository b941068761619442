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
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal_sam.atomic import atomic_folder
from amodal_sam.canvas import Canvas
from amodal_sam.image_io import write_mask
from amodal_sam.mask_files import mask_folder_files, read_index_map, read_mask
from amodal_sam.scene import Scene

SCENE_JSON = "scene.json"


@dataclass
class SceneMasks:
    """Visible masks read from files: (N, H, W) bool ``masks`` and what names each in
    ``scene.json``: the file name (folder input) or the index value (index PNG)."""

    masks: np.ndarray
    names: list[str | int]


def read_scene_masks(path: str | Path, image_size: tuple[int, int], argument: str = "--masks") -> SceneMasks:
    """Visible masks from a folder of mask files (one per object, in sorted file-name order) or
    from one index map (0 = background, k > 0 = object k, in increasing k), read by the
    conventions of :mod:`amodal_sam.mask_files` (alpha cut-outs, palette void, lossy files). Every
    mask must be of the image's (H, W) ``image_size``; errors name ``argument`` and the file."""
    path = Path(path)
    if path.is_dir():
        files = mask_folder_files(path, f"{argument} folder")
        masks = np.zeros((len(files), *image_size), dtype=bool)
        for index, file in enumerate(files):
            mask = read_mask(file, f"{argument} file")
            _check_size(mask.shape, image_size, argument, file)
            masks[index] = mask
        return SceneMasks(masks, [f.name for f in files])
    if not path.is_file():
        raise ValueError(f"{argument} {str(path)!r} is neither a folder of masks nor an index map")
    indices = read_index_map(path, argument)
    _check_size(indices.shape, image_size, argument, path)
    values = [int(v) for v in np.unique(indices) if v != 0]
    masks = np.zeros((len(values), *image_size), dtype=bool)
    for row, value in enumerate(values):
        masks[row] = indices == value
    return SceneMasks(masks, values)


def _check_size(shape: tuple[int, ...], image_size: tuple[int, int], argument: str, file: Path) -> None:
    if tuple(shape[:2]) != tuple(image_size):
        raise ValueError(
            f"{argument}: {str(file)!r} is {tuple(shape[:2])} (H, W) but the image is {tuple(image_size)}; "
            "masks must match the image size"
        )


def check_scene_output(
    out_dir: str | Path, inputs: list[str | Path], argument: str = "--out", overlay: str | Path | None = None
) -> None:
    """Refuse an output folder a scene must not be written to, before any compute: one that is
    one of ``inputs`` (the image, the masks folder or index map) or holds one of them, or one
    that holds anything but a scene's own outputs (``scene.json``, ``amodal_K.png``,
    ``visible_K.png``): the folder is replaced whole (:func:`write_scene`), so nothing else may
    live in it. An ``overlay`` picture (``--overlay``) must not be an input, lie in a masks
    folder (the next run would read it as an object) or in the output folder."""
    out_dir = Path(out_dir)
    resolved = out_dir.resolve()
    if overlay is not None:
        _check_overlay(Path(overlay), out_dir, argument, inputs)
    for given in inputs:
        source = Path(given).resolve()
        if source == resolved or source.parent == resolved:
            raise ValueError(
                f"{argument} {str(out_dir)!r} would overwrite the input {str(given)!r}: the output folder is "
                "replaced whole on each run; choose another folder"
            )
    if not out_dir.is_dir():
        return
    foreign = sorted(entry.name for entry in out_dir.iterdir() if not _is_scene_output(entry))
    if foreign:
        raise ValueError(
            f"{argument} {str(out_dir)!r} holds files that are not a scene's outputs ({', '.join(foreign[:5])}"
            + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            + "): the output folder is replaced whole on each run, so it must be new, empty, or an earlier "
            "scene output"
        )


def _check_overlay(overlay: Path, out_dir: Path, argument: str, inputs: list[str | Path]) -> None:
    """:func:`check_scene_output`'s rule for the overlay picture."""
    path = overlay.resolve()
    for given in inputs:
        source = Path(given).resolve()
        if path == source or (source.is_dir() and path.parent == source):
            raise ValueError(
                f"--overlay {str(overlay)!r} would overwrite or join the input {str(given)!r}; write it elsewhere"
            )
    if path.parent == out_dir.resolve():
        raise ValueError(
            f"--overlay {str(overlay)!r} lies in {argument} {str(out_dir)!r}, which is replaced whole on each run; "
            "write it elsewhere"
        )


def _is_scene_output(entry: Path) -> bool:
    """``entry`` is a file a scene run writes."""
    return entry.is_file() and (
        entry.name == SCENE_JSON or re.fullmatch(r"(amodal|visible)_\d+\.png", entry.name) is not None
    )


def write_scene(
    out_dir: str | Path,
    scene: Scene,
    names: list[str | int],
    write_visible: bool = False,
    canvas: Canvas | None = None,
) -> dict:
    """Publish a scene in ``out_dir`` as one unit: one amodal PNG per object (``amodal_K.png``, K
    the object's position), with ``write_visible`` its visible mask too (``visible_K.png``), and
    ``scene.json``, written in a temporary folder that then replaces ``out_dir`` whole
    (:func:`amodal_sam.atomic.atomic_folder`): a reader sees the earlier run or this one, never a
    mix, and no file of an earlier run stays behind. With a ``canvas`` (beyond the frame; the
    scene's own, or the image itself for a margin of 0) ``scene.json`` records it
    (:meth:`Canvas.to_json`). Returns the JSON content."""
    width = max(3, len(str(max(len(scene) - 1, 0))))
    shares, scores = scene.hidden_share, scene.scores
    with atomic_folder(out_dir) as staging:
        instances = []
        for index, (name, amodal) in enumerate(zip(names, scene.amodal)):
            file_name = f"amodal_{index:0{width}d}.png"
            write_mask(staging / file_name, amodal)
            if write_visible:
                write_mask(staging / f"visible_{index:0{width}d}.png", scene.visible[index])
            instances.append(
                {
                    "mask": name,
                    "amodal": file_name,
                    "score": round(float(scores[index]), 6),
                    "layer": int(scene.layers[index]),
                    "hidden_share": round(float(shares[index]), 6),
                }
            )
        content = {
            "instances": instances,
            "occludes": [[int(i), int(j)] for i, j in zip(*np.nonzero(scene.occludes))],
            "broken": [[int(i), int(j)] for i, j in scene.broken],
            **({} if canvas is None else canvas.to_json()),
        }
        (staging / SCENE_JSON).write_text(json.dumps(content, indent=2) + "\n")
    return content
