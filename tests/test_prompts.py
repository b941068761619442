"""The decoder's prompts as one value (amodal_sam.modeling.prompts): rows, counts, the dense
levels that training and inference both build, and what a model builds from masks."""

import numpy as np
import pytest
import torch

from amodal_sam.geometry import ImageFrame, mask_prompt_levels, visible_prompt_levels
from amodal_sam.modeling.prompts import DecoderPrompts, dense_prompt_levels

from conftest import rect_mask


def _prompts(count: int) -> DecoderPrompts:
    values = torch.arange(count, dtype=torch.float32)
    return DecoderPrompts(
        mask_logits=values[:, None, None, None].expand(count, 1, 4, 4),
        boxes=values[:, None].expand(count, 4),
        points=(values[:, None, None].expand(count, 2, 2), torch.ones(count, 2, dtype=torch.long)),
        occluder_levels=-values[:, None, None, None].expand(count, 1, 4, 4),
        occluders_known=values > 1,
    )


def test_rows_take_the_same_rows_of_every_prompt():
    part = _prompts(4).rows(slice(1, 3))
    assert len(part) == 2
    assert part.mask_logits[:, 0, 0, 0].tolist() == [1.0, 2.0] and part.boxes[:, 0].tolist() == [1.0, 2.0]
    assert part.points[0][:, 0, 0].tolist() == [1.0, 2.0] and part.points[1].shape == (2, 2)
    assert part.occluder_levels[:, 0, 0, 0].tolist() == [-1.0, -2.0] and part.occluders_known.tolist() == [False, True]
    only_boxes = DecoderPrompts(boxes=torch.zeros(3, 4)).rows(slice(0, 1))
    assert len(only_boxes) == 1 and only_boxes.mask_logits is None and only_boxes.points is None


def test_prompts_of_different_object_counts_or_none_are_refused():
    with pytest.raises(ValueError, match=r"same number of objects; got \[2, 3\] objects"):
        DecoderPrompts(mask_logits=torch.zeros(2, 1, 4, 4), boxes=torch.zeros(3, 4))
    with pytest.raises(ValueError, match="same number of objects; got none"):
        DecoderPrompts()


def test_dense_levels_without_and_with_known_occluders():
    frame = ImageFrame((64, 64), 256, 64)
    visible = rect_mask((64, 64), (10, 40), (10, 30))[None]
    bar = rect_mask((64, 64), (0, 64), (30, 40))[None]
    alone = dense_prompt_levels(frame, visible, None, with_hull=True)
    np.testing.assert_array_equal(alone.mask, visible_prompt_levels(frame, visible, with_hull=True))
    assert not alone.occluder.any() and alone.occluders_known.tolist() == [False]
    scene = dense_prompt_levels(frame, visible, bar, with_hull=True)
    np.testing.assert_array_equal(scene.mask, visible_prompt_levels(frame, visible, with_hull=True, occluders=bar))
    np.testing.assert_array_equal(scene.occluder, mask_prompt_levels(frame, bar))
    assert scene.occluders_known.tolist() == [True]


def test_a_model_builds_the_levels_training_builds(tiny_model):
    frame = ImageFrame.for_spec((64, 64), tiny_model.spec)
    visible = np.stack([rect_mask((64, 64), (10, 40), (10, 30)), rect_mask((64, 64), (5, 20), (40, 60))])
    occluders = np.stack([visible[1], visible[0]])
    prompts = tiny_model.build_prompts(frame, visible_masks=visible, occluder_masks=occluders)
    levels = dense_prompt_levels(frame, visible, occluders, with_hull=tiny_model.config.hull_prompt)
    torch.testing.assert_close(prompts.mask_logits.cpu(), tiny_model.mask_prompt(torch.as_tensor(levels.mask)))
    torch.testing.assert_close(prompts.occluder_levels[:, 0].cpu(), torch.as_tensor(levels.occluder))
    assert prompts.occluders_known.tolist() == [True, True] and len(prompts) == 2
    # each visible mask brings its box, in the input frame (x4 here: 64 px to the 256-px input)
    assert prompts.boxes.tolist() == [[40.0, 40.0, 116.0, 156.0], [160.0, 20.0, 236.0, 76.0]]
    single = tiny_model.build_prompts(frame, visible_masks=visible)
    assert single.occluder_levels is None and single.occluders_known is None
