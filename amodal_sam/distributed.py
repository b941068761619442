"""Joining the process group that ``torchrun`` describes: the one place training and the
embedding pass learn their rank."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def join_process_group(device: torch.device) -> tuple[int, int]:
    """(rank, world size). Under ``torchrun`` (``WORLD_SIZE`` > 1) joins its process group once:
    NCCL on CUDA, where each process takes the GPU of its ``LOCAL_RANK``; gloo on the CPU.
    Outside ``torchrun``: (0, 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def leave_process_group() -> None:
    """Wait for every process, then leave the group (when one was joined). A process that exits
    with its gloo group still open can abort at interpreter shutdown ("terminate called without
    an active exception") after its work is done, failing the whole torchrun."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(world: int) -> None:
    """Wait for every process of the group (nothing to wait for alone)."""
    if world > 1:
        dist.barrier()


def summed(values: list[int], world: int) -> list[int]:
    """``values`` summed over the processes of the group (each process's own alone)."""
    if world == 1:
        return list(values)
    total = torch.tensor(values, dtype=torch.int64)
    dist.all_reduce(total)
    return [int(v) for v in total]
