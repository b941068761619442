"""amodal-sam eval: baselines and a model on each dataset format; the predictions file format."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from amodal_sam.cli import main
from amodal_sam.data.readers import AmodalDataset, load_dataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.geometry import convex_hull

from conftest import SHARED_DATA, write_occlusion_dataset


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    return write_occlusion_dataset(tmp_path_factory.mktemp("eval"), count=4)


def test_convex_hull_fills_the_gap():
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:4] = mask[2:8, 6:8] = True  # two bars with a gap
    hull = convex_hull(mask)
    assert hull[2:8, 2:8].all() and hull.sum() == 36


@pytest.mark.parametrize("baseline", ["visible", "hull"])
def test_eval_baselines_write_predictions_and_report(annotations, tmp_path, baseline, capsys):
    predictions, report = tmp_path / "pred.json", tmp_path / "report.json"
    code = main(
        [
            "eval",
            "--data",
            str(annotations),
            "--baseline",
            baseline,
            "--predictions",
            str(predictions),
            "--report",
            str(report),
        ]
    )
    assert code == 0
    assert f"baseline {baseline}" in capsys.readouterr().out
    entries = json.loads(predictions.read_text())
    dataset = load_dataset(annotations)
    assert [e["annotation_id"] for e in entries] == [dataset[i].annotation_id for i in range(len(dataset))]
    for entry, index in zip(entries, range(len(dataset))):
        sample = dataset[index]
        assert set(entry) == {"annotation_id", "image_id", "segmentation", "score"}
        assert isinstance(entry["segmentation"]["counts"], str)
        assert entry["segmentation"]["size"] == list(sample.amodal.shape)
        decoded = mask_utils.decode(
            {"size": entry["segmentation"]["size"], "counts": entry["segmentation"]["counts"].encode()}
        ).astype(bool)
        if baseline == "visible":
            np.testing.assert_array_equal(decoded, sample.visible)
        else:
            assert (decoded >= sample.visible).all()
    content = json.loads(report.read_text())
    assert content["instances"] == len(dataset) and {"mean", "pooled", "bins"} <= set(content)
    if baseline == "visible":
        assert content["mean"]["oiou"] == 0.0 and content["mean"]["viou"] is None  # no visible prediction


@pytest.mark.parametrize("prompt", ["visible", "box", "point"])
def test_eval_with_a_model(annotations, tiny_model, tmp_path, prompt):
    tiny_model.save_pretrained(tmp_path / "model")
    predictions = tmp_path / "pred.json"
    code = main(
        [
            "eval",
            "--data",
            str(annotations),
            "--model",
            str(tmp_path / "model"),
            "--prompt",
            prompt,
            "--predictions",
            str(predictions),
            "--cache",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    assert len(json.loads(predictions.read_text())) == 4


def test_point_prompts_are_seeded(annotations, tiny_model):
    dataset = load_dataset(annotations)
    first = predict_dataset(dataset, tiny_model, prompt="point", seed=3, progress=False)
    second = predict_dataset(dataset, tiny_model, prompt="point", seed=3, progress=False)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a.amodal, b.amodal)


def test_decoder_batch_decodes_all_instances_of_an_image_in_one_call(annotations, tiny_model):
    record = load_dataset(annotations).records[0]
    record.instances = record.instances * 3  # three instances on one image
    dataset = AmodalDataset([record], "cocoa_cls")
    calls = []
    tiny_model.decoder.register_forward_hook(lambda *_: calls.append(1))
    together = predict_dataset(dataset, tiny_model, decoder_batch=64, progress=False)
    assert len(together) == 3 and len(calls) == 1
    one_by_one = predict_dataset(dataset, tiny_model, decoder_batch=1, progress=False)
    assert len(calls) == 4
    assert [p.counts for p in one_by_one] == [p.counts for p in together]


def test_model_encodes_each_image_once(annotations, tiny_model):
    calls = []
    tiny_model.sam.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    predict_dataset(load_dataset(annotations), tiny_model, progress=False)
    assert len(calls) == 4  # one encoder call per image


@pytest.mark.skipif(
    not (SHARED_DATA / "cocoa-sample").is_dir(),
    reason="../shared/data/cocoa-sample (real COCOA records) is not beside the project",
)
def test_eval_on_real_cocoa_uses_region_indices(tmp_path):
    predictions = tmp_path / "pred.json"
    assert (
        main(
            [
                "eval",
                "--data",
                str(SHARED_DATA / "cocoa-sample"),
                "--baseline",
                "hull",
                "--predictions",
                str(predictions),
            ]
        )
        == 0
    )
    entries = json.loads(predictions.read_text())
    assert len(entries) == 13
    assert [e["annotation_id"] for e in entries if e["image_id"] == 188819] == [0, 1]


@pytest.mark.parametrize("format_name", ["kins_2020", "kins_legacy", "cocoa", "folder"])
def test_eval_reads_every_format_alike(annotations, tiny_model, tmp_path, format_name):
    from conftest import convert_dataset

    converted = load_dataset(convert_dataset(annotations, format_name, tmp_path / format_name))
    assert converted.format == format_name and len(converted) == 4
    original = load_dataset(annotations)
    expected = [p.counts for p in predict_dataset(original, baseline_name="hull", progress=False)]
    assert [p.counts for p in predict_dataset(converted, baseline_name="hull", progress=False)] == expected
    expected = [p.counts for p in predict_dataset(original, tiny_model, progress=False)]
    assert [p.counts for p in predict_dataset(converted, tiny_model, progress=False)] == expected
