"""Reading and writing images as files (RGB order, atomic writes), and writing masks; masks are read
by :mod:`amodal_sam.mask_files`."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import cv2
import numpy as np

from amodal_sam.atomic import atomic_output
from amodal_sam.pixel_limit import check_file_pixels

PathLike = Union[str, Path]


def read_rgb(path: PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB image from a file; grayscale files are expanded, alpha is dropped, EXIF
    orientation is applied (as ``cv2.imread`` does). A truncated JPEG is an error (OpenCV would
    fill the missing part with grey), as is a file above the pixel limit, checked from its header
    (:mod:`amodal_sam.pixel_limit`)."""
    check_file_pixels(path, "image file")
    try:
        data = Path(path).read_bytes()  # read once: decoded from memory and checked for truncation
    except OSError:
        data = b""
    if data[:2] == _JPEG_START and not jpeg_is_complete(data):
        raise ValueError(f"image file {str(path)!r} is a truncated JPEG (it ends before its end-of-image marker)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error as error:
        raise ValueError(
            f"image file {str(path)!r} cannot be decoded: {str(error).strip().splitlines()[-1]}"
        ) from error
    if image is None:
        raise ValueError(f"image file {str(path)!r} does not exist or is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


_JPEG_START = b"\xff\xd8"
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM and the restart markers carry no length


def jpeg_is_complete(data: bytes) -> bool:
    """True when the JPEG in ``data`` reaches its end-of-image marker: its segments are walked by
    their lengths, and each scan's entropy-coded data up to the next marker (a 0xFF byte not
    followed by 0x00 stuffing or a restart marker). Bytes after the marker (camera trailers,
    motion-photo videos) do not matter."""
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == 0xD9:
            return True
        if marker in _STANDALONE_MARKERS:
            position += 2
            continue
        if position + 4 > len(data):  # cut inside a segment's length
            return False
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data until the next real marker
            while True:
                position = data.find(b"\xff", position)
                if position < 0 or position + 1 >= len(data):
                    return False
                following = data[position + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    position += 2
                    continue
                break
    return False


def write_mask(path: PathLike, mask: np.ndarray) -> None:
    """Write an (H, W) bool mask as an 8-bit PNG (0 / 255), atomically."""
    _write(path, mask.astype(np.uint8) * 255)


def write_rgb(path: PathLike, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image, atomically; the format follows the file suffix."""
    _write(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def _write(path: PathLike, pixels: np.ndarray) -> None:
    path = Path(path)
    with atomic_output(path) as temporary:
        ok, encoded = cv2.imencode(path.suffix or ".png", pixels)
        if not ok:
            raise ValueError(f"cannot encode an image for {str(path)!r}; use a .png or .jpg name")
        temporary.write_bytes(encoded.tobytes())
