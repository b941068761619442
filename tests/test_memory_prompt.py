"""The shape-memory input of the decoder: it changes nothing until trained, it reaches the decoder
only for the rows that are given one, an older model gains it without changing, and training makes
memories that look like what video carries (the truth moved a little, part of the hidden part
possibly never seen)."""

import copy
import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch

import amodal_sam.train as train_module
from amodal_sam import AmodalSAM
from amodal_sam.cli import main
from amodal_sam.data.memory_prior import PriorNoise, memory_prior
from amodal_sam.data.readers import load_dataset
from amodal_sam.geometry import ImageFrame, mask_prompt_levels
from amodal_sam.modeling.prompts import DecoderPrompts, dense_prompt_levels
from amodal_sam.train import TrainOptions

from conftest import ellipse_mask, write_occlusion_dataset

STILL = PriorNoise(rotation_deg=0.0, log_scale=0.0, shift=0.0, boundary_prob=0.0, unseen_prob=0.0)


def _inputs(model, count=3, seed=0):
    spec = model.spec
    low_res = spec.low_res_size
    generator = torch.Generator().manual_seed(seed)
    embedding = torch.randn(1, spec.prompt_embed_dim, low_res // 4, low_res // 4, generator=generator)
    detail = model.detail_features(torch.randn(1, 3, spec.image_size, spec.image_size, generator=generator))
    mask_logits = 10 * torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1)
    memory = torch.randn(count, 1, low_res, low_res, generator=generator).clamp(-1, 1)
    return embedding, detail, mask_logits, memory


def _decode(model, embedding, detail, prompts):
    with torch.no_grad():
        return model.decode(embedding, prompts, detail_features=detail)


def test_an_untrained_memory_input_changes_nothing_and_a_trained_one_only_where_given():
    model = copy.deepcopy(AmodalSAM.random("tiny", seed=0)).eval()
    embedding, detail, mask_logits, memory = _inputs(model)
    plain = _decode(model, embedding, detail, DecoderPrompts(mask_logits))
    untrained = _decode(model, embedding, detail, DecoderPrompts(mask_logits, memory_levels=memory))
    torch.testing.assert_close(untrained.amodal_logits, plain.amodal_logits, rtol=0, atol=0)
    with torch.no_grad():  # trained: the memory now moves the outputs
        model.memory_prompt.layers[-1].weight.normal_(0.0, 0.5)
    given = torch.tensor([True, False, True])
    trained = _decode(model, embedding, detail, DecoderPrompts(mask_logits, memory_levels=memory, memory_known=given))
    change = (trained.amodal_logits - plain.amodal_logits).abs().flatten(1).amax(1)
    assert change[1] == 0.0  # no memory on this row: the plain model's output
    assert change[0] > 1e-3 and change[2] > 1e-3
    every_row = _decode(model, embedding, detail, DecoderPrompts(mask_logits, memory_levels=memory))
    torch.testing.assert_close(every_row.amodal_logits[[0, 2]], trained.amodal_logits[[0, 2]])


def test_a_model_without_a_memory_input_ignores_a_memory():
    model = AmodalSAM.random("tiny", seed=0)
    model.config = dataclasses.replace(model.config, memory_prompt=False)
    model.memory_prompt = None
    embedding, detail, mask_logits, memory = _inputs(model)
    plain = _decode(model, embedding, detail, DecoderPrompts(mask_logits))
    with_memory = _decode(model, embedding, detail, DecoderPrompts(mask_logits, memory_levels=memory))
    torch.testing.assert_close(with_memory.amodal_logits, plain.amodal_logits, rtol=0, atol=0)
    frame = ImageFrame.for_spec((40, 40), model.spec)
    disc = ellipse_mask(40, 40, (0.5, 0.5), (0.3, 0.3))[None]
    assert model.build_prompts(frame, visible_masks=disc, memory_masks=disc).memory_levels is None


def test_an_older_model_gains_a_memory_input_without_changing_and_keeps_it_when_saved(tmp_path):
    """A checkpoint saved before the memory input (the shipped demo's layout) loads without one;
    add_memory_prompt gives it one that changes no output; saved and loaded again it keeps it."""
    model = AmodalSAM.random("tiny", seed=0)
    model.save_pretrained(tmp_path / "old")
    config = json.loads((tmp_path / "old" / "config.json").read_text())
    config["memory_prompt"] = False
    (tmp_path / "old" / "config.json").write_text(json.dumps(config))
    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "old" / "model.safetensors"))
    save_file(
        {k: v for k, v in weights.items() if not k.startswith("memory_prompt.")},
        str(tmp_path / "old" / "model.safetensors"),
    )
    old = AmodalSAM.from_pretrained(tmp_path / "old").eval()
    assert old.memory_prompt is None
    embedding, detail, mask_logits, memory = _inputs(old)
    before = _decode(old, embedding, detail, DecoderPrompts(mask_logits))
    old.add_memory_prompt()
    assert old.config.memory_prompt and old.memory_prompt is not None
    after = _decode(old, embedding, detail, DecoderPrompts(mask_logits, memory_levels=memory))
    torch.testing.assert_close(after.amodal_logits, before.amodal_logits, rtol=0, atol=0)
    old.save_pretrained(tmp_path / "new")
    again = AmodalSAM.from_pretrained(tmp_path / "new")
    assert again.memory_prompt is not None
    assert {k for k in again.trainable_state_dict() if k.startswith("memory_prompt.")}


def test_build_prompts_turns_memory_masks_into_levels_and_an_empty_one_into_none():
    model = AmodalSAM.random("tiny", seed=0)
    frame = ImageFrame.for_spec((48, 64), model.spec)
    visible = np.stack([ellipse_mask(48, 64, (0.4, 0.4), (0.2, 0.2)), ellipse_mask(48, 64, (0.6, 0.6), (0.2, 0.2))])
    memory = np.stack([ellipse_mask(48, 64, (0.4, 0.5), (0.3, 0.3)), np.zeros((48, 64), bool)])
    prompts = model.build_prompts(frame, visible_masks=visible, memory_masks=memory)
    expected = torch.as_tensor(mask_prompt_levels(frame, memory))[:, None]
    torch.testing.assert_close(prompts.memory_levels.cpu(), expected)
    assert len(prompts) == 2
    assert prompts.memory_known.tolist() == [True, False]  # an empty memory is no memory
    training = dense_prompt_levels(frame, visible, None, with_hull=True, memory_masks=memory)
    assert training.memory_known.tolist() == [True, False]  # training reads an empty memory alike
    np.testing.assert_array_equal(training.memory, expected[:, 0].numpy())


# ------------------------------------------------------------------------------- the training memory
def _half_hidden_disc():
    amodal = ellipse_mask(80, 80, (0.5, 0.5), (0.3, 0.3))
    visible = amodal.copy()
    visible[:, 40:] = False  # the right half hidden
    return amodal, visible


def test_a_memory_without_noise_is_the_true_shape():
    amodal, visible = _half_hidden_disc()
    prior = memory_prior(amodal, visible, np.random.default_rng(0), STILL)
    np.testing.assert_array_equal(prior, amodal)


def test_a_memory_that_never_saw_part_of_the_object_lacks_hidden_pixels_only():
    amodal, visible = _half_hidden_disc()
    noise = PriorNoise(rotation_deg=0.0, log_scale=0.0, shift=0.0, boundary_prob=0.0, unseen_prob=1.0)
    lacking = []
    for seed in range(8):
        prior = memory_prior(amodal, visible, np.random.default_rng(seed), noise)
        assert not (prior & ~amodal).any()  # nothing outside the object
        assert (prior | ~visible).all()  # all of the visible part
        lacking.append(int((amodal & ~prior).sum()))
    hidden = int((amodal & ~visible).sum())
    assert max(lacking) > 0.2 * hidden  # some line cuts a good part of the hidden half away
    assert max(lacking) < hidden  # a line through the centre never leaves all of it out


def test_a_moved_memory_keeps_the_objects_size_and_strays_a_few_percent():
    amodal, visible = _half_hidden_disc()
    noise = PriorNoise(rotation_deg=4.0, log_scale=0.0, shift=0.05, boundary_prob=0.0, unseen_prob=0.0)
    side = np.sqrt(amodal.sum())
    offsets = []
    for seed in range(12):
        prior = memory_prior(amodal, visible, np.random.default_rng(seed), noise)
        assert abs(int(prior.sum()) - int(amodal.sum())) < 0.05 * amodal.sum()
        ys, xs = np.nonzero(prior)
        offsets.append(np.hypot(xs.mean() - 39.5, ys.mean() - 39.5) / side)
    assert 0.005 < np.mean(offsets) < 0.15  # moved, by about shift x sqrt(2) on average
    # seeded: the same rng gives the same memory
    np.testing.assert_array_equal(
        memory_prior(amodal, visible, np.random.default_rng(3), noise),
        memory_prior(amodal, visible, np.random.default_rng(3), noise),
    )


def test_an_empty_object_has_an_empty_memory():
    empty = np.zeros((20, 30), bool)
    prior = memory_prior(empty, empty, np.random.default_rng(0))
    assert prior.shape == (20, 30) and prior.dtype == bool and not prior.any()


def _off_centre_disc():
    """A disc of radius 24 px about (x, y) = (36, 60) in a 100 x 120 image: its x and y differ."""
    return ellipse_mask(100, 120, (0.3, 0.6), (0.2, 0.24))


def test_the_unseen_part_is_cut_by_a_line_through_the_objects_centre_at_any_angle():
    noise = PriorNoise(rotation_deg=0.0, log_scale=0.0, shift=0.0, boundary_prob=0.0, unseen_prob=1.0)
    amodal = _off_centre_disc()
    visible = amodal & ellipse_mask(100, 120, (0.3, 0.6), (0.02, 0.024))  # a speck: almost all hidden
    hidden = amodal & ~visible
    for seed in range(16):  # any line through a disc's centre halves it
        prior = memory_prior(amodal, visible, np.random.default_rng(seed), noise)
        assert abs((hidden & ~prior).sum() / hidden.sum() - 0.5) < 0.04, seed
    # the right half hidden: a line at angle a leaves out (pi - |a|) / pi of it, 1/2 on average over all angles
    amodal, visible = _half_hidden_disc()
    hidden = amodal & ~visible
    shares = [
        (hidden & ~memory_prior(amodal, visible, np.random.default_rng(seed), noise)).sum() / hidden.sum()
        for seed in range(64)
    ]
    assert 0.38 < np.mean(shares) < 0.62 and min(shares) < 0.1 and max(shares) > 0.9


def test_a_rotated_memory_turns_about_the_objects_centre():
    noise = PriorNoise(rotation_deg=10.0, log_scale=0.0, shift=0.0, boundary_prob=0.0, unseen_prob=0.0)
    amodal = _off_centre_disc()
    for seed in range(16):  # a disc turned about its centre stays where it was
        prior = memory_prior(amodal, amodal, np.random.default_rng(seed), noise)
        assert (prior & amodal).sum() / (prior | amodal).sum() > 0.95, seed


def test_a_shifted_memory_moves_by_the_set_share_of_its_size():
    noise = PriorNoise(rotation_deg=0.0, log_scale=0.0, shift=0.05, boundary_prob=0.0, unseen_prob=0.0)
    amodal = _off_centre_disc()
    ys, xs = np.nonzero(amodal)
    side = np.sqrt(amodal.sum())
    offsets = []
    for seed in range(48):
        moved_ys, moved_xs = np.nonzero(memory_prior(amodal, amodal, np.random.default_rng(seed), noise))
        offsets.append(np.hypot(moved_xs.mean() - xs.mean(), moved_ys.mean() - ys.mean()) / side)
    # a normal step of 0.05 x side per axis: its length averages 0.05 x sqrt(pi / 2) = 0.063 of the side
    assert 0.045 < np.mean(offsets) < 0.085


def test_a_memory_with_a_moved_boundary_grows_or_shrinks_by_a_pixel_or_two():
    noise = PriorNoise(rotation_deg=0.0, log_scale=0.0, shift=0.0, boundary_prob=1.0, unseen_prob=0.0)
    amodal, visible = _half_hidden_disc()  # sqrt(area) 42: moved by 1 or 2 px (4 % of it, rounded)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    grown = cv2.dilate(amodal.astype(np.uint8), disc).astype(bool)
    shrunk = cv2.erode(amodal.astype(np.uint8), disc).astype(bool)
    ways = set()
    for seed in range(16):
        prior = memory_prior(amodal, visible, np.random.default_rng(seed), noise)
        assert not np.array_equal(prior, amodal), seed
        if (prior & ~amodal).any():  # grown: within 2 px outside
            assert not (amodal & ~prior).any() and not (prior & ~grown).any(), seed
            ways.add("grown")
        else:  # shrunk: within 2 px inside
            assert not (shrunk & ~prior).any(), seed
            ways.add("shrunk")
    assert ways == {"grown", "shrunk"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return load_dataset(write_occlusion_dataset(tmp_path_factory.mktemp("memory-data"), count=4))


def _options(**changes):
    values = {"epochs": 1, "batch_size": 2, "seed": 0, "progress": False, "mask_noise_prob": 0.0, "point_prob": 0.0}
    return TrainOptions(**{**values, **changes})


def test_training_samples_get_a_memory_near_their_true_shape_as_often_as_asked(dataset):
    model = AmodalSAM.random("tiny", seed=0)
    keys = ["k"] * len(dataset.records)
    always = [train_module._sample(dataset, keys, i, 0, _options(memory_prob=1.0), model) for i in range(len(dataset))]
    never = [train_module._sample(dataset, keys, i, 0, _options(memory_prob=0.0), model) for i in range(len(dataset))]
    for sample in always:
        assert sample.dense.memory_known[0]
        memory = sample.dense.memory[0] > 0
        truth = sample.amodal_target > 0.5
        overlap = (memory & truth).sum() / (memory | truth).sum()
        assert overlap > 0.5  # the truth, moved a little
    for sample in never:
        assert not sample.dense.memory_known[0] and not sample.dense.memory.any()


def test_the_training_batch_gives_each_sample_its_memory_or_none(dataset, tmp_path):
    model = AmodalSAM.random("tiny", seed=0)
    keys = [str(k) for k in range(len(dataset.records))]
    given = train_module._sample(dataset, keys, 0, 0, _options(memory_prob=1.0), model)
    withheld = train_module._sample(dataset, keys, 1, 0, _options(memory_prob=0.0), model)
    cache = train_module.EmbeddingCache(tmp_path, model)
    for record, key in zip(dataset.records[:2], keys[:2]):
        cache.write(key, model.encode_images(model.input_pixels(dataset.load_image(record))))
    pixels = torch.cat([model.input_pixels(dataset.load_image(r)) for r in dataset.records[:2]])
    batch = train_module._batch([given, withheld], pixels.cpu(), dataset, cache, model, torch.device("cpu"))
    memory_calls = []
    model.memory_prompt.register_forward_pre_hook(lambda _, args: memory_calls.append(args))
    train_module._LossModule(model, _options())(**batch)
    levels, known = memory_calls[0]
    assert known.tolist() == [True, False]
    torch.testing.assert_close(levels[0, 0].cpu(), torch.as_tensor(given.dense.memory[0]))


def test_a_model_without_a_memory_input_trains_on_the_samples_it_always_did(dataset):
    """The memory is drawn after every other augmentation, so a model without the input gets the
    same samples whatever memory_prob says."""
    model = AmodalSAM.random("tiny", seed=0)
    model.memory_prompt = None
    keys = ["k"] * len(dataset.records)
    for index in range(len(dataset)):
        a = train_module._sample(dataset, keys, index, 0, _options(memory_prob=1.0, scene_prob=0.5), model)
        b = train_module._sample(dataset, keys, index, 0, _options(memory_prob=0.0, scene_prob=0.5), model)
        assert not a.dense.memory_known[0]
        np.testing.assert_array_equal(a.dense.mask, b.dense.mask)
        np.testing.assert_array_equal(a.dense.occluder, b.dense.occluder)


def test_train_gives_an_init_model_a_memory_input_on_the_command_line(tmp_path):
    data = write_occlusion_dataset(tmp_path / "data", count=2)
    old = tmp_path / "old"
    model = AmodalSAM.random("tiny", seed=0)
    model.memory_prompt = None
    model.config = dataclasses.replace(model.config, memory_prompt=False)
    model.save_pretrained(old)
    arguments = ["train", "--data", str(data), "--init", str(old), "--epochs", "1", "--batch-size", "2"]
    assert main([*arguments, "--out", str(tmp_path / "plain")]) == 0
    assert not json.loads((tmp_path / "plain" / "config.json").read_text())["memory_prompt"]
    assert main([*arguments, "--memory-prompt", "--out", str(tmp_path / "remembering")]) == 0
    assert json.loads((tmp_path / "remembering" / "config.json").read_text())["memory_prompt"]
    trained = AmodalSAM.from_pretrained(tmp_path / "remembering")
    assert float(trained.memory_prompt.layers[-1].weight.detach().abs().sum()) > 0  # trained away from zero
