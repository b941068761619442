"""Checks of output paths, made before any compute so that a bad name fails at once."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")  # what image_io can encode
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")  # lossless: a mask saved as JPEG comes back different


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_creatable(path: Path, what: str) -> None:
    """``path`` can be made: everything above it that exists is a writable folder."""
    existing = _nearest_existing(path.parent)
    if not existing.is_dir():
        raise ValueError(f"{what} {str(path)!r}: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {str(path)!r}: the folder {str(existing)!r} is not writable")


def check_output_file(path: str | Path, what: str, suffixes: Sequence[str] = ()) -> Path:
    """``path`` as a Path when a file can be written there: not a folder, in a folder that
    exists or can be made and is writable, and (when ``suffixes`` are given) named with one of
    them. Otherwise a ValueError naming ``what`` (e.g. ``"--overlay"``)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a folder; expected a file name")
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {str(path)!r} must end in {' or '.join(suffixes)}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{what} {str(path)!r} exists and is not writable")
    _check_creatable(path, what)
    return path


def check_output_folder(path: str | Path, what: str) -> Path:
    """``path`` as a Path when it is a writable folder or one can be made there; otherwise a
    ValueError naming ``what`` (e.g. ``"--out"``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a file; expected a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {str(path)!r} is not writable")
        return path
    _check_creatable(path, what)
    return path
