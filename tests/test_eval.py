"""amodal-sam eval: baselines and a model on each dataset format; the predictions file format."""

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from amodal_sam.cli import main
from amodal_sam.data.readers import AmodalDataset, load_dataset
from amodal_sam.evaluate import predict_dataset
from amodal_sam.geometry import convex_hull

from conftest import SHARED_DATA, TEST_DEVICE, write_occlusion_dataset


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
            np.testing.assert_array_equal(decoded, convex_hull(sample.visible))  # hand-tested above
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


def _two_per_image(annotations, out):
    """The dataset with each annotation twice (two instances per image)."""
    content = json.loads(annotations.read_text())
    twins = [dict(a, id=a["id"] + 1000) for a in content["annotations"]]
    content["annotations"] = content["annotations"] + twins
    path = out / "annotations.json"
    for image in content["images"]:
        (out / image["file_name"]).write_bytes((annotations.parent / image["file_name"]).read_bytes())
    path.write_text(json.dumps(content))
    return path


def test_eval_decoder_batch_is_used_and_reported(annotations, tiny_model, tmp_path, monkeypatch):
    import amodal_sam.factory

    data = _two_per_image(annotations, tmp_path)
    monkeypatch.setattr(amodal_sam.factory, "create_model", lambda **_: tiny_model)
    calls = []
    tiny_model.decoder.register_forward_hook(lambda *_: calls.append(1))
    for batch, expected_calls in ((None, 8), (2, 4)):  # 4 images x 2 instances
        calls.clear()
        report = tmp_path / f"report{batch}.json"
        extra = [] if batch is None else ["--decoder-batch", str(batch)]
        args = ["eval", "--data", str(data), "--model", "m", "--report", str(report), *extra]
        assert main(args) == 0
        content = json.loads(report.read_text())
        assert len(calls) == expected_calls and content["instances"] == 8
        assert content["decoder_batch"] == (batch or 1)  # the CPU default is one per call
        assert content["prompt"] == "visible" and content["encoder"] == "reference-fp32"


def test_eval_reports_the_encoder_and_decoder_precision_it_ran(annotations, tiny_model, tmp_path, monkeypatch):
    tiny_model.save_pretrained(tmp_path / "model")
    report = tmp_path / "report.json"
    args = ["eval", "--data", str(annotations), "--model", str(tmp_path / "model"), "--report", str(report)]
    assert main([*args, "--encoder-dtype", "bf16", "--prompt", "point", "--seed", "4"]) == 0
    content = json.loads(report.read_text())
    assert content["encoder"] == "folded-bf16" and content["prompt"] == "point" and content["seed"] == 4
    assert content["decoder_dtype"] == "fp32"  # the suite's override
    assert "decoder_batch" not in content  # one instance per call with point prompts: nothing to report
    monkeypatch.setenv("AMODAL_SAM_DECODER_DTYPE", "bf16")
    assert main([*args, "--encoder-dtype", "bf16"]) == 0
    assert json.loads(report.read_text())["decoder_dtype"] == "bf16"


@pytest.mark.parametrize(
    "extra, named",
    [
        (["--prompt", "box"], "--prompt"),
        (["--cache", "c"], "--cache"),
        (["--encoder-dtype", "bf16"], "--encoder-dtype"),
        (["--decoder-batch", "4"], "--decoder-batch"),
        (["--sam-checkpoint", "s.pth"], "--sam-checkpoint"),
    ],
)
def test_a_baseline_refuses_model_options(annotations, capsys, extra, named):
    assert main(["eval", "--data", str(annotations), "--baseline", "hull", *extra]) == 2
    err = capsys.readouterr().err
    assert f"--baseline takes no {named}" in err and "Traceback" not in err


def test_baseline_report_records_no_model_settings(annotations, tmp_path):
    report = tmp_path / "report.json"
    assert main(["eval", "--data", str(annotations), "--baseline", "visible", "--report", str(report)]) == 0
    content = json.loads(report.read_text())
    assert content["method"] == "baseline visible" and not {"prompt", "encoder", "decoder_batch"} & set(content)


def test_box_prompts_cover_the_visible_masks_far_edges(annotations, tiny_model):
    dataset = load_dataset(annotations)
    boxes = []
    tiny_model.sam.prompt_encoder.register_forward_pre_hook(
        lambda _, args, kwargs: boxes.append(kwargs["boxes"][0].tolist()), with_kwargs=True
    )
    predict_dataset(dataset, tiny_model, prompt="box", progress=False)
    # 64 x 80 images: resized to 205 x 256 (longest side 256, 64 x 3.2 rounded), and coordinates
    # scale per axis as segment-anything's ResizeLongestSide does: x by 256 / 80, y by 205 / 64
    sx, sy = 256 / 80, 205 / 64
    for index, box in enumerate(boxes):
        visible = dataset[index].visible
        rows, cols = np.nonzero(visible)
        # the box reaches the far side of the last covered pixel: x1 = last column + 1
        expected = [cols.min() * sx, rows.min() * sy, (cols.max() + 1) * sx, (rows.max() + 1) * sy]
        np.testing.assert_allclose(box, expected, atol=1e-4)
    assert len(boxes) == len(dataset)


def test_model_predictions_carry_the_decoders_visible_part(annotations, tiny_model):
    predictions = predict_dataset(load_dataset(annotations), tiny_model, progress=False)
    vious = [p.counts.viou for p in predictions]
    assert all(0.0 <= v <= 1.0 for v in vious) and min(vious) < 1.0  # a random decoder is not exact


@pytest.mark.parametrize("prompt", ["box", "point"])
def test_prompted_predictions_are_the_predictors_completions(annotations, tiny_model, prompt):
    from amodal_sam import AmodalPredictor

    dataset = load_dataset(annotations)
    predictions = predict_dataset(dataset, tiny_model, prompt=prompt, seed=7, progress=False)
    rng = np.random.default_rng(7)  # the same draws as eval: one point per instance, in order
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    for index, prediction in enumerate(predictions):
        sample = dataset[index]
        predictor.set_image(sample.image)
        rows, cols = np.nonzero(sample.visible)
        if prompt == "box":
            kwargs = {"box": [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]}
        else:
            pick = rng.integers(len(cols))
            kwargs = {"point_coords": [[cols[pick], rows[pick]]], "point_labels": [1]}
        try:
            expected = predictor.complete(**kwargs)
        except RuntimeError:  # SAM sees nothing there: an empty prediction with score 0
            assert not prediction.amodal.any() and prediction.score == 0.0
            continue
        np.testing.assert_array_equal(prediction.amodal, expected.amodal)
        assert prediction.score == pytest.approx(expected.score)
        # VIoU of the visible part SAM found
        found = expected.visible
        assert prediction.counts.viou == pytest.approx((found & sample.visible).sum() / (found | sample.visible).sum())


@pytest.mark.parametrize("prompt", ["visible", "box"])
def test_model_predictions_read_embeddings_from_the_cache(annotations, tiny_model, tmp_path, prompt):
    from amodal_sam.embedding_cache import EmbeddingCache, embed_dataset

    dataset = load_dataset(annotations)
    cache = EmbeddingCache(tmp_path / "cache", tiny_model)
    embed_dataset(dataset, cache, progress=False)
    calls = []
    tiny_model.sam.image_encoder.register_forward_hook(lambda *_: calls.append(1))
    cached = predict_dataset(dataset, tiny_model, prompt=prompt, cache=cache, progress=False)
    assert calls == [] and cache.stats.hits == len(dataset.records)
    fresh = predict_dataset(dataset, tiny_model, prompt=prompt, progress=False)
    assert [p.counts for p in cached] == [p.counts for p in fresh]


def test_evaluation_report_records_what_produced_it(annotations, tiny_model, tmp_path):
    from amodal_sam.embedding_cache import EmbeddingCache
    from amodal_sam.evaluate import evaluation_report

    dataset = load_dataset(annotations)
    tiny_model.config.hidden_threshold = 0.7
    cache = EmbeddingCache(tmp_path / "cache", tiny_model)
    predictions = predict_dataset(dataset, tiny_model, cache=cache, decoder_batch=3, device=TEST_DEVICE, progress=False)
    report = evaluation_report(
        predictions, data="d.json", model=tiny_model, model_name="m", cache=cache, decoder_batch=3, seed=9
    )
    assert report["data"] == "d.json" and report["method"] == "model m" and report["prompt"] == "visible"
    assert report["device"] == TEST_DEVICE and report["hidden_threshold"] == 0.7 and report["decoder_batch"] == 3
    assert report["cache"] == str(cache.folder) and report["encoder"] == "reference-fp32" and "seed" not in report
    assert report["instances"] == 4 and report["mean"] == summarize_counts(predictions)["mean"]


def summarize_counts(predictions):
    from amodal_sam.metrics import summarize

    return summarize([p.counts for p in predictions])


def test_predict_dataset_refuses_options_a_mode_cannot_use(annotations, tiny_model, tmp_path):
    from amodal_sam.embedding_cache import EmbeddingCache

    dataset = load_dataset(annotations)
    cache = EmbeddingCache(tmp_path, tiny_model)
    for option in ({"cache": cache}, {"device": "cpu"}, {"decoder_batch": 2}, {"prompt": "point"}):
        with pytest.raises(ValueError, match=f"a baseline takes no {next(iter(option))}"):
            predict_dataset(dataset, baseline_name="hull", **option)
    with pytest.raises(ValueError, match="prompt 'box'.*takes no decoder_batch"):
        predict_dataset(dataset, tiny_model, prompt="box", decoder_batch=4)


def test_where_sam_sees_nothing_the_prediction_is_empty_with_score_zero(annotations, tiny_model, monkeypatch):
    dataset = load_dataset(annotations)
    monkeypatch.setattr(
        tiny_model, "sam_visible_masks", lambda image, **_: torch.zeros((1, *image.original_size), dtype=torch.bool)
    )
    predictions = predict_dataset(dataset, tiny_model, prompt="box", progress=False)
    assert len(predictions) == len(dataset)
    for index, prediction in enumerate(predictions):
        assert not prediction.amodal.any() and prediction.score == 0.0
        assert prediction.annotation_id == dataset[index].annotation_id
        assert prediction.counts.aiou == 0.0 and prediction.counts.viou == 0.0  # an empty visible part


def _with_a_wholly_hidden_instance(annotations, tmp_path):
    """The dataset with annotation 2's visible mask emptied (a wholly hidden object)."""
    content = json.loads(annotations.read_text())
    annotation = content["annotations"][1]
    height, width = annotation["visible_mask"]["size"]
    empty = mask_utils.encode(np.zeros((height, width), dtype=np.uint8, order="F"))
    annotation["visible_mask"] = {"size": [height, width], "counts": empty["counts"].decode()}
    path = tmp_path / "hidden.json"
    path.write_text(json.dumps(content))
    for image in content["images"]:
        (tmp_path / image["file_name"]).write_bytes((annotations.parent / image["file_name"]).read_bytes())
    return path


@pytest.mark.parametrize("source", ["model", "baseline"])
def test_an_instance_without_a_visible_part_gets_an_empty_prediction(annotations, tiny_model, tmp_path, source):
    dataset = load_dataset(_with_a_wholly_hidden_instance(annotations, tmp_path))
    options = {"model": tiny_model} if source == "model" else {"baseline_name": "hull"}
    predictions = predict_dataset(dataset, progress=False, **options)
    assert [p.annotation_id for p in predictions] == [a.annotation_id for r in dataset.records for a in r.instances]
    hidden = predictions[1]
    assert hidden.score == 0.0 and not hidden.amodal.any()
    assert hidden.counts.amodal_intersection == 0 and hidden.counts.amodal_union == dataset[1].amodal.sum()


def test_a_decoder_batch_below_one_is_refused(annotations, tiny_model, capsys):
    with pytest.raises(ValueError, match="decoder_batch must be a positive integer or None; got -1"):
        predict_dataset(load_dataset(annotations), tiny_model, decoder_batch=-1, progress=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--data", str(annotations), "--model", "demo", "--decoder-batch", "0"])
    assert exit_info.value.code == 2
    assert "argument --decoder-batch: must be a positive integer; got 0" in capsys.readouterr().err
