"""Pictures of results: the visible and occluded parts over the image."""

from __future__ import annotations

import cv2
import numpy as np

VISIBLE_COLOR = (40, 200, 80)  # RGB green
OCCLUDED_COLOR = (230, 50, 200)  # RGB magenta
OCCLUDER_COLOR = (255, 210, 0)  # RGB amber: the outline of what covers the object
OUTLINE_COLOR = (255, 255, 255)  # the amodal outline


def overlay(
    image: np.ndarray,
    visible: np.ndarray,
    occluded: np.ndarray,
    occluder: np.ndarray | None = None,
    alpha: float = 0.55,
) -> np.ndarray:
    """(H + band, W, 3) uint8 RGB picture of one completion: the visible part tinted green, the
    occluded (hidden) part magenta, the amodal outline in white and, when given, the outline of
    the ``occluder`` (what covers the object) in amber; a legend band below the image names them.
    Masks are (H, W) bool."""
    picture = image.astype(np.float32)
    for mask, color in ((visible, VISIBLE_COLOR), (occluded, OCCLUDED_COLOR)):
        picture[mask] = (1 - alpha) * picture[mask] + alpha * np.asarray(color, dtype=np.float32)
    picture = picture.round().astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    outlines = [(visible | occluded, OUTLINE_COLOR, "amodal outline")]
    if occluder is not None:
        outlines.insert(0, (occluder, OCCLUDER_COLOR, "occluder"))
    for mask, color, _ in outlines:
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, color, thickness)
    entries = [("visible", VISIBLE_COLOR), ("hidden", OCCLUDED_COLOR)] + [(name, c) for _, c, name in outlines]
    return np.concatenate([picture, _legend_band(image.shape[1], entries)], axis=0)


def _legend_band(width: int, entries: list[tuple[str, tuple[int, int, int]]]) -> np.ndarray:
    """(h, width, 3) uint8 RGB dark band naming each colour, left to right (wrapping rows)."""
    scale = max(0.35, min(0.6, width / 900))
    line = round(26 * scale / 0.5)
    swatch = round(12 * scale / 0.5)
    placed, x, row = [], 6, 0
    for name, color in entries:
        (text_width, _), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        item = swatch + 4 + text_width + 12
        if x + item > width and x > 6:
            x, row = 6, row + 1
        placed.append((x, row, name, color))
        x += item
    band = np.full(((row + 1) * line + 4, width, 3), 32, dtype=np.uint8)
    for x, row, name, color in placed:
        top = row * line + (line - swatch) // 2 + 2
        cv2.rectangle(band, (x, top), (x + swatch, top + swatch), color, -1)
        baseline = row * line + line // 2 + int(8 * scale / 0.5) // 2 + 2
        cv2.putText(
            band, name, (x + swatch + 4, baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (235, 235, 235), 1, cv2.LINE_AA
        )
    return band


def object_colors(count: int) -> np.ndarray:
    """(count, 3) uint8 RGB, one distinct colour per object: matplotlib's tab10, or for more
    objects tab20 with its strong shades first (its neighbours are pairs of one hue)."""
    from matplotlib import colormaps

    if count <= 10:
        order = list(range(10))
    else:
        order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return (np.asarray([palette(order[i % len(order)])[:3] for i in range(count)]) * 255).round().astype(np.uint8)


def scene_picture(
    image: np.ndarray, visible: np.ndarray, amodal: np.ndarray, layers: np.ndarray, colors: np.ndarray
) -> np.ndarray:
    """(H, W, 3) uint8 RGB: each object of (N, H, W) bool ``visible`` / ``amodal`` in its own
    ``colors[k]``; the visible part tinted, the hidden part hatched (diagonal stripes, strong and
    faint in turn), the amodal outline drawn. Visible parts are painted first, deeper ``layers``
    first; hidden parts go over them (they lie behind something by definition, so they would
    otherwise be covered), then the outlines."""
    picture = image.astype(np.float32)
    rows, cols = np.indices(image.shape[:2])
    stripes = ((rows + cols) // 4) % 2 == 0
    back_to_front = sorted(range(len(visible)), key=lambda i: -int(layers[i]))
    paint = [(visible[k], 0.5, k) for k in back_to_front]
    for k in back_to_front:
        hidden = amodal[k] & ~visible[k]
        paint += [(hidden & stripes, 0.8, k), (hidden & ~stripes, 0.2, k)]
    for mask, alpha, k in paint:
        picture[mask] = (1 - alpha) * picture[mask] + alpha * colors[k].astype(np.float32)
    picture = picture.round().astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 300))
    for k in back_to_front:
        contours, _ = cv2.findContours(amodal[k].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(picture, contours, -1, tuple(int(c) for c in colors[k]), thickness)
    return picture


def scene_overlay(
    image: np.ndarray,
    visible: np.ndarray,
    amodal: np.ndarray,
    layers: np.ndarray,
    labels: list[str],
) -> np.ndarray:
    """:func:`scene_picture` with a legend beside it: one entry per object, front layers first
    (its label, depth layer and hidden share), and what the hatching means. Returns an RGB
    uint8 picture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = object_colors(len(visible))
    picture = scene_picture(image, visible, amodal, layers, colors)
    height, width = image.shape[:2]
    figure = plt.figure(figsize=(width / 100 + 3.2, max(height / 100, 2.5)), dpi=100)
    axes = figure.add_axes((0, 0, width / 100 / (width / 100 + 3.2), 1))
    axes.imshow(picture)
    axes.set_axis_off()
    handles = []
    for k in sorted(range(len(visible)), key=lambda i: (int(layers[i]), i)):
        share = (amodal[k] & ~visible[k]).sum() / max(int(amodal[k].sum()), 1)
        handles.append(Patch(color=colors[k] / 255, label=f"{labels[k]}: layer {int(layers[k])}, {share:.0%} hidden"))
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="////", label="hatched: hidden part"))
    figure.legend(
        handles=handles, loc="upper right", fontsize=8, title="front (layer 0) to back", title_fontsize=8, frameon=False
    )
    figure.canvas.draw()
    rendered = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return rendered
