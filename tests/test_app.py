"""The web demo: its work functions give the Python API's masks, the served page answers
gradio_client with them, and a real headless Chromium runs one completion through the page.

AMODAL_SAM_APP_SCREENSHOT=PATH also writes the browser's screenshot there (the README's picture)."""

import os
import shutil
import socket
import warnings

import numpy as np
import pytest

from amodal_sam import AmodalPredictor, default_model
from amodal_sam.app import EXAMPLES, complete_files, complete_scene_file, painted_mask, parse_box, parse_points
from amodal_sam.image_io import read_rgb
from amodal_sam.mask_files import read_index_map, read_mask

IMAGE, VISIBLE, OBJECTS = EXAMPLES / "scene.png", EXAMPLES / "scene_visible.png", EXAMPLES / "scene_objects.png"


@pytest.fixture(scope="module")
def demo():
    """The shipped demo; its once-per-process notice (tested in test_predictor.py) is not asked
    for here, since another test module may have loaded the demo first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return default_model()


@pytest.fixture(scope="module")
def expected(demo):
    """The Python API's completion of the README example, alone and in its scene."""
    predictor = AmodalPredictor(demo, device="cpu")
    predictor.set_image(read_rgb(IMAGE))
    index = read_index_map(OBJECTS)
    masks = np.stack([index == k for k in np.unique(index) if k])
    return predictor.complete(visible_mask=read_mask(VISIBLE)), predictor.complete_scene(masks)


def test_points_and_boxes_are_read_from_text_or_refused_by_name():
    assert parse_points("10,20; 30.5, 40\n50,60") == [[10, 20], [30.5, 40], [50, 60]]
    assert parse_points("  ") == [] and parse_box("") is None
    assert parse_box("1, 2, 3, 4") == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="points: '10' is not x,y"):
        parse_points("10")
    with pytest.raises(ValueError, match="box: '1,2,3' is not x0,y0,x1,y1"):
        parse_box("1,2,3")


def test_painted_strokes_are_the_layers_alpha():
    stroke = np.zeros((4, 5, 4), dtype=np.uint8)
    stroke[1:3, 2, 3] = 255
    mask = painted_mask({"background": None, "layers": [stroke], "composite": None}, (4, 5))
    assert mask.sum() == 2 and mask[1, 2] and mask[2, 2]
    assert painted_mask({"layers": [np.zeros((4, 5, 4), np.uint8)]}, (4, 5)) is None  # nothing painted
    assert painted_mask(None, (4, 5)) is None
    with pytest.raises(ValueError, match="painted mask is 5x4; the image is 6x4"):
        painted_mask({"layers": [stroke]}, (4, 6))


def test_the_work_functions_give_the_python_apis_masks(demo, expected):
    single, scene = expected
    predictor = AmodalPredictor(demo, device="cpu")
    done = complete_files(predictor, IMAGE, mask_path=VISIBLE)
    assert np.array_equal(done.amodal > 0, single.amodal)
    assert len(done.hypotheses) == len(single.hypotheses) and f"{single.score:.3f}" in done.summary
    assert done.overlay.shape[0] == single.amodal.shape[0]  # the legend sits beside, not below
    # painting the same pixels is the same prompt
    strokes = np.zeros((*single.amodal.shape, 4), dtype=np.uint8)
    strokes[read_mask(VISIBLE), 3] = 255
    painted = complete_files(predictor, IMAGE, painted={"layers": [strokes]})
    assert np.array_equal(painted.amodal, done.amodal)
    picture, table = complete_scene_file(predictor, IMAGE, OBJECTS)
    assert picture.shape[0] == scene.amodal.shape[1]
    for k in range(len(scene)):  # a row per object: its name, layer, visible and hidden pixels
        visible_px, amodal_px = int(scene.visible[k].sum()), int(scene.amodal[k].sum())
        assert f"| {k + 1} | {int(scene.layers[k])} | {visible_px} | {amodal_px - visible_px} |" in table
    with pytest.raises(ValueError, match="give the visible part"):
        complete_files(predictor, IMAGE)
    with pytest.raises(ValueError, match="random"):  # the demo's SAM is random: no point prompts
        complete_files(predictor, IMAGE, points="100,100")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(demo):
    pytest.importorskip("gradio", reason="the web demo needs the app extra (pip install -e '.[test]')")
    from amodal_sam.app import launch_app

    page = launch_app(demo, port=_free_port(), block=False)
    yield page.local_url
    page.close()


def test_the_served_page_answers_gradio_client_with_the_python_apis_mask(served, expected):
    from gradio_client import Client, handle_file

    assert served.startswith("http://127.0.0.1:")  # bound to this machine only
    client = Client(served, verbose=False)
    overlay, amodal, hypotheses, summary = client.predict(
        handle_file(str(IMAGE)), handle_file(str(VISIBLE)), None, "", "", api_name="/complete"
    )
    assert np.array_equal(read_mask(amodal), expected[0].amodal)
    assert read_rgb(overlay).shape[0] == expected[0].amodal.shape[0]  # the image, its legend beside it
    assert len(hypotheses) == len(expected[0].hypotheses) and "predicted IoU" in summary
    picture, table = client.predict(handle_file(str(IMAGE)), handle_file(str(OBJECTS)), api_name="/scene")
    assert read_rgb(picture).shape[0] == expected[1].amodal.shape[1] and "layer" in table


def test_a_real_browser_completes_the_example_through_the_page(served, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
    playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (test extra)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(served)
        page.locator("#image input[type=file]").set_input_files(str(IMAGE))
        page.locator("#visible-mask input[type=file]").set_input_files(str(VISIBLE))
        page.locator("#complete").click()
        summary = page.locator("#summary")
        summary.get_by_text("predicted IoU").wait_for(timeout=60_000)
        page.locator("#amodal img").wait_for(timeout=60_000)
        assert "amodal" in summary.inner_text()
        shot = tmp_path / "app.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert read_rgb(shot).shape[1] >= 1000
    if os.environ.get("AMODAL_SAM_APP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["AMODAL_SAM_APP_SCREENSHOT"])
