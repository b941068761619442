"""Scene evaluation: known occluders from the other instances, the hull-occluders baseline, stuff
that hides but is not scored, and the occlusion-order metrics, on hand-made scenes."""

import json
import math

import numpy as np
import pytest

from amodal_sam.cli import main
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import load_dataset
from amodal_sam.evaluate import evaluation_report, order_report, predict_dataset, scored_instances
from amodal_sam.geometry import convex_hull
from amodal_sam.image_io import write_rgb
from amodal_sam.metrics import order_counts, true_occlusion

from conftest import SHARED_DATA, random_image, rect_mask

H, W = 64, 64


def _rect(rows, cols) -> np.ndarray:
    return rect_mask((H, W), rows, cols)


def _l_behind_a_box():
    """A: an L (stem rows 10-49 x cols 10-19, foot rows 40-49 x cols 20-49) whose hidden part
    (rows 25-39 x cols 20-29) lies under B, a box in front of it."""
    l_shape = _rect((10, 50), (10, 20)) | _rect((40, 50), (20, 50))
    b = _rect((25, 40), (20, 30))
    a_amodal = l_shape | b
    return a_amodal, l_shape, b


@pytest.fixture
def scene_data(tmp_path):
    a_amodal, a_visible, b = _l_behind_a_box()
    write_rgb(tmp_path / "scene.png", random_image(H, W))
    annotations = [
        {"id": 1, "image_id": 1, "segmentation": encode_rle(a_amodal), "visible_mask": encode_rle(a_visible)},
        {"id": 2, "image_id": 1, "segmentation": encode_rle(b), "visible_mask": encode_rle(b)},
    ]
    annotations[0]["order"], annotations[1]["order"] = 2, 1
    images = [{"id": 1, "file_name": "scene.png", "height": H, "width": W}]
    (tmp_path / "scene.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return tmp_path / "scene.json"


def test_hull_occluders_keeps_the_hull_only_under_the_other_objects(scene_data):
    _, a_visible, b = _l_behind_a_box()
    dataset = load_dataset(scene_data)
    by_rule = predict_dataset(dataset, baseline_name="hull-occluders", progress=False)
    by_hull = predict_dataset(dataset, baseline_name="hull", progress=False)
    expected = a_visible | (convex_hull(a_visible) & b)
    np.testing.assert_array_equal(by_rule[0].amodal, expected)
    assert not np.array_equal(by_hull[0].amodal, expected)  # the hull also fills free space above the foot
    assert by_rule[0].counts.aiou > by_hull[0].counts.aiou
    np.testing.assert_array_equal(by_rule[1].amodal, b)  # B's hull is B: nothing to add


def test_order_metrics_of_the_baselines(scene_data):
    dataset = load_dataset(scene_data)
    rule = order_report(dataset, predict_dataset(dataset, baseline_name="hull-occluders", progress=False))
    assert rule["truth"] == "recorded order" and rule["pairs"] == 1 and rule["accuracy"] == 1.0
    assert rule["true_edges"] == 1 and rule["matched_edges"] == 1 and rule["f1"] == 1.0  # B hides A
    visible = order_report(dataset, predict_dataset(dataset, baseline_name="visible", progress=False))
    assert visible["accuracy"] == 0.0 and visible["predicted_edges"] == 0 and math.isnan(visible["precision"])
    assert visible["recall"] == 0.0 and visible["f1"] == 0.0
    # read as scene mode reads it, the visible masks' order is the rule's: their hulls are its evidence
    as_scene = order_report(
        dataset, predict_dataset(dataset, baseline_name="visible", progress=False), hull_evidence=True
    )
    assert as_scene["accuracy"] == 1.0 and as_scene["matched_edges"] == 1


def test_scene_eval_gives_each_instance_the_others_visible_masks(scene_data, tiny_model, monkeypatch):
    _, a_visible, b = _l_behind_a_box()
    dataset = load_dataset(scene_data)
    seen = {}
    original = type(tiny_model).complete

    def spy(self, image, **kwargs):
        seen.update(kwargs)
        return original(self, image, **kwargs)

    monkeypatch.setattr(type(tiny_model), "complete", spy)
    predictions = predict_dataset(dataset, tiny_model, scene=True, progress=False)
    np.testing.assert_array_equal(seen["occluder_masks"], np.stack([b, a_visible]))
    assert not (predictions[0].amodal & ~(a_visible | b)).any()  # hidden only under B
    report = evaluation_report(predictions, data="x", model=tiny_model, model_name="m", scene=True, dataset=dataset)
    assert report["method"] == "model m (scene)" and report["scene"] is True and report["order"]["pairs"] == 1
    predict_dataset(dataset, tiny_model, progress=False)
    assert seen["occluder_masks"] is None  # single-object mode: the decoder's own estimate


def test_scene_is_for_models_with_visible_prompts(scene_data, tiny_model, capsys):
    dataset = load_dataset(scene_data)
    with pytest.raises(ValueError, match="a baseline takes no scene"):
        predict_dataset(dataset, baseline_name="hull", scene=True)
    with pytest.raises(ValueError, match=r"prompt 'box' .* takes no scene"):
        predict_dataset(dataset, tiny_model, prompt="box", scene=True)
    assert main(["eval", "--data", str(scene_data), "--baseline", "hull", "--scene"]) == 2
    assert "--baseline takes no --scene" in capsys.readouterr().err


def test_stuff_hides_objects_but_is_not_scored(tmp_path):
    a_amodal, a_visible, b = _l_behind_a_box()
    write_rgb(tmp_path / "scene.png", random_image(H, W))
    regions = [
        {"segmentation": encode_rle(a_amodal), "visible_mask": encode_rle(a_visible), "order": 2, "isStuff": 0},
        {"segmentation": encode_rle(b), "order": 1, "isStuff": 1, "name": "wall"},
    ]
    (tmp_path / "scene.json").write_text(json.dumps({"image_id": 1, "url": "x/scene.png", "regions": regions}))
    dataset = load_dataset(tmp_path / "scene.json", include_stuff=True)
    item = scored_instances(dataset, dataset.records[0])
    assert item.indices == [0]  # the wall is not scored ...
    np.testing.assert_array_equal(item.occluders[0], b)  # ... but hides the L
    (prediction,) = predict_dataset(dataset, baseline_name="hull-occluders", progress=False)
    np.testing.assert_array_equal(prediction.amodal, a_visible | (convex_hull(a_visible) & b))


def test_order_counts_by_hand():
    # three objects in a row, each overlapping the next: 0 over 1, 1 over 2 (0 and 2 apart)
    amodal = np.stack([_rect((0, 10), (0, 20)), _rect((0, 10), (15, 35)), _rect((0, 10), (30, 50))])
    truth = np.zeros((3, 3), bool)
    truth[0, 1] = truth[1, 2] = True
    predicted = np.zeros((3, 3), bool)
    predicted[0, 1] = predicted[2, 1] = True  # right on (0, 1); the reverse on (1, 2)
    counts = order_counts(predicted, truth, amodal)
    assert (counts.pairs, counts.correct) == (2, 1) and counts.accuracy == 0.5
    assert (counts.true_edges, counts.predicted_edges, counts.matched_edges) == (2, 2, 1)
    assert counts.precision == counts.recall == counts.f1 == 0.5
    both = counts + counts
    assert both.pairs == 4 and both.accuracy == 0.5


def test_true_occlusion_from_the_order_or_from_the_masks():
    a_amodal, a_visible, b = _l_behind_a_box()
    amodal, visible = np.stack([a_amodal, b]), np.stack([a_visible, b])
    recorded, from_order = true_occlusion(visible, amodal, [2, 1])
    assert from_order and recorded.tolist() == [[False, False], [True, False]]
    derived, from_order = true_occlusion(visible, amodal, [None, 1])
    assert not from_order and derived.tolist() == [[False, False], [True, False]]
    reversed_order, _ = true_occlusion(visible, amodal, [1, 2])  # the record wins over the masks
    assert reversed_order.tolist() == [[False, True], [False, False]]


@pytest.mark.skipif(
    not (SHARED_DATA / "cocoa-sample").is_dir(), reason="../shared/data/cocoa-sample is not beside the project"
)
def test_the_rule_on_the_real_cocoa_sample(capsys):
    """The issue's numbers for the rule on the two real COCOA records: AIoU 0.930, OIoU 0.458."""
    dataset = load_dataset(SHARED_DATA / "cocoa-sample", include_stuff=True)
    predictions = predict_dataset(dataset, baseline_name="hull-occluders", progress=False)
    report = evaluation_report(predictions, data="cocoa", baseline_name="hull-occluders", dataset=dataset)
    assert report["instances"] == 13
    assert report["mean"]["aiou"] == pytest.approx(0.930, abs=5e-4)
    assert report["mean"]["oiou"] == pytest.approx(0.458, abs=5e-4)
    assert report["order"]["truth"] == "recorded order" and report["order"]["pairs"] == 11


def test_eval_scene_flag_reaches_the_predictions(scene_data, tiny_model, tmp_path, monkeypatch, capsys):
    _, a_visible, b = _l_behind_a_box()
    tiny_model.save_pretrained(tmp_path / "model")
    seen = []
    original = type(tiny_model).complete

    def spy(self, image, **kwargs):
        seen.append(kwargs.get("occluder_masks"))
        return original(self, image, **kwargs)

    monkeypatch.setattr(type(tiny_model), "complete", spy)
    report = tmp_path / "report.json"
    args = ["eval", "--data", str(scene_data), "--model", str(tmp_path / "model"), "--report", str(report)]
    assert main([*args, "--scene"]) == 0
    assert "occlusion order truth: recorded order" in capsys.readouterr().out
    np.testing.assert_array_equal(seen[-1], np.stack([b, a_visible]))
    content = json.loads(report.read_text())
    assert content["scene"] is True and content["method"].endswith("(scene)") and content["order"]["pairs"] == 1
    assert main(args) == 0 and seen[-1] is None


def test_scene_calibration_measures_the_gain_over_hull_occluders(scene_data, tiny_model):
    from amodal_sam.calibration import score_thresholds

    dataset = load_dataset(scene_data)
    (score,) = score_thresholds(dataset, tiny_model, [0.5], scene=True, progress=False)
    visible_aiou = (700 / 850 + 1.0) / 2  # A: the L (700 px) of its 850; B: whole
    rule_aiou = 1.0  # hull & B is exactly A's hidden part, so the rule completes A; B is whole
    assert score.gain == pytest.approx(score.aiou - max(visible_aiou, rule_aiou))
    assert score.harmless == (score.aiou >= visible_aiou)
    scene = predict_dataset(dataset, tiny_model, scene=True, progress=False)
    assert score.aiou == pytest.approx(np.mean([p.counts.aiou for p in scene]))


def test_known_occluders_use_the_scene_threshold(scene_data, tiny_model, tmp_path, capsys):
    import dataclasses

    from amodal_sam.config import AmodalConfig

    config = dataclasses.replace(tiny_model.config, hidden_threshold=0.8, scene_hidden_threshold=0.3)
    assert config.threshold_for(occluders_known=True) == 0.3 and config.threshold_for(occluders_known=False) == 0.8
    assert AmodalConfig.from_dict(config.to_dict()).scene_hidden_threshold == 0.3
    old = config.to_dict()
    del old["scene_hidden_threshold"]  # configs saved before it: one threshold for both modes
    assert AmodalConfig.from_dict(old).threshold_for(occluders_known=True) == 0.8
    with pytest.raises(ValueError, match=r"scene_hidden_threshold must be a probability in \(0, 1\); got 1.5"):
        dataclasses.replace(config, scene_hidden_threshold=1.5)
    tiny_model.config = config
    _, a_visible, b = _l_behind_a_box()
    image = tiny_model.encode(random_image(H, W))
    assert tiny_model.complete(image, visible_masks=a_visible[None], occluder_masks=b[None]).hidden_threshold == 0.3
    assert tiny_model.complete(image, visible_masks=a_visible[None]).hidden_threshold == 0.8
    given = tiny_model.complete(image, visible_masks=a_visible[None], occluder_masks=b[None], hidden_threshold=0.6)
    assert given.hidden_threshold == 0.6
    # calibrate --scene writes the scene threshold and leaves the other one
    tiny_model.save_pretrained(tmp_path / "model")
    args = ["calibrate", "--data", str(scene_data), "--model", str(tmp_path / "model"), "--thresholds", "0.4,0.7"]
    assert main([*args, "--scene"]) == 0
    saved = json.loads((tmp_path / "model" / "config.json").read_text())
    assert saved["scene_hidden_threshold"] in (0.4, 0.7) and saved["hidden_threshold"] == 0.8
    assert "scene_hidden_threshold" in capsys.readouterr().out


@pytest.fixture
def stuff_first(tmp_path):
    """A COCOA record whose first region is stuff and second a wholly hidden object (no visible
    pixel), then two objects: the L behind the box, and the box."""
    a_amodal, a_visible, b = _l_behind_a_box()
    hidden = _rect((50, 60), (50, 60))
    write_rgb(tmp_path / "scene.png", random_image(H, W))
    empty = encode_rle(np.zeros((H, W), bool))
    regions = [
        {"segmentation": encode_rle(_rect((55, 64), (0, 64))), "order": 4, "isStuff": 1, "name": "floor"},
        {"segmentation": encode_rle(hidden), "visible_mask": empty, "order": 3, "isStuff": 0, "name": "ghost"},
        {"segmentation": encode_rle(a_amodal), "visible_mask": encode_rle(a_visible), "order": 2, "isStuff": 0},
        {"segmentation": encode_rle(b), "order": 1, "isStuff": 0, "name": "box"},
    ]
    (tmp_path / "scene.json").write_text(json.dumps({"image_id": 5, "url": "x/scene.png", "regions": regions}))
    return load_dataset(tmp_path / "scene.json", include_stuff=True), (hidden, a_amodal, a_visible, b)


@pytest.mark.parametrize(
    "how", ["baseline visible", "baseline hull", "baseline hull-occluders", "model", "model scene", "model box"]
)
def test_evaluation_reads_each_object_by_its_region_where_stuff_and_hidden_ones_come_first(
    stuff_first, tiny_model, how
):
    dataset, (hidden, a_amodal, a_visible, b) = stuff_first
    kind, _, option = how.partition(" ")
    if kind == "baseline":
        predictions = predict_dataset(dataset, baseline_name=option, progress=False)
    else:
        tiny_model.config.sam_prompts = True  # a box prompt on the random tiny SAM: only the bookkeeping is tested
        predictions = predict_dataset(
            dataset, tiny_model, scene=option == "scene", prompt="box" if option == "box" else "visible", progress=False
        )
    assert [(p.annotation_id, p.index) for p in predictions] == [(1, 1), (2, 2), (3, 3)]
    ghost, l_shape, box = predictions
    assert ghost.score == 0.0 and not ghost.amodal.any()  # nothing visible: nothing to start from
    assert ghost.counts.amodal_union == hidden.sum()  # scored against its own region, not the stuff
    assert l_shape.counts.amodal_union >= a_amodal.sum() and box.counts.amodal_union >= b.sum()
    if kind == "baseline" or option == "scene":
        assert (l_shape.amodal & a_visible).sum() == a_visible.sum()  # starts from the L's visible part
        assert (box.amodal & b).sum() == b.sum()
    if how == "baseline visible":
        np.testing.assert_array_equal(l_shape.amodal, a_visible)
        np.testing.assert_array_equal(box.amodal, b)
