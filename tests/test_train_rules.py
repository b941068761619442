"""Training's rules on hand-computed values: each loss term, their weighting, the learning-rate
schedule, best-epoch selection and prompt augmentation."""

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import amodal_sam.train as train_module
from amodal_sam import AmodalSAM
from amodal_sam.data.masks import encode_rle
from amodal_sam.data.readers import load_dataset
from amodal_sam.geometry import ImageFrame, mask_boxes, visible_prompt_levels
from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput
from amodal_sam.train import TrainOptions, fit, loss_terms, total_loss

from conftest import TEST_DEVICE, random_image, write_occlusion_dataset

LN2 = math.log(2.0)
BIG = 30.0  # a logit whose sigmoid is 1 to float precision


@pytest.fixture(scope="module")
def annotations(tmp_path_factory):
    return write_occlusion_dataset(tmp_path_factory.mktemp("rules"), count=8)


def _plane(*rows: str) -> torch.Tensor:
    """(1, L, L) float target from rows of '#' (1) and '.' (0)."""
    return torch.tensor([[[1.0 if c == "#" else 0.0 for c in row] for row in rows]])


# A 4 x 4 low-res frame: amodal 8 px (rows 0-1), visible 4 px (row 0), hidden 4 px (row 1).
AMODAL = _plane("####", "####", "....", "....")
VISIBLE = _plane("####", "....", "....", "....")


def _output(amodal_logits, amodal_iou, visible_logits=None, occluder_logits=None) -> AmodalDecoderOutput:
    zeros = torch.zeros(1, 1, 4, 4)
    return AmodalDecoderOutput(
        amodal_logits=amodal_logits,
        amodal_iou=amodal_iou,
        visible_logits=zeros if visible_logits is None else visible_logits,
        occluder_logits=zeros if occluder_logits is None else occluder_logits,
    )


def _perfect(target: torch.Tensor) -> torch.Tensor:
    return (2 * target - 1) * BIG


def test_each_loss_term_on_hand_computed_values():
    occluder_target = _plane("....", "##..", "....", "....")
    occluder_weight = _plane("####", "####", "....", "....")  # known on 8 px, 2 of them covered
    good, bad = _perfect(AMODAL), _perfect(1 - AMODAL)
    logits = torch.stack([good[0], bad[0], good[0], bad[0]])[None]  # single, then three hypotheses
    terms = loss_terms(_output(logits, torch.full((1, 4), 0.25)), AMODAL, VISIBLE, occluder_target, occluder_weight)
    # amodal: a perfect output costs 0; an inverted one BCE 30 (mean over 16 px of 30 on every px)
    # + Dice 1 - 1 / (8 + 8 + 1)
    inverted = BIG + (1 - 1 / 17)
    torch.testing.assert_close(
        terms["amodal_outputs"], torch.tensor([[0.0, inverted, 0.0, inverted]]), atol=1e-4, rtol=0
    )
    # hidden-part Dice (hidden target 4 px): 0 when perfect; an inverted output puts p = 1 on the
    # 8 px outside the object (all non-visible) and 0 on the hidden 4: 1 - 1 / (8 + 4 + 1)
    torch.testing.assert_close(
        terms["occluded_outputs"], torch.tensor([[0.0, 1 - 1 / 13, 0.0, 1 - 1 / 13]]), atol=1e-4, rtol=0
    )
    # visible with logits 0 everywhere: BCE ln 2; Dice 1 - (2 x 0.5 x 4 + 1) / (0.5 x 16 + 4 + 1)
    torch.testing.assert_close(terms["visible"], torch.tensor([LN2 + 1 - 5 / 13]), atol=1e-5, rtol=0)
    # occluder over the 8 known px: BCE ln 2; Dice 1 - (2 x 0.5 x 2 + 1) / (0.5 x 8 + 2 + 1)
    torch.testing.assert_close(terms["occluder"], torch.tensor([LN2 + 1 - 3 / 7]), atol=1e-5, rtol=0)
    # IoU head: true IoU 1 for the good outputs, 0 for the inverted ones; predicted 0.25 for all
    torch.testing.assert_close(terms["iou"], torch.tensor([(0.75**2 + 0.25**2) / 2]), atol=1e-6, rtol=0)


def test_soft_edges_of_an_unoccluded_object_are_not_a_hidden_part():
    # Low-res targets are area coverage: an edge cell half covered by the object is 0.5 in both the
    # amodal and the visible target. Nothing is hidden, so the hidden-part Dice must be 0 whatever
    # the outputs (a product amodal x (1 - visible) = 0.25 there would train a band around edges).
    edge = torch.tensor([[[1.0, 1.0, 0.5, 0.0]] * 2 + [[0.0] * 4] * 2])
    logits = torch.zeros(1, 2, 4, 4)  # p = 0.5 everywhere, spilling over the edge
    terms = loss_terms(_output(logits, torch.zeros(1, 2)), edge, edge, torch.zeros_like(edge), torch.ones_like(edge))
    assert terms["occluded_outputs"].tolist() == [[0.0, 0.0]]
    # The same object with its half-covered column hidden instead of visible: the hidden target is
    # 0.5 on those 2 cells; p - visible is 0 on the 4 visible cells and 0.5 on the other 12:
    # Dice 1 - (2 x (2 x 0.5 x 0.5) + 1) / (12 x 0.5 + 2 x 0.5 + 1) = 1 - 2 / 8
    visible = torch.tensor([[[1.0, 1.0, 0.0, 0.0]] * 2 + [[0.0] * 4] * 2])
    terms = loss_terms(_output(logits, torch.zeros(1, 2)), edge, visible, torch.zeros_like(edge), torch.ones_like(edge))
    torch.testing.assert_close(terms["occluded_outputs"], torch.full((1, 2), 0.75), atol=1e-6, rtol=0)


def test_total_loss_weighs_every_term_and_takes_the_best_hypothesis():
    terms = {
        "amodal_outputs": torch.tensor([[1.0, 4.0, 2.0, 3.0]]),
        "occluded_outputs": torch.tensor([[0.5, 0.0, 2.0, 0.5]]),
        "visible": torch.tensor([0.3]),
        "occluder": torch.tensor([0.7]),
        "iou": torch.tensor([0.11]),
    }
    options = TrainOptions(
        visible_loss_weight=2.0, occluded_loss_weight=3.0, occluder_loss_weight=5.0, iou_loss_weight=7.0
    )
    # per output with the hidden-part Dice x 3: [2.5, 4.0, 8.0, 4.5]; single 2.5 + best hypothesis 4.0
    expected = 2.5 + 4.0 + 2.0 * 0.3 + 5.0 * 0.7 + 7.0 * 0.11
    assert total_loss(terms, options).item() == pytest.approx(expected)


def test_warmup_then_cosine_schedule():
    factor = train_module.cosine_with_warmup(4, 20)
    assert [factor(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert factor(12) == pytest.approx(0.5)  # half way through the cosine: (12 - 4) / 16
    assert factor(20) == pytest.approx(0.0) and factor(30) == pytest.approx(0.0)


def _options(**changes):
    values = {"epochs": 3, "batch_size": 4, "lr": 1e-3, "warmup_steps": 1, "seed": 0, "progress": False}
    values.update(changes)
    return TrainOptions(**values)


def test_fit_follows_the_schedule(annotations, tmp_path):
    history = fit(AmodalSAM.random("tiny", seed=0), load_dataset(annotations), tmp_path, _options(epochs=2))
    # 8 instances / batch 4 = 2 steps an epoch, 4 in all, warm-up 1: after step 2 the factor is
    # 0.5 (1 + cos(pi / 3)) = 0.75, after step 4 it is 0
    assert [h["lr"] for h in history] == pytest.approx([0.75e-3, 0.0], abs=1e-12)


def test_the_best_epoch_by_validation_oiou_is_the_saved_model(annotations, tmp_path, monkeypatch):
    scripted = iter([(0.5, 0.2), (0.5, 0.9), (0.5, 0.4)])
    seen = []

    def validation(model, val_data, cache):
        seen.append({k: v.clone() for k, v in model.trainable_state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(train_module, "validation_scores", validation)
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    history = fit(model, dataset, tmp_path, _options(), val_data=dataset)
    assert [h["val_oiou"] for h in history] == [0.2, 0.9, 0.4]
    saved = load_file(str(Path(tmp_path) / "model.safetensors"))
    for key, tensor in seen[1].items():
        assert torch.equal(saved[key], tensor), key  # epoch 2's weights, not the last epoch's
    assert any(not torch.equal(saved[k], v) for k, v in seen[2].items())
    assert torch.load(tmp_path / "trainer_state.pt", weights_only=True)["best_score"] == 0.9


def test_without_hidden_parts_in_validation_the_best_epoch_is_chosen_by_aiou(annotations, tmp_path, monkeypatch):
    scripted = iter([(0.3, math.nan), (0.8, math.nan), (0.5, math.nan)])
    seen = []

    def validation(model, val_data, cache):
        seen.append({k: v.clone() for k, v in model.trainable_state_dict().items()})
        return next(scripted)

    monkeypatch.setattr(train_module, "validation_scores", validation)
    dataset, unoccluded = load_dataset(annotations), load_dataset(annotations)
    for record in unoccluded.records:
        for instance in record.instances:
            instance.visible = None  # visible = amodal: nothing hidden, OIoU undefined
    assert train_module.selection_criterion(unoccluded) == "val_aiou"
    assert train_module.selection_criterion(dataset) == "val_oiou"
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(), val_data=unoccluded)
    saved = load_file(str(Path(tmp_path) / "model.safetensors"))
    for key, tensor in seen[1].items():
        assert torch.equal(saved[key], tensor), key  # epoch 2's weights: the best AIoU
    assert torch.load(tmp_path / "trainer_state.pt", weights_only=True)["best_score"] == 0.8


def test_a_diverging_run_stops_with_an_error_and_keeps_the_saved_model(annotations, tmp_path):
    dataset = load_dataset(annotations)
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(epochs=1))
    files = {name: (tmp_path / name).read_bytes() for name in ("model.safetensors", "config.json", "trainer_state.pt")}
    with pytest.raises(RuntimeError, match=r"training diverged: the loss is (nan|inf) at epoch 1, step 2.*--lr"):
        fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(epochs=2, lr=1e30))
    for name, content in files.items():
        assert (tmp_path / name).read_bytes() == content, name


def test_weights_that_turn_non_finite_stop_training_too(annotations, tmp_path, monkeypatch):
    # the loss check off: the weights check at the end of the epoch still stops the run
    monkeypatch.setattr(train_module, "_stop_unless_finite", lambda *args: None)
    with pytest.raises(RuntimeError, match="training diverged: a weight is NaN or infinite after epoch 1"):
        fit(AmodalSAM.random("tiny", seed=0), load_dataset(annotations), tmp_path, _options(epochs=2, lr=1e30))
    assert not (tmp_path / "model.safetensors").exists()


def test_a_model_with_a_nan_weight_is_never_saved(tmp_path):
    model = AmodalSAM.random("tiny", seed=0)
    name = "decoder.iou_prediction_head.layers.0.weight"
    with torch.no_grad():
        model.decoder.iou_prediction_head.layers[0].weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match=f"non-finite weights.*{name}"):
        model.save_pretrained(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_prompt_augmentation_changes_the_prompts_only_when_asked(annotations):
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    keys = [str(k) for k in range(len(dataset.records))]
    defaults = TrainOptions()
    assert defaults.mask_noise_prob > 0 and defaults.box_jitter > 0 and defaults.point_prob > 0
    assert defaults.occluder_noise_prob > 0
    clean = _options(mask_noise_prob=0.0, box_jitter=0.0, point_prob=0.0, scene_prob=0.0)
    noisy = _options(mask_noise_prob=1.0, box_jitter=0.05, point_prob=1.0, scene_prob=0.0)
    for index in range(len(dataset)):
        record = dataset.records[dataset.index[index][0]]
        visible = dataset.load_masks(record)[0][0]
        frame = ImageFrame.for_spec(visible.shape, model.spec)
        exact_levels = visible_prompt_levels(frame, visible[None], with_hull=True)[0]
        exact_box = frame.boxes_to_input(mask_boxes(visible[None]))[0]
        plain = train_module._sample(dataset, keys, index, 0, clean, model)
        np.testing.assert_array_equal(plain.dense.mask[0], exact_levels)
        np.testing.assert_allclose(plain.box, exact_box)
        assert plain.points.shape == (0, 2)
        varied = train_module._sample(dataset, keys, index, 0, noisy, model)
        assert not np.array_equal(varied.dense.mask[0], exact_levels)  # eroded or dilated
        assert not np.allclose(varied.box, exact_box)
        assert 1 <= len(varied.points) <= 3
        xs, ys = (varied.points / frame.encoder_size * max(visible.shape)).round().astype(int).T
        assert visible[np.clip(ys, 0, visible.shape[0] - 1), np.clip(xs, 0, visible.shape[1] - 1)].mean() > 0.5


def test_the_training_batch_pads_points_and_the_loss_sees_every_prompt(annotations, tmp_path):
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    keys = [str(k) for k in range(len(dataset.records))]
    options = _options(mask_noise_prob=0.0, box_jitter=0.0, point_prob=0.0, scene_prob=1.0)
    samples = [train_module._sample(dataset, keys, index, 0, options, model) for index in (0, 1)]
    unknown = dataclasses.replace(
        samples[0].dense, occluder=0 * samples[0].dense.occluder, occluders_known=np.zeros(1, bool)
    )
    samples[0].dense = unknown  # the second is given its occluders, the first is not
    samples[1].points = np.array([[10.0, 20.0], [30.0, 40.0]])  # two points for the second, none for the first
    cache = train_module.EmbeddingCache(tmp_path, model)
    for record, key in zip(dataset.records[:2], keys[:2]):
        cache.write(key, model.encode_images(model.input_pixels(dataset.load_image(record))))
    pixels = torch.cat([model.input_pixels(dataset.load_image(r)) for r in dataset.records[:2]])
    batch = train_module._batch(samples, pixels.cpu(), dataset, cache, model, torch.device(TEST_DEVICE))
    torch.testing.assert_close(batch["pixels"], pixels.to(TEST_DEVICE))
    coords, labels = batch["prompts"].points
    assert labels.tolist() == [[-1, -1], [1, 1]]  # -1 pads: not a point
    assert coords[1].tolist() == [[10.0, 20.0], [30.0, 40.0]] and batch["image_index"].tolist() == [0, 1]
    calls, occluder_calls = [], []
    model.prompt_encoder.register_forward_pre_hook(lambda _, a, kw: calls.append(kw), with_kwargs=True)
    model.occluder_prompt.register_forward_pre_hook(lambda _, args: occluder_calls.append(args))
    train_module._LossModule(model, options)(**batch)
    levels, known = occluder_calls[0]
    expected_levels = np.concatenate([unknown.occluder, samples[1].dense.occluder])
    torch.testing.assert_close(levels[:, 0].cpu(), torch.as_tensor(expected_levels))
    assert known.tolist() == [False, True]
    prompt = calls[0]
    expected_masks = np.concatenate([s.dense.mask for s in samples])
    torch.testing.assert_close(prompt["masks"].cpu(), model.mask_prompt(torch.as_tensor(expected_masks)))
    torch.testing.assert_close(
        prompt["boxes"].cpu(), torch.as_tensor(np.stack([s.box for s in samples]), dtype=torch.float32)
    )
    assert prompt["points"][1].tolist() == [[-1, -1], [1, 1]]


def test_the_optimiser_uses_the_options(annotations, tmp_path):
    fit(AmodalSAM.random("tiny", seed=0), load_dataset(annotations), tmp_path, _options(epochs=1, weight_decay=0.03))
    group = torch.load(tmp_path / "trainer_state.pt", weights_only=True)["optimizer"]["param_groups"][0]
    assert group["weight_decay"] == 0.03 and group["initial_lr"] == 1e-3


def test_the_iou_target_is_the_true_iou_of_a_partial_overlap():
    # predicted: rows 0-2 (12 px); truth: rows 0-1 (8 px): IoU 8 / 12
    logits = _perfect(_plane("####", "####", "####", "....")).expand(1, 4, 4, 4).clone()
    terms = loss_terms(_output(logits, torch.full((1, 4), 2 / 3)), AMODAL, VISIBLE, AMODAL, torch.ones(1, 4, 4))
    assert terms["iou"].item() == pytest.approx(0.0, abs=1e-6)  # predicted 2/3 = true 8/12: no error


def test_box_jitter_scales_with_the_box_and_stays_in_the_image():
    mask = np.zeros((100, 100), bool)
    mask[10:30, 20:60] = True  # 40 px wide, 20 px high: box (20, 10, 59, 29)
    rng = np.random.default_rng(0)
    boxes = np.array([train_module._jittered_box(mask, rng, 0.05) for _ in range(4000)])
    deviation = np.abs(boxes - [20, 10, 59, 29]).mean(axis=0)
    # |N(0, s)| averages s sqrt(2 / pi): s = 0.05 x 40 px across, 0.05 x 20 px down
    np.testing.assert_allclose(deviation, np.array([40, 20, 40, 20]) * 0.05 * np.sqrt(2 / np.pi), rtol=0.08)
    edge = np.zeros((100, 100), bool)
    edge[0:50, 50:100] = True  # touches the top and right borders
    boxes = np.array([train_module._jittered_box(edge, rng, 0.2) for _ in range(500)])
    assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= 99 and boxes[:, [1, 3]].max() <= 99
    assert (boxes[:, 2] == 99).any() and (boxes[:, 1] == 0).any()  # clipped at the borders, not beyond


def test_mask_noise_erodes_or_dilates_by_a_few_pixels():
    mask = np.zeros((200, 200), bool)
    mask[50:150, 50:150] = True  # area 10,000: radius up to 0.04 x 100 = 4 px
    changes = set()
    for seed in range(40):
        noisy = train_module._noisy_mask(mask, np.random.default_rng(seed), 1.0)
        rows = np.flatnonzero(noisy.any(axis=1))
        changes.add(int(rows[-1] - rows[0] + 1) - 100)  # +2r when dilated, -2r when eroded
    assert changes <= {-8, -6, -4, -2, 2, 4, 6, 8} and min(changes) < 0 < max(changes)
    assert {abs(c) for c in changes} >= {2, 8}  # radii from 1 to 4 all appear at the ends


def _two_object_scene(root: Path) -> Path:
    """One 64 x 64 image (low-res pixel = original pixel on the tiny model): a box A (rows 10-49,
    columns 10-49) behind a bar B (columns 25-34, every row); both annotated, as synth writes."""
    import json

    from amodal_sam.data.masks import encode_rle
    from amodal_sam.image_io import write_rgb

    a = np.zeros((64, 64), bool)
    a[10:50, 10:50] = True
    b = np.zeros((64, 64), bool)
    b[:, 25:35] = True
    write_rgb(root / "scene.png", random_image(64, 64))
    annotations = [
        {"id": 1, "image_id": 1, "segmentation": encode_rle(a), "visible_mask": encode_rle(a & ~b), "order": 2},
        {"id": 2, "image_id": 1, "segmentation": encode_rle(b), "visible_mask": encode_rle(b), "order": 1},
    ]
    images = [{"id": 1, "file_name": "scene.png", "height": 64, "width": 64}]
    (root / "scene.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    return root / "scene.json"


def test_scene_samples_are_given_the_other_objects_visible_masks(tmp_path, annotations):
    dataset = load_dataset(_two_object_scene(tmp_path))
    model = AmodalSAM.random("tiny", seed=0)
    options = _options(mask_noise_prob=0.0, box_jitter=0.0, point_prob=0.0, scene_prob=1.0, occluder_noise_prob=0.0)
    a_sample, b_sample = (train_module._sample(dataset, ["k"], i, 0, options, model) for i in (0, 1))
    expected_for_a = -np.ones((64, 64), np.float32)
    expected_for_a[:, 25:35] = 1.0  # B's visible bar
    assert a_sample.dense.occluders_known[0] and b_sample.dense.occluders_known[0]
    np.testing.assert_array_equal(a_sample.dense.occluder[0], expected_for_a)
    expected_for_b = -np.ones((64, 64), np.float32)
    expected_for_b[10:50, 10:25] = expected_for_b[10:50, 35:50] = 1.0  # A's visible parts
    np.testing.assert_array_equal(b_sample.dense.occluder[0], expected_for_b)
    # A's hull (the whole box) is undecided only under the bar
    assert a_sample.dense.mask[0, 30, 30] == 0.0 and a_sample.dense.mask[0, 30, 20] == 1.0
    assert a_sample.dense.mask[0, 5, 30] == -1.0
    withheld = train_module._sample(dataset, ["k"], 0, 0, _options(scene_prob=0.0, mask_noise_prob=0.0), model)
    assert not withheld.dense.occluders_known[0] and not withheld.dense.occluder.any()
    # an annotated occluder mask (synth's single-object files) is known too
    single = load_dataset(annotations)
    record_index, instance = single.index[0]
    assert single.records[record_index].instances[instance].occluder is not None
    bar = single.load_occluder(single.records[record_index], instance)
    sample = train_module._sample(single, ["k"] * len(single.records), 0, 0, options, model)
    frame = ImageFrame.for_spec(bar.shape, model.spec)
    np.testing.assert_array_equal(sample.dense.occluder[0], 2 * frame.masks_to_low_res(bar[None])[0] - 1)


def _span(row: np.ndarray) -> tuple[int, int]:
    columns = np.flatnonzero(row)
    return int(columns[0]), int(columns[-1])


def test_each_known_occluder_moves_its_own_boundary_but_never_over_the_object():
    """Target A (rows 20-79, columns 10-49) behind a bar B (columns 40-59, every row) and a
    square C (rows 85-99, columns 70-99) on a 100 x 100 canvas. B's area 2,000 px and C's 450 px
    give radii of 1 or 2 px (max(2, int(0.04 x sqrt(area)))): B's row-5 span 40-59 becomes 41-58
    or 42-57 eroded, 39-60 or 38-61 grown; C's top edge (row 85) 86 / 87 or 84 / 83."""
    a, b, c = (np.zeros((100, 100), bool) for _ in range(3))
    a[20:80, 10:50] = True
    b[:, 40:60] = True
    c[85:, 70:] = True
    own = a & ~b
    scene = np.stack([own, b, c])
    exact = train_module._known_occluders(scene, 0, None, own, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(exact, b | c)
    loose = np.zeros((100, 100), bool)
    loose[:5, :5] = True  # an annotated occluder no instance explains (single-object files)
    with_annotated = train_module._known_occluders(scene, 0, loose | b, own, np.random.default_rng(0), 0.0)
    np.testing.assert_array_equal(with_annotated, b | c | loose)
    moves = set()
    for seed in range(40):
        known = train_module._known_occluders(scene, 0, None, own, np.random.default_rng(seed), 1.0)
        assert not (known & own).any()  # never over the object's own visible mask
        bar = _span(known[5, :65])
        assert bar in {(41, 58), (42, 57), (39, 60), (38, 61)}
        top = int(np.flatnonzero(known[:, 80])[0])
        assert top in {83, 84, 86, 87}
        if bar[0] > 40:
            assert not known[50, 40]  # eroded: a gap opens between A and the bar
        moves.add((bar[0] > 40, top > 85))
    assert moves == {(True, True), (True, False), (False, True), (False, False)}  # each mask on its own


def test_scene_samples_take_the_moved_occluders_into_the_prompt(tmp_path):
    """On the two-object scene (B's bar: columns 25-34, 640 px: radius 1 or 2) every sample of A
    gets a moved bar, and A's hull is undecided exactly where the moved bar lies."""
    dataset = load_dataset(_two_object_scene(tmp_path))
    model = AmodalSAM.random("tiny", seed=0)
    options = _options(mask_noise_prob=0.0, box_jitter=0.0, point_prob=0.0, scene_prob=1.0, occluder_noise_prob=1.0)
    spans = set()
    for epoch in range(12):
        sample = train_module._sample(dataset, ["k"], 0, epoch, options, model)
        bar = _span(sample.dense.occluder[0, 5] > 0)
        assert bar in {(26, 33), (27, 32), (24, 35), (23, 36)}
        spans.add(bar)
        assert (sample.dense.mask[0, 30, 25] == 0.0) == (bar[0] <= 25)  # undecided only under the moved bar
    assert len(spans) >= 3


def test_wholly_hidden_training_instances_are_left_out_and_counted(annotations, tmp_path, capsys):
    content = json.loads(annotations.read_text())
    content["annotations"][2]["visible_mask"] = encode_rle(np.zeros((64, 80), bool))
    path = tmp_path / "hidden.json"
    path.write_text(json.dumps(content))
    for image in content["images"]:
        (tmp_path / image["file_name"]).write_bytes((annotations.parent / image["file_name"]).read_bytes())
    dataset = load_dataset(path)
    view, left_out = train_module.with_visible_parts(dataset)
    assert left_out == 1 and len(view) == len(dataset) - 1 and (dataset.index[2] not in view.index)
    history = fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "run", _options(epochs=1, progress=True))
    assert len(history) == 1 and math.isfinite(history[0]["train_loss"])
    assert "1 training instances have no visible part (nothing to prompt with): left out" in capsys.readouterr().err


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer; got 0"),
        ({"epochs": -1}, "epochs must be a positive integer"),
        ({"lr": math.nan}, "lr must be a positive finite number; got nan"),
        ({"scene_prob": 1.5}, r"scene_prob must be a probability in \[0, 1\]"),
        ({"occluder_noise_prob": -0.1}, r"occluder_noise_prob must be a probability in \[0, 1\]; got -0.1"),
        ({"memory_prob": 2.0}, r"memory_prob must be a probability in \[0, 1\]; got 2.0"),
        ({"grad_clip": -1.0}, "grad_clip must be a non-negative finite number"),
    ],
)
def test_bad_training_options_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainOptions(**changes)


def test_resume_refuses_other_options_or_another_encoder_and_says_what_it_does(annotations, tmp_path, capsys):
    dataset = load_dataset(annotations)
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(epochs=1))
    with pytest.raises(ValueError, match=r"other training options \(lr 0.001 -> 0.002, seed 0 -> 5\)"):
        fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(epochs=2, lr=2e-3, seed=5), resume=True)
    with pytest.raises(ValueError, match="made with the frozen encoder 'tiny-256-reference-fp32-.*', not 'tiny-256"):
        fit(AmodalSAM.random("tiny", seed=1), dataset, tmp_path, _options(epochs=2), resume=True)
    capsys.readouterr()
    history = fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path, _options(epochs=2, progress=True), resume=True)
    assert [h["epoch"] for h in history] == [1, 2]  # more epochs is the one change a resume may make
    assert "resuming after epoch 1 of 2 from" in capsys.readouterr().err
    fit(AmodalSAM.random("tiny", seed=0), dataset, tmp_path / "new", _options(epochs=1, progress=True), resume=True)
    assert "--resume: no '" in (err := capsys.readouterr().err) and "trainer_state.pt' yet; starting afresh" in err


def test_each_process_prepares_its_own_share_of_the_global_batch(annotations):
    """Under DDP with 2 processes, step s of an epoch gives rank 0 and rank 1 disjoint halves of
    the global batch that one process would take (the same samples, prepared the same way)."""
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    keys = [str(k) for k in range(len(dataset.records))]
    options = _options(batch_size=4)
    alone = train_module._StepInputs(dataset, keys, 1, options, model, 0, 1)
    ranks = [train_module._StepInputs(dataset, keys, 1, options, model, rank, 2) for rank in (0, 1)]
    assert len(alone) == len(ranks[0]) == len(dataset) // 4
    for step in range(len(alone)):
        whole, _ = alone[step]
        halves = [inputs[step][0] for inputs in ranks]
        assert [len(half) for half in halves] == [2, 2]
        for half, rows in zip(halves, (whole[0::2], whole[1::2])):
            for got, expected in zip(half, rows):
                np.testing.assert_array_equal(got.dense.mask, expected.dense.mask)
                assert got.record_index == expected.record_index


def test_a_training_step_runs_under_bf16_autocast_as_on_a_gpu(annotations, tmp_path):
    """fit runs its steps under bf16 autocast on CUDA; the same on the CPU here catches dtype
    mismatches (a float32 prompt meeting bf16 activations) before a GPU does: a finite loss, and
    a gradient for the decoder's, the fusion's and the occluder prompt's weights."""
    dataset = load_dataset(annotations)
    model = AmodalSAM.random("tiny", seed=0)
    options = _options(scene_prob=1.0, point_prob=1.0)
    cache = train_module.EmbeddingCache(tmp_path, model)
    keys = train_module.embed_dataset(dataset, cache, progress=False)
    samples, pixels = train_module._StepInputs(dataset, keys, 0, options, model, 0, 1)[0]
    batch = train_module._batch(samples, pixels, dataset, cache, model, torch.device("cpu"))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = train_module._LossModule(model, options)(**batch)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    for module in (model.decoder.iou_prediction_head, model.decoder.detail_fusion, model.occluder_prompt):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())


def test_a_sample_carries_its_own_targets_and_one_to_three_extra_points(tmp_path):
    """On the two-object scene (low-res pixel = image pixel) A's sample has A's amodal box and
    visible part as targets, its hidden part (the bar's rows 10-49) as the occluder target known
    inside A only (no occluder_mask in this file); extra points come 1, 2 or 3 at a time, each
    on A's visible part (input frame = 4 x the pixels)."""
    dataset = load_dataset(_two_object_scene(tmp_path))
    model = AmodalSAM.random("tiny", seed=0)
    a_amodal = np.zeros((64, 64), np.float32)
    a_amodal[10:50, 10:50] = 1.0
    a_visible = a_amodal.copy()
    a_visible[:, 25:35] = 0.0
    sample = train_module._sample(dataset, ["k"], 0, 0, _options(mask_noise_prob=0.0, point_prob=0.0), model)
    np.testing.assert_array_equal(sample.amodal_target, a_amodal)
    np.testing.assert_array_equal(sample.visible_target, a_visible)
    np.testing.assert_array_equal(sample.occluder_target, a_amodal - a_visible)
    np.testing.assert_array_equal(sample.occluder_weight, a_amodal)
    counts = set()
    for epoch in range(30):
        points = train_module._sample(dataset, ["k"], 0, epoch, _options(point_prob=1.0), model).points
        counts.add(len(points))
        pixels = np.floor(points / 4).astype(int)
        assert a_visible[pixels[:, 1], pixels[:, 0]].all()
    assert counts == {1, 2, 3}
