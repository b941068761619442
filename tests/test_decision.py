"""The decision rule and the prompts that reach the decoders, checked on hand-made values.

A 64 x 64 image on the tiny model (256-px encoder input, 64-px low-res frame) maps each original
pixel to 4 x 4 input pixels and to exactly one low-res pixel, so expected prompts are written by
hand: input frame = 4 x original pixels, low-res frame = original pixels.
"""

import dataclasses

import numpy as np
import pytest
import torch

from amodal_sam import AmodalPredictor, AmodalSAM
from amodal_sam.geometry import convex_hull
from amodal_sam.modeling.completion import amodal_rule
from amodal_sam.modeling.prompts import DecoderPrompts

from conftest import TEST_DEVICE, ellipse_mask, random_image

SIZE = 64


def _l_shape() -> np.ndarray:
    """An L: rows 10-39 of columns 10-19, plus rows 30-39 of columns 20-39. Its convex hull adds
    the triangle above the foot, e.g. pixel (row 25, column 25), which is outside the L."""
    mask = np.zeros((SIZE, SIZE), bool)
    mask[10:40, 10:20] = True
    mask[30:40, 20:40] = True
    return mask


def _spy(module) -> list[dict]:
    """Keyword arguments of every call of ``module``, in order."""
    calls = []
    module.register_forward_pre_hook(lambda _, args, kwargs: calls.append(dict(kwargs)), with_kwargs=True)
    return calls


def _up(logits: torch.Tensor) -> torch.Tensor:
    """(N, C, 64, 64) low-res logits -> 256 input frame -> back to 64 x 64 (no padding: square)."""
    big = torch.nn.functional.interpolate(logits, (256, 256), mode="bilinear", align_corners=False)
    return torch.nn.functional.interpolate(big, (SIZE, SIZE), mode="bilinear", align_corners=False)


@pytest.fixture
def predictor(tiny_model):
    predictor = AmodalPredictor(tiny_model, device=TEST_DEVICE)
    predictor.set_image(random_image(SIZE, SIZE))
    return predictor


def test_amodal_rule_on_hand_made_pixels():
    # four pixels: (visible?, occluder?, logit) -> expected amodal at threshold 0.5 (logit 0)
    visible = torch.tensor([[[True, False, False, False]]])
    occluder = torch.tensor([[[False, True, True, False]]])
    logits = torch.tensor([[[-5.0, 2.0, -1.0, 9.0]]])
    assert amodal_rule(logits, occluder, visible, 0.5).tolist() == [[[True, True, False, False]]]
    # at 0.9 (logit ln 9 = 2.197) the covered pixel with logit 2 is no longer hidden object
    assert amodal_rule(logits, occluder, visible, 0.9).tolist() == [[[True, False, False, False]]]
    # logit exactly at the threshold does not count (strictly above)
    assert (
        amodal_rule(torch.zeros(1, 1, 1), torch.ones(1, 1, 1, dtype=bool), torch.zeros(1, 1, 1, dtype=bool), 0.5).item()
        is False
    )


def test_result_follows_the_rule_from_the_decoders_own_logits(predictor):
    """amodal = visible | (best hypothesis upsampled > logit(t)) & occluder, recomputed from the
    decoder's raw outputs with torch's interpolation, not with the library's frame code."""
    model = predictor.model
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    visible = _l_shape()
    result = predictor.complete(visible_mask=visible)
    image = predictor.image
    levels = torch.full((1, 1, SIZE, SIZE), -1.0)
    levels[0, 0][torch.from_numpy(visible)] = 1.0
    # hull outside the L is 0 (undecided): the triangle between (r10, c19) and (r30, c39)
    levels[0, 0][torch.from_numpy(convex_hull(visible) & ~visible)] = 0.0
    with torch.no_grad():
        output = model.decode(
            image.embedding,
            DecoderPrompts(
                mask_logits=levels * model.config.mask_prompt_logit,
                boxes=torch.tensor([[40.0, 40.0, 156.0, 156.0]]),  # (10, 10, 39, 39) x 4
            ),
            detail_features=image.detail,
        )

    best = int(output.hypothesis_iou[0].argmax())
    hidden = _up(output.hypotheses[:, best : best + 1])[0, 0] > 0.0
    covered = _up(output.occluder_logits)[0, 0] > 0.0
    expected = visible | (hidden & covered).numpy()
    assert result.score == pytest.approx(float(output.hypothesis_iou[0, best]))
    np.testing.assert_array_equal(result.amodal, expected)
    assert result.occluded.any() and (result.amodal != visible).any()  # the case is not trivial


def test_amodal_at_a_threshold_equals_completing_at_it(predictor):
    model = predictor.model
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(2)))
    masks = np.stack([_l_shape(), np.roll(_l_shape(), 12, axis=1)])
    plain = model.complete(predictor.image, visible_masks=masks)
    for threshold in (0.2, 0.5, 0.9):
        strict = model.complete(predictor.image, visible_masks=masks, hidden_threshold=threshold)
        assert torch.equal(plain.amodal_at(threshold), strict.amodal)
    loose, tight = plain.amodal_at(0.2), plain.amodal_at(0.9)
    assert (tight & ~loose).sum() == 0 and (loose & ~tight).sum() > 0  # stricter adds a subset


@pytest.mark.parametrize("hull_prompt, outside_level", [(True, 0.0), (False, -1.0)])
def test_mask_prompt_levels_and_magnitude_follow_the_config(predictor, hull_prompt, outside_level):
    model = predictor.model
    model.config.hull_prompt = hull_prompt
    model.config.mask_prompt_logit = 7.0
    calls = _spy(model.prompt_encoder)
    predictor.complete(visible_mask=_l_shape())
    masks = calls[0]["masks"][0, 0]
    assert masks.shape == (SIZE, SIZE)
    assert masks[20, 15] == 7.0  # inside the L
    assert masks[25, 25] == 7.0 * outside_level  # in the hull, outside the L
    assert masks[5, 50] == -7.0  # far outside


def test_a_box_and_points_given_with_a_visible_mask_reach_the_amodal_decoder(predictor):
    calls = _spy(predictor.model.prompt_encoder)
    predictor.complete(
        visible_mask=_l_shape(), box=[5, 6, 50, 60], point_coords=[[12, 20], [3, 3]], point_labels=[1, 0]
    )
    boxes, (coords, labels) = calls[0]["boxes"], calls[0]["points"]
    assert boxes.tolist() == [[20.0, 24.0, 200.0, 240.0]]  # x 4 into the input frame
    assert coords.tolist() == [[[48.0, 80.0], [12.0, 12.0]]] and labels.tolist() == [[1, 0]]


def test_without_a_box_the_visible_masks_box_goes_with_it(predictor):
    calls = _spy(predictor.model.prompt_encoder)
    predictor.complete(visible_mask=_l_shape())
    # L spans columns 10-39 and rows 10-39: (10, 10, 39, 39) in pixels, x 4 in the input frame
    assert calls[0]["boxes"].tolist() == [[40.0, 40.0, 156.0, 156.0]] and calls[0]["points"] is None


def test_points_and_box_can_go_straight_to_the_amodal_decoder(predictor):
    model = predictor.model
    amodal_calls, sam_calls = _spy(model.prompt_encoder), _spy(model.sam.mask_decoder)
    result = predictor.complete(
        box=[8, 8, 40, 40], point_coords=[[20, 24]], point_labels=[1], use_sam_for_visible=False
    )
    assert sam_calls == [] and amodal_calls[0]["masks"] is None
    assert amodal_calls[0]["boxes"].tolist() == [[32.0, 32.0, 160.0, 160.0]]
    assert amodal_calls[0]["points"][0].tolist() == [[[80.0, 96.0]]]
    # the visible part is the amodal decoder's own visible output
    with torch.no_grad():
        output = model.decode(
            predictor.image.embedding,
            DecoderPrompts(
                boxes=torch.tensor([[32.0, 32.0, 160.0, 160.0]]),
                points=(torch.tensor([[[80.0, 96.0]]]), torch.tensor([[1]])),
            ),
            detail_features=predictor.image.detail,
        )
    np.testing.assert_allclose(result.visible_logits, output.visible_logits[0, 0].numpy(), atol=1e-6)
    np.testing.assert_array_equal(result.visible, (_up(output.visible_logits)[0, 0] > 0).numpy())
    assert result.visible.any() and not result.visible.all()


def test_a_point_prompt_reaches_sams_decoder_in_the_input_frame(predictor):
    calls = _spy(predictor.model.sam.prompt_encoder)
    try:
        predictor.complete(point_coords=[[20, 24]], point_labels=[1])
    except RuntimeError:  # a random SAM may see nothing there; the prompt was still sent
        pass
    assert calls[0]["points"][0].tolist() == [[[80.0, 96.0]]] and calls[0]["boxes"] is None


def _trained_like(model, seed=3):
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def _without_scene_prompt(model):
    """The same model as one saved before the occluder prompt existed."""
    config = dataclasses.replace(model.config, occluder_prompt=False)
    old = AmodalSAM(config=config, sam=model.sam)
    old.load_trainable_state_dict(
        {k: v for k, v in model.trainable_state_dict().items() if not k.startswith("occluder_prompt.")}
    )
    return old


def test_a_known_occluder_replaces_the_decoders_estimate(predictor):
    predictor.model = _without_scene_prompt(_trained_like(predictor.model))
    visible = _l_shape()
    known = np.zeros((SIZE, SIZE), bool)
    known[10:30, 20:45] = True  # a block right of the L's stem, above its foot
    free = predictor.complete(visible_mask=visible)
    given = predictor.complete(visible_mask=visible, occluder_mask=known)
    np.testing.assert_array_equal(given.occluder, known)
    np.testing.assert_array_equal(given.hypotheses, free.hypotheses)  # same decoding, another gate
    best = int(np.argmax(given.hypothesis_scores))
    np.testing.assert_array_equal(given.amodal, visible | (given.hypotheses[best] & known))
    assert given.occluded.any() and not (given.occluded & ~known).any()
    nothing = predictor.complete(visible_mask=visible, occluder_mask=np.zeros((SIZE, SIZE), bool))
    np.testing.assert_array_equal(nothing.amodal, visible)  # nothing in front: nothing hidden


def test_known_occluders_enter_the_prompts(predictor):
    """The mask prompt leaves undecided only the hull under the known occluders; the occluder
    prompt gets +1 under them and -1 elsewhere (low-res pixel = original pixel here)."""
    model = predictor.model
    masks = _spy(model.prompt_encoder)
    occluder_inputs = []
    model.occluder_prompt.register_forward_pre_hook(lambda _, args: occluder_inputs.append(args))
    visible = _l_shape()
    known = np.zeros((SIZE, SIZE), bool)
    known[10:25, 20:45] = True  # covers the top of the hull's triangle (rows 10-24) only
    predictor.complete(visible_mask=visible, occluder_mask=known)
    prompt = masks[0]["masks"][0, 0]
    logit = model.config.mask_prompt_logit
    assert prompt[35, 15] == logit  # visible
    assert prompt[15, 21] == 0.0  # in the hull's triangle, under the occluder: undecided
    assert prompt[27, 27] == -logit  # in the triangle, not under the occluder: excluded
    assert prompt[5, 50] == -logit
    levels, known_rows = occluder_inputs[0]
    assert levels[0, 0, 15, 30] == 1.0 and levels[0, 0, 50, 50] == -1.0 and known_rows.tolist() == [True]
    predictor.complete(visible_mask=visible)  # no occluders known: the hull is undecided, no occluder prompt
    assert masks[1]["masks"][0, 0, 27, 27] == 0.0 and len(occluder_inputs) == 1


def test_an_untrained_occluder_input_changes_nothing(predictor):
    model = _trained_like(predictor.model)
    with torch.no_grad():  # the zero-initialised last layer of the occluder prompt stays as built
        model.occluder_prompt.layers[-1].weight.zero_()
        model.occluder_prompt.layers[-1].bias.zero_()
    image = predictor.image
    prompt = model.mask_prompt(torch.rand(2, SIZE, SIZE) * 2 - 1)
    levels = torch.rand(2, 1, SIZE, SIZE) * 2 - 1

    def decode(**occluders):
        with torch.no_grad():
            return model.decode(
                image.embedding, DecoderPrompts(mask_logits=prompt, **occluders), detail_features=image.detail
            )

    plain = decode()
    same = decode(occluder_levels=levels)
    torch.testing.assert_close(same.amodal_logits, plain.amodal_logits, rtol=0, atol=0)
    with torch.no_grad():
        model.occluder_prompt.layers[-1].bias.fill_(0.5)  # trained: the input now matters ...
    assert not torch.equal(decode(occluder_levels=levels).amodal_logits, plain.amodal_logits)
    unknown = decode(occluder_levels=levels, occluders_known=torch.tensor([False, True]))
    torch.testing.assert_close(unknown.amodal_logits[0], plain.amodal_logits[0], rtol=0, atol=0)  # ... where known
    assert not torch.equal(unknown.amodal_logits[1], plain.amodal_logits[1])


def test_known_occluders_in_a_batch_equal_one_by_one(predictor):
    _trained_like(predictor.model)
    masks = [_l_shape(), np.roll(_l_shape(), 14, axis=1)]
    occluders = [np.roll(masks[1], 2, axis=0) & ~masks[0], masks[0] & ~masks[1]]
    batch = predictor.complete_batch(masks, occluder_masks=occluders)
    for mask, occluder, result in zip(masks, occluders, batch):
        alone = predictor.complete(visible_mask=mask, occluder_mask=occluder)
        np.testing.assert_array_equal(result.amodal, alone.amodal)
        np.testing.assert_array_equal(result.occluder, occluder)
    with pytest.raises(ValueError, match=r"occluder_masks must hold one mask per visible mask \(2\); got 1"):
        predictor.complete_batch(masks, occluder_masks=occluders[:1])
    with pytest.raises(ValueError, match=r"occluder_mask has shape \(10, 10\) but the image is \(64, 64\)"):
        predictor.complete(visible_mask=masks[0], occluder_mask=np.zeros((10, 10), bool))


def _grid(*rows: str) -> np.ndarray:
    """(H, W) bool from rows of '#' (True) and '.' (False)."""
    return np.array([[c == "#" for c in row] for row in rows])


def test_clean_completion_drops_detached_hidden_pieces_and_fills_enclosed_holes_under_the_occluder():
    from amodal_sam.modeling.completion import clean_completion

    visible = _grid(
        "..........",
        ".###......",
        ".###......",
        ".###......",
        "..........",
        "..........",
    )
    amodal = visible | _grid(
        "..........",
        "....####..",  # hidden part continuing the visible one, around a hole at (2, 5)
        "....#.##..",
        "....####.#",  # (3, 9): a speck, not touching the visible part
        "..........",
        "#.........",  # (5, 0): a speck too
    )
    occluder = np.ones_like(visible)
    cleaned = clean_completion(amodal, visible, occluder)
    expected = visible | _grid(
        "..........",
        "....####..",
        "....####..",  # the hole is filled
        "....####..",
        "..........",
        "..........",
    )
    np.testing.assert_array_equal(cleaned, expected)
    # a hole where nothing covers the object stays open: a part can only be hidden under something
    uncovered = occluder.copy()
    uncovered[2, 5] = False
    assert not clean_completion(amodal, visible, uncovered)[2, 5]
    # a diagonal touch is a touch: the piece at (4, 4) is kept
    diagonal = visible | _grid("..........", "..........", "..........", "..........", "....#.....", "..........")
    np.testing.assert_array_equal(clean_completion(diagonal, visible, occluder), diagonal)


def test_clean_completion_keeps_what_it_must():
    from amodal_sam.modeling.completion import clean_completion

    # a hole of the visible part alone (a ring seen whole) is seen, not hidden: kept
    ring = _grid(".....", ".###.", ".#.#.", ".###.", ".....")
    hidden = _grid(".....", ".....", ".....", ".....", ".###.")
    np.testing.assert_array_equal(clean_completion(ring | hidden, ring, np.ones_like(ring)), ring | hidden)
    # background that reaches the image border is not a hole, even around the hidden part
    visible = _grid("##...", "##...", ".....")
    amodal = visible | _grid("..###", "..#..", "..###")
    np.testing.assert_array_equal(clean_completion(amodal, visible, np.ones_like(visible)), amodal)
    # nothing hidden: the mask as it was
    np.testing.assert_array_equal(clean_completion(visible, visible, np.ones_like(visible)), visible)


def test_a_model_with_clean_masks_decides_through_clean_completion(tiny_model):
    from amodal_sam.modeling.completion import clean_completion

    image = random_image(64, 64)
    masks = np.stack([ellipse_mask(64, 64), ellipse_mask(64, 64, (0.3, 0.3), (0.15, 0.1))])
    encoded = tiny_model.encode(image)
    plain = tiny_model.complete(encoded, visible_masks=masks, hidden_threshold=0.3)
    tiny_model.config = dataclasses.replace(tiny_model.config, clean_masks=True)
    tidy = tiny_model.complete(encoded, visible_masks=masks, hidden_threshold=0.3)
    assert tidy.clean and not plain.clean and (tidy.amodal != plain.amodal).any()  # the random decoder leaves specks
    for k in range(2):
        expected = clean_completion(plain.amodal[k].numpy(), masks[k], plain.occluder[k].numpy())
        np.testing.assert_array_equal(tidy.amodal[k].numpy(), expected)
        np.testing.assert_array_equal(
            tidy.amodal_at(0.5)[k].numpy(),
            clean_completion(plain.amodal_at(0.5)[k].numpy(), masks[k], plain.occluder[k].numpy()),
        )
    assert (tidy.amodal_at(0.5) != plain.amodal_at(0.5)).any()  # at 0.5 too the clean-up has work to do


def test_clean_completion_works_up_to_the_image_border_and_on_every_side():
    from amodal_sam.modeling.completion import clean_completion

    # a speck in the image's top-left corner, far from the visible part: removed (the crop must
    # reach the border rows and columns)
    visible = _grid("........", "........", "...##...", "...##...", "........", "........")
    speck = _grid("#.......", "........", "........", "........", "........", ".......#")
    np.testing.assert_array_equal(clean_completion(visible | speck, visible, np.ones_like(visible)), visible)
    # a ring filling the whole image: its hole is background label 1 and is filled
    ring_visible = _grid("#####", "#...#", "#...#", ".....", ".....")
    ring = _grid("#####", "#...#", "#...#", "#...#", "#####")
    filled = clean_completion(ring, ring_visible, np.ones_like(ring))
    np.testing.assert_array_equal(filled, np.ones_like(ring))
    # a bay open on one side is not a hole, whichever side it opens to (away from the image border)
    bay = _grid(
        ".......",
        ".#####.",
        ".#...#.",
        ".#...#.",
        ".##.##.",  # open to the bottom through (4, 3)
        ".......",
    )
    bay_visible = bay & (np.arange(7)[None, :] < 3)  # the left columns are seen, the rest hidden
    for turns in range(4):
        shape, seen = np.rot90(bay, turns), np.rot90(bay_visible, turns)
        np.testing.assert_array_equal(clean_completion(shape, seen, np.ones_like(shape)), shape, err_msg=str(turns))
    # a cup as wide as the image, open to the image's top: its inside reaches the border only
    # there (no background column beside it), so it is not a hole, whichever side it opens to
    cup = _grid("#...#", "#...#", "#####")
    cup_visible = cup & (np.arange(5)[None, :] < 1)
    for turns in range(4):
        shape, seen = np.rot90(cup, turns), np.rot90(cup_visible, turns)
        np.testing.assert_array_equal(clean_completion(shape, seen, np.ones_like(shape)), shape, err_msg=str(turns))
    # background touching the outside only diagonally is still enclosed (4-connected background)
    diagonal_gap = _grid(".......", ".####..", ".#..#..", ".#..#..", ".###.#.", ".......")
    gap_visible = diagonal_gap & (np.arange(7)[None, :] < 2)
    expected = diagonal_gap.copy()
    expected[2:4, 2:4] = True
    np.testing.assert_array_equal(clean_completion(diagonal_gap, gap_visible, np.ones_like(gap_visible)), expected)


def test_amodal_rule_is_plain_unless_asked_and_takes_no_objects():
    from amodal_sam.modeling.completion import amodal_rule, probability_logit

    visible = torch.zeros(1, 6, 6, dtype=torch.bool)
    visible[0, 2:4, 2:4] = True
    logits = torch.full((1, 6, 6), -5.0)
    logits[0, 0, 5] = 5.0  # one confident pixel far from the visible part, under the occluder
    occluder = torch.ones_like(visible)
    plain = amodal_rule(logits, occluder, visible, 0.5)
    assert plain[0, 0, 5] and plain.sum() == 5  # the plain rule keeps it
    assert amodal_rule(logits, occluder, visible, 0.5, clean=True).sum() == 4  # the clean-up drops the speck
    none = amodal_rule(logits[:0], occluder[:0], visible[:0], 0.5, clean=True)
    assert none.shape == (0, 6, 6) and none.dtype == torch.bool
    with pytest.raises(ValueError, match="in \\(0, 1\\); got 0.0"):
        probability_logit(0.0)


def test_clean_completion_attaches_hidden_pieces_across_a_gap_of_up_to_gap_pixels():
    from amodal_sam.modeling.completion import clean_completion

    # visible columns 0-2, background columns 3-4, a hidden piece at columns 5-6: its nearest
    # pixel is 3 columns from the visible part, so it stays with gap 3 and goes with gap 2
    visible = np.zeros((4, 9), bool)
    visible[:, :3] = True
    piece = np.zeros_like(visible)
    piece[1:3, 5:7] = True
    occluder = ~visible
    for gap, kept in ((1, False), (2, False), (3, True), (4, True)):
        expected = visible | piece if kept else visible
        np.testing.assert_array_equal(clean_completion(visible | piece, visible, occluder, gap), expected, str(gap))
    with pytest.raises(ValueError, match="gap must be at least 1 pixel"):
        clean_completion(visible | piece, visible, occluder, 0)


def test_image_frame_low_res_cell_is_the_original_pixels_per_low_res_pixel():
    from amodal_sam.geometry import ImageFrame

    assert ImageFrame((480, 640), 1024, 256).low_res_cell == 3  # 640 / 256 = 2.5, rounded up
    assert ImageFrame((512, 288), 512, 128).low_res_cell == 4  # exactly 4
    assert ImageFrame((64, 64), 256, 64).low_res_cell == 1
    assert ImageFrame((100, 30), 256, 64).low_res_cell == 2  # the long side counts


def test_a_model_cleans_with_a_gap_of_one_low_res_pixel(monkeypatch):
    """On a 128 x 128 image the tiny model's 64-px low-res frame has cells of 2 px: both the
    decision and re-decisions at other thresholds tidy with gap 2."""
    from amodal_sam.modeling import completion

    gaps = []
    real = completion.clean_completion

    def spy(amodal, visible, occluder, gap=1):
        gaps.append(gap)
        return real(amodal, visible, occluder, gap)

    monkeypatch.setattr(completion, "clean_completion", spy)
    model = AmodalSAM.random("tiny", seed=0).to(TEST_DEVICE)
    model.config = dataclasses.replace(model.config, clean_masks=True)
    completed = model.complete(model.encode(random_image(128, 128)), visible_masks=ellipse_mask(128, 128)[None])
    completed.amodal_at(0.5)
    assert gaps == [2, 2]
