"""Seeded bugs: each one-line bug of the kinds a review once slipped past the tests, applied to a
copy of the project, must make its named tests fail.

    python tests/seeded_bugs.py [WORD ...]   (from the project root; about 3 minutes on 2 cores;
                                              WORDs: only the bugs whose description has one)

Each entry: (what the bug breaks, file, the exact text replaced, its replacement, tests that must
fail). An entry whose text is no longer found is reported, so the list follows the code.
Not collected by pytest (a run copies the project once per bug); see tests/README.md.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUGS = [
    (
        "upscaled pixels put back with a token's two half-steps the wrong way round",
        "amodal_sam/modeling/upscaling.py",
        "upscaled.permute(0, 1, 3, 5, 2, 4, 6, 7)",
        "upscaled.permute(0, 1, 5, 3, 2, 6, 4, 7)",
        [
            "tests/test_upscaling.py::test_upscaling_tokens_equals_the_transposed_convolutions",
            "tests/test_upscaling.py::test_amodal_decoder_equals_segment_anything_predict_masks",
        ],
    ),
    (
        "per-token upscaling skips SAM's LayerNorm",
        "amodal_sam/modeling/upscaling.py",
        "first_activation(F.layer_norm(upscaled.view(-1, middle), (middle,), norm.weight, norm.bias, norm.eps))",
        "first_activation(upscaled.view(-1, middle))",
        ["tests/test_upscaling.py::test_upscaling_tokens_equals_the_transposed_convolutions"],
    ),
    (
        "the detail fusion's share of the mask logits is dropped",
        "amodal_sam/modeling/amodal_decoder.py",
        "masks = masks + self.detail_fusion(upscaled, detail_features, mask_vectors)",
        "masks = masks + 0 * self.detail_fusion(upscaled, detail_features, mask_vectors)",
        ["tests/test_upscaling.py::test_amodal_decoder_with_detail_equals_the_fusion_written_out"],
    ),
    (
        "the folded fusion forgets the last convolution's bias",
        "amodal_sam/modeling/detail_encoder.py",
        "return term.view(count, tokens, side_h, side_w) + bias[:, :, None, None]",
        "return term.view(count, tokens, side_h, side_w)",
        ["tests/test_model.py::test_detail_fusion_equals_its_definition"],
    ),
    (
        "the padding crop drops a low-res row the image still reads",
        "amodal_sam/geometry.py",
        "-(-side // factor) + 1)",
        "-(-side // factor))",
        ["tests/test_geometry.py::test_low_res_to_original_equals_sam_postprocess"],
    ),
    (
        "regions open to the crop's edge are filled as holes",
        "amodal_sam/modeling/completion.py",
        "is_hole[regions[[0, -1], :]] = False",
        "pass",
        ["tests/test_decision.py::test_clean_completion_works_up_to_the_image_border_and_on_every_side"],
    ),
    (
        "objects set behind show through the target",
        "amodal_sam/data/synth.py",
        "image[amodal] = base[amodal]  # the target stays in front of what was set behind it",
        "pass",
        ["tests/test_synth.py::test_objects_set_behind_the_target_are_partly_hidden_by_it"],
    ),
    (
        "embedding shares split by record, not by distinct image",
        "amodal_sam/embedding_cache.py",
        "if len(seen) % world == rank:",
        "if len(keys) % world == rank + 1 - world:",
        ["tests/test_embedding_cache.py::test_processes_split_the_distinct_images_between_them"],
    ),
    (
        "DataLoader batches ignore the rank's share",
        "amodal_sam/train.py",
        "share = self.order[step * size : (step + 1) * size][self.rank :: self.world]",
        "share = self.order[step * size : (step + 1) * size]",
        ["tests/test_train_rules.py::test_each_process_prepares_its_own_share_of_the_global_batch"],
    ),
    (
        "the worker count cannot change on resume",
        "amodal_sam/train.py",
        '_RESUMABLE_CHANGES = {"epochs", "progress", "workers"}',
        '_RESUMABLE_CHANGES = {"epochs", "progress"}',
        ["tests/test_train.py::test_dataloader_workers_train_exactly_as_the_training_process_alone"],
    ),
    (
        "hidden-part target as amodal x (1 - visible) again",
        "amodal_sam/train.py",
        "occluded_target = (amodal_target - visible_target).clamp(min=0)",
        "occluded_target = amodal_target * (1.0 - visible_target)",
        ["tests/test_train_rules.py::test_soft_edges_of_an_unoccluded_object_are_not_a_hidden_part"],
    ),
    (
        "polygon bounds unchecked",
        "amodal_sam/data/masks.py",
        "if not (-_POLYGON_REACH * width <= min(xs) and max(xs) <= (1 + _POLYGON_REACH) * width):",
        "if False:",
        ["tests/test_annotation_checks.py::test_bad_polygons_name_file_annotation_and_field"],
    ),
    (
        "RLE counts sum unchecked",
        "amodal_sam/data/masks.py",
        "if sum(runs) != height * width:",
        "if sum(runs) > height * width:",
        ["tests/test_annotation_checks.py::test_rle_counts_must_cover_the_image_exactly"],
    ),
    (
        "a diverged loss goes unnoticed",
        "amodal_sam/train.py",
        "_stop_unless_finite(loss, epoch, step, world)",
        "pass",
        ["tests/test_train_rules.py::test_a_diverging_run_stops_with_an_error_and_keeps_the_saved_model"],
    ),
    (
        "diverged weights go unnoticed",
        "amodal_sam/train.py",
        "_stop_unless_finite_weights(model, epoch)",
        "pass",
        ["tests/test_train_rules.py::test_weights_that_turn_non_finite_stop_training_too"],
    ),
    (
        "best epoch always by OIoU",
        "amodal_sam/train.py",
        "score = entry[criterion]",
        'score = entry["val_oiou"]',
        ["tests/test_train_rules.py::test_without_hidden_parts_in_validation_the_best_epoch_is_chosen_by_aiou"],
    ),
    (
        "config booleans coerced",
        "amodal_sam/config.py",
        '"bool": lambda v: isinstance(v, bool),',
        '"bool": lambda v: True,',
        ["tests/test_config.py::test_wrong_types_are_named"],
    ),
    (
        "resume accepts other options",
        "amodal_sam/train.py",
        "if name not in _RESUMABLE_CHANGES and saved.get(name) != value",
        "if False",
        ["tests/test_train_rules.py::test_resume_refuses_other_options_or_another_encoder_and_says_what_it_does"],
    ),
    (
        "cache digest unchecked",
        "amodal_sam/embedding_cache.py",
        'if metadata.get("digest") != state_digest({"embedding": embedding}):',
        "if False:",
        ["tests/test_embedding_cache.py::test_an_entry_whose_data_changed_on_disk_is_rejected"],
    ),
    (
        "empty-visible instances dropped from eval",
        "amodal_sam/evaluate.py",
        "        return _one_per_instance(dataset, predictions)\n    predictions = _prompted",
        "        return predictions\n    predictions = _prompted",
        ["tests/test_eval.py::test_an_instance_without_a_visible_part_gets_an_empty_prediction"],
    ),
    (
        "output paths checked after the compute",
        "amodal_sam/cli.py",
        '        check_device(args.device, "--device")\n    _check_outputs(args)\n',
        '        check_device(args.device, "--device")\n',
        ["tests/test_bad_input_corpus.py::test_output_paths_are_checked_before_any_compute"],
    ),
    (
        "encoder-dtype ignored (eval)",
        "amodal_sam/cli.py",
        "model = create_model(model=args.model, sam_checkpoint=args.sam_checkpoint, encoder_dtype=args.encoder_dtype)\n        cache",
        "model = create_model(model=args.model, sam_checkpoint=args.sam_checkpoint)\n        cache",
        ["tests/test_eval.py::test_eval_reports_the_encoder_precision_it_ran"],
    ),
    (
        "encoder-dtype ignored (loading)",
        "amodal_sam/modeling/amodal_sam.py",
        "return model.accelerate_encoder(dtype=dtype) if dtype else model",
        "return model",
        ["tests/test_cli.py::test_encoder_dtype_runs_the_fast_encoder"],
    ),
    (
        "eval --decoder-batch ignored",
        "amodal_sam/cli.py",
        "decoder_batch=args.decoder_batch,\n    )\n    report",
        "decoder_batch=None,\n    )\n    report",
        ["tests/test_eval.py::test_eval_decoder_batch_is_used_and_reported"],
    ),
    (
        "from_pretrained(sam_checkpoint=) ignored",
        "amodal_sam/modeling/amodal_sam.py",
        "source = sam_checkpoint or config.sam_source",
        "source = config.sam_source",
        ["tests/test_pretrained.py::test_sam_checkpoint_replaces_the_sam_weights_the_config_names"],
    ),
    (
        "config hull_prompt ignored",
        "amodal_sam/modeling/amodal_sam.py",
        "with_hull=self.config.hull_prompt,\n                occluders=",
        "with_hull=True,\n                occluders=",
        ["tests/test_decision.py::test_mask_prompt_levels_and_magnitude_follow_the_config"],
    ),
    (
        "mask_prompt_logit ignored",
        "amodal_sam/modeling/amodal_sam.py",
        "return (levels * self.config.mask_prompt_logit)[:, None]",
        "return (levels * 10.0)[:, None]",
        ["tests/test_decision.py::test_mask_prompt_levels_and_magnitude_follow_the_config"],
    ),
    (
        "box with a visible mask dropped",
        "amodal_sam/predictor.py",
        "return self.model.complete(image, visible_masks=mask, boxes=boxes, points=points, **decide).result(0)",
        "return self.model.complete(image, visible_masks=mask, points=points, **decide).result(0)",
        ["tests/test_decision.py::test_a_box_and_points_given_with_a_visible_mask_reach_the_amodal_decoder"],
    ),
    (
        "points with a visible mask dropped",
        "amodal_sam/predictor.py",
        "return self.model.complete(image, visible_masks=mask, boxes=boxes, points=points, **decide).result(0)",
        "return self.model.complete(image, visible_masks=mask, boxes=boxes, **decide).result(0)",
        ["tests/test_decision.py::test_a_box_and_points_given_with_a_visible_mask_reach_the_amodal_decoder"],
    ),
    (
        "points straight to the amodal decoder dropped",
        "amodal_sam/predictor.py",
        "return self.model.complete(image, boxes=boxes, points=points, **decide).result(0)",
        "return self.model.complete(image, boxes=boxes, **decide).result(0)",
        ["tests/test_decision.py::test_points_and_box_can_go_straight_to_the_amodal_decoder"],
    ),
    (
        "visible loss term removed",
        "amodal_sam/train.py",
        '+ options.visible_loss_weight * terms["visible"]',
        "",
        ["tests/test_train_rules.py::test_total_loss_weighs_every_term_and_takes_the_best_hypothesis"],
    ),
    (
        "occluder loss term removed",
        "amodal_sam/train.py",
        '+ options.occluder_loss_weight * terms["occluder"]',
        "",
        ["tests/test_train_rules.py::test_total_loss_weighs_every_term_and_takes_the_best_hypothesis"],
    ),
    (
        "hidden-part Dice removed",
        "amodal_sam/train.py",
        'per_output = terms["amodal_outputs"] + options.occluded_loss_weight * terms["occluded_outputs"]',
        'per_output = terms["amodal_outputs"]',
        ["tests/test_train_rules.py::test_total_loss_weighs_every_term_and_takes_the_best_hypothesis"],
    ),
    (
        "best epoch replaced by last",
        "amodal_sam/train.py",
        "improved = score > best",
        "improved = True",
        ["tests/test_train_rules.py::test_the_best_epoch_by_validation_oiou_is_the_saved_model"],
    ),
    (
        "constant learning rate",
        "amodal_sam/train.py",
        "LambdaLR(optimizer, _cosine_with_warmup(options.warmup_steps, total_steps))",
        "LambdaLR(optimizer, lambda step: 1.0)",
        ["tests/test_train_rules.py::test_fit_follows_the_schedule"],
    ),
    (
        "prompt augmentation off",
        "amodal_sam/train.py",
        "noisy = _noisy_mask(visible, rng, options.mask_noise_prob)",
        "noisy = visible",
        ["tests/test_train_rules.py::test_prompt_augmentation_changes_the_prompts_only_when_asked"],
    ),
    (
        "cache image-hash check removed",
        "amodal_sam/embedding_cache.py",
        'if metadata.get("image") != key:',
        "if False:",
        ["tests/test_embedding_cache.py::test_an_entry_under_another_images_name_is_rejected"],
    ),
    (
        "reader image-size check removed",
        "amodal_sam/data/readers.py",
        "if record.height is not None and (record.height, record.width) != size:",
        "if False:",
        ["tests/test_readers.py::test_an_image_of_another_size_than_its_annotation_is_an_error"],
    ),
    (
        ".pth {'model': ...} unwrapping removed",
        "amodal_sam/sam_weights.py",
        'state_dict = state_dict["model"]',
        "pass",
        ["tests/test_sam_weights.py::test_a_pth_that_wraps_its_state_dict_in_model_is_unwrapped"],
    ),
    (
        "synth rotation never applied",
        "amodal_sam/data/synth.py",
        "matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), angle, scale)",
        "matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), 0.0, scale)",
        ["tests/test_synth.py::test_targets_are_rotated_within_max_rotation"],
    ),
    (
        "synth scale never applied",
        "amodal_sam/data/synth.py",
        "matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), angle, scale)",
        "matrix = cv2.getRotationMatrix2D((float(xs.mean()), float(ys.mean())), angle, 1.0)",
        ["tests/test_synth.py::test_targets_are_scaled_by_the_scale_range"],
    ),
    (
        "eval box off by one",
        "amodal_sam/evaluate.py",
        "mask_boxes(visible[row][None]) + (0, 0, 1, 1)",
        "mask_boxes(visible[row][None])",
        ["tests/test_eval.py::test_box_prompts_cover_the_visible_masks_far_edges"],
    ),
    (
        "VIoU from the given mask",
        "amodal_sam/evaluate.py",
        "counts = instance_counts(amodal[row], item.amodal[row], item.visible[row], decoder_visible[row])",
        "counts = instance_counts(amodal[row], item.amodal[row], item.visible[row], item.visible[row])",
        ["tests/test_eval.py::test_model_predictions_carry_the_decoders_visible_part"],
    ),
    (
        "occluder gate dropped from the rule",
        "amodal_sam/modeling/completion.py",
        "amodal = visible | (hidden & occluder)",
        "amodal = visible | hidden",
        [
            "tests/test_decision.py::test_amodal_rule_on_hand_made_pixels",
            "tests/test_decision.py::test_result_follows_the_rule_from_the_decoders_own_logits",
        ],
    ),
    (
        "calibration decodes per threshold",
        "amodal_sam/calibration.py",
        "candidates = {d: m.cpu().numpy() for d, m in item.completion.amodal_for(decisions).items()}",
        "candidates = {d: model.complete(model.encode(dataset.load_image(item.record)), visible_masks=item.visible, hidden_threshold=d.threshold).amodal.cpu().numpy() for d in decisions}",
        ["tests/test_calibration.py::test_calibration_decodes_each_image_once_for_every_threshold"],
    ),
    (
        "occluder prompt added where the occluders are unknown",
        "amodal_sam/modeling/occluder_prompt.py",
        "return self.layers(levels) * known.to(levels.dtype)[:, None, None, None]",
        "return self.layers(levels)",
        ["tests/test_decision.py::test_an_untrained_occluder_input_changes_nothing"],
    ),
    (
        "known occluders never reach the decoder as a prompt",
        "amodal_sam/modeling/amodal_sam.py",
        "occluder_levels=None if occluder_levels is None else occluder_levels[rows],",
        "occluder_levels=None,",
        ["tests/test_decision.py::test_known_occluders_enter_the_prompts"],
    ),
    (
        "hull not narrowed to the known occluders",
        "amodal_sam/geometry.py",
        "hulls = (hulls & occluders) | masks",
        "hulls = hulls",
        ["tests/test_decision.py::test_known_occluders_enter_the_prompts"],
    ),
    (
        "training ignores scene_prob",
        "amodal_sam/train.py",
        "rng.random() < options.scene_prob",
        "rng.random() < 0.5",
        ["tests/test_train_rules.py::test_scene_samples_are_given_the_other_objects_visible_masks"],
    ),
    (
        "order rule: the smaller claim wins",
        "amodal_sam/occlusion.py",
        "return (strengths > strengths.T) & (strengths >= floor)",
        "return (strengths < strengths.T) & (strengths.T >= floor.T)",
        ["tests/test_occlusion.py::test_a_over_b_over_c"],
    ),
    (
        "order rule: no noise floor",
        "amodal_sam/occlusion.py",
        "return (strengths > strengths.T) & (strengths >= floor)",
        "return strengths > strengths.T",
        ["tests/test_occlusion.py::test_the_larger_claim_wins_and_noise_makes_no_edge"],
    ),
    (
        "cycle broken at its strongest edge",
        "amodal_sam/occlusion.py",
        "return min(edges, key=lambda edge: weights[edge])",
        "return max(edges, key=lambda edge: weights[edge])",
        ["tests/test_occlusion.py::test_a_cycle_is_broken_at_its_weakest_edge"],
    ),
    (
        "contested pixels go to the larger mask",
        "amodal_sam/occlusion.py",
        "key=lambda k: (-areas[k], -k)",
        "key=lambda k: (areas[k], k)",
        ["tests/test_occlusion.py::test_a_few_pixels_of_overlap_go_to_the_smaller_mask"],
    ),
    (
        "stuff masks hide nothing",
        "amodal_sam/scene.py",
        "everything |= stuff.any(axis=0)",
        "everything |= False",
        ["tests/test_scene.py::test_stuff_hides_objects_but_is_not_completed"],
    ),
    (
        "eval --scene ignored",
        "amodal_sam/cli.py",
        "scene=args.scene,\n        cache=cache,",
        "scene=False,\n        cache=cache,",
        ["tests/test_scene_eval.py::test_eval_scene_flag_reaches_the_predictions"],
    ),
    (
        "hull-occluders baseline is the hull",
        "amodal_sam/evaluate.py",
        "return visible | (convex_hull(visible) & occluders)",
        "return convex_hull(visible)",
        ["tests/test_scene_eval.py::test_hull_occluders_keeps_the_hull_only_under_the_other_objects"],
    ),
    (
        "stuff regions scored",
        "amodal_sam/evaluate.py",
        "if not instance.is_stuff and visible[i].any()",
        "if visible[i].any()",
        ["tests/test_scene_eval.py::test_stuff_hides_objects_but_is_not_scored"],
    ),
    (
        "order accuracy counts a missing edge as right",
        "amodal_sam/metrics.py",
        "correct += bool(predicted[i, j] == truth[i, j] and predicted[j, i] == truth[j, i])",
        "correct += bool(predicted[i, j] == truth[i, j])",
        ["tests/test_scene_eval.py::test_order_metrics_of_the_baselines"],
    ),
    (
        "occluder boundary noise never applied",
        "amodal_sam/train.py",
        "all_visible, instance_index, annotated_occluder, noisy, rng, options.occluder_noise_prob",
        "all_visible, instance_index, annotated_occluder, noisy, rng, 0.0",
        ["tests/test_train_rules.py::test_scene_samples_take_the_moved_occluders_into_the_prompt"],
    ),
    (
        "moved occluders cover the object's own visible mask",
        "amodal_sam/train.py",
        "return others.any(axis=0) & ~own_visible",
        "return others.any(axis=0)",
        ["tests/test_train_rules.py::test_each_known_occluder_moves_its_own_boundary_but_never_over_the_object"],
    ),
    (
        "occluder noise: one move for every mask of the scene",
        "amodal_sam/train.py",
        "others = np.stack([_moved_boundary(mask, rng) for mask in others])",
        "others = _moved_boundary(others.any(axis=0), rng)[None]",
        ["tests/test_train_rules.py::test_each_known_occluder_moves_its_own_boundary_but_never_over_the_object"],
    ),
    (
        "an annotated occluder no instance explains is not known",
        "amodal_sam/train.py",
        "others = np.concatenate([others, (annotated & ~others.any(axis=0))[None]])",
        "others = others",
        [
            "tests/test_train_rules.py::test_each_known_occluder_moves_its_own_boundary_but_never_over_the_object",
            "tests/test_train_rules.py::test_scene_samples_are_given_the_other_objects_visible_masks",
        ],
    ),
    (
        "a moved boundary grows where it should erode",
        "amodal_sam/mask_noise.py",
        "operation = cv2.dilate if grow else cv2.erode",
        "operation = cv2.erode if grow else cv2.dilate",
        ["tests/test_mask_noise.py::test_a_one_pixel_move_peels_or_adds_one_ring"],
    ),
    (
        "the mask-noise benchmark grows masks over their neighbours",
        "benchmarks/mask_noise.py",
        "moved.append(mask | (shifted & ~held) if grow else shifted)",
        "moved.append(shifted)",
        ["tests/test_benchmarks.py::test_moved_visible_masks_open_gaps_or_overrun_into_free_pixels_only"],
    ),
    (
        "the clean-up of a decision (any threshold) ignores the low-res cell",
        "amodal_sam/modeling/completion.py",
        "best_logits, occluder, visible, d, clean, frame.low_res_cell, priors.get(d.plausible_share), hulls",
        "best_logits, occluder, visible, d, clean, 1, priors.get(d.plausible_share), hulls",
        ["tests/test_decision.py::test_a_model_cleans_with_a_gap_of_one_low_res_pixel"],
    ),
    (
        "the clean-up's reach one pixel short of its gap",
        "amodal_sam/modeling/completion.py",
        "np.ones((2 * gap + 1, 2 * gap + 1), np.uint8)",
        "np.ones((2 * gap - 1, 2 * gap - 1), np.uint8)",
        ["tests/test_decision.py::test_clean_completion_attaches_hidden_pieces_across_a_gap_of_up_to_gap_pixels"],
    ),
    (
        "the low-res cell rounded down",
        "amodal_sam/geometry.py",
        "return -(-max(self.original_size) // self.low_res_size)",
        "return max(self.original_size) // self.low_res_size",
        ["tests/test_decision.py::test_image_frame_low_res_cell_is_the_original_pixels_per_low_res_pixel"],
    ),
    (
        "a training sample's visible target taken from its occluder",
        "amodal_sam/train.py",
        "visible_target=targets[1],",
        "visible_target=targets[2],",
        ["tests/test_train_rules.py::test_a_sample_carries_its_own_targets_and_one_to_three_extra_points"],
    ),
    (
        "extra points come two to three at a time",
        "amodal_sam/train.py",
        "size=int(rng.integers(1, 4))",
        "size=int(rng.integers(2, 4))",
        ["tests/test_train_rules.py::test_a_sample_carries_its_own_targets_and_one_to_three_extra_points"],
    ),
    (
        "scene --occluder-band accepted and ignored",
        "amodal_sam/cli.py",
        "scene = predictor.complete_scene(masks, occluder_band=args.occluder_band)",
        "scene = predictor.complete_scene(masks)",
        ["tests/test_scene_cli.py::test_scene_command_passes_the_occluder_band"],
    ),
    (
        "outside the hull, the inside threshold decides",
        "amodal_sam/modeling/completion.py",
        "(~hulls & (best_logits > probability_logit(decision.outside_threshold)))",
        "(~hulls & (best_logits > probability_logit(decision.threshold)))",
        ["tests/test_hull_decision.py::test_inside_and_outside_the_hull_need_their_own_evidence"],
    ),
    (
        "the prior region forgets the hull",
        "amodal_sam/modeling/completion.py",
        "inside = hulls & (prior_logits > probability_logit(decision.threshold))",
        "inside = prior_logits > probability_logit(decision.threshold)",
        [
            "tests/test_hull_decision.py::test_inside_and_outside_the_hull_need_their_own_evidence",
            "tests/test_hull_decision.py::test_a_model_completes_by_its_configs_decision",
        ],
    ),
    (
        "every hypothesis counts as plausible",
        "amodal_sam/modeling/completion.py",
        "plausible = scores >= share * scores.gather(1, best)",
        "plausible = scores >= 0 * scores.gather(1, best)",
        ["tests/test_hull_decision.py::test_plausible_hypotheses_count_inside_the_hull_only"],
    ),
    (
        "a decision at a higher threshold keeps a lower outside threshold",
        "amodal_sam/decision.py",
        "outside_threshold=max(self.outside_threshold, threshold)",
        "outside_threshold=self.outside_threshold",
        ["tests/test_hull_decision.py::test_decision_at_another_threshold_and_its_errors"],
    ),
    (
        "scene mode ignores its own outside threshold",
        "amodal_sam/config.py",
        "outside = self.scene_outside_threshold if scene and self.scene_outside_threshold is not None else None",
        "outside = None",
        ["tests/test_hull_decision.py::test_config_decisions_per_mode_and_old_configs_decide_plainly"],
    ),
    (
        "the attention choice takes the slowest path",
        "amodal_sam/modeling/attention_choice.py",
        "chosen = min(working, key=working.get)",
        "chosen = max(working, key=working.get)",
        ["tests/test_attention_choice.py::test_the_fastest_working_path_is_chosen_remembered_and_reused"],
    ),
    (
        "the attention timing keeps a path that disagrees with the formula",
        "amodal_sam/modeling/attention_choice.py",
        "seconds = _best_seconds(run, device, repeats) if agreement >= MIN_COSINE else None",
        "seconds = _best_seconds(run, device, repeats)",
        ["tests/test_attention_choice.py::test_timing_never_keeps_a_path_that_disagrees_or_fails"],
    ),
    (
        "the remembered attention choice is never read",
        "amodal_sam/modeling/attention_choice.py",
        'if isinstance(remembered, dict) and remembered.get("attention") in ATTENTION:',
        "if False:",
        ["tests/test_attention_choice.py::test_the_fastest_working_path_is_chosen_remembered_and_reused"],
    ),
    (
        "the attention override of the environment is ignored",
        "amodal_sam/modeling/attention_choice.py",
        'if override and override != "auto":',
        "if False:",
        ["tests/test_attention_choice.py::test_an_explicit_path_or_the_environment_wins_without_measuring"],
    ),
    (
        "a corrupted attention choice file is an error",
        "amodal_sam/modeling/attention_choice.py",
        "    except (OSError, ValueError):\n        return {}",
        "    except OSError:\n        return {}",
        ["tests/test_attention_choice.py::test_an_unreadable_choice_file_is_measured_over"],
    ),
    (
        "attention: a path named when loading a saved model is ignored",
        "amodal_sam/model_files.py",
        "model.accelerate_encoder(dtype=dtype, attention=attention) if dtype",
        "model.accelerate_encoder(dtype=dtype) if dtype",
        ["tests/test_calibration.py::test_a_named_attention_path_reaches_the_encoder_from_python_and_the_command_line"],
    ),
    (
        "attention: complete's --attention never leaves the command line",
        "amodal_sam/cli.py",
        'encoder_dtype=args.encoder_dtype,\n        attention=args.attention or "auto",\n    )\n    model.use_onnx_decoder(args.onnx)\n    predictor = AmodalPredictor(model, device=args.device)\n    predictor.set_image(image)\n    if visible',
        "encoder_dtype=args.encoder_dtype,\n    )\n    model.use_onnx_decoder(args.onnx)\n    predictor = AmodalPredictor(model, device=args.device)\n    predictor.set_image(image)\n    if visible",
        ["tests/test_calibration.py::test_a_named_attention_path_reaches_the_encoder_from_python_and_the_command_line"],
    ),
    (
        "beyond: the mirror reflects the column next to the border's",
        "amodal_sam/canvas.py",
        "placed[rows, x0 - columns : x0] |= placed[rows, x0 : x0 + columns][:, ::-1]",
        "placed[rows, x0 - columns : x0] |= placed[rows, x0 + 1 : x0 + columns + 1][:, ::-1]",
        ["tests/test_canvas.py::test_the_mirror_reflects_about_the_left_border_only_where_the_mask_touches_it"],
    ),
    (
        "beyond: the canvas's margins are both the width's share",
        "amodal_sam/canvas.py",
        "x0, y0 = math.floor(beyond * width + 0.5), math.floor(beyond * height + 0.5)",
        "x0, y0 = math.floor(beyond * width + 0.5), math.floor(beyond * width + 0.5)",
        ["tests/test_canvas.py::test_the_canvas_grows_each_side_by_its_share_of_the_image"],
    ),
    (
        "beyond: the canvas completion replaces the in-frame one",
        "amodal_sam/beyond.py",
        "extended[cut] |= canvas.out_of_frame(completion.amodal.cpu().numpy())",
        "extended[cut] = completion.amodal.cpu().numpy()",
        [
            "tests/test_beyond.py::test_a_border_object_is_extended_only_within_its_mirror_prior_and_keeps_its_in_frame_mask"
        ],
    ),
    (
        "beyond: the margins are not the border objects' known occluder",
        "amodal_sam/beyond.py",
        "occluder_masks=outside,",
        "occluder_masks=np.zeros_like(outside),",
        [
            "tests/test_beyond.py::test_a_border_object_is_extended_only_within_its_mirror_prior_and_keeps_its_in_frame_mask"
        ],
    ),
    (
        "beyond: the truth is placed with the canvas's offset the wrong way",
        "amodal_sam/data/truncation.py",
        "top, left = crop_top - y0, crop_left - x0",
        "top, left = crop_top + y0, crop_left + x0",
        ["tests/test_truncation.py::test_a_left_cut_keeps_the_rest_and_puts_the_whole_object_on_the_canvas"],
    ),
    (
        "beyond: a given prior region is ignored by the decision",
        "amodal_sam/modeling/completion.py",
        "    hulls = prior_regions\n",
        "    hulls = None\n",
        ["tests/test_hull_decision.py::test_a_given_prior_region_takes_the_hulls_place"],
    ),
    (
        "model card: a local SAM file becomes the base model",
        "amodal_sam/model_card.py",
        "if sam_source is None or not _HUB_ID.fullmatch(sam_source) or sam_source.endswith(_WEIGHT_SUFFIXES):",
        "if sam_source is None:",
        ["tests/test_model_card.py::test_only_hub_repos_become_the_base_model"],
    ),
    (
        "model card: a random encoder is presented without the warning",
        "amodal_sam/model_card.py",
        "published = config.sam_type in PUBLISHED_SAM_TYPES",
        "published = True",
        ["tests/test_model_card.py::test_save_pretrained_writes_a_card_whose_metadata_parses_back"],
    ),
    (
        "model card: calibration records the first decision's scores, not the chosen one's",
        "amodal_sam/calibration.py",
        "chosen_score = next(s for s in scores if s.decision == chosen)",
        "chosen_score = scores[0]",
        ["tests/test_model_card.py::test_calibrate_records_its_sets_and_the_chosen_scores_in_config_and_card"],
    ),
    (
        "model card: push_to_hub's card does not name the repo",
        "amodal_sam/model_files.py",
        "save_pretrained(model, folder, include_sam=include_sam, repo_id=repo_id)",
        "save_pretrained(model, folder, include_sam=include_sam)",
        ["tests/test_model_card.py::test_push_to_hub_uploads_a_card_that_loads_the_repo"],
    ),
    (
        "model card: training records the first epoch, not the saved one",
        "amodal_sam/train.py",
        "_training_record(train_data, val_data, options, entry)",
        "_training_record(train_data, val_data, options, history[0])",
        ["tests/test_train.py::test_training_lowers_the_loss_and_writes_its_outputs"],
    ),
    (
        "ONNX: the box's corners take each other's labels",
        "amodal_sam/modeling/onnx_decoder.py",
        "BOX_CORNER_LABELS = (2, 3)",
        "BOX_CORNER_LABELS = (3, 2)",
        ["tests/test_onnx.py::test_the_onnx_head_gives_the_pytorch_heads_outputs"],
    ),
    (
        "ONNX: points without a box are not padded",
        "amodal_sam/onnx_export.py",
        "    elif points is not None:\n        coords.append(torch.zeros(count, 1, 2",
        "    elif False:\n        coords.append(torch.zeros(count, 1, 2",
        ["tests/test_onnx.py::test_point_inputs_put_points_then_box_corners_and_pad_points_alone"],
    ),
    (
        "ONNX: a file exported from other weights is run",
        "amodal_sam/onnx_export.py",
        "if recorded != state_digest(model.trainable_state_dict()):",
        "if recorded is None:",
        ["tests/test_onnx.py::test_a_file_from_other_weights_or_no_file_is_refused"],
    ),
    (
        "ONNX: the mask input is always read, even for box and point prompts alone",
        "amodal_sam/modeling/onnx_decoder.py",
        "dense = has_mask * self.prompt_encoder.mask_downscaling(mask_logits) + (1 - has_mask) * no_mask",
        "dense = self.prompt_encoder.mask_downscaling(mask_logits)",
        ["tests/test_onnx.py::test_the_onnx_head_gives_the_pytorch_heads_outputs"],
    ),
    (
        "ONNX: the known occluders never reach the graph",
        "amodal_sam/modeling/amodal_sam.py",
        "occluder_levels=occluder_levels if self.occluder_prompt is not None else None,",
        "occluder_levels=None,",
        ["tests/test_onnx.py::test_the_onnx_head_gives_the_pytorch_heads_outputs"],
    ),
    (
        "web demo: painted strokes are ignored",
        "amodal_sam/app.py",
        "    strokes = painted_mask(painted, shape)\n",
        "    strokes = None\n",
        ["tests/test_app.py::test_the_work_functions_give_the_python_apis_masks"],
    ),
    (
        "web demo: served on every interface by default",
        "amodal_sam/app.py",
        'DEFAULT_HOST = "127.0.0.1"',
        'DEFAULT_HOST = "0.0.0.0"',
        ["tests/test_app.py::test_the_served_page_answers_gradio_client_with_the_python_apis_mask"],
    ),
    (
        "web demo: a painted layer counts its transparent pixels",
        "amodal_sam/app.py",
        "painted |= layer[..., 3] > 0 if",
        "painted |= layer[..., 3] >= 0 if",
        ["tests/test_app.py::test_painted_strokes_are_the_layers_alpha"],
    ),
    (
        "calibration over several sets takes the best set's gain, not the mean",
        "amodal_sam/calibration.py",
        "return sum(s.gain for s in self.sets) / len(self.sets)",
        "return max(s.gain for s in self.sets)",
        [
            "tests/test_calibration.py::test_best_decision_averages_the_gain_over_harmless_decisions_and_breaks_ties_towards_the_rule",
            "tests/test_calibration.py::test_score_decisions_scores_each_set_as_alone",
        ],
    ),
    (
        "calibration ignores harm: a decision below the visible masks on a set can win",
        "amodal_sam/calibration.py",
        "eligible = [s for s in scores if s.harmless] or list(scores)",
        "eligible = list(scores)",
        [
            "tests/test_calibration.py::test_best_decision_averages_the_gain_over_harmless_decisions_and_breaks_ties_towards_the_rule",
            "tests/test_calibration.py::test_a_near_tie_in_gain_goes_to_the_larger_oiou",
        ],
    ),
    (
        "calibration has no near ties: the largest gain alone decides",
        "amodal_sam/calibration.py",
        "return [s for s in eligible if all(a >= b - GAIN_TIE for a, b in zip(s.set_aious, top))]",
        "return [s for s in eligible if all(a >= b for a, b in zip(s.set_aious, top))]",
        ["tests/test_calibration.py::test_a_near_tie_in_gain_goes_to_the_larger_oiou"],
    ),
    (
        "a near tie judged on the mean gain, not on every set",
        "amodal_sam/calibration.py",
        "return [s for s in eligible if all(a >= b - GAIN_TIE for a, b in zip(s.set_aious, top))]",
        "return [s for s in eligible if s.gain >= max(e.gain for e in eligible) - GAIN_TIE]",
        ["tests/test_calibration.py::test_a_near_tie_in_gain_goes_to_the_larger_oiou"],
    ),
    (
        "a near tie goes to the smaller OIoU",
        "amodal_sam/calibration.py",
        "            s.mean_oiou,\n",
        "            -s.mean_oiou,\n",
        ["tests/test_calibration.py::test_a_near_tie_in_gain_goes_to_the_larger_oiou"],
    ),
    (
        "the gain is measured over the visible masks only, never the rule",
        "amodal_sam/calibration.py",
        "return aiou - max(visible_aiou, rule_aiou)",
        "return aiou - visible_aiou",
        [
            "tests/test_calibration.py::test_aiou_gain_is_the_lead_over_the_better_baseline",
            "tests/test_scene_eval.py::test_scene_calibration_measures_the_gain_over_hull_occluders",
        ],
    ),
    (
        "calibration ties go away from the geometric rule",
        "amodal_sam/calibration.py",
        "            s.decision.outside_threshold,\n            -s.decision.threshold,",
        "            -s.decision.outside_threshold,\n            -s.decision.threshold,",
        [
            "tests/test_calibration.py::test_best_decision_averages_the_gain_over_harmless_decisions_and_breaks_ties_towards_the_rule"
        ],
    ),
    (
        "scene calibration saved into the single-object fields",
        "amodal_sam/calibration.py",
        'prefix = "scene_" if scene else ""',
        'prefix = ""',
        ["tests/test_scene_eval.py::test_known_occluders_use_the_scene_threshold"],
    ),
    (
        "the adoption tolerance ignores the instances' spread",
        "benchmarks/adopt.py",
        "return max(floor, 2.0 * float(means.std()))",
        "return floor",
        ["tests/test_adopt.py::test_tolerance_widens_on_small_noisy_sets_and_keeps_its_floor"],
    ),
    (
        "the adoption rule calls any difference inside the tolerance worse",
        "benchmarks/adopt.py",
        "return self.difference < -self.tolerance",
        "return self.difference < 0",
        ["tests/test_adopt.py::test_an_equal_candidate_is_not_adopted_by_noise"],
    ),
    (
        "an equal candidate is adopted",
        "benchmarks/adopt.py",
        "if not any(c.better for c in comparisons) and not fixes:",
        "if False:",
        [
            "tests/test_adopt.py::test_an_equal_candidate_is_not_adopted_by_noise",
            "tests/test_adopt.py::test_the_report_runs_end_to_end_and_keeps_an_equal_model",
        ],
    ),
    (
        "the README example's completion is not checked",
        "benchmarks/adopt.py",
        "incomplete = [mode for mode, iou in candidate_readme.items() if not iou >= README_IOU]",
        "incomplete = []",
        ["tests/test_adopt.py::test_readme_and_real_photo_rules"],
    ),
    (
        "a relative SAM source read against the working folder",
        "amodal_sam/hub.py",
        "beside = Path(model_dir) / source",
        "beside = Path(source)",
        ["tests/test_pretrained.py::test_a_relative_sam_source_is_relative_to_the_model_folder"],
    ),
    (
        "palette void (255) counted as the object",
        "amodal_sam/mask_files.py",
        "return (pixels != 0) & (pixels != VOID_INDEX)",
        "return pixels != 0",
        ["tests/test_mask_files.py::test_palette_void_is_neither_object_nor_an_index"],
    ),
    (
        "a JPEG mask read as any non-zero pixel",
        "amodal_sam/mask_files.py",
        "        return pixels >= HALF",
        "        return pixels > 0",
        ["tests/test_mask_files.py::test_a_jpeg_mask_is_read_at_half_brightness_with_a_warning"],
    ),
    (
        "an RGBA cut-out read by its colours, not its alpha",
        "amodal_sam/mask_files.py",
        "if alpha.min() != alpha.max():",
        "if alpha.min() != alpha.max() and False:",
        ["tests/test_mask_files.py::test_an_rgba_cut_out_is_its_alpha_channel_at_half_opacity"],
    ),
    (
        "hidden files of a masks folder read as masks",
        "amodal_sam/mask_files.py",
        'if p.is_file() and not p.name.startswith(".")',
        "if p.is_file()",
        ["tests/test_mask_files.py::test_a_folder_reads_every_mask_format_skips_hidden_files_and_names_other_files"],
    ),
    (
        "the pixel limit checked against ten times the limit",
        "amodal_sam/pixel_limit.py",
        "    if height * width > limit:",
        "    if height * width > 10 * limit:",
        ["tests/test_mask_files.py::test_the_pixel_limit_follows_the_environment"],
    ),
    (
        "an output folder of someone else's files accepted (and replaced)",
        "amodal_sam/scene_files.py",
        "foreign = sorted(entry.name for entry in out_dir.iterdir() if not _is_scene_output(entry))",
        "foreign = []",
        ["tests/test_scene_outputs.py::test_only_a_scenes_own_files_may_be_in_the_output_folder"],
    ),
    (
        "--out equal to --masks accepted",
        "amodal_sam/scene_files.py",
        "if source == resolved or source.parent == resolved:",
        "if source.parent == resolved:",
        [
            "tests/test_scene_outputs.py::test_outputs_that_would_overwrite_or_join_the_inputs_are_refused_before_loading"
        ],
    ),
    (
        "scene results hold their own copies of the amodal masks",
        "amodal_sam/scene.py",
        "replace(completion.result(row), amodal=amodal[index], visible=visible_masks[index])",
        "replace(completion.result(row), amodal=amodal[index].copy(), visible=visible_masks[index])",
        ["tests/test_scene_scale.py::test_scene_results_are_views_of_the_scene_and_the_occluders_they_were_given"],
    ),
    (
        "a chunk's objects given the first objects' known occluders",
        "amodal_sam/scene.py",
        "occluder_masks=_occluders_of(visible_masks, cover, occluder_band, objects),",
        "occluder_masks=_occluders_of(visible_masks, cover, occluder_band, range(len(objects))),",
        ["tests/test_scene_scale.py::test_chunks_of_one_object_give_the_scene_of_one_pass"],
    ),
    (
        "the input masks copied by the scene check",
        "amodal_sam/scene.py",
        "masks = visible_masks  # checked in place: an (N, H, W) array is not copied",
        "masks = visible_masks.copy()",
        ["tests/test_scene_scale.py::test_scene_results_are_views_of_the_scene_and_the_occluders_they_were_given"],
    ),
    (
        "overlap counts exclude the first set's mask instead of the second's",
        "amodal_sam/mask_overlap.py",
        "both &= ~second_without[j][crop]",
        "both &= ~second_without[i][crop]",
        ["tests/test_scene_scale.py::test_overlaps_without_a_second_mask_match_the_dense_count"],
    ),
    (
        "a result's hypotheses thresholded at probability 0.5 whatever the decision",
        "amodal_sam/modeling/completion.py",
        "return (logits > probability_logit(self.hypothesis_threshold)).numpy()",
        "return (logits > 0).numpy()",
        ["tests/test_scene_scale.py::test_a_results_hypotheses_are_its_logits_at_the_original_size_over_the_threshold"],
    ),
    (
        "the occluder band bounded by a hundred times the image",
        "amodal_sam/scene.py",
        "largest = max(1, int(MAX_BAND_SHARE * max(image_size)))",
        "largest = max(1, int(MAX_BAND_SHARE * max(image_size) * 100))",
        ["tests/test_scene_scale.py::test_the_occluder_band_is_bounded_by_the_image"],
    ),
    (
        "two images with one id accepted",
        "amodal_sam/data/readers.py",
        "        if image_id in records:",
        "        if image_id in records and False:",
        ["tests/test_dataset_identity.py::test_two_images_with_one_id_are_refused"],
    ),
    (
        "a visible mask wholly outside its amodal mask only warned about",
        "amodal_sam/data/readers.py",
        "    if outside > VISIBLE_OUTSIDE_REFUSED:",
        "    if outside > 1:",
        ["tests/test_dataset_identity.py::test_a_visible_mask_mostly_outside_is_refused"],
    ),
    (
        "train reads only its first --data",
        "amodal_sam/cli.py",
        "combine_datasets([load_dataset(data, args.images, include_stuff=True) for data in args.data])",
        "combine_datasets([load_dataset(args.data[0], args.images, include_stuff=True)])",
        ["tests/test_options_reach.py::test_train_options_reach_the_training_options_and_fit"],
    ),
    (
        "train drops --workers on its way to the options",
        "amodal_sam/cli.py",
        "        workers=args.workers,",
        "        workers=0,",
        ["tests/test_options_reach.py::test_train_options_reach_the_training_options_and_fit"],
    ),
    (
        "a mask written as JPEG by complete --out",
        "amodal_sam/output_paths.py",
        'MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")',
        'MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg")',
        [
            "tests/test_scene_outputs.py::test_outputs_that_would_overwrite_or_join_the_inputs_are_refused_before_loading"
        ],
    ),
    (
        "evaluation reads an object by its row among objects, where stuff comes first",
        "amodal_sam/evaluate.py",
        "predictions.append(_prediction(item.record, index, amodal[row], scores[row], counts))",
        "predictions.append(_prediction(item.record, row, amodal[row], scores[row], counts))",
        [
            "tests/test_scene_eval.py::test_evaluation_reads_each_object_by_its_region_where_stuff_and_hidden_ones_come_first"
        ],
    ),
    (
        "a synthetic cut-out loses its box's last row",
        "amodal_sam/data/synth.py",
        "box = (slice(y0, y1 + 1), slice(x0, x1 + 1))",
        "box = (slice(y0, y1), slice(x0, x1 + 1))",
        ["tests/test_crop_edges.py::test_a_cutout_keeps_its_last_row_and_column"],
    ),
    (
        "video memory keeps the corners that land on the occluder",
        "amodal_sam/video_memory.py",
        "keep[keep] = landed[xy[keep, 1], xy[keep, 0]]",
        "keep[keep] = True",
        ["tests/test_video_memory.py::test_corners_carried_off_by_a_moving_occluder_do_not_move_the_object"],
    ),
    (
        "video memory hides remembered pixels where nothing can hide them",
        "amodal_sam/video_memory.py",
        "hidden = carried & ~visible & allowed",
        "hidden = carried & ~visible",
        ["tests/test_video_memory.py::test_nothing_is_hidden_where_nothing_can_hide_it"],
    ),
    (
        "video memory resets on any sliver outside it",
        "amodal_sam/video_memory.py",
        "sizeable = seen >= rule.reset_area * np.count_nonzero(carried)",
        "sizeable = True",
        ["tests/test_video_memory.py::test_a_small_sliver_outside_the_memory_does_not_reset_it"],
    ),
    (
        "video memory keeps a wholly hidden object still (no velocity)",
        "amodal_sam/video_memory.py",
        "velocity = centre_shift(memory.shape, motion)",
        "velocity = IDENTITY",
        [
            "tests/test_video.py::test_a_disc_wholly_behind_a_bar_keeps_its_shape",
        ],
    ),
    (
        "video velocity keeps the fit's translation, not the centre's shift",
        "amodal_sam/video_memory.py",
        "return translation(matrix @ centre - centre[:2])",
        "return translation(matrix[:, 2])",
        ["tests/test_video_memory.py::test_a_rotation_goes_on_as_the_shift_of_the_centre"],
    ),
    (
        "the backward video pass uses the forward motions as they are",
        "amodal_sam/video.py",
        "motion = {i: None if following.get(i) is None else invert(following[i]) for i in ids}",
        "motion = following",
        ["tests/test_video.py::test_bidirectional_fills_the_frames_before_the_object_was_seen"],
    ),
    (
        "bidirectional video keeps only the forward pass",
        "amodal_sam/video.py",
        "hidden = [{i: forward[t][i] | backward[t][i] for i in ids} for t in range(count)]",
        "hidden = forward",
        ["tests/test_video.py::test_bidirectional_fills_the_frames_before_the_object_was_seen"],
    ),
]


def caught(name: str, path: str, old: str, new: str, tests: list[str], work: Path) -> bool:
    """Apply one bug to a fresh copy in ``work``; True when its tests fail (any exit but 0, 4
    (usage) and 5 (no tests))."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(ROOT, work, ignore=shutil.ignore_patterns(".venv", "mutants", ".git", "__pycache__"))
    target = work / path
    text = target.read_text()
    if text.count(old) != 1:
        print(f"STALE   {name}: the text to replace is found {text.count(old)} times in {path}")
        return False
    target.write_text(text.replace(old, new))
    env = dict(os.environ, PYTHONPATH=str(work), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
    failed = done.returncode not in (0, 4, 5)  # 1: tests failed; a crash (e.g. a segfault) fails them too
    print(f"{'caught ' if failed else 'MISSED '} {name}: {', '.join(t.split('::')[1] for t in tests)}")
    return failed


def main() -> int:
    chosen = [bug for bug in BUGS if not sys.argv[1:] or any(word in bug[0] for word in sys.argv[1:])]
    with tempfile.TemporaryDirectory() as folder:
        missed = sum(not caught(*bug, work=Path(folder) / "project") for bug in chosen)
    print(f"{len(chosen) - missed} of {len(chosen)} seeded bugs caught")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
