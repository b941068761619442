"""A model's folder and Hub repo: loading, saving and uploading an :class:`AmodalSAM`.

A model folder (local, or the files of a Hub model repo) holds ``config.json``
(:class:`~amodal_sam.config.AmodalConfig`), ``model.safetensors`` (the trainable head only),
``README.md`` (the model card, :mod:`amodal_sam.model_card`) and, when the frozen SAM has no
other source, ``sam.safetensors``. The model class builds the network; this module moves it to
and from files, as segment-anything's ``build_sam.py`` and timm's ``_hub.py`` keep construction
and files beside the network rather than inside it.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from safetensors.torch import save_file

from amodal_sam.atomic import atomic_output
from amodal_sam.config import AmodalConfig, read_config_file, write_config_file
from amodal_sam.hub import resolve_file, resolve_sam_checkpoint, upload_to_hub
from amodal_sam.model_card import write_model_card
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.sam_builder import build_sam
from amodal_sam.sam_weights import (
    first_names,
    load_state_dict_strict,
    non_finite_tensors,
    read_safetensors,
    read_sam_checkpoint,
    state_digest,
)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUNDLED_SAM_NAME = "sam.safetensors"


def load_pretrained(
    model_id_or_dir: str | Path,
    *,
    sam_checkpoint: str | None = None,
    encoder_dtype: str | None = None,
    attention: str = "auto",
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | None = None,
) -> AmodalSAM:
    """Load a model saved by :func:`save_pretrained`, from a local folder or a Hub repo.

    Arguments:
        model_id_or_dir: folder holding ``config.json`` and ``model.safetensors``, or a Hub id.
        sam_checkpoint: overrides the config's ``sam_source`` (e.g. a local copy of the SAM
            ``.pth`` the model was trained on); weights other than the recorded ones
            (``sam_sha256``) are used with a warning, while other weights at the recorded
            place are an error.
        encoder_dtype: run the encoder's fast path in this precision instead of the one the
            config records (``config.encoder_dtype``, the training precision).
        attention: the fast path's attention (:meth:`AmodalSAM.accelerate_encoder`: ``auto``, the
            fastest on this machine, or a path); a path named here turns the fast path on, in fp32
            when neither ``encoder_dtype`` nor the config names a precision.
        revision, cache_dir, local_files_only, token: as ``huggingface_hub.hf_hub_download``.
    """
    hub = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
    model_id_or_dir = str(model_id_or_dir)
    config_path = resolve_file(model_id_or_dir, CONFIG_NAME, **hub)
    config = read_config_file(config_path)
    weights_path = resolve_file(model_id_or_dir, WEIGHTS_NAME, **hub)
    source = sam_checkpoint or config.sam_source
    expected = (
        f"this model's frozen SAM ({config.sam_type}"
        + (f", sha256 {config.sam_sha256[:16]}..." if config.sam_sha256 else "")
        + ")"
    )
    how = "pass those weights with sam_checkpoint= (Python) or --sam-checkpoint (command line)"
    if source is None:
        raise ValueError(f"{str(config_path)!r} names no sam_source for {expected}; {how}")
    try:
        sam_path = resolve_sam_checkpoint(source, model_dir=None if sam_checkpoint else model_id_or_dir, **hub)
    except FileNotFoundError as error:
        if sam_checkpoint:
            raise
        raise FileNotFoundError(f"{expected} is not where its config says ({error}); {how}") from error
    sam = build_sam(config.sam_spec)
    state = read_sam_checkpoint(sam_path)
    load_state_dict_strict(sam, state, f"SAM weights {str(sam_path)!r}")
    if config.sam_sha256 is not None and (digest := state_digest(state)) != config.sam_sha256:
        message = (
            f"SAM weights {str(sam_path)!r} are not {expected}, the ones its head was trained on "
            f"(their sha256 is {digest[:16]}...)"
        )
        if not sam_checkpoint:  # the weights at the recorded place changed: the results would be wrong
            raise ValueError(f"{message}; {how}")
        warnings.warn(f"{message}: using them, as sam_checkpoint= asks", UserWarning, stacklevel=2)
    if not sam_checkpoint and source != BUNDLED_SAM_NAME and (Path(model_id_or_dir) / source).is_file():
        # a place relative to this folder: recorded absolute, so a copy saved elsewhere finds it
        config = dataclasses.replace(config, sam_source=str((Path(model_id_or_dir) / source).resolve()))
    model = AmodalSAM(config=config, sam=sam)
    weights = read_safetensors(weights_path, "amodal weights")
    model.load_trainable_state_dict(weights, f"weights {str(weights_path)!r}")
    dtype = encoder_dtype or config.encoder_dtype or (None if attention == "auto" else "fp32")
    return model.accelerate_encoder(dtype=dtype, attention=attention) if dtype else model


def save_pretrained(
    model: AmodalSAM, save_directory: str | Path, *, include_sam: bool = False, repo_id: str | None = None
) -> Path:
    """Write ``config.json``, ``model.safetensors`` (trainable weights only) and the model card
    ``README.md`` atomically; a model with a non-finite weight is refused (ValueError), nothing
    written. Returns the folder.

    With ``include_sam=True``, or when the frozen SAM has no source to reload it from (a
    random one), its weights go to ``sam.safetensors`` in the same folder and the config
    points there. ``repo_id``: the Hub id the card's usage examples load (default: a placeholder).
    """
    trainable = model.trainable_state_dict()
    broken = non_finite_tensors(trainable)
    if broken:
        raise ValueError(
            f"refusing to save a model with non-finite weights (NaN or infinity) in {first_names(broken, 3)}"
        )
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = AmodalConfig.from_dict(model.config.to_dict())
    if include_sam or config.sam_source is None or config.sam_source == BUNDLED_SAM_NAME:
        sam_state = {k: v.float().contiguous() for k, v in model.sam.state_dict().items()}
        config.sam_source, config.sam_sha256 = BUNDLED_SAM_NAME, state_digest(sam_state)
        with atomic_output(folder / BUNDLED_SAM_NAME) as temporary:
            save_file(sam_state, str(temporary), metadata={"format": "pt", "digest": config.sam_sha256})
    with atomic_output(folder / WEIGHTS_NAME) as temporary:
        save_file(trainable, str(temporary), metadata={"format": "pt", "digest": state_digest(trainable)})
    write_config_file(folder / CONFIG_NAME, config)
    write_model_card(folder, config, repo_id)
    return folder


def push_to_hub(
    model: AmodalSAM,
    repo_id: str,
    *,
    include_sam: bool = False,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload amodal_sam model",
):
    """Save to a temporary folder (:func:`save_pretrained`, its model card loading ``repo_id``)
    and upload it to ``repo_id`` in one commit (created if needed)."""
    return upload_to_hub(
        lambda folder: save_pretrained(model, folder, include_sam=include_sam, repo_id=repo_id),
        repo_id,
        private=private,
        token=token,
        revision=revision,
        commit_message=commit_message,
    )
