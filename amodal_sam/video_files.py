"""A video's masks as files: the visible masks read per frame, the amodal masks written out.

Visible masks: one PNG per frame in a folder, named by the frame's stem (``00012.png`` for frame
``00012.jpg``, or for the 13th frame of a video file). A binary mask (values 0 and 255, or 0 and
1) is one object (id 1); any other one-channel PNG is an index map, 0 = background, k = object k
(palette index 255 is void, as DAVIS draws it). An object missing from a frame is allowed.

Outputs, written into a temporary folder that replaces ``OUT`` whole at the end:

- one object: ``OUT/<stem>.png`` per frame; several: ``OUT/<k>/<stem>.png`` per object k;
- ``OUT/video.json``: ``{"objects": [k, ...], "frames": [{"frame": stem, "objects": {k: {"score":
  float | null, "hidden_share": float, "layer": int}}}, ...]}`` (score null where the object is
  not visible; layer -1 there, else its depth layer in the frame, 0 = nothing in front).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from amodal_sam.atomic import atomic_folder
from amodal_sam.image_io import write_mask, write_rgb
from amodal_sam.mask_files import read_index_map

VIDEO_JSON = "video.json"
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


def read_visible_frame(folder: str | Path, frame: str, size: tuple[int, int]) -> np.ndarray:
    """Frame ``frame``'s visible masks from ``folder/<frame>.png`` as an (H, W) int64 index map
    (a binary mask becomes object 1); errors name the frame and file."""
    path = Path(folder) / f"{frame}.png"
    if not path.is_file():
        raise FileNotFoundError(f"frame {frame} has no visible mask: {str(path)!r} does not exist")
    indices = visible_index_map(path, f"visible mask of frame {frame}")
    if indices.shape != tuple(size):
        raise ValueError(
            f"the visible mask of frame {frame} ({str(path)!r}) is {indices.shape[1]} x {indices.shape[0]}; "
            f"the frames are {size[1]} x {size[0]}"
        )
    return indices


def visible_index_map(path: Path, what: str) -> np.ndarray:
    """One visible-mask PNG as an (H, W) int64 index map: a binary mask (values 0 and 255 only)
    becomes object 1, any other map is read as it is (:func:`read_index_map`, errors naming
    ``what``)."""
    indices = read_index_map(path, what)
    if set(np.unique(indices).tolist()) <= {0, 255}:
        return (indices == 255).astype(np.int64)
    return indices


def check_video_output(out: str | Path, inputs: list[str | Path], overlay: str | Path | None = None) -> None:
    """Refuse, before any compute, an ``--out`` folder that is or holds an input, or that holds
    anything but an earlier video output (it is replaced whole), and an ``--overlay`` inside it
    or on an input."""
    out = Path(out)
    resolved = out.resolve()
    for given in [*inputs, *([overlay] if overlay is not None else [])]:
        source = Path(given).resolve()
        if source == resolved or resolved in source.parents:
            what = "--overlay" if given is overlay else f"the input {str(given)!r}"
            raise ValueError(
                f"--out {str(out)!r} would replace {what}: the output folder is replaced whole; choose another"
            )
    if out.is_dir():
        foreign = sorted(e.name for e in out.iterdir() if not _is_video_output(e))
        if foreign:
            raise ValueError(
                f"--out {str(out)!r} holds files that are not a video's outputs ({', '.join(foreign[:5])}): it is "
                "replaced whole on each run, so it must be new, empty, or an earlier video output"
            )


def _is_video_output(entry: Path) -> bool:
    if entry.is_dir():
        return entry.name.isdigit() and all(p.suffix == ".png" for p in entry.iterdir())
    return entry.name == VIDEO_JSON or entry.suffix == ".png"


class VideoOutput:
    """Writes a video's amodal masks frame by frame into ``folder`` (made by :func:`video_output`).

    Arguments:
        folder: where the masks go.
        several: one folder per object (``<k>/``); else one object's masks in ``folder``.
        overlay: also write an overlay picture per frame: a folder of PNGs, or an MP4 / AVI video.
        fps: frames per second of an overlay video.
    """

    def __init__(self, folder: Path, several: bool, overlay: str | Path | None = None, fps: float = 10.0) -> None:
        self.folder = folder
        self.several = several
        self.overlay = None if overlay is None else Path(overlay)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] = (0, 0)
        self.objects: set[int] = set()
        self.frames: list[dict] = []

    def add(
        self,
        stem: str,
        ids: list[int],
        amodal: np.ndarray,
        visible: np.ndarray,
        scores: np.ndarray,
        layers: np.ndarray,
        picture: np.ndarray | None = None,
    ) -> None:
        """One frame: its objects' ids, (N, H, W) bool ``amodal`` / ``visible``, (N,) ``scores``
        (NaN: not visible) and ``layers``, and its overlay ``picture`` (H', W', 3) RGB."""
        if not self.several and ids != [1]:
            raise ValueError(f"frame {stem} holds objects {ids}; a single-object video has object 1 only")
        record = {}
        for row, k in enumerate(ids):
            target = self.folder / str(k) if self.several else self.folder
            target.mkdir(exist_ok=True)
            write_mask(target / f"{stem}.png", amodal[row])
            area = max(int(amodal[row].sum()), 1)
            record[str(k)] = {
                "score": None if np.isnan(scores[row]) else round(float(scores[row]), 6),
                "hidden_share": round(float(np.count_nonzero(amodal[row] & ~visible[row]) / area), 6),
                "layer": int(layers[row]),
            }
        self.objects |= set(ids)
        self.frames.append({"frame": stem, "objects": record})
        if picture is not None and self.overlay is not None:
            self._write_picture(stem, picture)

    def _write_picture(self, stem: str, picture: np.ndarray) -> None:
        """Write one overlay picture; a video's frames all take the first's size (a later picture
        padded with black or cut at the right and bottom)."""
        if self.overlay.suffix.lower() not in VIDEO_SUFFIXES:
            self.overlay.mkdir(parents=True, exist_ok=True)
            write_rgb(self.overlay / f"{stem}.png", picture)
            return
        if self._writer is None:
            fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.overlay.suffix.lower() == ".mp4" else "MJPG"))
            self._writer = cv2.VideoWriter(str(self.overlay), fourcc, self.fps, (picture.shape[1], picture.shape[0]))
            if not self._writer.isOpened():
                raise ValueError(f"--overlay {str(self.overlay)!r}: OpenCV cannot write this video format")
            self._size = picture.shape[:2]
        fitted = np.zeros((*self._size, 3), np.uint8)
        height, width = min(self._size[0], picture.shape[0]), min(self._size[1], picture.shape[1])
        fitted[:height, :width] = picture[:height, :width]
        self._writer.write(cv2.cvtColor(fitted, cv2.COLOR_RGB2BGR))

    def release(self) -> None:
        """Finish the overlay video, if one is being written."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def write_json(self) -> None:
        """``video.json``: every object and each frame's records."""
        content = {"objects": sorted(self.objects), "frames": self.frames}
        (self.folder / VIDEO_JSON).write_text(json.dumps(content, indent=1) + "\n")


@contextmanager
def video_output(
    out: str | Path, several: bool, overlay: str | Path | None = None, fps: float = 10.0
) -> Iterator[VideoOutput]:
    """A :class:`VideoOutput` writing into a temporary folder that replaces ``out`` whole once the
    block ends without error (with ``video.json``); on an error ``out`` stays as it was."""
    with atomic_folder(out) as folder:
        output = VideoOutput(folder, several, overlay, fps)
        try:
            yield output
        finally:
            output.release()
        output.write_json()
