"""One entry point that turns a name into a model, as timm's ``create_model`` does."""

from __future__ import annotations

import sys
from pathlib import Path

from amodal_sam.config import SAM_SPECS, check_sam_name
from amodal_sam.modeling.amodal_sam import AmodalSAM


def create_model(
    *,
    model: str | Path | None = None,
    sam: str | None = None,
    sam_type: str | None = None,
    sam_seed: int = 0,
    sam_checkpoint: str | None = None,
    encoder_dtype: str | None = None,
    attention: str = "auto",
) -> AmodalSAM:
    """The model a command or script asks for.

    Arguments:
        model: an amodal checkpoint (folder with ``config.json``, or a Hub id of one); ``"demo"``
            names the shipped demo model (unless a folder of that name exists).
        sam: for a new, untrained amodal head: SAM weights (``.pth``, safetensors, a Hub id of
            transformers' SAM) or a spec name of :data:`SAM_SPECS` for a seeded random SAM
            (said on standard error: such a model is for tests and smoke runs).
        sam_type: the preset of ``sam`` weights (default: from the Hub id, else ``vit_b``).
        sam_seed: seed of a random ``sam`` spec.
        sam_checkpoint: SAM weights to use instead of the ones ``model``'s config names.
        encoder_dtype: ``fp32`` / ``bf16`` / ``fp16``: run the frozen encoder through the fast
            path in that precision (:meth:`AmodalSAM.accelerate_encoder`); None: a saved model's
            recorded precision, else segment-anything's own fp32 modules.
        attention: the fast path's attention (:meth:`AmodalSAM.accelerate_encoder`); a path named
            here (not ``auto``) turns the fast path on, in fp32 when no precision is given or recorded.
    With neither ``model`` nor ``sam``: the default model (:func:`amodal_sam.default_model`).
    """
    if model is not None and sam is not None:
        raise ValueError("give model (an amodal checkpoint) or sam (weights for a new head), not both")
    if sam_checkpoint is not None and model is None:
        raise ValueError("sam_checkpoint replaces the SAM weights of a saved model: it needs model")
    if model is not None:
        if str(model) == "demo" and not Path(model).exists():  # the shipped demo, by name
            from amodal_sam.defaults import demo_model_dir

            model = demo_model_dir()
        return AmodalSAM.from_pretrained(
            model, sam_checkpoint=sam_checkpoint, encoder_dtype=encoder_dtype, attention=attention
        )
    if sam is not None and sam in SAM_SPECS and not Path(sam).exists():
        print(f"frozen SAM: RANDOM weights of spec {sam!r} (seed {sam_seed})", file=sys.stderr)
        built = AmodalSAM.random(sam, seed=sam_seed)
    elif sam is not None:
        check_sam_name(sam)
        built = AmodalSAM.from_sam(sam, sam_type)
    else:
        from amodal_sam.defaults import default_model

        built = default_model(announce=True)
    dtype = encoder_dtype or (None if attention == "auto" else "fp32")
    return built.accelerate_encoder(dtype=dtype, attention=attention) if dtype else built
