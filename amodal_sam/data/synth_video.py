"""Synthetic occlusion clips: an occluder slides across, or parks over, an object tracked in video.

A clip is a window of consecutive frames of one sequence of ``FRAME.jpg`` + ``FRAME.png`` pairs
(DAVIS layout: one object per sequence, its mask the PNG) with an occluder, an object cut out of
another sequence, pasted over every frame along a path through where the object is at the clip's
middle frame:

- ``slide``: the occluder crosses the frame in a straight line at constant speed, so the hidden
  share of the object rises to a peak and falls;
- ``park``: it slides in over the first third of the clip and then stays where it stopped while
  the object moves on behind it (a pedestrian behind a parked car).

Its size makes it hide about ``peak`` of the object at the middle frame (up to all of it). The
truth is the object's own mask in every frame; the visible masks are an index map per frame
(1 = the object's visible part, 2 = the occluder: what scene mode reads). Deterministic per seed.

Written clip folder: ``frames/<stem>.jpg``, ``visible/<stem>.png`` (index map), ``amodal/<stem>.png``
(the object's truth, 0 / 255) and ``clip.json`` (sources, motion, per-frame hidden share).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from amodal_sam.atomic import atomic_folder
from amodal_sam.data.synth import Cutout, paste, placed_mask, scaled_cutout
from amodal_sam.geometry import mask_boxes
from amodal_sam.image_io import read_rgb, write_mask, write_rgb
from amodal_sam.mask_files import read_mask

MOTIONS = ("slide", "park")
TARGET_INDEX, OCCLUDER_INDEX = 1, 2
_SCALE_STEPS = 16


@dataclass(frozen=True)
class ClipOptions:
    """How occlusion clips are made.

    Attributes:
        length: frames per clip (a sequence with fewer gives all of its frames).
        peak_range: (low, high) share of the object the occluder hides at the clip's middle frame.
        motions: the occluder paths drawn from (:data:`MOTIONS`).
        seed: the same seed and sequences give the same clips, byte for byte.
        max_side: downscale frames whose longest side is larger (None: keep sizes).
    """

    length: int = 16
    peak_range: tuple[float, float] = (0.5, 1.0)
    motions: tuple[str, ...] = MOTIONS
    seed: int = 0
    max_side: int | None = 480

    def __post_init__(self) -> None:
        if self.length < 3:
            raise ValueError(f"length must be at least 3 frames; got {self.length}")
        low, high = self.peak_range
        if not 0.0 < low <= high <= 1.0:
            raise ValueError(f"peak_range must satisfy 0 < low <= high <= 1; got {self.peak_range}")
        unknown = [m for m in self.motions if m not in MOTIONS]
        if unknown or not self.motions:
            raise ValueError(f"motions must be some of {MOTIONS}; got {self.motions}")


@dataclass
class OcclusionClip:
    """One clip, T frames of (H, W).

    Attributes:
        frames: (T, H, W, 3) uint8 RGB, the occluder pasted in.
        visible: (T, H, W) uint8 index map: 1 = the object's visible part, 2 = the occluder.
        amodal: (T, H, W) bool, the object's whole mask (the truth).
        stems: T frame names (the source sequence's).
        info: where it came from: ``target``, ``occluder``, ``motion``, ``peak``.
    """

    frames: np.ndarray
    visible: np.ndarray
    amodal: np.ndarray
    stems: list[str]
    info: dict = field(default_factory=dict)

    @property
    def hidden_share(self) -> np.ndarray:
        """(T,) share of the object hidden in each frame (0 where it has no pixels)."""
        hidden = (self.amodal & (self.visible != TARGET_INDEX)).sum(axis=(1, 2))
        return hidden / np.maximum(self.amodal.sum(axis=(1, 2)), 1)


def sequence_frames(sequence: Path) -> list[tuple[Path, Path]]:
    """(image, mask) paths of a sequence folder, in frame order: every ``X.jpg`` with an ``X.png``."""
    pairs = [(image, image.with_suffix(".png")) for image in sorted(sequence.glob("*.jpg"))]
    pairs = [(image, mask) for image, mask in pairs if mask.is_file()]
    if not pairs:
        raise FileNotFoundError(f"sequence folder {str(sequence)!r} holds no FRAME.jpg + FRAME.png pairs")
    return pairs


def _downscale(image: np.ndarray, mask: np.ndarray, max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    height, width = mask.shape
    if max_side is None or max(height, width) <= max_side:
        return image, mask
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) > 0.5
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), small


def _occluder_cutout(pairs: list[tuple[Path, Path]], rng: np.random.Generator, max_side: int | None) -> Cutout:
    """The object of a random frame of an occluder sequence, cut out with its mask."""
    image_path, mask_path = pairs[int(rng.integers(len(pairs)))]
    image, mask = _downscale(read_rgb(image_path), read_mask(mask_path), max_side)
    x0, y0, x1, y1 = mask_boxes(mask[None])[0].astype(int)
    box = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    return Cutout(image[box], mask[box])


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _sized_for_peak(cutout: Cutout, target: np.ndarray, peak: float) -> Cutout:
    """``cutout`` scaled so that, centred on the ``target`` mask's centroid, it hides about
    ``peak`` of it (bisection on the scale; the largest tried when even that hides less)."""
    center, area = _centroid(target), target.sum()
    low, high = 0.05, 4.0 * np.sqrt(target.size / max(cutout.mask.sum(), 1))
    for _ in range(_SCALE_STEPS):
        middle = (low + high) / 2
        hidden = (target & placed_mask(target.shape, scaled_cutout(cutout, middle).mask, center)).sum() / area
        low, high = (low, middle) if hidden >= peak else (middle, high)
    return scaled_cutout(cutout, high)


def occluder_path(motion: str, center: np.ndarray, travel: float, angle: float, length: int) -> np.ndarray:
    """(T, 2) occluder centres (x, y): ``slide`` from ``center - travel * d`` to ``center + travel
    * d`` (d the unit vector at ``angle``), through ``center`` at the middle frame; ``park`` from
    ``center + travel * d`` to ``center`` over the first third of the frames, then still."""
    direction = np.array([np.cos(angle), np.sin(angle)])
    t = np.arange(length, dtype=np.float64)
    if motion == "slide":
        offsets = travel * (2 * t / (length - 1) - 1)
    elif motion == "park":
        arrive = max(1, length // 3)
        offsets = travel * np.clip(1 - t / arrive, 0, 1)
    else:
        raise ValueError(f"motion must be one of {MOTIONS}; got {motion!r}")
    return center + offsets[:, None] * direction


def make_clip(
    target: list[tuple[Path, Path]],
    occluder: list[tuple[Path, Path]],
    options: ClipOptions,
    rng: np.random.Generator,
) -> OcclusionClip:
    """One clip from ``target``'s frames (a window of ``options.length``) and an object of
    ``occluder``'s (see the module docstring)."""
    start = int(rng.integers(max(1, len(target) - options.length + 1)))
    window = target[start : start + options.length]
    loaded = [_downscale(read_rgb(i), read_mask(m), options.max_side) for i, m in window]
    frames = np.stack([image for image, _ in loaded])
    amodal = np.stack([mask for _, mask in loaded])
    middle = len(window) // 2
    motion = options.motions[int(rng.integers(len(options.motions)))]
    peak = float(rng.uniform(*options.peak_range))
    cutout = _sized_for_peak(_occluder_cutout(occluder, rng, options.max_side), amodal[middle], peak)
    travel = 0.5 * (np.hypot(*cutout.mask.shape) + np.hypot(*np.ptp(np.argwhere(amodal[middle]), axis=0)))
    path = occluder_path(motion, _centroid(amodal[middle]), travel, rng.uniform(0, 2 * np.pi), len(window))
    visible = np.zeros(amodal.shape, np.uint8)
    for t in range(len(window)):
        placed = paste(frames[t], cutout, path[t])
        visible[t][amodal[t] & ~placed] = TARGET_INDEX
        visible[t][placed] = OCCLUDER_INDEX
    info = {"target": window[0][0].parent.name, "occluder": occluder[0][0].parent.name, "motion": motion, "peak": peak}
    return OcclusionClip(frames, visible, amodal, [image.stem for image, _ in window], info)


def write_clip(clip: OcclusionClip, folder: str | Path) -> None:
    """Write ``clip`` as the module docstring's folder layout, all at once (a temporary folder
    renamed into place)."""
    with atomic_folder(folder) as out:
        for sub in ("frames", "visible", "amodal"):
            (out / sub).mkdir()
        for t, stem in enumerate(clip.stems):
            write_rgb(out / "frames" / f"{stem}.jpg", clip.frames[t])
            cv2.imwrite(str(out / "visible" / f"{stem}.png"), clip.visible[t])
            write_mask(out / "amodal" / f"{stem}.png", clip.amodal[t])
        info = {**clip.info, "frames": clip.stems, "hidden_share": [round(float(s), 4) for s in clip.hidden_share]}
        (out / "clip.json").write_text(json.dumps(info, indent=1))


def read_clip(folder: str | Path) -> OcclusionClip:
    """A clip written by :func:`write_clip`."""
    folder = Path(folder)
    info = json.loads((folder / "clip.json").read_text())
    stems = info.pop("frames")
    info.pop("hidden_share", None)
    frames = np.stack([read_rgb(folder / "frames" / f"{s}.jpg") for s in stems])
    visible = np.stack([cv2.imread(str(folder / "visible" / f"{s}.png"), cv2.IMREAD_UNCHANGED) for s in stems])
    amodal = np.stack([read_mask(folder / "amodal" / f"{s}.png") for s in stems])
    return OcclusionClip(frames, visible.astype(np.uint8), amodal, stems, info)


def synthesize_clips(
    root: str | Path,
    out: str | Path,
    count: int,
    *,
    targets: list[str],
    occluders: list[str] | None = None,
    options: ClipOptions | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write ``count`` clips under ``out`` (``clip_000``, ...): each draws a target sequence from
    ``targets`` and an occluder sequence from ``occluders`` (default: the targets), never the same
    one, all folders of ``root``. ``out`` is replaced whole at the end (it must be new, empty or
    hold only earlier clips), so two runs' clips never mix. Returns the clip folders."""
    options = options or ClipOptions()
    root, out = Path(root), Path(out)
    if out.is_dir() and any(not (e.is_dir() and e.name.startswith("clip_")) for e in out.iterdir()):
        raise ValueError(f"--out {str(out)!r} holds files that are not clips; it is replaced whole: choose another")
    occluders = list(occluders or targets)
    missing = [name for name in {*targets, *occluders} if not (root / name).is_dir()]
    if missing:
        raise FileNotFoundError(f"sequence folder(s) {sorted(missing)} not found under {str(root)!r}")
    if len({*targets, *occluders}) < 2:
        raise ValueError("clips need at least two sequences: the target's occluder comes from another one")
    rng = np.random.default_rng(options.seed)
    sequences = {name: sequence_frames(root / name) for name in {*targets, *occluders}}
    with atomic_folder(out) as staging:
        for index in tqdm(range(count), desc="clips", disable=not progress):
            target = targets[int(rng.integers(len(targets)))]
            others = [name for name in occluders if name != target]
            occluder = others[int(rng.integers(len(others)))]
            write_clip(make_clip(sequences[target], sequences[occluder], options, rng), staging / f"clip_{index:03d}")
    return [out / f"clip_{index:03d}" for index in range(count)]


def read_clips(folder: str | Path) -> list[OcclusionClip]:
    """Every clip (``clip_*`` folders with a ``clip.json``) of ``folder``, in name order."""
    folders = sorted(p for p in Path(folder).glob("clip_*") if (p / "clip.json").is_file())
    if not folders:
        raise FileNotFoundError(f"{str(folder)!r} holds no clips (clip_NNN/ folders with a clip.json from synth-video)")
    return [read_clip(p) for p in folders]
