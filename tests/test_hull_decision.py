"""The decision with a hull prior (Decision): hand-made pixels, the config's per-mode fields, and
a model completing by it."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from amodal_sam.config import AmodalConfig, sam_spec_for
from amodal_sam.decision import Decision
from amodal_sam.modeling.completion import amodal_rule, plausible_logits

from conftest import random_image


def _row_case():
    """Three equal rows of 8 pixels: visible columns 0 and 3, so hull(visible) = columns 0-3; the
    occluder covers columns 1-6; the logits rise along each row. Rows are read as ``[0, 1]``."""
    visible = torch.zeros(1, 3, 8, dtype=torch.bool)
    visible[0, :, [0, 3]] = True
    occluder = torch.zeros(1, 3, 8, dtype=torch.bool)
    occluder[0, :, 1:7] = True
    logits = torch.tensor([-9.0, -1.0, 0.5, 9.0, 0.5, 3.0, 9.0, 9.0]).expand(1, 3, 8)
    return logits, occluder, visible


def test_inside_and_outside_the_hull_need_their_own_evidence():
    logits, occluder, visible = _row_case()
    # plain rule at 0.5 (logit 0): every covered pixel with a positive logit
    plain = amodal_rule(logits, occluder, visible, 0.5)[0, 1].tolist()
    assert plain == [True, False, True, True, True, True, True, False]
    # outside the hull (pixels 4-7) a pixel needs p > 0.9 (logit 2.197): 4 (0.5) drops, 5 (3) and 6 (9) stay
    gated = amodal_rule(logits, occluder, visible, Decision(0.5, 0.9))[0, 1].tolist()
    assert gated == [True, False, True, True, False, True, True, False]
    # outside threshold 1.0: never outside the hull, whatever the logit
    never = amodal_rule(logits, occluder, visible, Decision(0.5, 1.0))[0, 1].tolist()
    assert never == [True, False, True, True, False, False, False, False]
    # inside at 0.2 (logit -1.386) pixel 1 (logit -1) joins; the uncovered pixel 7 never does
    loose = amodal_rule(logits, occluder, visible, Decision(0.2, 1.0))[0, 1].tolist()
    assert loose == [True, True, True, True, False, False, False, False]
    # a logit exactly at a threshold does not count, inside (0.5: logit 0) or outside the hull
    zeros = torch.zeros_like(logits)
    assert (
        amodal_rule(zeros, occluder, visible, Decision(0.5, 0.9))[0, 1].tolist()
        == [True, False, False, True] + [False] * 4
    )
    assert amodal_rule(zeros, occluder, visible, Decision(0.2, 0.5))[0, 1].tolist() == [True] * 4 + [False] * 4


def test_plausible_hypotheses_count_inside_the_hull_only():
    # two hypotheses of one object: the best says nothing is hidden, the runner-up (0.9 of its score) fills pixels
    logits = torch.tensor([[[[-5.0] * 4] * 3, [[4.0] * 4] * 3]])  # (1, 2, 3, 4)
    scores = torch.tensor([[0.80, 0.72]])
    assert plausible_logits(logits, scores, 1.0).tolist() == [[[-5.0] * 4] * 3]
    assert plausible_logits(logits, scores, 0.9).tolist() == [[[4.0] * 4] * 3]  # 0.72 >= 0.9 x 0.8
    assert plausible_logits(logits, scores, 0.95).tolist() == [[[-5.0] * 4] * 3]  # 0.72 < 0.76
    assert plausible_logits(logits, torch.tensor([[0.8, 0.4]]), 0.5).tolist() == [[[4.0] * 4] * 3]  # a tie counts
    visible = torch.tensor([[[True, False, True, False]] * 3])  # hull: columns 0-2
    occluder = ~visible
    prior = plausible_logits(logits, scores, 0.9)
    decided = amodal_rule(logits[:, 0], occluder, visible, Decision(0.5, 0.5, 0.9), prior_logits=prior)
    assert decided[0, 1].tolist() == [True, True, True, False]  # pixel 3 is outside: the best hypothesis rules


def test_the_best_hypothesis_always_counts_even_with_negative_scores():
    logits = torch.tensor([[[[3.0]], [[-3.0]]]])
    assert plausible_logits(logits, torch.tensor([[-0.2, -0.5]]), 0.5).item() == 3.0


def test_decision_at_another_threshold_and_its_errors():
    assert Decision(0.6).at(0.3) == Decision(0.3, 0.3, 1.0)  # a plain decision stays plain
    assert Decision(0.2, 0.9, 0.5).at(0.95) == Decision(0.95, 0.95, 0.5)  # outside never below inside
    assert Decision(0.2, 1.0, 0.5).at(0.4) == Decision(0.4, 1.0, 0.5)
    assert Decision(0.7).outside_threshold == 0.7 and Decision(0.7).is_plain
    for bad, name in ((Decision, "hidden_threshold"),):
        with pytest.raises(ValueError, match=name):
            bad(1.0)
    with pytest.raises(ValueError, match=r"outside_threshold must be a probability in \(0, 1\]; got 1.5"):
        Decision(0.5, 1.5)
    with pytest.raises(ValueError, match=r"hidden_threshold must be a probability in \(0, 1\); got '0.5'"):
        Decision("0.5")  # a string from a hand-edited config: a ValueError, not a TypeError
    with pytest.raises(ValueError, match=r"plausible_share must be a probability in \(0, 1\]; got 0.0"):
        Decision(0.5, 0.9, 0.0)
    with pytest.raises(ValueError, match=r"hidden_threshold must be a probability in \(0, 1\); got 1.0"):
        Decision(0.2, 1.0, 0.5).at(1.0)


def _config(**fields) -> AmodalConfig:
    return AmodalConfig(sam_type="tiny", sam_spec=sam_spec_for("tiny"), **fields)


def test_config_decisions_per_mode_and_old_configs_decide_plainly():
    old = _config(hidden_threshold=0.6, scene_hidden_threshold=0.9)
    assert old.decision_for(False) == Decision(0.6) and old.decision_for(True) == Decision(0.9)
    new = _config(
        hidden_threshold=0.6,
        outside_threshold=1.0,
        scene_hidden_threshold=0.2,
        scene_outside_threshold=0.97,
        scene_plausible_share=0.5,
    )
    assert new.decision_for(False) == Decision(0.6, 1.0, 1.0)
    assert new.decision_for(True) == Decision(0.2, 0.97, 0.5)
    assert new.decision_for(True, hidden_threshold=0.99) == Decision(0.99, 0.99, 0.5)
    round_trip = AmodalConfig.from_dict(json.loads(json.dumps(new.to_dict())))
    assert round_trip == new
    with pytest.raises(ValueError, match="scene_outside_threshold"):
        _config(scene_outside_threshold=0.0)
    with pytest.raises(ValueError, match="plausible_share"):
        _config(plausible_share=2)


def _perturbed(model):
    """``model`` with its head's weights moved by seeded noise, so that its outputs are not a
    fresh head's: returned, changed in place."""
    with torch.no_grad():
        for parameter in model.trainable_parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(2)))
    return model


def test_a_model_completes_by_its_configs_decision(tiny_model):
    """With the outside threshold at 1.0 no hidden pixel lies outside hull(visible); the plain rule
    at the same threshold is a superset; both match amodal_at of the same completion."""
    model = _perturbed(tiny_model)
    from amodal_sam.geometry import convex_hull

    masks = np.zeros((2, 64, 64), bool)
    masks[0, 10:40, 10:20] = True
    masks[1, 30:50, 35:60] = True
    encoded = model.encode(random_image(64, 64))
    model.config = dataclasses.replace(model.config, hidden_threshold=0.3, outside_threshold=1.0, plausible_share=0.5)
    gated = model.complete(encoded, visible_masks=masks)
    assert gated.decision == Decision(0.3, 1.0, 0.5)
    for k in range(2):
        assert not (gated.amodal[k].numpy() & ~convex_hull(masks[k])).any()
    plain = gated.amodal_at(Decision(0.3))
    assert (plain.numpy() & ~np.stack([convex_hull(m) for m in masks])).any()  # the plain rule goes outside here
    assert torch.equal(gated.amodal_at(gated.decision), gated.amodal)


def test_amodal_for_lets_the_plausible_runner_up_fill_the_hull(tiny_model):
    """A hand-made completion of one 64 x 64 object (the tiny model's low-res frame is the image's
    pixels): the best hypothesis (score 0.8) hides nothing, the runner-up (0.7) covers everything.
    With share 0.5 the runner-up fills hull & occluder; with share 1 nothing is hidden."""
    from amodal_sam.modeling.completion import Completion

    visible = torch.zeros(1, 64, 64, dtype=torch.bool)
    visible[0, 10:40, 10:20] = True
    visible[0, 10:40, 30:40] = True  # two bars: the hull adds columns 20-29 between them
    occluder = torch.zeros(1, 64, 64, dtype=torch.bool)
    occluder[0, :, 15:60] = True
    logits = torch.stack([torch.full((64, 64), -8.0), torch.full((64, 64), 8.0), torch.full((64, 64), -8.0)])[None]
    completion = Completion(
        frame=tiny_model.frame((64, 64)),
        decision=Decision(0.5),
        amodal=visible.clone(),
        visible=visible,
        occluder=occluder,
        hypothesis_scores=torch.tensor([[0.8, 0.7, 0.1]]),
        hypothesis_logits=logits,
        visible_logits=torch.zeros(1, 64, 64),
    )
    gated, best_only = Decision(0.5, 1.0, 0.5), Decision(0.5, 1.0, 1.0)
    decided = completion.amodal_for([gated, best_only])
    between = torch.zeros(1, 64, 64, dtype=torch.bool)
    between[0, 10:40, 20:30] = True
    assert torch.equal(decided[gated], visible | between)
    assert torch.equal(decided[best_only], visible)
    assert torch.equal(completion.amodal_at(gated), decided[gated])


def test_a_given_prior_region_takes_the_hulls_place(tiny_model):
    """The hand-made completion above with a prior region instead of the hull: the runner-up fills
    prior & occluder, wherever the prior lies (here right of the bars, where the hull is not)."""
    from amodal_sam.modeling.completion import Completion

    visible = torch.zeros(1, 64, 64, dtype=torch.bool)
    visible[0, 10:40, 10:20] = True
    visible[0, 10:40, 30:40] = True
    occluder = torch.zeros(1, 64, 64, dtype=torch.bool)
    occluder[0, :, 15:60] = True
    prior = torch.zeros(1, 64, 64, dtype=torch.bool)
    prior[0, 5:45, 45:64] = True  # beyond the bars: the occluder covers its columns 45-59
    logits = torch.stack([torch.full((64, 64), -8.0), torch.full((64, 64), 8.0), torch.full((64, 64), -8.0)])[None]
    fields = {
        "frame": tiny_model.frame((64, 64)),
        "decision": Decision(0.5),
        "amodal": visible.clone(),
        "visible": visible,
        "occluder": occluder,
        "hypothesis_scores": torch.tensor([[0.8, 0.7, 0.1]]),
        "hypothesis_logits": logits,
        "visible_logits": torch.zeros(1, 64, 64),
    }
    gated = Decision(0.5, 1.0, 0.5)
    expected = visible.clone()
    expected[0, 5:45, 45:60] = True
    assert torch.equal(Completion(**fields, prior_region=prior).amodal_at(gated), expected)
    with torch.no_grad():
        model = tiny_model
        masks = visible.numpy()
        encoded = model.encode(random_image(64, 64))
        model.config = dataclasses.replace(model.config, hidden_threshold=0.3, outside_threshold=1.0)
        from amodal_sam.geometry import convex_hull

        hull = convex_hull(masks[0])[None]
        by_hull = model.complete(encoded, visible_masks=masks, prior_regions=hull)
        assert torch.equal(by_hull.amodal, model.complete(encoded, visible_masks=masks).amodal)
        nowhere = model.complete(encoded, visible_masks=masks, prior_regions=np.zeros_like(masks))
        assert torch.equal(nowhere.amodal, nowhere.visible)  # no prior and never outside it: nothing hidden
        assert torch.equal(nowhere.amodal_at(nowhere.decision), nowhere.amodal)


def _two_level_completion(tiny_model, occluder_logits):
    """One 64 x 64 object (the tiny model's low-res frame is the image's pixels): two bars whose
    hull adds columns 20-29 of rows 10-39; one hypothesis at logit 8 everywhere."""
    from amodal_sam.modeling.completion import Completion

    visible = torch.zeros(1, 64, 64, dtype=torch.bool)
    visible[0, 10:40, 10:20] = True
    visible[0, 10:40, 30:40] = True
    return Completion(
        frame=tiny_model.frame((64, 64)),
        decision=Decision(0.5),
        amodal=visible.clone(),
        visible=visible,
        occluder=torch.ones(1, 64, 64, dtype=torch.bool),
        hypothesis_scores=torch.tensor([[0.8]]),
        hypothesis_logits=torch.full((1, 1, 64, 64), 8.0),
        visible_logits=torch.zeros(1, 64, 64),
        occluder_logits=occluder_logits,
    ), visible


def test_the_occluder_level_decides_what_the_estimate_covers(tiny_model):
    # the decoder's occluder estimate: logit 1 (probability 0.73) in columns 0-24, logit 3 (0.95)
    # from column 25 on; the hull's hidden columns are 20-29
    occluder_logits = torch.full((1, 64, 64), 1.0)
    occluder_logits[0, :, 25:] = 3.0
    completion, visible = _two_level_completion(tiny_model, occluder_logits)
    levels = [Decision(0.5, 1.0, 1.0, level) for level in (0.5, 0.9, 0.99)]
    decided = completion.amodal_for(levels)
    everything, right_half = visible.clone(), visible.clone()
    everything[0, 10:40, 20:30] = True
    right_half[0, 10:40, 25:30] = True
    assert torch.equal(decided[levels[0]], everything)  # 0.73 and 0.95 both above 0.5
    assert torch.equal(decided[levels[1]], right_half)  # only 0.95 above 0.9
    assert torch.equal(decided[levels[2]], visible)  # nothing above 0.99
    # known occluders (no estimate kept): the level plays no part
    known, _ = _two_level_completion(tiny_model, None)
    assert all(torch.equal(mask, everything) for mask in known.amodal_for(levels).values())


def test_the_occluder_level_in_the_decision_and_the_config():
    assert Decision(0.6, occluder_threshold=0.9).at(0.3) == Decision(0.3, occluder_threshold=0.9)
    assert Decision(0.2, 1.0, 0.5, 0.97).at(0.4) == Decision(0.4, 1.0, 0.5, 0.97)
    with pytest.raises(ValueError, match=r"occluder_threshold must be a probability in \(0, 1\); got 1.0"):
        Decision(0.5, occluder_threshold=1.0)
    config = _config(hidden_threshold=0.6, occluder_threshold=0.97, scene_hidden_threshold=0.2)
    assert config.decision_for(False) == Decision(0.6, occluder_threshold=0.97)
    assert config.decision_for(True) == Decision(0.2)  # known occluders: the level does not apply
    assert AmodalConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    old = config.to_dict()
    del old["occluder_threshold"]  # a config from before the field: logits above 0, as then
    assert AmodalConfig.from_dict(old).decision_for(False).occluder_threshold == 0.5
    with pytest.raises(ValueError, match="occluder_threshold"):
        _config(occluder_threshold=0.0)


def test_a_model_takes_its_occluder_level_where_it_estimates_the_occluders(tiny_model):
    model = _perturbed(tiny_model)
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 10:40, 10:20] = True
    encoded = model.encode(random_image(64, 64))
    model.config = dataclasses.replace(model.config, hidden_threshold=0.3, occluder_threshold=0.9)
    single = model.complete(encoded, visible_masks=masks)
    probability = torch.sigmoid(model.frame((64, 64)).low_res_to_original(single.occluder_logits[:, None])[:, 0])
    assert single.decision.occluder_threshold == 0.9
    assert torch.equal(single.occluder, probability > 0.9)
    assert torch.equal(single.amodal, single.amodal_for([single.decision])[single.decision])
    known = np.zeros((1, 64, 64), bool)
    known[0, :, 15:40] = True
    scene = model.complete(encoded, visible_masks=masks, occluder_masks=known)
    assert scene.occluder_logits is None and torch.equal(scene.occluder, torch.as_tensor(known))
