"""The shipped demo model does what the README shows: it completes the disc behind the bar, alone
and in a scene, and completes simple shapes hidden behind other shapes past their visible parts.

Its encoder is random, so these are the demo's promises, not SAM's quality (README, "The demo
model"); the thresholds are the adoption rule's (benchmarks/adopt.py) and the visible masks'."""

from pathlib import Path

import numpy as np
import pytest

from amodal_sam import AmodalSAM
from amodal_sam.data.readers import load_dataset
from amodal_sam.data.shapes import write_shape_scenes
from amodal_sam.defaults import demo_model_dir
from amodal_sam.image_io import read_rgb
from amodal_sam.mask_files import read_mask
from amodal_sam.metrics import mask_iou
from amodal_sam.scene import complete_encoded_scene

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def demo():
    return AmodalSAM.from_pretrained(demo_model_dir()).eval()


def test_the_readme_disc_is_completed_alone_and_in_its_scene(demo):
    image = read_rgb(EXAMPLES / "scene.png")
    visible, truth = read_mask(EXAMPLES / "scene_visible.png"), read_mask(EXAMPLES / "scene_amodal.png")
    bar = read_mask(EXAMPLES / "scene_objects.png") & ~visible
    encoded = demo.encode(image)
    alone = demo.complete(encoded, visible_masks=visible[None]).amodal[0].cpu().numpy()
    scene = complete_encoded_scene(demo, encoded, np.stack([visible, bar]))
    assert mask_iou(visible, truth) < 0.75  # a quarter of the disc is hidden: the visible part is far off
    assert mask_iou(alone, truth) >= 0.9
    assert mask_iou(scene.amodal[0], truth) >= 0.9
    assert np.array_equal(scene.amodal[1], bar)  # the bar is in front: nothing is added to it


def test_shapes_behind_shapes_are_completed_past_their_visible_parts(demo, tmp_path):
    dataset = load_dataset(write_shape_scenes(tmp_path / "shapes", count=12, seed=3))  # neither seed 0 nor 1
    gains, hidden = [], []
    for record in dataset.records:
        image = dataset.load_image(record)
        visible, amodal = dataset.load_masks(record)
        completed = complete_encoded_scene(demo, demo.encode(image), visible).amodal
        for v, a, c in zip(visible, amodal, completed):
            gains.append(mask_iou(c, a) - mask_iou(v, a))
            if (a & ~v).any():
                hidden.append(mask_iou(c & ~v, a & ~v))
    assert np.mean(gains) >= 0.05 and np.mean(hidden) > 0.5
