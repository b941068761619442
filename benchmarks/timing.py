"""Timing, memory and weight helpers the benchmark scripts share (imported from beside them)."""

from __future__ import annotations

import resource
import time

import numpy as np
import torch


def draw_rel_pos_tables(encoder: torch.nn.Module, generator: torch.Generator | None = None) -> None:
    """Give a random ViT encoder's relative-position tables (zero at initialisation) a trained
    model's scale, normal with standard deviation 0.5, in place, from ``generator`` (the global
    one by default): with zero tables the attention's bias adds nothing, and an agreement check
    would not cover it. Timing is the same either way."""
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if "rel_pos" in name:
                parameter.normal_(0, 0.5, generator=generator)


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(function, device: str, repeats: int, warmup: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        function()
    synchronize(device)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: CUDA's max allocated on a GPU, the process's max RSS on the CPU."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
