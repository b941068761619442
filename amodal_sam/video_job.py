"""One video from files to files: frames and a folder of visible masks in, amodal masks out.

What ``amodal-sam video`` runs (the CLI only parses arguments): frames stream through
:meth:`AmodalVideoPredictor.propagate` and each frame's masks are written as it is done, unless
``bidirectional`` asks for both directions (then every frame is observed first, and the masks are
written at the end). Output layout: :mod:`amodal_sam.video_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amodal_sam.video import AmodalVideoPredictor, frame_files, iter_frames, video_tracks
from amodal_sam.video_files import video_output, visible_index_map
from amodal_sam.visualize import video_overlay


@dataclass(frozen=True)
class VideoSummary:
    """What a run did: ``frames`` written, ``objects`` ids, ``scene`` mode or not."""

    frames: int
    objects: list[int]
    scene: bool


def objects_in_folder(visible: str | Path) -> list[int]:
    """Every object id in a folder of per-frame visible PNGs (:func:`visible_index_map`'s rules:
    a binary mask is object 1)."""
    ids: set[int] = set()
    for path in sorted(Path(visible).glob("*.png")):
        ids |= set(np.unique(visible_index_map(path, f"visible mask {path.name}")).tolist()) - {0}
    if not ids:
        raise ValueError(f"--visible {str(visible)!r} holds no PNG with an object in it")
    return sorted(ids)


def check_visible_files(frames: str | Path, visible: str | Path) -> None:
    """Before any compute: every frame of a frames folder has its visible PNG; a missing one is
    an error naming the frame (a video file's frames are checked as they are read)."""
    if not Path(visible).is_dir():
        raise FileNotFoundError(f"--visible {str(visible)!r} is not a folder of per-frame PNGs")
    if not Path(frames).is_dir():
        return
    stems = [p.stem for p in frame_files(Path(frames))]
    missing = [s for s in stems if not (Path(visible) / f"{s}.png").is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise FileNotFoundError(
            f"frame {missing[0]}{more} has no visible mask: {str(Path(visible) / (missing[0] + '.png'))!r} does not exist"
        )


def complete_video_files(
    video: AmodalVideoPredictor,
    frames: str | Path,
    visible: str | Path,
    out: str | Path,
    *,
    overlay: str | Path | None = None,
    bidirectional: bool = False,
    fps: float = 10.0,
    progress: bool = True,
) -> VideoSummary:
    """Complete every object of a video (``frames``: a folder of images or a video file) from the
    visible masks in ``visible`` (one PNG per frame stem) and write them under ``out``; scene mode
    when the folder holds several objects (:func:`objects_in_folder`). ``overlay``: a folder of PNGs or an .mp4 / .avi."""
    check_visible_files(frames, visible)
    objects = objects_in_folder(visible)
    several = len(objects) > 1
    count, seen = 0, set()
    with video_output(out, several, overlay, fps) as output:
        if bidirectional:
            observations = video.observe_video(frames, visible, scene=several, progress=progress)
            tracks = video_tracks(observations, video.rule, bidirectional=True)
            ids = sorted(tracks)  # every object is in every frame's observation
            pictures = iter_frames(frames) if overlay else None  # frames read again only to draw on
            for t, (name, _) in enumerate(observations):
                amodal = np.stack([tracks[i].amodal[t] for i in ids])
                shown = np.stack([tracks[i].visible[t] for i in ids])
                layers = np.array([tracks[i].layers[t] for i in ids])
                scores = np.array([tracks[i].scores[t] for i in ids])
                picture = (
                    None if pictures is None else video_overlay(next(pictures)[1], ids, shown, amodal, layers, objects)
                )
                output.add(name, ids, amodal, shown, scores, layers, picture)
                count, seen = count + 1, seen | set(ids)
        else:
            state = video.init_state(frames)
            for _, ids, result in video.propagate(state, visible, scene=several, progress=progress):
                picture = (
                    video_overlay(state.frame, ids, result.visible, result.amodal, result.layers, objects)
                    if overlay
                    else None
                )
                output.add(state.names[-1], ids, result.amodal, result.visible, result.scores, result.layers, picture)
                count, seen = count + 1, seen | set(ids)
    return VideoSummary(frames=count, objects=sorted(seen), scene=several)
