"""Legends a person reads at a glance: beside the image, as narrow as their text, lines of at
least 22 pixels (a twenty-fourth of a tall image), in columns when there are many."""

import numpy as np

from amodal_sam.visualize import LEGEND_BACKGROUND, LegendEntry, legend_line, legend_panel, scene_overlay


def _ink_columns(panel: np.ndarray) -> np.ndarray:
    """Columns of ``panel`` holding anything but the background."""
    return np.flatnonzero((panel != np.asarray(LEGEND_BACKGROUND, np.uint8)).any(axis=2).any(axis=0))


def test_lines_are_readable_at_the_size_written_and_grow_with_the_image():
    assert legend_line(120) == legend_line(240) == 22  # 12-pixel capitals at least
    assert legend_line(3000) == 125  # a 12-megapixel photo shown on a screen is scaled down about 4x


def test_the_panel_is_as_tall_as_the_image_and_as_narrow_as_its_text():
    entries = [LegendEntry("visible", (40, 200, 80)), LegendEntry("a much longer line of legend", (230, 50, 200))]
    panel = legend_panel(240, entries)
    assert panel.shape[0] == 240
    ink = _ink_columns(panel)
    margin = round(0.4 * 22)
    assert ink[0] == margin and panel.shape[1] - 1 - ink[-1] <= 2 * margin  # no empty band on either side
    wider = legend_panel(240, [*entries, LegendEntry("a much longer line of legend, longer still", (0, 0, 255))])
    assert wider.shape[1] > panel.shape[1]


def test_many_entries_go_into_columns_beside_the_image():
    entries = [LegendEntry(f"object {k}", (255, 0, 0)) for k in range(30)]
    panel = legend_panel(240, entries)
    per_column = (240 - 2 * round(0.4 * 22)) // 22  # 10 lines fit beside a 240-pixel image
    assert panel.shape[0] == 240 and per_column == 10
    red = (panel == np.asarray((255, 0, 0), np.uint8)).all(axis=2)
    swatch_columns = np.flatnonzero(np.diff(red.any(axis=0).astype(int)) == 1)
    assert len(swatch_columns) == 3  # 30 swatches in three columns


def test_swatches_are_filled_hatched_or_outlined():
    line = legend_line(100)
    size = round(0.6 * line)
    panel = legend_panel(
        100,
        [
            LegendEntry("f", (255, 0, 0)),
            LegendEntry("h", (0, 255, 0), "hatch"),
            LegendEntry("o", (0, 0, 255), "outline"),
        ],
    )
    margin = round(0.4 * line)

    def swatch(row):
        top = margin + row * line + (line - size) // 2
        return panel[top : top + size, margin : margin + size]

    filled, hatched, outlined = swatch(0), swatch(1), swatch(2)
    assert (filled == (255, 0, 0)).all()
    share = (hatched == (0, 255, 0)).all(axis=2).mean()
    assert 0.3 < share < 0.7  # stripes: about half
    blue = (outlined == (0, 0, 255)).all(axis=2)
    assert blue[0].all() and blue[-1].all() and not blue[size // 2, size // 2]  # a frame, hollow


def test_a_scene_overlay_has_the_image_left_and_its_legend_right():
    image = np.full((60, 80, 3), 200, np.uint8)
    visible = np.zeros((2, 60, 80), bool)
    visible[0, 10:30, 10:30] = visible[1, 10:50, 40:60] = True
    picture = scene_overlay(image, visible, visible, np.array([0, 0]), ["a", "b"])
    assert picture.shape[0] == 60 and picture.shape[1] > 80
    np.testing.assert_array_equal(picture[0, 0], (200, 200, 200))  # the image itself, top left
    assert (picture[:, 80:] == np.asarray(LEGEND_BACKGROUND, np.uint8)).all(axis=2).mean() > 0.5
