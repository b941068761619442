"""A bool mask stored at one bit per pixel, for results kept per object.

A scene keeps one result per object; an (H, W) bool mask is H x W bytes, so N objects' occluder
masks on a 12-megapixel photo would hold N x 12 MB. Packed, each holds an eighth of that and is
unpacked only when read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PackedMask:
    """An (H, W) bool mask packed 8 pixels to a byte (``np.packbits``, row-major order).

    Attributes:
        bits: (ceil(H * W / 8),) uint8.
        shape: (H, W).
    """

    bits: np.ndarray
    shape: tuple[int, int]

    @classmethod
    def pack(cls, mask: np.ndarray) -> PackedMask:
        """(H, W) bool ``mask`` -> its packed form."""
        if mask.ndim != 2:
            raise ValueError(f"PackedMask.pack needs an (H, W) mask; got shape {mask.shape}")
        return cls(np.packbits(np.asarray(mask, dtype=bool), axis=None), (int(mask.shape[0]), int(mask.shape[1])))

    def unpack(self) -> np.ndarray:
        """The (H, W) bool mask, a new array."""
        count = self.shape[0] * self.shape[1]
        return np.unpackbits(self.bits, count=count).astype(bool).reshape(self.shape)
