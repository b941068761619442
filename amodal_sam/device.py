"""Where computation runs when nobody says: the one place the default device is chosen."""

from __future__ import annotations

import torch

# Instances per decoder call on a GPU; the CPU decodes one at a time (see default_decoder_batch).
GPU_DECODER_BATCH = 1024


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; when None, CUDA if it is available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def default_decoder_batch(device: torch.device) -> int:
    """Instances per decoder call: all of them (up to :data:`GPU_DECODER_BATCH`) on a GPU, one at
    a time on the CPU, where a call's image-sized activations outgrow the caches: decoding 64
    ViT-B instances one by one took 2.5 s against 9.2 s in one call (2-core CPU)."""
    return 1 if torch.device(device).type == "cpu" else GPU_DECODER_BATCH
