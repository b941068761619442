"""The canvas of beyond-the-frame completion: the image inside a larger frame whose margins hold
what the image border cuts off.

For an image of (H, W) pixels and a margin share ``beyond`` = b, the canvas adds round(b W)
columns on the left and on the right and round(b H) rows above and below (halves rounded up):
(H_c, W_c) = (H + 2 round(b H), W + 2 round(b W)). Image pixel (x, y) is canvas pixel
(x + x0, y + y0), with ``origin`` = (x0, y0) = (round(b W), round(b H)). Masks on the canvas are (..., H_c, W_c) bool;
what lies outside the image region is out of frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_BEYOND = 2.0  # a canvas at most 5 x the image's width and height


class OnCanvas:
    """What a result whose ``amodal`` masks (``(..., H_c, W_c)`` bool) may lie on a ``canvas``
    (None: the image's own frame) reads of it; mixed into the result dataclasses."""

    amodal: np.ndarray
    canvas: Canvas | None

    @property
    def canvas_origin(self) -> tuple[int, int]:
        """(x0, y0): where the image's pixel (0, 0) lies on the masks' frame ((0, 0) without a
        canvas)."""
        return (0, 0) if self.canvas is None else self.canvas.origin

    @property
    def out_of_frame(self) -> np.ndarray:
        """Bool, the shape of ``amodal``: the completed part outside the image (nothing without
        a canvas)."""
        if self.canvas is None:
            return np.zeros_like(self.amodal)
        return self.canvas.out_of_frame(self.amodal)


def check_beyond(beyond: object, name: str = "beyond") -> float:
    """``beyond`` as a float in [0, :data:`MAX_BEYOND`]; else a ValueError naming ``name``."""
    try:
        value = float(beyond)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(beyond, bool) or not math.isfinite(value) or not 0 <= value <= MAX_BEYOND:
        raise ValueError(
            f"{name} must be a number from 0 to {MAX_BEYOND:g} (the margin beyond each image border, as a share "
            f"of the image's width and height); got {beyond!r}"
        )
    return value


@dataclass(frozen=True)
class Canvas:
    """Where an (H, W) image lies on a larger canvas.

    Attributes:
        image_size: (H, W) of the image.
        origin: (x0, y0), the canvas pixel of the image's pixel (0, 0).
        size: (H_c, W_c) of the canvas.
    """

    image_size: tuple[int, int]
    origin: tuple[int, int]
    size: tuple[int, int]

    @classmethod
    def around(cls, image_size: tuple[int, int], beyond: float) -> Canvas:
        """The canvas of an (H, W) image with round(beyond W) columns beyond its left and right
        borders and round(beyond H) rows beyond its top and bottom (see :func:`check_beyond`)."""
        height, width = int(image_size[0]), int(image_size[1])
        beyond = check_beyond(beyond)
        x0, y0 = math.floor(beyond * width + 0.5), math.floor(beyond * height + 0.5)  # halves round up
        return cls(image_size=(height, width), origin=(x0, y0), size=(height + 2 * y0, width + 2 * x0))

    @property
    def is_image(self) -> bool:
        """True when the canvas adds nothing: it is the image itself."""
        return self.size == self.image_size

    @property
    def image_slices(self) -> tuple[slice, slice]:
        """(rows, columns) of the image region on the canvas."""
        (height, width), (x0, y0) = self.image_size, self.origin
        return slice(y0, y0 + height), slice(x0, x0 + width)

    def image_region(self) -> np.ndarray:
        """(H_c, W_c) bool: True on the image's pixels."""
        region = np.zeros(self.size, bool)
        region[self.image_slices] = True
        return region

    def place(self, masks: np.ndarray) -> np.ndarray:
        """(..., H, W) image masks -> (..., H_c, W_c) canvas masks, False in the margins."""
        if tuple(masks.shape[-2:]) != self.image_size:
            raise ValueError(f"masks must be (..., {self.image_size[0]}, {self.image_size[1]}); got {masks.shape}")
        placed = np.zeros((*masks.shape[:-2], *self.size), masks.dtype)
        placed[(..., *self.image_slices)] = masks
        return placed

    def crop(self, masks: np.ndarray) -> np.ndarray:
        """(..., H_c, W_c) canvas masks -> (..., H, W): their part inside the image (a view)."""
        if tuple(masks.shape[-2:]) != self.size:
            raise ValueError(f"masks must be (..., {self.size[0]}, {self.size[1]}) on the canvas; got {masks.shape}")
        return masks[(..., *self.image_slices)]

    def out_of_frame(self, masks: np.ndarray) -> np.ndarray:
        """(..., H_c, W_c) canvas masks -> their pixels outside the image, same shape."""
        outside = masks.copy()
        outside[(..., *self.image_slices)] = False
        return outside

    def to_json(self) -> dict:
        """``{"canvas_origin": [x0, y0], "canvas_size": [H_c, W_c], "image_size": [H, W]}``."""
        return {"canvas_origin": list(self.origin), "canvas_size": list(self.size), "image_size": list(self.image_size)}


def image_on_canvas(image: np.ndarray, canvas: Canvas, fill: tuple[float, float, float]) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H_c, W_c, 3) uint8 RGB: ``image`` on ``canvas``, the margins
    ``fill`` (RGB, 0-255, rounded)."""
    placed = np.empty((*canvas.size, 3), np.uint8)
    placed[...] = np.clip(np.round(np.asarray(fill, np.float64)), 0, 255).astype(np.uint8)
    placed[canvas.image_slices] = image
    return placed


def touched_borders(mask: np.ndarray) -> dict[str, bool]:
    """Which borders of the image an (H, W) mask touches (a pixel in its outermost row or
    column): ``{"left", "right", "top", "bottom"}`` -> bool."""
    return {
        "left": bool(mask[:, 0].any()),
        "right": bool(mask[:, -1].any()),
        "top": bool(mask[0, :].any()),
        "bottom": bool(mask[-1, :].any()),
    }


def mirrored_beyond(visible: np.ndarray, canvas: Canvas) -> np.ndarray:
    """The mirror baseline: an (H, W) visible mask on ``canvas``, with its reflection about each
    image border it touches added in the margin beyond that border ((H_c, W_c) bool). Left and
    right first, then top and bottom over the whole width, so a mask that touches two adjacent
    borders fills the corner between them too. A rule with no learning."""
    placed = canvas.place(visible.astype(bool))
    (height, width), (x0, y0) = canvas.image_size, canvas.origin
    touched = touched_borders(visible)
    rows = slice(y0, y0 + height)
    columns = min(x0, width)
    if touched["left"] and columns:
        placed[rows, x0 - columns : x0] |= placed[rows, x0 : x0 + columns][:, ::-1]
    if touched["right"] and columns:
        right = x0 + width
        placed[rows, right : right + columns] |= placed[rows, right - columns : right][:, ::-1]
    lines = min(y0, height)
    if touched["top"] and lines:
        placed[y0 - lines : y0] |= placed[y0 : y0 + lines][::-1]
    if touched["bottom"] and lines:
        bottom = y0 + height
        placed[bottom : bottom + lines] |= placed[bottom - lines : bottom][::-1]
    return placed
