"""Architecture specs of the frozen SAM and the configuration saved beside amodal weights."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amodal_sam.atomic import atomic_output
from amodal_sam.decision import Decision, check_probability

CONFIG_FORMAT_VERSION = 1
# Precisions of the fast encoder path; None: segment-anything's own fp32 modules.
ENCODER_DTYPES = (None, "fp32", "bf16", "fp16")
# The fast encoder path's attention implementations (amodal_sam.modeling.fast_encoder.ATTENTION),
# named here for the command line, which must not import torch to print its help.
ATTENTION_PATHS = ("folded", "sdpa", "chunked", "flex")
# The hidden thresholds `amodal-sam calibrate` tries unless told otherwise. Finer near 1: with
# exact known occluders (scene mode) the plain rule's best threshold has come out at 0.9, the old
# grid's edge; down to 0.05: inside the hull, where a weak encoder should stay near the rule. Up
# to 0.999: a decoder over-confident on new data (the demo's single-object mode, whose choice was
# 0.99, the edge again, in every retrain of 2026-12-05) needs more evidence than 0.99.
DEFAULT_THRESHOLDS: tuple[float, ...] = (
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.6,
    0.7,
    0.8,
    0.9,
    0.95,
    0.97,
    0.99,
    0.995,
    0.999,
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checked(name: str, value: Any, kind: str) -> Any:
    """``value`` of config field ``name`` if it is of ``kind`` (``"bool"``, ``"positive int"``,
    ``"finite number"``, ``"positive number"``), else a ValueError naming the field."""
    ok = {
        "bool": lambda v: isinstance(v, bool),
        "positive int": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "finite number": lambda v: _is_number(v) and math.isfinite(v),
        "positive number": lambda v: _is_number(v) and math.isfinite(v) and v > 0,
    }[kind](value)
    if not ok:
        expected = "a JSON boolean (true / false)" if kind == "bool" else f"a {kind}"
        raise ValueError(f"field {name!r} must be {expected}; got {value!r}")
    return value


@dataclass(frozen=True)
class SamSpec:
    """Sizes of a segment-anything model (image encoder, prompt encoder, mask decoder).

    The presets in :data:`SAM_SPECS` reproduce ``segment_anything.sam_model_registry``;
    small specs serve tests and the demo model.
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    decoder_num_heads: int = 8
    iou_head_hidden_dim: int = 256
    pixel_mean: tuple[float, float, float] = (123.675, 116.28, 103.53)
    pixel_std: tuple[float, float, float] = (58.395, 57.12, 57.375)

    def __post_init__(self) -> None:
        for name in (
            "encoder_embed_dim",
            "encoder_depth",
            "encoder_num_heads",
            "image_size",
            "patch_size",
            "window_size",
            "prompt_embed_dim",
            "mask_in_chans",
            "decoder_depth",
            "decoder_mlp_dim",
            "decoder_num_heads",
            "iou_head_hidden_dim",
        ):
            _checked(f"sam_spec.{name}", getattr(self, name), "positive int")
        indexes = self.encoder_global_attn_indexes
        if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < self.encoder_depth for i in indexes):
            raise ValueError(
                f"field 'sam_spec.encoder_global_attn_indexes' must be block indices in [0, {self.encoder_depth}); "
                f"got {list(indexes)!r}"
            )
        for name, kind in (("pixel_mean", "finite number"), ("pixel_std", "positive number")):
            values = getattr(self, name)
            if len(values) != 3:
                raise ValueError(f"field 'sam_spec.{name}' must hold 3 numbers (R, G, B); got {list(values)!r}")
            for value in values:
                _checked(f"sam_spec.{name}", value, kind)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"field 'sam_spec.image_size' ({self.image_size}) must be a multiple of patch_size ({self.patch_size})"
            )

    @property
    def embedding_size(self) -> int:
        """Side of the square image embedding, in tokens (64 for SAM)."""
        return self.image_size // self.patch_size

    @property
    def low_res_size(self) -> int:
        """Side of the square mask-logit frame of the decoders: 4 x the embedding side (SAM's
        decoder upscales its tokens twice by 2), 256 for SAM. The one place this rule is written."""
        return 4 * self.embedding_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SamSpec:
        if not isinstance(values, dict):
            raise ValueError(f"field 'sam_spec' must be a JSON object; got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"sam_spec has unknown fields {unknown}; expected a subset of {sorted(known)}")
        tuples = {"encoder_global_attn_indexes", "pixel_mean", "pixel_std"}
        for name in tuples & set(values):
            if not isinstance(values[name], list | tuple):
                raise ValueError(f"field 'sam_spec.{name}' must be a list; got {values[name]!r}")
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        if missing := sorted(required - set(values)):
            raise ValueError(f"sam_spec lacks the fields {missing}")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in values.items()})


SAM_SPECS: dict[str, SamSpec] = {
    "vit_b": SamSpec(
        encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12, encoder_global_attn_indexes=(2, 5, 8, 11)
    ),
    "vit_l": SamSpec(
        encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16, encoder_global_attn_indexes=(5, 11, 17, 23)
    ),
    "vit_h": SamSpec(
        encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16, encoder_global_attn_indexes=(7, 15, 23, 31)
    ),
    # The shipped demo model's frozen SAM: 512-px input, 32 x 32 embedding, 128 channels.
    "demo": SamSpec(
        encoder_embed_dim=192,
        encoder_depth=4,
        encoder_num_heads=6,
        encoder_global_attn_indexes=(1, 3),
        image_size=512,
        window_size=8,
        prompt_embed_dim=128,
        decoder_mlp_dim=512,
        decoder_num_heads=4,
        iou_head_hidden_dim=128,
    ),
    # A few-hundred-kilobyte SAM-shaped model for tests and random-weight smoke runs.
    "tiny": SamSpec(
        encoder_embed_dim=32,
        encoder_depth=2,
        encoder_num_heads=2,
        encoder_global_attn_indexes=(1,),
        image_size=256,
        window_size=4,
        prompt_embed_dim=32,
        decoder_mlp_dim=64,
        decoder_num_heads=2,
        iou_head_hidden_dim=32,
    ),
}

# Hub ids of the transformers-layout SAM checkpoints and the preset each one fits.
HUB_SAM_TYPES: dict[str, str] = {
    "facebook/sam-vit-base": "vit_b",
    "facebook/sam-vit-large": "vit_l",
    "facebook/sam-vit-huge": "vit_h",
}


def check_sam_name(sam: str) -> None:
    """Fail at once on a SAM source that is neither a file, a Hub id (``owner/name``) nor a spec
    name of :data:`SAM_SPECS`, instead of asking the Hub for it (a typo such as ``vit_q``)."""
    if sam in SAM_SPECS or Path(sam).exists():
        return
    parts = sam.split("/")
    if len(parts) == 2 and all(parts) and not sam.startswith("."):
        return
    raise ValueError(
        f"--sam {sam!r} is not a file, a Hub id (owner/name) or a spec name; spec names (random weights, "
        f"for tests): {', '.join(SAM_SPECS)}; SAM weights: a .pth / .safetensors file, or e.g. facebook/sam-vit-base"
    )


def sam_spec_for(model_type: str) -> SamSpec:
    """The preset spec named ``model_type`` (``vit_b``, ``vit_l``, ``vit_h`` or ``tiny``)."""
    if model_type not in SAM_SPECS:
        raise ValueError(f"model_type must be one of {sorted(SAM_SPECS)}; got {model_type!r}")
    return SAM_SPECS[model_type]


@dataclass
class AmodalConfig:
    """What ``config.json`` of an amodal checkpoint holds.

    Attributes:
        sam_type: preset name of the frozen SAM, or ``"custom"``.
        sam_spec: the frozen SAM's full architecture.
        sam_source: where the frozen SAM weights come from: a file inside the checkpoint
            folder (e.g. ``"sam.safetensors"``), a local path (absolute: a ``.pth`` / safetensors
            file or a transformers-layout folder), or a Hub id such as ``"facebook/sam-vit-base"``.
            ``None`` only for a model never saved.
        sam_sha256: what identifies those weights wherever they are: the SHA-256 of their
            tensors in segment-anything's layout (:func:`amodal_sam.sam_weights.state_digest`);
            loading refuses other weights. None: not recorded (configs from before it).
        mask_prompt_logit: magnitude of the logits the visible mask is turned into before it
            enters the prompt encoder (inside: +value, outside: -value).
        hull_prompt: the convex hull of the visible mask, outside it, enters the mask prompt as
            logit 0 (undecided) instead of -mask_prompt_logit: a geometric prior of where the
            hidden part may lie, which the decoder learns to confirm or reject.
        detail_branch: the decoder reads the image's pixels too, through a small trainable CNN
            (:class:`~amodal_sam.modeling.detail_encoder.DetailEncoder`), for the fine edges of
            occluders that the encoder's 16-px tokens lose. Configs saved before it existed
            load without it.
        hidden_threshold: probability above which a pixel of the chosen hypothesis joins the
            amodal mask (where the occluder output covers it). 0.5 is the plain decision; a model
            can carry a stricter one chosen on held-out data (``amodal-sam calibrate``).
        scene_hidden_threshold: the same probability when the occluders are known (scene mode,
            ``occluder_mask=``): the gate is then exact, so its own calibrated value
            (``amodal-sam calibrate --scene``); None: ``hidden_threshold`` serves both.
        outside_threshold, scene_outside_threshold: where a pixel lies outside the convex hull of
            the visible part, the probability the best hypothesis must exceed instead (1.0:
            never), per mode (:class:`~amodal_sam.decision.Decision`); None: the
            mode's hidden threshold, the plain rule (configs from before the field).
        plausible_share, scene_plausible_share: inside the hull, every hypothesis whose predicted
            IoU is at least this share of the best one's counts, per mode (1.0: the best only;
            None for scene mode: ``plausible_share``).
        occluder_threshold: single-object mode's occluder level: the probability the decoder's
            occluder estimate must exceed at a hidden pixel (0.5, logits above 0, in configs from
            before the field); scene mode's occluders are known masks and have none.
        clean_masks: tidy each completion's hidden part
            (:func:`~amodal_sam.modeling.completion.clean_completion`): drop hidden pieces that do
            not come within one low-res pixel of the visible part, fill the holes it leaves
            enclosed where the occluder is.
        sam_prompts: the frozen SAM's prompt path (its prompt encoder and mask decoder) turns
            points and boxes into meaningful visible masks. False for a SAM with random weights
            (the demo, test specs): point and box prompts are then refused with an error, since
            they would give noise with a confident score.
        encoder_dtype: the precision of the fast encoder path (``fp32`` / ``bf16`` / ``fp16``) the
            model was trained with, which loading restores (embeddings differ a little between
            precisions); None: segment-anything's own fp32 modules.
        occluder_prompt: the decoder takes the known occluders (scene mode) as a second dense
            prompt (:class:`~amodal_sam.modeling.extra_mask_prompt.ExtraMaskPromptEncoder`), and the
            undecided region of the mask prompt narrows from the hull to the hull under the known
            occluders. Configs saved before it existed load without it and behave as before.
        memory_prompt: the decoder takes a shape memory (the object's whole shape as earlier
            video frames showed it, carried into this frame) as a further dense prompt
            (:class:`~amodal_sam.modeling.extra_mask_prompt.ExtraMaskPromptEncoder`); trained on
            a moved, noised copy of the true shape (``TrainOptions.memory_prob``). Without a
            memory (single images) the model is the one without this input.

    The feature switches (``hull_prompt``, ``detail_branch``, ``occluder_prompt``,
    ``memory_prompt``, ``clean_masks``) default to
    False, in the dataclass and for a field missing from ``config.json`` alike: a config written
    before a feature existed describes a model without it (``sam_prompts``: True, as it was). :meth:`current` is the configuration
    a new model gets, with every feature of this version on.
    """

    sam_type: str
    sam_spec: SamSpec
    sam_source: str | None = None
    sam_sha256: str | None = None
    mask_prompt_logit: float = 10.0
    hull_prompt: bool = False
    detail_branch: bool = False
    hidden_threshold: float = 0.5
    scene_hidden_threshold: float | None = None
    outside_threshold: float | None = None
    scene_outside_threshold: float | None = None
    plausible_share: float = 1.0
    scene_plausible_share: float | None = None
    occluder_threshold: float = 0.5
    occluder_prompt: bool = False
    memory_prompt: bool = False
    clean_masks: bool = False
    sam_prompts: bool = True
    encoder_dtype: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def current(
        cls, sam_type: str, sam_spec: SamSpec, sam_source: str | None = None, sam_sha256: str | None = None
    ) -> AmodalConfig:
        """The configuration of a new model: every feature of this version on."""
        return cls(
            sam_type=sam_type,
            sam_spec=sam_spec,
            sam_source=sam_source,
            sam_sha256=sam_sha256,
            hull_prompt=True,
            detail_branch=True,
            occluder_prompt=True,
            memory_prompt=True,
            clean_masks=True,
        )

    def __post_init__(self) -> None:
        if not isinstance(self.sam_type, str):
            raise ValueError(f"field 'sam_type' must be a string; got {self.sam_type!r}")
        for name in ("sam_source", "sam_sha256"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ValueError(f"field {name!r} must be a string or null; got {getattr(self, name)!r}")
        for name in ("hull_prompt", "detail_branch", "occluder_prompt", "memory_prompt", "clean_masks", "sam_prompts"):
            _checked(name, getattr(self, name), "bool")
        _checked("mask_prompt_logit", self.mask_prompt_logit, "positive number")
        if self.encoder_dtype not in ENCODER_DTYPES:
            raise ValueError(f"field 'encoder_dtype' must be one of {ENCODER_DTYPES}; got {self.encoder_dtype!r}")
        if not isinstance(self.extra, dict):
            raise ValueError(f"field 'extra' must be a JSON object; got {self.extra!r}")
        for name in ("hidden_threshold", "scene_hidden_threshold", "occluder_threshold"):
            if getattr(self, name) is not None:
                check_probability(name, getattr(self, name))
        for name in ("outside_threshold", "scene_outside_threshold", "plausible_share", "scene_plausible_share"):
            if getattr(self, name) is not None:
                check_probability(name, getattr(self, name), allow_one=True)

    def threshold_for(self, occluders_known: bool) -> float:
        """The hidden threshold of a completion: ``scene_hidden_threshold`` when the occluders are
        known and it is set, else ``hidden_threshold``."""
        if occluders_known and self.scene_hidden_threshold is not None:
            return self.scene_hidden_threshold
        return self.hidden_threshold

    def decision_for(self, occluders_known: bool, hidden_threshold: float | None = None) -> Decision:
        """The decision of a completion, scene mode's when the occluders are known: its threshold
        (:meth:`threshold_for`), outside threshold, plausible share and (single-object mode)
        occluder threshold. An explicit
        ``hidden_threshold`` replaces the threshold (:meth:`Decision.at`)."""
        scene = occluders_known
        outside = self.scene_outside_threshold if scene and self.scene_outside_threshold is not None else None
        if outside is None and not (scene and self.scene_hidden_threshold is not None):
            outside = self.outside_threshold
        share = self.scene_plausible_share if scene and self.scene_plausible_share is not None else self.plausible_share
        occluder = 0.5 if scene else self.occluder_threshold
        decision = Decision(self.threshold_for(occluders_known), outside, share, occluder)
        return decision if hidden_threshold is None else decision.at(hidden_threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": CONFIG_FORMAT_VERSION,
            "model_type": "amodal_sam",
            "sam_type": self.sam_type,
            "sam_source": self.sam_source,
            "sam_sha256": self.sam_sha256,
            "sam_spec": self.sam_spec.to_dict(),
            "mask_prompt_logit": self.mask_prompt_logit,
            "hull_prompt": self.hull_prompt,
            "detail_branch": self.detail_branch,
            "hidden_threshold": self.hidden_threshold,
            "scene_hidden_threshold": self.scene_hidden_threshold,
            "outside_threshold": self.outside_threshold,
            "scene_outside_threshold": self.scene_outside_threshold,
            "plausible_share": self.plausible_share,
            "scene_plausible_share": self.scene_plausible_share,
            "occluder_threshold": self.occluder_threshold,
            "occluder_prompt": self.occluder_prompt,
            "memory_prompt": self.memory_prompt,
            "clean_masks": self.clean_masks,
            "sam_prompts": self.sam_prompts,
            "encoder_dtype": self.encoder_dtype,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AmodalConfig:
        """The config of a ``config.json``'s content; a missing field takes the dataclass
        default, a field of the wrong JSON type is a ValueError naming it."""
        if not isinstance(values, dict):
            raise ValueError(f"config.json must hold a JSON object; got {type(values).__name__}")
        if values.get("model_type") != "amodal_sam":
            raise ValueError(f"config.json is not an amodal_sam config: model_type={values.get('model_type')!r}")
        version = values.get("format_version")
        if version != CONFIG_FORMAT_VERSION:
            raise ValueError(
                f"config.json format_version {version!r} is not supported; expected {CONFIG_FORMAT_VERSION}"
            )
        for name in ("sam_type", "sam_spec"):
            if name not in values:
                raise ValueError(f"config.json has no {name!r}")
        known = {f.name for f in dataclasses.fields(cls)} | {"format_version", "model_type"}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"config.json has unknown fields {unknown}; expected a subset of {sorted(known)}")
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
        fields = {name: values.get(name, default) for name, default in defaults.items()}
        fields["extra"] = values.get("extra", {})
        return cls(sam_type=values["sam_type"], sam_spec=SamSpec.from_dict(values["sam_spec"]), **fields)


def read_config_file(path: str | Path) -> AmodalConfig:
    """The :class:`AmodalConfig` of a ``config.json``; an error naming the file when it is not
    valid JSON or not a valid config."""
    try:
        return AmodalConfig.from_dict(json.loads(Path(path).read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"{str(path)!r} is not valid JSON: {error}") from None
    except ValueError as error:
        raise ValueError(f"{str(path)!r} is not a valid amodal_sam config: {error}") from None


def write_config_file(path: str | Path, config: AmodalConfig) -> None:
    """Write ``config`` as ``config.json`` at ``path``, atomically."""
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
