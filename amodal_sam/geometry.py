"""Every coordinate frame of the pipeline, and the transforms between them.

Three frames, for an image of original size (H, W) and an encoder of input side S (1024 for SAM):

* **original**: pixels of the user's image, (H, W); points are (x, y), boxes (x0, y0, x1, y1).
* **input**: the image resized so that its longest side is S (``input_size`` = (h, w)), then
  zero-padded at the bottom and right to S x S; the encoder and the prompt encoder's points and
  boxes live here.
* **low-res**: the decoders' mask frame, L x L with L = 4 x the embedding side (256 for SAM's
  64 x 64 tokens); the resized image covers its top-left (h L / S, w L / S), the rest is padding.

No other module resizes, pads or crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide


@dataclass(frozen=True)
class ImageFrame:
    """The frames of one image: ``original_size`` = (H, W), encoder input side ``encoder_size``
    (S) and low-res side ``low_res_size`` (L; :attr:`SamSpec.low_res_size` is the one rule that
    sets it: 256 for SAM)."""

    original_size: tuple[int, int]
    encoder_size: int
    low_res_size: int

    def __post_init__(self) -> None:
        height, width = self.original_size
        if height < 1 or width < 1:
            raise ValueError(f"image size must be at least 1 x 1 (H x W); got {height} x {width}")
        resized = self.input_size
        if min(resized) < 1:
            raise ValueError(
                f"an image of {height} x {width} (H x W) is too thin for this model: resized to "
                f"{self.encoder_size} px on its long side it would be {resized[0]} x {resized[1]}; the long "
                f"side may be at most {2 * self.encoder_size} x the short side"
            )

    @classmethod
    def for_spec(cls, original_size: tuple[int, int], spec, image_name: str | None = None) -> ImageFrame:
        """The frame of an (H, W) image for a model of :class:`~amodal_sam.config.SamSpec` ``spec``;
        ``image_name`` (e.g. its file) starts the error of a size the encoder cannot take."""
        try:
            return cls(
                original_size=(int(original_size[0]), int(original_size[1])),
                encoder_size=spec.image_size,
                low_res_size=spec.low_res_size,
            )
        except ValueError as error:
            if image_name is None:
                raise
            raise ValueError(f"image {image_name!r}: {error}") from None

    @property
    def low_res_cell(self) -> int:
        """Side of one low-res pixel in original pixels, rounded up: ceil(max(H, W) / L)."""
        return -(-max(self.original_size) // self.low_res_size)

    @property
    def input_size(self) -> tuple[int, int]:
        """(h, w) of the resized, unpadded image in the input frame."""
        return ResizeLongestSide.get_preprocess_shape(*self.original_size, self.encoder_size)

    def prepare_image(self, image: np.ndarray, pixel_mean: torch.Tensor, pixel_std: torch.Tensor) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, S, S) float: resized as SamPredictor does, normalised, padded."""
        resized = ResizeLongestSide(self.encoder_size).apply_image(image)
        pixels = torch.as_tensor(resized, device=pixel_mean.device).permute(2, 0, 1)[None].float()
        pixels = (pixels - pixel_mean.view(1, 3, 1, 1)) / pixel_std.view(1, 3, 1, 1)
        h, w = pixels.shape[-2:]
        return F.pad(pixels, (0, self.encoder_size - w, 0, self.encoder_size - h))

    def points_to_input(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) (x, y) original pixels -> input-frame pixels."""
        return ResizeLongestSide(self.encoder_size).apply_coords(
            np.asarray(points, dtype=np.float64), self.original_size
        )

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """(N, 4) (x0, y0, x1, y1) original pixels -> input-frame pixels."""
        return self.points_to_input(np.asarray(boxes, dtype=np.float64).reshape(-1, 2, 2)).reshape(-1, 4)

    def masks_to_low_res(self, masks: np.ndarray) -> np.ndarray:
        """(N, H, W) boolean masks -> (N, L, L) float32 coverage in [0, 1] of each low-res pixel.

        Each mask is area-averaged onto the resized image's part of the low-res frame, (h, w)
        scaled by L / S at its top-left; the padding stays background.
        """
        h, w = self.input_size
        scale = self.low_res_size / self.encoder_size
        rows, cols = max(1, round(h * scale)), max(1, round(w * scale))
        out = np.zeros((len(masks), self.low_res_size, self.low_res_size), dtype=np.float32)
        for i, mask in enumerate(masks):
            out[i, :rows, :cols] = cv2.resize(mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
        return out

    def low_res_to_original(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, C, L, L) low-res logits -> (N, C, H, W) logits at the original resolution.

        Upsample to S x S, drop the padding, resize to (H, W), as ``Sam.postprocess_masks``. The
        padding is dropped before upsampling where that gives the same values: with S a multiple
        f of L, only the first ceil(h / f) + 1 low-res rows (and columns) reach the unpadded part
        (a bilinear output pixel reads the two source pixels nearest to it), and upsampling them
        by f at the same scale computes exactly those output pixels.
        """
        h, w = self.input_size
        factor, remainder = divmod(self.encoder_size, self.low_res_size)
        if remainder:
            rows, cols = self.low_res_size, self.low_res_size
        else:
            rows, cols = (min(self.low_res_size, -(-side // factor) + 1) for side in (h, w))
        size = (rows * self.encoder_size // self.low_res_size, cols * self.encoder_size // self.low_res_size)
        upsampled = F.interpolate(logits[..., :rows, :cols], size, mode="bilinear", align_corners=False)
        return F.interpolate(upsampled[..., :h, :w], self.original_size, mode="bilinear", align_corners=False)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, H, W) boolean masks -> (N, 4) float boxes (x0, y0, x1, y1) in original pixels.

    x1, y1 are the last column and row the mask covers (segment-anything's convention). An empty
    mask has no box and raises ``ValueError``.
    """
    boxes = np.zeros((len(masks), 4), dtype=np.float64)
    for i, mask in enumerate(masks):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            raise ValueError(f"mask {i} is empty and has no box")
        boxes[i] = (cols[0], rows[0], cols[-1], rows[-1])
    return boxes


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool convex hull of a mask's pixels, the mask included (the mask itself when it has
    under 3 pixels)."""
    points = cv2.findNonZero(mask.astype(np.uint8))
    if points is None or len(points) < 3:
        return mask.copy()
    hull = np.zeros(mask.shape, dtype=np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points), 1)
    return hull.astype(bool) | mask


def visible_prompt_levels(
    frame: ImageFrame, masks: np.ndarray, with_hull: bool, occluders: np.ndarray | None = None
) -> np.ndarray:
    """(N, H, W) visible masks -> (N, L, L) float32 mask-prompt levels in [-1, 1], low-res frame.

    +1 on the visible part, -1 elsewhere; with ``with_hull``, the convex hull of the visible part
    outside it is 0 (undecided), the region where a completion is likeliest. With (N, H, W) bool
    known ``occluders`` the undecided region is the hull under them (a part can only be hidden
    where something covers it). Edge pixels take the coverage-weighted level.
    """
    visible = frame.masks_to_low_res(masks)
    if not with_hull:
        return 2.0 * visible - 1.0
    hulls = np.stack([convex_hull(m) for m in masks]) if len(masks) else np.zeros_like(masks)
    if occluders is not None:
        hulls = (hulls & occluders) | masks
    return visible + frame.masks_to_low_res(hulls) - 1.0


def mask_prompt_levels(frame: ImageFrame, masks: np.ndarray) -> np.ndarray:
    """(N, H, W) bool masks (known occluders, shape memories) -> (N, L, L) float32 levels in
    [-1, 1] in the low-res frame: +1 in the mask, -1 outside, edge pixels by coverage; the padding
    is -1."""
    return 2.0 * frame.masks_to_low_res(masks) - 1.0
