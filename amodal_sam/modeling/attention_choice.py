"""Which attention path the fast encoder takes on this machine: measured, remembered, overridable.

The paths of :mod:`amodal_sam.modeling.fast_encoder` compute the same attention; which is fastest
depends on the host: two VMs of one kind (2 AMD EPYC cores) ranked ``folded`` and ``sdpa`` in
opposite orders, and an Intel Xeon with AMX ranked them a third way. So ``attention="auto"`` (the
default of :meth:`AmodalSAM.accelerate_encoder`) resolves to a path by :func:`choose_attention`:

1. an override, when given: the ``attention`` argument or the environment variable
   :data:`ENV_VARIABLE` (``folded``, ``sdpa``, ``chunked``, ``flex``);
2. else the choice remembered for this key, one JSON file in the user's cache
   (:func:`default_choice_file`): the key names the encoder's shapes, the precision, the device,
   the torch version, the revision of the candidates' code, the CPU model and its vector flags,
   so a new machine, torch, model or candidate measures again (virtual machines name CPUs
   generically: two "AMD EPYC" VMs of this project, one with AVX-512 and bf16 instructions and
   one with AVX2 only, share a model name);
3. else a measurement (:func:`time_candidates`): each candidate's attention alone, at the shapes
   of the encoder's windowed and global blocks with random inputs, timed (the best of a few runs
   after one warm-up, weighted by how many blocks of each kind the encoder has) and checked
   against the plain formula ``softmax(scale q k^T + bias) v`` in fp32: a candidate that raises or
   whose output's cosine with it is below :data:`MIN_COSINE` is never chosen. The fastest of the
   rest is chosen and written (to a temporary name, then renamed). A file that cannot be read is
   measured over, never an error.

The timing costs a few seconds once per key (ViT-B on 2 CPU cores); the attention is 70-80 % of
the encoder's time there, so the ranking of the attention alone is the ranking of the encoder.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from segment_anything.modeling import ImageEncoderViT

from amodal_sam.atomic import atomic_output
from amodal_sam.modeling.fast_encoder import ATTENTION, ATTENTION_FUNCTIONS, DTYPES, chunked_rel_pos_attention

ENV_VARIABLE = "AMODAL_SAM_ATTENTION"
MIN_COSINE = 0.999
TIMING_REPEATS = 3
REFERENCE_ROWS = 512  # queries per block of the fp32 formula the candidates are checked against
# ``flex`` runs eagerly off CUDA (it builds the whole score matrix): a candidate on CUDA only.
CPU_CANDIDATES: tuple[str, ...] = ("folded", "sdpa", "chunked")
# Part of every remembered choice's key: raised whenever a candidate's implementation changes, so a
# choice measured on the older code is measured again (2: ``chunked`` by cache-sized steps).
PATHS_REVISION = 2
CUDA_CANDIDATES: tuple[str, ...] = ("folded", "sdpa", "chunked", "flex")


def default_choice_file() -> Path:
    """``$XDG_CACHE_HOME/amodal_sam/attention_choice.json`` (``~/.cache`` without the variable)."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "amodal_sam" / "attention_choice.json"


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name`` on Linux, else what ``platform``
    says), with its core count: part of the key a choice is remembered under."""
    name = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()} x{os.cpu_count()}"


def cpu_flags() -> list[str]:
    """The CPU's vector and matrix extensions that decide kernel speed (AVX2, FMA, AVX-512 and
    AMX flags of ``/proc/cpuinfo``), sorted; [] where that file is not there."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted({f for f in flags if f in ("avx2", "fma") or f.startswith(("avx512", "amx"))})


# The x86 instructions that run each low precision natively; without them PyTorch emulates it.
NATIVE_PRECISION_FLAGS: dict[str, tuple[str, ...]] = {
    "bf16": ("avx512_bf16", "amx_bf16"),
    "fp16": ("avx512_fp16", "amx_fp16"),
}


def emulated_precision_warning(dtype: str, device: torch.device | str) -> str | None:
    """A warning to give when ``dtype`` on ``device`` is emulated (an x86 CPU whose flags are
    known and hold none of :data:`NATIVE_PRECISION_FLAGS`: bf16 there ran 0.3x the fp32
    reference on an AVX2-only AMD EPYC); None where it is native, fp32, a GPU, or unknown."""
    native = NATIVE_PRECISION_FLAGS.get(dtype)
    flags = cpu_flags()
    if native is None or torch.device(device).type != "cpu" or not flags or set(native) & set(flags):
        return None
    return (
        f"encoder dtype {dtype!r}: this CPU ({cpu_model()}) has no {' / '.join(native)} instructions, so {dtype} "
        "is emulated and the encoder runs slower than in fp32; choose fp32 here (--encoder-dtype fp32)"
    )


def attention_shapes(encoder: ImageEncoderViT) -> list[tuple[int, int, int, int]]:
    """The attention calls of one image through ``encoder``: one (batch, heads, grid side,
    head width) per block, batch being the number of windows of a windowed block (1 for a global
    one) and the grid the window (or the whole token grid)."""
    grid = encoder.img_size // encoder.patch_embed.proj.kernel_size[0]
    shapes = []
    for block in encoder.blocks:
        heads = block.attn.num_heads
        width = block.attn.qkv.in_features // heads
        if block.window_size > 0:
            windows = math.ceil(grid / block.window_size) ** 2
            shapes.append((windows, heads, block.window_size, width))
        else:
            shapes.append((1, heads, grid, width))
    return shapes


def host_name(device: torch.device) -> str:
    """The part of a remembered choice's key that names the hardware: on the CPU its model with
    its vector flags (:func:`cpu_flags`), else the GPU's name."""
    if device.type == "cpu":
        return f"{cpu_model()} [{' '.join(cpu_flags())}]"
    return torch.cuda.get_device_name(device)


def choice_key(encoder: ImageEncoderViT, dtype: str, device: torch.device | str) -> str:
    """What a remembered choice holds for: the encoder's attention shapes, the precision, the
    device type, the torch version, the candidates' :data:`PATHS_REVISION` and the hardware
    (:func:`host_name`)."""
    device = torch.device(device)
    shapes = sorted(set(attention_shapes(encoder)))
    host = host_name(device)
    return f"{shapes} {dtype} {device.type} torch {torch.__version__} paths {PATHS_REVISION} {host}"


def reference_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    rel_pos_h: torch.Tensor,
    rel_pos_w: torch.Tensor,
    size: tuple[int, int],
    scale: float,
    rows: int = REFERENCE_ROWS,
) -> torch.Tensor:
    """``softmax(scale q k^T + bias) v`` in fp32, as segment-anything computes it, ``rows`` queries
    at a time (:func:`~amodal_sam.modeling.fast_encoder.chunked_rel_pos_attention` on fp32
    inputs): each query's softmax is its own, so the result is the whole formula's, and memory
    stays that of one block (a ViT-B global block whole is 4096 x 4096 scores per head, about
    3 GB of fp32 temporaries: more than the encoder itself needs). Arguments as
    :func:`~amodal_sam.modeling.fast_encoder.rel_pos_terms`; returns (B, heads, h * w, d) fp32."""
    inputs = (t.float() for t in (q, k, v, rel_pos_h, rel_pos_w))
    return chunked_rel_pos_attention(*inputs, size, scale, scores_per_step=rows * q.shape[2])


def best_seconds(run: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``run``, after one untimed warm-up call."""
    run()
    best = math.inf
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best


def time_candidates(
    encoder: ImageEncoderViT,
    dtype: str,
    device: torch.device | str,
    candidates: Sequence[str],
    repeats: int = TIMING_REPEATS,
    functions: dict[str, Callable] | None = None,
) -> dict[str, float | None]:
    """Seconds of one image's attention through each candidate path (None: it raised or its
    cosine with the fp32 formula fell below :data:`MIN_COSINE` on some block shape), summed over
    ``encoder``'s blocks from one timing per distinct shape. Random inputs, seeded; relative-
    position tables at a trained model's scale so the bias matters. ``functions``: the paths by
    name (default :data:`ATTENTION_FUNCTIONS`)."""
    functions = ATTENTION_FUNCTIONS if functions is None else functions
    device = torch.device(device)
    shapes = attention_shapes(encoder)
    generator = torch.Generator().manual_seed(0)
    totals: dict[str, float | None] = dict.fromkeys(candidates, 0.0)
    with torch.inference_mode():
        for shape in sorted(set(shapes)):
            batch, heads, side, width = shape
            q, k, v = (torch.randn(batch, heads, side * side, width, generator=generator) for _ in range(3))
            tables = [0.5 * torch.randn(2 * side - 1, width, generator=generator) for _ in range(2)]
            inputs = [t.to(device, DTYPES[dtype]) for t in (q, k, v, *tables)]
            expected = reference_attention(*inputs, (side, side), width**-0.5)
            for name in candidates:
                if totals[name] is None:
                    continue
                run = functools.partial(functions[name], *inputs, (side, side), width**-0.5)
                try:
                    agreement = F.cosine_similarity(run().float().flatten(), expected.flatten(), dim=0).item()
                    seconds = best_seconds(run, device, repeats) if agreement >= MIN_COSINE else None
                except (RuntimeError, NotImplementedError, ValueError, TypeError):  # this torch or device cannot run it
                    seconds = None
                totals[name] = None if seconds is None else totals[name] + seconds * shapes.count(shape)
    return totals


def read_choices(path: Path) -> dict:
    """The remembered choices, {} when the file is missing or unreadable (measured over)."""
    try:
        choices = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return choices if isinstance(choices, dict) else {}


def remember_choices(path: Path, choices: dict) -> None:
    """Write ``choices`` to ``path`` (a temporary name, then renamed); a read-only cache is no
    error: the choice holds for this process and is measured again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:
            Path(temporary).write_text(json.dumps(choices, indent=1, sort_keys=True))
    except OSError:
        pass


def check_attention(attention: str, source: str) -> str:
    """``attention`` when it names a path of :data:`ATTENTION`; else a ValueError naming ``source``."""
    if attention not in ATTENTION:
        raise ValueError(f"{source} must be one of {sorted(ATTENTION)} or 'auto'; got {attention!r}")
    return attention


def choose_attention(
    encoder: ImageEncoderViT,
    dtype: str,
    device: torch.device | str,
    attention: str = "auto",
    choice_file: str | Path | None = None,
    timer: Callable[..., dict[str, float | None]] = time_candidates,
) -> str:
    """The attention path for ``encoder`` in ``dtype`` on ``device`` (see the module docstring):
    ``attention`` itself unless it is ``auto``; else the environment's :data:`ENV_VARIABLE`;
    else the choice remembered in ``choice_file`` (default :func:`default_choice_file`) for
    :func:`choice_key`; else the fastest agreeing candidate by ``timer`` (:func:`time_candidates`),
    then remembered. Raises ValueError for an unknown name and RuntimeError when no candidate
    runs correctly."""
    if attention != "auto":
        return check_attention(attention, "attention")
    override = os.environ.get(ENV_VARIABLE, "").strip()
    if override and override != "auto":
        return check_attention(override, ENV_VARIABLE)
    path = Path(choice_file) if choice_file is not None else default_choice_file()
    key = choice_key(encoder, dtype, device)
    choices = read_choices(path)
    remembered = choices.get(key)
    if isinstance(remembered, dict) and remembered.get("attention") in ATTENTION:
        return remembered["attention"]
    candidates = CUDA_CANDIDATES if torch.device(device).type == "cuda" else CPU_CANDIDATES
    seconds = timer(encoder, dtype, device, candidates)
    working = {name: s for name, s in seconds.items() if s is not None}
    if not working:
        raise RuntimeError(f"no attention path ran correctly for {key}: {seconds}")
    chosen = min(working, key=working.get)
    choices[key] = {"attention": chosen, "seconds": seconds}
    remember_choices(path, choices)
    return chosen
