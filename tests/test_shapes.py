"""The generated simple scenes: seeded, one shape partly behind another, written as COCOA-cls."""

import numpy as np

from amodal_sam.data.readers import load_dataset
from amodal_sam.data.shapes import OCCLUSION_RANGE, shape_scene, write_shape_scenes


def test_a_scene_hides_part_of_a_whole_back_shape_behind_the_front_one():
    for seed in range(20):
        image, (back, front) = shape_scene(np.random.default_rng(seed))
        assert image.shape == (240, 320, 3) and image.dtype == np.uint8
        hidden = (back & front).sum() / back.sum()
        assert OCCLUSION_RANGE[0] <= hidden <= OCCLUSION_RANGE[1]
        rows, cols = np.flatnonzero(back.any(axis=1)), np.flatnonzero(back.any(axis=0))
        assert rows[0] >= 2 and cols[0] >= 2 and rows[-1] <= 237 and cols[-1] <= 317  # whole, off the border
        colors = {tuple(image[back & ~front][0]), tuple(image[front][0]), tuple(image[~back & ~front][0])}
        assert len(colors) == 3  # three plain colours: background, back, front
        assert (image[front] == image[front][0]).all() and (image[back & ~front] == image[back & ~front][0]).all()


def test_written_scenes_read_back_as_their_masks_and_repeat_by_seed(tmp_path):
    path = write_shape_scenes(tmp_path / "a", count=3, seed=4)
    again = write_shape_scenes(tmp_path / "b", count=3, seed=4)
    assert path.read_bytes() == again.read_bytes()
    assert (tmp_path / "a/images/0002.png").read_bytes() == (tmp_path / "b/images/0002.png").read_bytes()
    dataset = load_dataset(path)
    assert len(dataset) == 6
    rng = np.random.default_rng(4)
    for record in dataset.records:
        _, (back, front) = shape_scene(rng)
        visible, amodal = dataset.load_masks(record)
        np.testing.assert_array_equal(amodal, np.stack([back, front]))
        np.testing.assert_array_equal(visible, np.stack([back & ~front, front]))
        assert [i.order for i in record.instances] == [2, 1]  # the front shape is order 1
