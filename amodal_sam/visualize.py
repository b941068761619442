"""Pictures of results: the visible and occluded parts over the image."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from amodal_sam.canvas import Canvas, image_on_canvas

VISIBLE_COLOR = (40, 200, 80)  # RGB green
OCCLUDED_COLOR = (230, 50, 200)  # RGB magenta
OCCLUDER_COLOR = (255, 210, 0)  # RGB amber: the outline of what covers the object
OUTLINE_COLOR = (255, 255, 255)  # the amodal outline
MARGIN_COLOR = (72, 72, 72)  # a canvas's margins beyond the image
FRAME_COLOR = (0, 190, 255)  # RGB sky blue: the image's border on a canvas


def overlay(
    image: np.ndarray,
    visible: np.ndarray,
    occluded: np.ndarray,
    occluder: np.ndarray | None = None,
    alpha: float = 0.55,
    canvas: Canvas | None = None,
) -> np.ndarray:
    """(H, W + legend, 3) uint8 RGB picture of one completion: the visible part tinted green, the
    occluded (hidden) part magenta, the amodal outline in white and, when given, the outline of
    the ``occluder`` (what covers the object) in amber; a legend beside the image names them
    (:func:`legend_panel`). Masks are (H, W) bool; with a ``canvas`` they are (H_c, W_c) on it,
    and the (H, W, 3) image is drawn on it (:func:`on_canvas`) with its border outlined."""
    if canvas is not None:
        image = on_canvas(image, canvas)
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
    entries = [LegendEntry("visible", VISIBLE_COLOR), LegendEntry("hidden", OCCLUDED_COLOR)]
    entries += [LegendEntry(name, color, "outline") for _, color, name in outlines]
    entries += _draw_image_border(picture, canvas, thickness)
    return beside(picture, legend_panel(image.shape[0], entries))


def on_canvas(image: np.ndarray, canvas: Canvas) -> np.ndarray:
    """(H, W, 3) uint8 RGB image -> (H_c, W_c, 3): the image on ``canvas``, the margins
    :data:`MARGIN_COLOR`."""
    return image_on_canvas(image, canvas, MARGIN_COLOR)


def _draw_image_border(picture: np.ndarray, canvas: Canvas | None, thickness: int) -> list[LegendEntry]:
    """Outline the image's border on a canvas picture, just outside the image; the legend entry
    for it ([] without a canvas)."""
    if canvas is None or canvas.is_image:
        return []
    (height, width), (x0, y0) = canvas.image_size, canvas.origin
    cv2.rectangle(picture, (x0 - 1, y0 - 1), (x0 + width, y0 + height), FRAME_COLOR, thickness)
    return [LegendEntry("image border", FRAME_COLOR, "outline")]


def beside(picture: np.ndarray, panel: np.ndarray) -> np.ndarray:
    """(H, W, 3) ``picture`` and an (h, w, 3) legend ``panel`` side by side, the shorter padded
    below with the legend's background."""
    height = max(picture.shape[0], panel.shape[0])

    def padded(part: np.ndarray) -> np.ndarray:
        extra = np.full((height - part.shape[0], *part.shape[1:]), LEGEND_BACKGROUND, np.uint8)
        return np.concatenate([part, extra])

    return np.concatenate([padded(picture), padded(panel)], axis=1)


@dataclass(frozen=True)
class LegendEntry:
    """One line of a legend: its text, its RGB colour and how its swatch is drawn (``"fill"``,
    ``"hatch"``: diagonal stripes as the scene picture draws hidden parts, ``"outline"``)."""

    text: str
    color: tuple[int, int, int]
    style: str = "fill"


LEGEND_BACKGROUND = (32, 32, 32)
LEGEND_TEXT = (235, 235, 235)
MIN_LINE = 22  # pixels per legend line at least: 12-pixel capitals, readable at the size written


def legend_line(height: int) -> int:
    """Pixels per legend line beside an image ``height`` pixels high: :data:`MIN_LINE`, or a
    twenty-fourth of the image, so that the legend stays readable when a large picture is shown
    scaled down to a screen."""
    return max(MIN_LINE, round(height / 24))


def legend_panel(height: int, entries: list[LegendEntry], title: str | None = None) -> np.ndarray:
    """(height, w, 3) uint8 RGB dark panel listing ``entries`` top to bottom under an optional
    ``title``, in as many columns as ``height`` needs, as narrow as its text allows: it goes
    beside an image ``height`` pixels high (taller when one line does not fit)."""
    line = legend_line(height)
    scale = line / 44  # FONT_HERSHEY_SIMPLEX: capitals about 0.55 x line high
    thickness = max(1, round(line / 22))
    swatch, gap, margin = round(0.6 * line), round(0.3 * line), round(0.4 * line)
    lines = ([LegendEntry(title, LEGEND_TEXT, "title")] if title else []) + list(entries)
    per_column = max(1, (max(height, line + 2 * margin) - 2 * margin) // line)
    columns = [lines[i : i + per_column] for i in range(0, len(lines), per_column)]

    def text_width(entry: LegendEntry) -> int:
        width = cv2.getTextSize(entry.text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
        return width if entry.style == "title" else swatch + gap + width

    widths = [max(text_width(e) for e in column) for column in columns]
    panel_height = max(height, 2 * margin + line * max(len(c) for c in columns))
    panel = np.full((panel_height, sum(widths) + margin * (len(columns) + 1), 3), LEGEND_BACKGROUND, np.uint8)
    left = margin
    for column, width in zip(columns, widths):
        for row, entry in enumerate(column):
            top = margin + row * line + (line - swatch) // 2
            baseline = margin + row * line + (line + round(0.55 * line)) // 2
            if entry.style == "title":
                cv2.putText(
                    panel,
                    entry.text,
                    (left, baseline),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    scale,
                    LEGEND_TEXT,
                    thickness,
                    cv2.LINE_AA,
                )
                continue
            _draw_swatch(panel, (left, top), swatch, entry)
            cv2.putText(
                panel,
                entry.text,
                (left + swatch + gap, baseline),
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                LEGEND_TEXT,
                thickness,
                cv2.LINE_AA,
            )
        left += width + margin
    return panel


def _draw_swatch(panel: np.ndarray, corner: tuple[int, int], size: int, entry: LegendEntry) -> None:
    """One entry's ``size`` x ``size`` swatch at (x, y) ``corner`` of ``panel``, in place."""
    x, y = corner
    box = panel[y : y + size, x : x + size]
    if entry.style == "fill":
        box[:] = entry.color
    elif entry.style == "hatch":
        rows, cols = np.indices(box.shape[:2])
        box[((rows + cols) // max(2, size // 6)) % 2 == 0] = entry.color
    else:
        cv2.rectangle(panel, (x, y), (x + size - 1, y + size - 1), entry.color, max(1, size // 6))


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
    canvas: Canvas | None = None,
) -> np.ndarray:
    """:func:`scene_picture` with a legend beside it (:func:`legend_panel`): one entry per
    object, front layers first (its label, depth layer and hidden share, its swatch in its
    colour), and what the hatching means. Returns an (H, W + legend, 3) uint8 RGB picture. With
    a ``canvas`` the masks are (N, H_c, W_c) on it and the image is drawn on it, its border
    outlined."""
    if canvas is not None:
        image = on_canvas(image, canvas)
    colors = object_colors(len(visible))
    picture = scene_picture(image, visible, amodal, layers, colors)
    border = _draw_image_border(picture, canvas, max(1, round(max(image.shape[:2]) / 300)))
    entries = []
    for k in sorted(range(len(visible)), key=lambda i: (int(layers[i]), i)):
        share = np.count_nonzero(amodal[k] & ~visible[k]) / max(int(np.count_nonzero(amodal[k])), 1)
        color = tuple(int(c) for c in colors[k])
        entries.append(LegendEntry(f"{labels[k]}: layer {int(layers[k])}, {share:.0%} hidden", color))
    entries.append(LegendEntry("hatched: hidden part", LEGEND_TEXT, "hatch"))
    return beside(picture, legend_panel(image.shape[0], entries + border, title="front (layer 0) to back"))


def video_overlay(
    image: np.ndarray, ids: list[int], visible: np.ndarray, amodal: np.ndarray, layers: np.ndarray, objects: list[int]
) -> np.ndarray:
    """One frame of a video's overlay: :func:`scene_picture` of the frame's objects ``ids`` ((N, H,
    W) bool masks, (N,) ``layers``, -1 = not visible, drawn deepest), each in the colour of its
    place among all the video's ``objects`` (the same colour in every frame), and a legend of
    every object and the hatching, the same in every frame (per-frame numbers are in
    ``video.json``). Returns an (H, W + legend, 3) uint8 RGB picture."""
    palette = object_colors(len(objects))
    colors = np.array([palette[objects.index(k)] for k in ids]).reshape(-1, 3).astype(np.uint8)
    depth = np.where(np.asarray(layers) < 0, np.iinfo(np.int64).max // 2, layers)
    picture = scene_picture(image, visible, amodal, depth, colors)
    entries = [LegendEntry(f"object {k}", tuple(int(c) for c in palette[n])) for n, k in enumerate(objects)]
    entries.append(LegendEntry("hatched: hidden part", LEGEND_TEXT, "hatch"))
    return beside(picture, legend_panel(image.shape[0], entries))
