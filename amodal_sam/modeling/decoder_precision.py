"""Which precision the amodal decoder runs in at inference: measured, remembered, overridable.

The decoder's time per instance is matrix products over the 64 x 64 image tokens (its two-way
transformer) and convolutions over the 256 x 256 upscaled pixels (its detail fusion). In fp32 on
a 2-core AMD EPYC with AVX-512 those run near the cores' fp32 peak, and the decoder took up to
1.1x SamPredictor's time per instance (the detail fusion is work the reference does not do). The same
products in bf16 take about half the time where the CPU has bf16 instructions, and twice as long
where it emulates them (an AVX2-only host). So the decoder's precision is chosen as the encoder's
attention path is (:mod:`amodal_sam.modeling.attention_choice`), by :func:`choose_decoder_dtype`:

1. an override: the ``dtype`` argument (``fp32`` or a reduced precision) or the environment
   variable :data:`ENV_VARIABLE`;
2. else fp32 when the encoder runs in fp32: the decoder never goes below the precision the user
   chose for the embeddings;
3. else the choice remembered for this key (the decoder's shapes, the precision, the device,
   the torch version, the CPU model and its vector flags) in :func:`default_choice_file`;
4. else a measurement (:func:`time_decoder`): one prompt through the model's own decoder with
   seeded random inputs, in fp32 and under autocast to the encoder's precision; the reduced
   precision is chosen only when its mask logits' cosine with fp32's is at least
   :data:`MIN_COSINE` and it takes at most :data:`MAX_TIME_SHARE` of fp32's time (a clear gain,
   beyond timing noise: it changes values, so a tie keeps fp32). Remembered (written to a
   temporary name, then renamed); an unreadable file is measured over, never an error.

Training is unaffected: the reduced precision applies only where no gradient is taken.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from amodal_sam.modeling import attention_choice
from amodal_sam.modeling.attention_choice import (
    TIMING_REPEATS,
    best_seconds,
    host_name,
    read_choices,
    remember_choices,
)
from amodal_sam.modeling.fast_encoder import DTYPES

ENV_VARIABLE = "AMODAL_SAM_DECODER_DTYPE"
MIN_COSINE = 0.999
MAX_TIME_SHARE = 0.9  # a reduced precision must take at most this share of fp32's time


def default_choice_file() -> Path:
    """``decoder_choice.json`` beside the attention choices (``$XDG_CACHE_HOME/amodal_sam``)."""
    return attention_choice.default_choice_file().with_name("decoder_choice.json")


def check_decoder_dtype(dtype: str, source: str) -> str:
    """``dtype`` when it names a precision of :data:`DTYPES`; else a ValueError naming ``source``."""
    if dtype not in DTYPES:
        raise ValueError(f"{source} must be one of {sorted(DTYPES)} or 'auto'; got {dtype!r}")
    return dtype


def decoder_choice_key(decoder: torch.nn.Module, embedding_side: int, dtype: str, device: torch.device | str) -> str:
    """What a remembered choice holds for: the decoder's token width, the embedding's side in
    tokens, whether the decoder has a detail branch, the reduced precision, the device type, the
    torch version and the hardware (:func:`~amodal_sam.modeling.attention_choice.host_name`)."""
    device = torch.device(device)
    shapes = (decoder.transformer_dim, embedding_side, decoder.has_detail)
    host = host_name(device)
    return f"decoder {shapes} {dtype} {device.type} torch {torch.__version__} {host}"


def time_decoder(
    decoder: torch.nn.Module,
    embedding_side: int,
    dtype: str,
    device: torch.device | str,
    repeats: int = TIMING_REPEATS,
) -> dict[str, float | None]:
    """Seconds of one prompt through ``decoder`` (an :class:`AmodalMaskDecoder` on ``device``,
    image embeddings of ``embedding_side`` tokens a side) in fp32 and under autocast to
    ``dtype``; None for ``dtype`` when it raised or its mask logits' cosine with fp32's is below
    :data:`MIN_COSINE`. Seeded random inputs at the scale of real ones."""
    device = torch.device(device)
    width = decoder.transformer_dim
    generator = torch.Generator().manual_seed(0)
    embedding, dense, image_pe = (
        torch.randn(1, width, embedding_side, embedding_side, generator=generator) for _ in range(3)
    )
    sparse = torch.randn(1, 2, width, generator=generator)
    detail = None
    if decoder.has_detail:
        side = 4 * embedding_side
        detail = torch.randn(1, side, side, width // 8, generator=generator)
    inputs = [None if t is None else t.to(device) for t in (embedding, image_pe, sparse, dense, detail)]

    def run(precision: str) -> Callable[[], torch.Tensor]:
        def decode() -> torch.Tensor:
            with torch.autocast(device.type, dtype=DTYPES[precision], enabled=precision != "fp32"):
                return decoder.predict_masks(*inputs)[0]

        return decode

    seconds: dict[str, float | None] = {}
    with torch.inference_mode():
        expected = run("fp32")().float().flatten()
        seconds["fp32"] = best_seconds(run("fp32"), device, repeats)
        try:
            agreement = F.cosine_similarity(run(dtype)().float().flatten(), expected, dim=0).item()
            seconds[dtype] = best_seconds(run(dtype), device, repeats) if agreement >= MIN_COSINE else None
        except (RuntimeError, NotImplementedError, TypeError):  # this torch or device cannot run it
            seconds[dtype] = None
    return seconds


def choose_decoder_dtype(
    decoder: torch.nn.Module,
    embedding_side: int,
    encoder_dtype: str | None,
    device: torch.device | str,
    dtype: str = "auto",
    choice_file: str | Path | None = None,
    timer: Callable[..., dict[str, float | None]] = time_decoder,
) -> str:
    """The precision ``decoder`` runs in at inference (see the module docstring): ``dtype`` itself
    unless it is ``auto``; else :data:`ENV_VARIABLE`; else fp32 when ``encoder_dtype`` is fp32 or
    None; else the choice remembered in ``choice_file`` (default :func:`default_choice_file`);
    else ``encoder_dtype`` when ``timer`` (:func:`time_decoder`) finds it agreeing and clearly
    faster, fp32 otherwise, then remembered. Raises ValueError for an unknown name."""
    if dtype != "auto":
        return check_decoder_dtype(dtype, "decoder dtype")
    override = os.environ.get(ENV_VARIABLE, "").strip()
    if override and override != "auto":
        return check_decoder_dtype(override, ENV_VARIABLE)
    if encoder_dtype in (None, "fp32"):
        return "fp32"
    path = Path(choice_file) if choice_file is not None else default_choice_file()
    key = decoder_choice_key(decoder, embedding_side, encoder_dtype, device)
    choices = read_choices(path)
    remembered = choices.get(key)
    if isinstance(remembered, dict) and remembered.get("dtype") in ("fp32", encoder_dtype):
        return remembered["dtype"]
    seconds = timer(decoder, embedding_side, encoder_dtype, device)
    reduced = seconds.get(encoder_dtype)
    chosen = encoder_dtype if reduced is not None and reduced <= MAX_TIME_SHARE * seconds["fp32"] else "fp32"
    choices[key] = {"dtype": chosen, "seconds": seconds}
    remember_choices(path, choices)
    return chosen
