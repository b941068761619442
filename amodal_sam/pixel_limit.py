"""How many pixels an image or mask file may decode to, checked from its header before decoding.

A small file can decode to a huge image (a 400 KB PNG of 20000 x 20000 pixels takes 10 GB once
the model's masks are made from it), so every file this package reads is measured from its
header first. The limit is :data:`DEFAULT_MAX_PIXELS` (100 million: a 100-megapixel photo; phone
photos are 12-50), raised or lowered by the environment variable ``AMODAL_SAM_MAX_PIXELS`` or the
command line's ``--max-pixels``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_PIXELS = 100_000_000
ENVIRONMENT_VARIABLE = "AMODAL_SAM_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit now: ``AMODAL_SAM_MAX_PIXELS`` when set (a positive integer), else
    :data:`DEFAULT_MAX_PIXELS`."""
    value = os.environ.get(ENVIRONMENT_VARIABLE)
    if value is None:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{ENVIRONMENT_VARIABLE} must be a positive integer (pixels); got {value!r}")
    return limit


@contextmanager
def pillow_guard_lifted() -> Iterator[None]:
    """Within: Pillow opens a file of any size without its own decompression-bomb check, so that
    this module's limit (checked right after ``Image.open``, before decoding) is the only one and
    its error the one people see."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def header_size(path: str | Path) -> tuple[int, int] | None:
    """(H, W) of an image file as its header says (nothing is decoded), or None when Pillow does
    not know the format (the decoder that reads it then decides)."""
    try:
        with pillow_guard_lifted(), Image.open(path) as picture:
            width, height = picture.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    return height, width


def check_pixels(size: tuple[int, int], path: str | Path, what: str) -> None:
    """Refuse an (H, W) ``size`` above :func:`max_pixels`, naming ``what`` and ``path``."""
    limit = max_pixels()
    height, width = size
    if height * width > limit:
        raise ValueError(
            f"{what} {str(path)!r} is {width} x {height} pixels ({height * width / 1e6:.0f} MP), above the "
            f"{limit / 1e6:g} MP limit; raise it with --max-pixels or {ENVIRONMENT_VARIABLE} if this is meant"
        )


def check_file_pixels(path: str | Path, what: str) -> None:
    """Refuse a file whose header says it decodes to more than :func:`max_pixels` pixels."""
    size = header_size(path)
    if size is not None:
        check_pixels(size, path, what)
