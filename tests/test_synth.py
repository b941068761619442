"""Synthetic occlusion: sources, whole-object rule, determinism, invariants, output format."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from amodal_sam.cli import main
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.objects import filter_objects, load_objects
from amodal_sam.data.readers import load_dataset
from amodal_sam.data.synth import SynthOptions, synthesize
from amodal_sam.image_io import read_rgb, write_mask, write_rgb
from amodal_sam.scene import known_occluders

from conftest import SHARED_DATA, ellipse_mask, random_image

H, W = 96, 128


@pytest.fixture
def pair_folder(tmp_path):
    """Four images with one object mask each; 'edge' touches the border."""
    root = tmp_path / "pairs"
    shapes = {
        "a": ((0.5, 0.5), (0.25, 0.3)),
        "b": ((0.4, 0.6), (0.2, 0.25)),
        "c": ((0.6, 0.4), (0.3, 0.2)),
        "edge": ((0.05, 0.5), (0.2, 0.2)),
    }
    for seed, (name, (center, radii)) in enumerate(shapes.items()):
        write_rgb(root / name / "00000.jpg", random_image(H, W, seed))
        write_mask(root / name / "00000.png", ellipse_mask(H, W, center, radii))
    return root


def test_pair_folder_objects_and_whole_rule(pair_folder):
    objects = load_objects(pair_folder)
    assert len(objects) == 4
    whole = {o.image_path.parent.name: o.whole for o in objects}
    assert whole == {"a": True, "b": True, "c": True, "edge": False}
    assert [o.image_path.parent.name for o in filter_objects(objects, exclude=["a", "edge"])] == ["b", "c"]
    assert [o.image_path.parent.name for o in filter_objects(objects, include=["c"])] == ["c"]


def test_yolo_polygons_are_scaled_to_pixels_and_touching_objects_are_not_whole(tmp_path):
    write_rgb(tmp_path / "images" / "train" / "x.jpg", random_image(H, W))
    (tmp_path / "labels" / "train").mkdir(parents=True)
    lines = [
        "3 0.25 0.25 0.5 0.25 0.5 0.5 0.25 0.5",  # alone: pixels x 32..64, y 24..48
        "1 0.6 0.6 0.8 0.6 0.8 0.8 0.6 0.8",  # these two share an edge
        "1 0.8 0.6 0.9 0.6 0.9 0.8 0.8 0.8",
    ]
    (tmp_path / "labels" / "train" / "x.txt").write_text("\n".join(lines))
    objects = load_objects(tmp_path, min_area=10)
    assert [o.whole for o in objects] == [True, False, False]
    assert objects[0].category == "class_3"
    ys, xs = np.nonzero(objects[0].mask())
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (32, 64, 24, 48)  # COCO: right/bottom edge open


def test_coco_instance_json_source(tmp_path):
    write_rgb(tmp_path / "x.jpg", random_image(H, W))
    mask = ellipse_mask(H, W)
    (tmp_path / "instances.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "x.jpg", "height": H, "width": W}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 4, "segmentation": encode_rle(mask), "iscrowd": 0},
                    {"id": 2, "image_id": 1, "category_id": 4, "segmentation": encode_rle(mask), "iscrowd": 1},
                ],
                "categories": [{"id": 4, "name": "blob"}],
            }
        )
    )
    objects = load_objects(tmp_path / "instances.json")
    assert len(objects) == 1 and objects[0].category == "blob" and objects[0].whole
    np.testing.assert_array_equal(objects[0].mask(), mask)


def test_synth_is_deterministic_and_keeps_its_invariants(pair_folder, tmp_path):
    objects = load_objects(pair_folder)
    options = SynthOptions(occlusion_range=(0.2, 0.5), occluders=(1, 2), samples_per_object=3, seed=7)
    first = synthesize(objects, tmp_path / "one", options, progress=False)
    synthesize(objects, tmp_path / "two", options, progress=False)
    assert first["targets"] == 3 and first["written"] + first["skipped"] == 9 and first["written"] >= 6
    one, two = (
        (tmp_path / "one" / "annotations.json").read_bytes(),
        (tmp_path / "two" / "annotations.json").read_bytes(),
    )
    assert one == two
    for image in (tmp_path / "one" / "images").iterdir():
        assert image.read_bytes() == (tmp_path / "two" / "images" / image.name).read_bytes()
    synthesize(
        objects,
        tmp_path / "three",
        SynthOptions(occlusion_range=(0.2, 0.5), samples_per_object=3, seed=8),
        progress=False,
    )
    assert (tmp_path / "three" / "annotations.json").read_bytes() != one

    dataset = load_dataset(tmp_path / "one" / "annotations.json")
    assert dataset.format == "cocoa_cls" and len(dataset.records) == first["written"]
    assert len(dataset) > len(dataset.records)  # the occluders are annotated objects too
    sources = {str(pair_folder / n / "00000.jpg") for n in "abc"}
    for record in dataset.records:
        visible, amodal = dataset.load_masks(record)
        orders = [instance.order for instance in record.instances]
        target = record.instances[0]
        assert orders[0] == max(orders) and sorted(orders, reverse=True) == orders  # back to front
        assert 0.2 <= 1 - visible[0].sum() / amodal[0].sum() <= 0.5 and 0.2 <= target.occlusion_rate <= 0.5
        assert visible.sum(axis=0).max() == 1  # no pixel visible for two objects
        for k in range(len(record.instances)):
            assert visible[k].any() and not (visible[k] & ~amodal[k]).any()
            in_front = amodal[[j for j in range(len(orders)) if orders[j] < orders[k]]].any(axis=0)
            np.testing.assert_array_equal(visible[k], amodal[k] & ~in_front)  # hidden = under what is in front
            np.testing.assert_array_equal(dataset.load_occluder(record, k), in_front)
        # the target's known occluders in scene mode are exactly what was pasted over it
        np.testing.assert_array_equal(known_occluders(visible)[0], dataset.load_occluder(record, 0))
    content = json.loads(one)
    assert {image["source"] for image in content["images"]} <= sources  # targets are whole objects only


def test_background_swap_sets_targets_on_other_scenes(tmp_path):
    backgrounds = {"a": (200, 40, 40), "b": (40, 200, 40), "c": (40, 40, 200)}
    root = tmp_path / "flat"
    for name, colour in backgrounds.items():
        image = np.empty((H, W, 3), np.uint8)
        image[:] = colour
        mask = ellipse_mask(H, W, (0.5, 0.5), (0.25, 0.3))
        image[mask] = (250, 250, 40)
        write_rgb(root / name / "00000.jpg", image)
        write_mask(root / name / "00000.png", mask)
    objects = load_objects(root)
    fixed = {"flip": False, "max_rotation": 0.0, "scale_range": (1.0, 1.0), "samples_per_object": 4}
    for swap in (0.0, 1.0):
        out = tmp_path / f"swap{swap}"
        synthesize(objects, out, SynthOptions(background_swap=swap, **fixed), progress=False)
        dataset = load_dataset(out / "annotations.json")
        content = json.loads((out / "annotations.json").read_text())
        assert len(dataset.records) == 12
        for index, image_entry in enumerate(content["images"]):
            record = dataset.records[index]
            visible, amodal = (m[0] for m in dataset.load_masks(record))
            occluder = dataset.load_occluder(record, 0)
            image = dataset.load_image(record).astype(int)
            kernel = np.ones((7, 7), np.uint8)
            scene = ~cv2.dilate((amodal | occluder).astype(np.uint8), kernel).astype(bool)
            inside = cv2.erode(visible.astype(np.uint8), kernel).astype(bool)
            assert np.abs(image[inside] - (250, 250, 40)).max() < 30  # the target's own pixels
            own = backgrounds[Path(image_entry["source"]).parent.name]
            distance_to_own = np.abs(image[scene] - own).max(axis=1)
            if swap == 0.0:
                assert (distance_to_own < 30).all()
            else:  # the scene of another image, never the target's own
                assert (distance_to_own > 100).all()
    with pytest.raises(ValueError, match="background_swap"):
        SynthOptions(background_swap=1.5)


def test_synth_bad_options():
    with pytest.raises(ValueError, match="occlusion_range"):
        SynthOptions(occlusion_range=(0.6, 0.2))
    with pytest.raises(ValueError, match="occluders"):
        SynthOptions(occluders=(0, 1))
    with pytest.raises(ValueError, match="behind"):
        SynthOptions(behind=(2, 1))


def test_objects_set_behind_the_target_are_partly_hidden_by_it(pair_folder, tmp_path):
    """One object behind, the target, one occluder (no flip, rotation or scaling, no downscaling):
    the target covers a share of the object behind it in the occlusion range, the target's pixels
    are its own image's (the object behind does not show through it), and in scene mode the
    object behind is a known occluder of the target that does not hide it."""
    objects = load_objects(pair_folder)
    options = SynthOptions(
        occlusion_range=(0.2, 0.5), occluders=(1, 1), behind=(1, 1), seed=5, samples_per_object=2,
        flip=False, max_rotation=0.0, scale_range=(1.0, 1.0),
    )  # fmt: skip
    counts = synthesize(objects, tmp_path, options, progress=False)
    dataset = load_dataset(tmp_path / "annotations.json")
    content = json.loads((tmp_path / "annotations.json").read_text())
    sources = {image["id"]: image["source"] for image in content["images"]}
    three = [r for r in dataset.records if len(r.instances) == 3]
    assert counts["written"] >= 4 and len(three) >= 4
    for record in three:
        behind, target, occluder = range(3)
        visible, amodal = dataset.load_masks(record)
        assert [instance.order for instance in record.instances] == [3, 2, 1]
        covered = (amodal[behind] & amodal[target]).sum() / amodal[behind].sum()
        assert 0.18 <= covered <= 0.52
        np.testing.assert_array_equal(visible[behind], amodal[behind] & ~amodal[target] & ~amodal[occluder])
        np.testing.assert_array_equal(dataset.load_occluder(record, target), amodal[occluder])
        known = known_occluders(visible)[target]
        np.testing.assert_array_equal(known, visible[behind] | visible[occluder])
        source, image = read_rgb(sources[record.image_id]).astype(int), read_rgb(record.image_path).astype(int)
        seen = visible[target]
        assert np.abs(image[seen] - source[seen]).mean() < 8  # JPEG's loss, not another object's pixels


def test_synth_command(pair_folder, tmp_path, capsys):
    code = main(
        [
            "synth",
            str(pair_folder),
            "--out",
            str(tmp_path / "out"),
            "--occlusion",
            "0.1,0.4",
            "--samples-per-object",
            "2",
            "--seed",
            "3",
            "--max-side",
            "64",
        ]
    )
    assert code == 0
    assert "samples written" in capsys.readouterr().out
    dataset = load_dataset(tmp_path / "out" / "annotations.json")
    assert len(dataset) >= 4 and max(dataset[0].image.shape[:2]) == 64


@pytest.mark.skipif(
    not (SHARED_DATA / "davis2016").is_dir(),
    reason="../shared/data/davis2016 (real DAVIS masks) is not beside the project",
)
def test_real_davis_objects_make_valid_samples(tmp_path):
    objects = filter_objects(load_objects(SHARED_DATA / "davis2016"), include=["blackswan", "cows"])
    assert objects and any(o.whole for o in objects)
    counts = synthesize(objects, tmp_path, SynthOptions(seed=0, max_side=256), progress=False)
    dataset = load_dataset(tmp_path / "annotations.json")
    assert len(dataset.records) == counts["written"] > 0
    for record in dataset.records[::5]:
        target = dataset.samples_of(record)[0]  # the first object of each scene is the occluded target
        assert not (target.visible & ~target.amodal).any() and 0.1 <= target.occlusion_rate <= 0.6


def _bar() -> np.ndarray:
    """A horizontal 4 x 40 bar in the middle of a 100 x 100 frame (160 px)."""
    mask = np.zeros((100, 100), bool)
    mask[48:52, 30:70] = True
    return mask


def test_targets_are_scaled_by_the_scale_range():
    from amodal_sam.data.synth import _varied

    image = random_image(100, 100)
    for scale in (0.5, 2.0):
        options = SynthOptions(max_rotation=0.0, scale_range=(scale, scale), flip=False)
        _, moved = _varied(image, _bar(), options, np.random.default_rng(0))
        _, cols = np.nonzero(moved)
        # 40 x 4 scaled about its centre: about 40 s wide and 4 s high
        assert abs((cols.max() - cols.min() + 1) - 40 * scale) <= 2
        assert abs(moved.sum() - 160 * scale**2) <= 0.2 * 160 * scale**2


def test_targets_are_rotated_within_max_rotation():
    from amodal_sam.data.synth import _varied

    image = random_image(100, 100)
    heights = []
    for seed in range(6):
        options = SynthOptions(max_rotation=90.0, scale_range=(1.0, 1.0), flip=False)
        _, moved = _varied(image, _bar(), options, np.random.default_rng(seed))
        rows, _ = np.nonzero(moved)
        heights.append(rows.max() - rows.min() + 1)
        assert abs(moved.sum() - 160) <= 40  # rotation keeps the area
    assert max(heights) > 15  # a 40-px bar turned by more than ~17 degrees spans > 15 rows
    _, still = _varied(
        image, _bar(), SynthOptions(max_rotation=0.0, scale_range=(1, 1), flip=False), np.random.default_rng(0)
    )
    np.testing.assert_array_equal(still, _bar())  # no rotation, no scale: the shape is kept
