"""Masks read from files, by one set of conventions that every command follows.

**A binary mask** (one object; :func:`read_mask`):

* grey or colour, lossless (PNG, BMP, TIFF, GIF): any non-zero pixel (any non-zero channel) is
  the object, the convention of SAM's and most tools' mask files;
* with an alpha channel that varies (a cut-out: the colours are the photo, the alpha is the
  object): the object is where alpha >= 128, at least half opaque; a constant alpha carries
  nothing and the colours are read as above;
* palette (DAVIS, Pascal VOC): index 0 is background and index 255 is **void**, the "don't care"
  border those datasets draw around objects; every other index is the object. Void is not
  object: counting it would grow every mask by its border;
* lossy (JPEG, WebP): compression leaves faint noise around every edge (a 10,572-pixel disc
  saved as JPEG has 11,679 non-zero pixels), so the object is where the brightest channel is at
  least half (>= 128), and a warning says the file is lossy.

**An index map** (every object of a scene in one file; :func:`read_index_map`): one channel,
0 = background, k > 0 = object k; palette index 255 is void (above) and no object. Colour and
lossy files are refused: JPEG blurs the values between neighbouring objects into new indices
that no rule can undo.

**A folder of masks** (:func:`mask_folder_files`): every image file in it is one object, in
sorted name order; hidden files (``.DS_Store``, macOS's ``._a.png``) are skipped; any other file
is named in an error rather than skipped unseen.

Every file's size is checked from its header first (:mod:`amodal_sam.pixel_limit`); a file that
cannot be decoded is a ``ValueError`` naming it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from amodal_sam.pixel_limit import check_pixels, pillow_guard_lifted

LOSSY_FORMATS = frozenset({"JPEG", "MPO", "WEBP"})
MASK_SUFFIXES = frozenset({".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg", ".webp"})
VOID_INDEX = 255  # palette index of DAVIS's and Pascal VOC's "void" border
HALF = 128  # threshold of alpha and of lossy files: at least half opaque / half bright


def _decoded(path: str | Path, what: str) -> tuple[np.ndarray, str, bool]:
    """A file's pixels as Pillow gives them (palette indices kept), its mode, and whether its
    format is lossy; EXIF orientation applied, as for images. The size is checked before decoding."""
    unreadable = (OSError, SyntaxError, ValueError)
    try:
        with pillow_guard_lifted():
            picture = Image.open(path)
    except FileNotFoundError as error:
        raise ValueError(f"{what} {str(path)!r} does not exist") from error
    except unreadable as error:
        raise ValueError(f"{what} {str(path)!r} is not a readable image: {error}") from error
    with picture:
        check_pixels((picture.height, picture.width), path, what)
        lossy = picture.format in LOSSY_FORMATS
        try:
            upright = ImageOps.exif_transpose(picture)
            if upright.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F"):
                upright = upright.convert("RGBA" if "A" in upright.mode else "RGB")
            return np.asarray(upright), upright.mode, lossy
        except unreadable as error:
            raise ValueError(f"{what} {str(path)!r} is not a readable image: {error}") from error


def read_mask(path: str | Path, what: str = "mask file") -> np.ndarray:
    """(H, W) bool mask of one object from an image file, by the conventions above; errors and
    the lossy-file warning name ``what`` and the file."""
    pixels, mode, lossy = _decoded(path, what)
    if mode == "P":
        return (pixels != 0) & (pixels != VOID_INDEX)
    if mode in ("LA", "RGBA"):
        alpha = pixels[..., -1]
        if alpha.min() != alpha.max():
            return alpha >= HALF
        pixels = pixels[..., :-1]
    if pixels.ndim == 3:
        pixels = pixels.max(axis=2)
    if lossy:
        warnings.warn(
            f"{what} {str(path)!r} is lossy ({Path(path).suffix or 'no suffix'}): read as pixels at least half "
            "bright (>= 128), since compression noise surrounds every edge; save masks as PNG",
            stacklevel=2,
        )
        return pixels >= HALF
    return pixels > 0


def read_index_map(path: str | Path, what: str = "index map") -> np.ndarray:
    """(H, W) int64 object indices from a one-channel file: 0 = background, k > 0 = object k;
    palette void (255) becomes 0. Lossy and colour files are refused, naming ``what``."""
    pixels, mode, lossy = _decoded(path, what)
    if lossy:
        raise ValueError(
            f"{what} {str(path)!r} is lossy (JPEG / WebP): compression blurs the values between neighbouring "
            "objects into new indices; save the index map as PNG"
        )
    if pixels.ndim != 2:
        raise ValueError(
            f"{what} {str(path)!r} has shape {pixels.shape}: an index map has one channel "
            "(0 = background, k = object k); give a folder for one mask per object"
        )
    indices = pixels.astype(np.int64)
    if mode == "P":
        indices[indices == VOID_INDEX] = 0
    return indices


def mask_folder_files(folder: str | Path, what: str = "masks folder") -> list[Path]:
    """The mask files of a folder, sorted by name: every file with an image suffix
    (:data:`MASK_SUFFIXES`), hidden files skipped, subfolders ignored; any other file is an
    error naming it, as is a folder with no mask."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    others = [p.name for p in files if p.suffix.lower() not in MASK_SUFFIXES]
    if others:
        raise ValueError(
            f"{what} {str(folder)!r} holds files that are not masks: {', '.join(others[:5])}"
            + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            + f"; a masks folder holds one image per object ({', '.join(sorted(MASK_SUFFIXES))})"
        )
    if not files:
        raise ValueError(f"{what} {str(folder)!r} holds no masks (one image file per object)")
    return files
