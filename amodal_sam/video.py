"""Video mode: amodal masks that persist through occlusion, frame after frame.

Built on the image predictor: each frame is encoded once and its objects completed (scene mode
when several objects are given: each with the others as known occluders; else single-object
mode), then each object's shape memory (:mod:`amodal_sam.video_memory`) adds what earlier frames
showed of it: a pedestrian behind a parked car keeps its legs, and an object wholly hidden for a
few frames keeps a mask, moved by its last motion. A model with a memory input
(``config.memory_prompt``) also reads each object's memory, carried into the frame, as a prompt:
its completion of that frame with the memory is the one joined with what memory remembers (the
frame alone is still completed, for :func:`video_tracks` without memory).

Follows SAM 2's video predictor where it fits: ``init_state(frames)`` then a ``propagate``
generator yielding ``(frame_index, object_ids, result)``. It differs where amodal completion
does: the visible masks of every frame are the input (from SAM 2, XMem, Cutie or annotation), not
clicks on one frame, and frames stream (a long video is never held whole) unless
``complete_video(..., bidirectional=True)`` asks for both directions.

Masks are (H, W) in the frame's pixels; a frame's visible masks are an (H, W) integer index map
(0 = background, k = object k: the DAVIS / SAM 2 convention), an (N, H, W) bool array (objects
1..N) or one (H, W) bool mask (object 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from amodal_sam.image_io import read_rgb
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.predictor import AmodalPredictor
from amodal_sam.scene import known_occluders
from amodal_sam.video_files import read_visible_frame
from amodal_sam.video_memory import (
    MemoryRule,
    ShapeMemory,
    invert,
    object_motion,
    recalled_shape,
    remembered_hidden,
)

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def iter_frames(frames: str | Path | Iterable[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """(name, (H, W, 3) uint8 RGB) of each frame, in order: a folder's images sorted by file
    name (name: the stem), a video file's frames read by OpenCV, or the arrays of an iterable
    (name: the index, 5 digits). Frames of another size than the first are an error naming them."""
    size = None
    for name, frame in _raw_frames(frames):
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frame {name} must be an (H, W, 3) uint8 RGB image; got {frame.dtype} {frame.shape}")
        if size is None:
            size = frame.shape[:2]
        elif frame.shape[:2] != size:
            raise ValueError(
                f"frame {name} is {frame.shape[1]} x {frame.shape[0]}; the first frame is {size[1]} x {size[0]}"
            )
        yield name, frame


def frame_files(folder: Path) -> list[Path]:
    """A frames folder's images (:data:`FRAME_SUFFIXES`), sorted by name, hidden files skipped;
    none is an error naming the folder."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"frames folder {str(folder)!r} holds no images ({', '.join(FRAME_SUFFIXES)})")
    return files


def _raw_frames(frames: str | Path | Iterable[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(frames, (str, Path)):
        path = Path(frames)
        if path.is_dir():
            for file in frame_files(path):
                yield file.stem, read_rgb(file)
            return
        if not path.is_file():
            raise FileNotFoundError(f"frames {str(path)!r}: no such folder or video file")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened():
            raise ValueError(f"frames {str(path)!r}: OpenCV cannot read it as a video")
        index = 0
        try:
            while True:
                ok, bgr = capture.read()
                if not ok:
                    break
                yield f"{index:05d}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise ValueError(f"frames {str(path)!r}: OpenCV read no frame from it")
        return
    for index, frame in enumerate(frames):
        yield f"{index:05d}", np.asarray(frame)


def object_masks(masks: np.ndarray, size: tuple[int, int], frame: str) -> tuple[list[int], np.ndarray]:
    """One frame's visible masks as (object ids, (N, H, W) bool); see the module docstring for
    the forms taken. Errors name the frame."""
    masks = np.asarray(masks)
    if masks.shape[-2:] != tuple(size) or masks.ndim not in (2, 3):
        raise ValueError(
            f"the visible masks of frame {frame} have shape {masks.shape}; expected ({size[0]}, {size[1]}) "
            f"(an index map or one mask) or (N, {size[0]}, {size[1]}), the frame's size"
        )
    if masks.ndim == 3:
        return list(range(1, len(masks) + 1)), masks.astype(bool)
    if masks.dtype == np.bool_:
        return [1], masks[None]
    if not np.issubdtype(masks.dtype, np.integer) or masks.min() < 0:
        raise ValueError(f"the index map of frame {frame} must hold integers >= 0 (0 = background); got {masks.dtype}")
    ids = [int(i) for i in np.unique(masks) if i != 0]
    return ids, np.stack([masks == i for i in ids]) if ids else np.zeros((0, *size), bool)


@dataclass
class Observation:
    """What one frame says of its objects: ``visible`` / ``completed`` (the model's completion of
    this frame alone) are {id: (H, W) bool}, ``allowed`` {id: (H, W) bool where a hidden part may
    lie (its known occluders), None where they are unknown}, ``scores`` {id: predicted IoU (NaN:
    not visible)}, ``layers`` {id: depth layer in the frame, 0 = nothing in front; -1: not
    visible}, ``motion`` {id: 2 x 3 transform from the previous frame, None where not measured};
    ``size`` (H, W); ``scene``: completed in scene mode. ``recalled`` {id: (H, W) bool}: the
    completion with the object's carried memory as a prompt, for the visible objects that had a
    memory, by a model with a memory input (else empty); ``remembered`` {id: (H, W) bool}: the
    hidden part memory run forward gives each object in this frame."""

    visible: dict[int, np.ndarray]
    completed: dict[int, np.ndarray]
    allowed: dict[int, np.ndarray | None]
    scores: dict[int, float]
    layers: dict[int, int]
    size: tuple[int, int]
    scene: bool
    motion: dict[int, np.ndarray | None] = field(default_factory=dict)
    recalled: dict[int, np.ndarray] = field(default_factory=dict)
    remembered: dict[int, np.ndarray] = field(default_factory=dict)

    def with_memory(self, i: int) -> np.ndarray:
        """Object ``i``'s completion when memory is used: ``recalled`` where there is one, else
        ``completed``."""
        return self.recalled.get(i, self.completed[i])


@dataclass
class ObjectMasks:
    """Masks of objects over frames, as :class:`VideoFrameResult` and :class:`Track` hold them:
    ``amodal`` / ``visible`` bool, with ``scores`` and ``layers`` along the first axis."""

    amodal: np.ndarray
    visible: np.ndarray
    scores: np.ndarray
    layers: np.ndarray

    @property
    def occluded(self) -> np.ndarray:
        """The hidden parts, ``amodal & ~visible``."""
        return self.amodal & ~self.visible


@dataclass
class VideoFrameResult(ObjectMasks):
    """One frame's objects (in ``object_ids`` order): ``amodal`` and ``visible`` (N, H, W) bool,
    ``scores`` (N,) predicted IoU of the frame's completion (NaN for an object not visible in it),
    ``layers`` (N,) depth layers in the frame (0 = nothing in front, -1 = not visible)."""


@dataclass
class Track(ObjectMasks):
    """One object over a video of T frames: ``amodal`` / ``visible`` (T, H, W) bool (empty before
    it first appears), ``scores`` (T,) (NaN where it is not visible), ``layers`` (T,) its depth
    layer in each frame (-1 where it is not visible)."""

    @property
    def hidden_share(self) -> np.ndarray:
        """(T,) share of the completed object that is hidden (0 where it has no pixel)."""
        return self.occluded.sum(axis=(1, 2)) / np.maximum(self.amodal.sum(axis=(1, 2)), 1)


@dataclass
class VideoState:
    """A video being propagated: its frames (streamed), each object's memory, the names of the
    frames read so far and the last frame itself ((H, W, 3) uint8 RGB)."""

    frames: Iterator[tuple[str, np.ndarray]]
    memories: dict[int, ShapeMemory] = field(default_factory=dict)
    previous_gray: np.ndarray | None = None
    previous_visible: dict[int, np.ndarray] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    frame: np.ndarray | None = None


class AmodalVideoPredictor:
    """Completes the objects of a video frame after frame, with a shape memory per object.

    Arguments:
        model: the amodal model.
        device: where to run (see :func:`amodal_sam.device.default_device`).
        rule: how memory is kept (:class:`~amodal_sam.video_memory.MemoryRule`).
        occluder_band: in scene mode, grow the known occluders by this many pixels.
    """

    def __init__(
        self, model: AmodalSAM, *, device: str | None = None, rule: MemoryRule | None = None, occluder_band: int = 0
    ) -> None:
        self.predictor = AmodalPredictor(model, device=device)
        self.rule = rule or MemoryRule()
        self.occluder_band = occluder_band

    def init_state(self, frames: str | Path | Iterable[np.ndarray]) -> VideoState:
        """A state for ``frames``: a folder of images (sorted by name), a video file, or an
        iterable of (H, W, 3) uint8 RGB arrays. Nothing is read until :meth:`propagate`."""
        return VideoState(frames=iter_frames(frames))

    def observe(
        self,
        frame: np.ndarray,
        masks: np.ndarray,
        name: str,
        scene: bool,
        memories: dict[int, np.ndarray] | None = None,
    ) -> Observation:
        """Encode one frame and complete its objects on their own; where memory may hide each:
        its known occluders in ``scene`` mode, else unknown (None: memory then hides at most the
        area the object lost, :func:`~amodal_sam.video_memory.within_lost_area`). With a model
        that has a memory input, the visible objects among ``memories`` ({id: (H, W) bool shape
        carried into this frame, :func:`~amodal_sam.video_memory.recalled_shape`}) are completed
        once more with it as a prompt (the image encoded once): ``Observation.recalled``."""
        ids, visible = object_masks(masks, frame.shape[:2], name)
        return self._observe_objects(frame, ids, visible, scene, memories)

    def _observe_objects(
        self,
        frame: np.ndarray,
        ids: list[int],
        visible: np.ndarray,
        scene: bool,
        memories: dict[int, np.ndarray] | None,
    ) -> Observation:
        """:meth:`observe` of a frame's masks already split by :func:`object_masks`: ``ids`` and
        ``visible`` (N, H, W) bool."""
        present = [row for row in range(len(ids)) if visible[row].any()]
        self.predictor.set_image(frame)
        completed = {i: np.zeros(frame.shape[:2], bool) for i in ids}
        scores = dict.fromkeys(ids, float("nan"))
        layers = dict.fromkeys(ids, -1)
        recalling = [row for row in present if ids[row] in (memories or {})]
        if self.predictor.model.memory_prompt is None:
            recalling = []
        recalled = {}
        if scene:
            allowed = dict(zip(ids, known_occluders(visible, band=self.occluder_band)))
            if present:
                result = self.predictor.complete_scene(visible[present], occluder_band=self.occluder_band)
                for row, amodal, score, layer in zip(present, result.amodal, result.scores, result.layers):
                    completed[ids[row]], scores[ids[row]], layers[ids[row]] = amodal, float(score), int(layer)
            if recalling:
                empty = np.zeros(frame.shape[:2], bool)
                shapes = np.stack([memories.get(ids[row], empty) for row in present])  # empty: no memory
                again = self.predictor.complete_scene(
                    visible[present], occluder_band=self.occluder_band, memory_masks=shapes
                )
                recalled = {ids[row]: amodal for row, amodal in zip(present, again.amodal) if row in recalling}
        else:
            allowed = dict.fromkeys(ids)
            for row in present:
                result = self.predictor.complete(visible[row])
                completed[ids[row]], scores[ids[row]], layers[ids[row]] = result.amodal, result.score, 0
            for row in recalling:
                recalled[ids[row]] = self.predictor.complete(visible[row], memory_mask=memories[ids[row]]).amodal
        return Observation(
            visible={i: visible[row] for row, i in enumerate(ids)},
            completed=completed,
            allowed=allowed,
            scores=scores,
            layers=layers,
            size=frame.shape[:2],
            scene=scene,
            recalled=recalled,
        )

    def propagate(
        self,
        state: VideoState,
        visible_masks: str | Path | Iterable[np.ndarray],
        *,
        scene: bool | None = None,
        progress: bool = False,
    ) -> Iterator[tuple[int, list[int], VideoFrameResult]]:
        """Yield ``(frame_index, object_ids, result)`` frame after frame.

        Arguments:
            state: from :meth:`init_state`.
            visible_masks: per frame, in the frames' order, the visible masks (module docstring),
                or a folder of one PNG per frame named by its stem (:mod:`amodal_sam.video_files`).
            scene: complete each object with the others as known occluders; None: when the
                first frame holds more than one object.
        A frame without masks, or masks without a frame, is an error naming it.
        """
        for index, (_, observation) in enumerate(self._observations(state, visible_masks, scene, progress)):
            ids = sorted(observation.visible)
            amodal = [observation.with_memory(i) | observation.visible[i] | observation.remembered[i] for i in ids]
            yield index, ids, _frame_result(observation, ids, amodal)

    def complete_video(
        self,
        frames: str | Path | Iterable[np.ndarray],
        visible_masks: str | Path | Iterable[np.ndarray],
        *,
        scene: bool | None = None,
        bidirectional: bool = False,
        progress: bool = True,
    ) -> dict[int, Track]:
        """Every object of a video as a :class:`Track`, by object id.

        ``bidirectional``: run the memory forward and backward over the video (each frame still
        encoded once) and join the two hidden parts (:func:`video_tracks`). The video's masks are
        held in memory either way here: T x N x H x W bytes, several times (:meth:`propagate`
        streams instead).
        """
        observations = self.observe_video(frames, visible_masks, scene=scene, progress=progress)
        return video_tracks(observations, self.rule, bidirectional=bidirectional)

    def observe_video(
        self,
        frames: str | Path | Iterable[np.ndarray],
        visible_masks: str | Path | Iterable[np.ndarray],
        *,
        scene: bool | None = None,
        progress: bool = True,
    ) -> list[tuple[str, Observation]]:
        """Each frame's name and :class:`Observation` (every frame encoded once), for
        :func:`video_tracks`; ``scene`` as :meth:`propagate`. Every object of the video is in
        every frame's observation (with an empty visible part where it is not seen), so memory
        can run backward into the frames before an object first shows."""
        observations = list(self._observations(self.init_state(frames), visible_masks, scene, progress))
        everyone = {i for _, o in observations for i in o.visible}
        for _, observation in observations:
            _add_absent(observation, everyone, observation.scene)
        return observations

    def _observations(
        self, state: VideoState, visible_masks: str | Path | Iterable[np.ndarray], scene: bool | None, progress: bool
    ) -> Iterator[tuple[str, Observation]]:
        """Each frame's observation with the motion of each object from the previous frame and
        the hidden part memory run forward gives it (``state.memories`` kept on the way; a model
        with a memory input reads each object's memory carried into the frame); an object absent
        from a frame is carried in it with an empty visible mask."""
        folder = Path(visible_masks) if isinstance(visible_masks, (str, Path)) else None
        masks_iter = iter(()) if folder is not None else iter(visible_masks)
        known: set[int] = set()
        for name, frame in tqdm(state.frames, desc="frames", unit="frame", disable=not progress):
            masks = read_visible_frame(folder, name, frame.shape[:2]) if folder is not None else next(masks_iter, None)
            if masks is None:
                raise ValueError(f"frame {name} has no visible masks: visible_masks ended before the frames")
            ids, visible = object_masks(masks, frame.shape[:2], name)
            if scene is None:
                scene = len(ids) > 1
            gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            motion = {i: self._motion(state, gray, i, visible[row]) for row, i in enumerate(ids)}
            memories = None  # carried here only for a model that reads them (the rule carries its own)
            if self.predictor.model.memory_prompt is not None:
                memories = {
                    i: shape
                    for row, i in enumerate(ids)
                    if (shape := recalled_shape(state.memories.get(i), motion[i], visible[row], self.rule)) is not None
                }
            observation = self._observe_objects(frame, ids, visible, scene, memories)
            known |= set(observation.visible)
            _add_absent(observation, known, scene)
            observation.motion = {i: motion.get(i) for i in observation.visible}
            ids = sorted(observation.visible)
            observation.remembered = _remember(state.memories, observation, observation.motion, ids, self.rule)
            state.previous_gray, state.previous_visible = gray, observation.visible
            state.names.append(name)
            state.frame = frame
            yield name, observation
        if next(masks_iter, None) is not None:
            raise ValueError(f"visible_masks hold more frames than the video's {len(state.names)}")

    def _motion(self, state: VideoState, gray: np.ndarray, i: int, visible: np.ndarray) -> np.ndarray | None:
        """Object ``i``'s motion from the previous frame into this one (uint8 ``gray``, its
        ``visible`` part here); None on the first frame it is in, or where not measured."""
        previous = state.previous_visible.get(i)
        if previous is None or state.previous_gray is None:
            return None
        return object_motion(state.previous_gray, gray, previous, visible, self.rule.min_points)


def video_tracks(
    observations: list[tuple[str, Observation]],
    rule: MemoryRule | None = None,
    *,
    bidirectional: bool = False,
    memory: bool = True,
) -> dict[int, Track]:
    """Every object of observed frames (:meth:`AmodalVideoPredictor.observe_video`) as a
    :class:`Track`, by object id: each frame's completion joined with what memory remembers
    (``memory=False``: the frames completed one by one, nothing remembered).

    ``bidirectional``: the memory runs forward and backward over the frames and each frame takes,
    per object, the union of the two hidden parts: a frame early in a clip learns from later ones
    (an object that starts hidden and comes out), and the result does not depend on the clip's
    direction.
    """
    rule = rule or MemoryRule()
    ids = sorted({i for _, o in observations for i in o.visible})
    if not ids:
        return {}
    count = len(observations)
    size = observations[0][1].size
    empty = np.zeros(size, bool)
    if not memory:
        hidden = [dict.fromkeys(ids, empty) for _ in range(count)]
    else:
        forward = _memory_pass(observations, ids, rule, reverse=False)
        if bidirectional:
            backward = _memory_pass(observations, ids, rule, reverse=True)
            hidden = [{i: forward[t][i] | backward[t][i] for i in ids} for t in range(count)]
        else:
            hidden = forward
    tracks = {}
    for i in ids:
        visible = np.stack([o.visible[i] for _, o in observations])
        completed = np.stack([o.with_memory(i) if memory else o.completed[i] for _, o in observations])
        amodal = visible | completed | np.stack([h[i] for h in hidden])
        scores = np.array([o.scores[i] for _, o in observations], dtype=np.float32)
        layers = np.array([o.layers[i] for _, o in observations], dtype=np.int64)
        tracks[i] = Track(amodal=amodal, visible=visible, scores=scores, layers=layers)
    return tracks


def _add_absent(observation: Observation, ids: set[int], scene: bool) -> None:
    """Enter the ``ids`` the frame does not show into its observation: no visible part, no
    completion, hidden under any visible object (``scene``) or by something unknown."""
    size = observation.size
    absent = ids - set(observation.visible)
    if not absent:
        return
    shown = list(observation.visible.values())
    cover = np.any(np.stack(shown), axis=0) if shown else np.zeros(size, bool)
    for i in absent:
        observation.visible[i] = np.zeros(size, bool)
        observation.completed[i] = observation.visible[i]
        observation.allowed[i] = cover if scene else None
        observation.scores[i] = float("nan")
        observation.layers[i] = -1


def _frame_result(observation: Observation, ids: list[int], amodal: list[np.ndarray]) -> VideoFrameResult:
    empty = np.zeros((0, *observation.size), bool)
    return VideoFrameResult(
        amodal=np.stack(amodal) if ids else empty,
        visible=np.stack([observation.visible[i] for i in ids]) if ids else empty,
        scores=np.array([observation.scores[i] for i in ids], dtype=np.float32),
        layers=np.array([observation.layers[i] for i in ids], dtype=np.int64),
    )


def _memory_pass(
    observations: list[tuple[str, Observation]], ids: list[int], rule: MemoryRule, reverse: bool
) -> list[dict[int, np.ndarray]]:
    """Per frame, per object: the (H, W) hidden part memory gives it, memory run forward or, with
    ``reverse``, backward (the motion into frame t from frame t + 1 is the inverse of the one
    measured from t to t + 1)."""
    count = len(observations)
    out: list[dict[int, np.ndarray]] = [{} for _ in range(count)]
    memories: dict[int, ShapeMemory] = {}
    for t in range(count - 1, -1, -1) if reverse else range(count):
        observation = observations[t][1]
        if reverse:
            following = observations[t + 1][1].motion if t + 1 < count else {}
            motion = {i: None if following.get(i) is None else invert(following[i]) for i in ids}
        else:
            motion = observation.motion
        out[t] = _remember(memories, observation, motion, ids, rule)
    return out


def _remember(
    memories: dict[int, ShapeMemory],
    observation: Observation,
    motion: dict[int, np.ndarray | None],
    ids: list[int],
    rule: MemoryRule,
) -> dict[int, np.ndarray]:
    """One frame of memory for the objects ``ids``: each one's (H, W) hidden part by memory,
    given its ``motion`` into this frame (None: not measured); ``memories`` is updated in place."""
    hidden = {}
    for i in ids:
        hidden[i], memories[i] = remembered_hidden(
            memories.get(i), motion.get(i), observation.visible[i], observation.allowed[i], rule
        )
    return hidden
