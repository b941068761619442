"""The model card (``README.md``) of a model folder or Hub repo, written through huggingface_hub.

The card's metadata (``ModelCardData``: library, tags, pipeline tag, license, ``base_model`` when
the frozen SAM is a Hub repo) is what the Hub indexes; its text says what the model is, which
frozen SAM it needs, how to load it, the decision it makes and, when recorded, how it was trained
and calibrated. Training and calibration record their numbers in the config's ``extra`` field
(:data:`TRAINING_KEY`, :data:`CALIBRATION_KEY`, :data:`SCENE_CALIBRATION_KEY`), so the card
is rebuilt from ``config.json`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import ModelCard, ModelCardData

from amodal_sam.atomic import atomic_output
from amodal_sam.config import AmodalConfig

CARD_NAME = "README.md"
TRAINING_KEY = "training"
# the training record of a weight average (amodal_sam.weight_average): the models averaged
AVERAGE_KEY = "average_of"
CALIBRATION_KEY = "calibration"
SCENE_CALIBRATION_KEY = "scene_calibration"
# the training of a non-SAM encoder on synthetic scenes (amodal_sam.encoder_training), kept by every
# later training of the head on it
ENCODER_TRAINING_KEY = "encoder_training"
# in a training record: the records of the model the training started from (None: a new head)
STARTED_FROM_KEY = "started_from"
RECORD_KEYS = (TRAINING_KEY, CALIBRATION_KEY, SCENE_CALIBRATION_KEY)
LICENSE = "apache-2.0"
TAGS = ("amodal-segmentation", "segment-anything", "image-segmentation", "amodal_sam")
PIPELINE_TAG = "image-segmentation"
# The frozen encoders that are SAM's own published models; any other is not SAM.
PUBLISHED_SAM_TYPES = ("vit_b", "vit_l", "vit_h")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def sam_hub_id(sam_source: str | None) -> str | None:
    """``sam_source`` when it names a Hub repo (``owner/name``, not a local file), else None."""
    if sam_source is None or not _HUB_ID.fullmatch(sam_source) or sam_source.endswith(_WEIGHT_SUFFIXES):
        return None
    return sam_source


def short_source(path: str) -> str:
    """A data path as the card shows it: its last two parts (``calib/annotations.json``), so no
    local folder of the machine that trained it is published."""
    return "/".join(Path(path).parts[-2:]) if path else "(in memory)"


def _decision_rows(config: AmodalConfig) -> list[str]:
    rows = [
        "| mode | hidden threshold | outside the hull | plausible share | occluder level |",
        "| --- | --- | --- | --- | --- |",
    ]
    for mode, known in (("single object", False), ("known occluders (scene)", True)):
        decision = config.decision_for(known)
        outside = "never" if decision.outside_threshold >= 1.0 else f"{decision.outside_threshold:g}"
        occluder = "known masks" if known else f"{decision.occluder_threshold:g}"
        rows.append(f"| {mode} | {decision.threshold:g} | {outside} | {decision.plausible_share:g} | {occluder} |")
    return rows


def starting_point(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """The records (:data:`RECORD_KEYS`) in a model's config ``extra`` when a training starts from
    it, kept in the new training's record under :data:`STARTED_FROM_KEY`: None for a new head."""
    records = {key: extra[key] for key in RECORD_KEYS if key in extra}
    return records or None


def _trained_on(record: Mapping[str, Any] | None) -> str:
    """One training record in a few words: what was trained on what, or averaged."""
    if not record:
        return "a model whose training is not recorded"
    if AVERAGE_KEY in record:
        return "the weight average of " + ", ".join(part["model"] for part in record[AVERAGE_KEY])
    data = ", ".join(record.get("data", [])) or "(data not named)"
    return f"a model trained {record.get('epochs', '?')} epoch(s) on {data}"


def _origin_lines(origin: Mapping[str, Any] | None, indent: str = "") -> list[str]:
    """The chain of models a training started from, one line each (:data:`STARTED_FROM_KEY`)."""
    if origin is None:
        return [f"{indent}- started from: a new amodal head on the frozen SAM"]
    calibrated = [
        f"{mode} on {', '.join(row['data'] for row in origin[key].get('sets', []))}"
        for key, mode in ((CALIBRATION_KEY, "single object"), (SCENE_CALIBRATION_KEY, "scene mode"))
        if key in origin
    ]
    training = origin.get(TRAINING_KEY)
    line = f"{indent}- started from: {_trained_on(training)}"
    if calibrated:
        line += f"; calibrated before this training ({'; '.join(calibrated)})"
    lines = [line]
    if training and STARTED_FROM_KEY in training:
        lines += _origin_lines(training[STARTED_FROM_KEY], indent + "  ")
    return lines


def _training_lines(record: Mapping[str, Any] | None) -> list[str]:
    if not record:
        return ["No training recorded (`amodal-sam train` records its data, options and validation scores here)."]
    if AVERAGE_KEY in record:  # amodal_sam.weight_average
        lines = ["The weight average (tensor by tensor) of fine-tuned heads on one frozen SAM:"]
        for part in record[AVERAGE_KEY]:
            trained = part.get(TRAINING_KEY) or {}
            data = ", ".join(trained.get("data", [])) or "(training not recorded)"
            lines.append(f"- {part['model']}, weight {part['weight']:g}: {data}")
        return lines
    lines = [f"- data: {', '.join(record.get('data', [])) or '(not named)'}"]
    lines.append(f"- instances: {record.get('instances', '?')}, epochs: {record.get('epochs', '?')}")
    options = record.get("options", {})
    if options:
        lines.append("- options: " + ", ".join(f"{k} {v}" for k, v in sorted(options.items())))
    if record.get("validation"):
        lines.append(f"- validation data: {record['validation']}")
    if record.get("val_aiou") is not None:
        lines.append(f"- validation (best epoch): AIoU {record['val_aiou']:.4f}, OIoU {record['val_oiou']:.4f}")
    if STARTED_FROM_KEY in record:
        lines += _origin_lines(record[STARTED_FROM_KEY])
    return lines


def _encoder_lines(record: Mapping[str, Any]) -> list[str]:
    """What the encoder learnt from (:data:`ENCODER_TRAINING_KEY`), and its held-out check."""
    targets = ", ".join(record.get("targets", []))
    loss = record.get("train_loss", float("nan"))
    lines = [
        f"The frozen encoder was itself trained (`amodal-sam train-encoder`), then frozen: {targets} per token.",
        "",
        f"- data: {', '.join(record.get('data', [])) or '(not named)'}",
        f"- images: {record.get('images', '?')}, epochs: {record.get('epochs', '?')}, last training loss {loss:.4f}",
    ]
    check = record.get("check_losses") or {}
    names = [name for name in record.get("targets", []) if name in check]
    if names:
        lines.append(
            f"- held out ({record.get('check')}), cross-entropy against the best constant's: "
            + ", ".join(f"{name} {check[name]:.4f} / {check[name + '_constant']:.4f}" for name in names)
        )
    return lines


def _calibration_lines(record: Mapping[str, Any] | None) -> list[str]:
    if not record:
        return ["No calibration recorded (`amodal-sam calibrate` records its sets and numbers here)."]
    lines = [
        "| calibration set | AIoU | OIoU | visible masks' AIoU | geometric rule's AIoU |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in record.get("sets", []):
        lines.append(
            f"| {row['data']} | {row['aiou']:.4f} | {row['oiou']:.4f} | {row['visible_aiou']:.4f} | "
            f"{row['rule_aiou']:.4f} |"
        )
    return lines


def model_card(config: AmodalConfig, repo_id: str | None = None) -> ModelCard:
    """The card of a model with this ``config``; ``repo_id``: the Hub id or folder the usage
    examples load (a placeholder when None)."""
    where = repo_id or "<this repo id or folder>"
    base_model = sam_hub_id(config.sam_source)
    data = ModelCardData(
        library_name="amodal_sam",
        license=LICENSE,
        tags=list(TAGS),
        pipeline_tag=PIPELINE_TAG,
        base_model=base_model,
    )
    published = config.sam_type in PUBLISHED_SAM_TYPES
    warning = (
        []
        if published
        else [
            f"> **Its frozen encoder is not SAM.** `{config.sam_type}` is not one of SAM's published image "
            "encoders (ViT-B / L / H): "
            + (
                "the demo model's encoder "
                + ("started from" if ENCODER_TRAINING_KEY in config.extra else "has")
                + " seeded random weights, so that the library runs offline and its examples and tests have a "
                "model. "
                if config.sam_type == "demo"
                else ""
            )
            + (
                "It was then trained on synthetic scenes and frozen (see Encoder). "
                if ENCODER_TRAINING_KEY in config.extra
                else ""
            )
            + "Its accuracy is not SAM quality; train a head on real SAM weights for real use.",
            "",
        ]
    )
    weights = f"`{config.sam_source}`" if config.sam_source else "(none recorded: pass `sam_checkpoint=`)"
    digest = f", sha256 `{config.sam_sha256}`" if config.sam_sha256 else ""
    text = [
        f"# amodal_sam: amodal mask head on a frozen SAM encoder ({config.sam_type})",
        "",
        (
            "A trainable amodal mask decoder of [amodal_sam](https://pypi.org/project/amodal-sam/): on a frozen "
            "segment-anything image encoder it completes an object's whole shape, hidden parts included, from its "
            "visible mask or a point / box prompt, and returns the visible and hidden parts and a confidence."
        ),
        "",
        *warning,
        "## What it needs",
        "",
        f"- the frozen SAM it was trained on: `{config.sam_type}`, weights {weights}{digest}",
        "- `pip install amodal-sam`",
        "",
        "## How to use it",
        "",
        "```python",
        "from amodal_sam import AmodalSAM, AmodalPredictor",
        f'model = AmodalSAM.from_pretrained("{where}")',
        "predictor = AmodalPredictor(model)",
        "predictor.set_image(image)                      # H x W x 3 uint8 RGB",
        "result = predictor.complete(visible_mask=mask)  # result.amodal, .occluded, .score",
        "```",
        "",
        f"Command line: `amodal-sam complete IMAGE --visible MASK --model {where} --out amodal.png`.",
        "",
        "## Decision",
        "",
        "How a pixel joins the hidden part (chosen by `amodal-sam calibrate`):",
        "",
        *_decision_rows(config),
        "",
        *(
            ["## Encoder", "", *_encoder_lines(config.extra[ENCODER_TRAINING_KEY]), ""]
            if ENCODER_TRAINING_KEY in config.extra
            else []
        ),
        "## Training",
        "",
        *_training_lines(config.extra.get(TRAINING_KEY)),
        "",
        "## Calibration, single object",
        "",
        *_calibration_lines(config.extra.get(CALIBRATION_KEY)),
        "",
        "## Calibration, known occluders (scene mode)",
        "",
        *_calibration_lines(config.extra.get(SCENE_CALIBRATION_KEY)),
        "",
    ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(text))


def write_model_card(folder: str | Path, config: AmodalConfig, repo_id: str | None = None) -> Path:
    """Write :func:`model_card` to ``folder/README.md`` atomically; returns its path."""
    path = Path(folder) / CARD_NAME
    with atomic_output(path) as temporary:
        Path(temporary).write_text(str(model_card(config, repo_id)), encoding="utf-8")
    return path
