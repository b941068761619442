"""config.json is read strictly: JSON types as documented, a missing field is the dataclass
default, and every bad value is an error naming the field (and the file, when loading)."""

import dataclasses
import json
import math

import pytest

from amodal_sam import AmodalSAM
from amodal_sam.config import AmodalConfig, SamSpec, sam_spec_for


def _config_dict(**changes):
    values = AmodalConfig.current("tiny", sam_spec_for("tiny"), "sam.safetensors").to_dict()
    values.update(changes)
    return values


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("hull_prompt", "false", r"field 'hull_prompt' must be a JSON boolean \(true / false\); got 'false'"),
        ("detail_branch", 1, "field 'detail_branch' must be a JSON boolean"),
        ("occluder_prompt", None, "field 'occluder_prompt' must be a JSON boolean"),
        ("hidden_threshold", math.nan, r"hidden_threshold must be a probability in \(0, 1\); got nan"),
        ("hidden_threshold", "0.5", "hidden_threshold must be a probability"),
        ("scene_hidden_threshold", 1.0, "scene_hidden_threshold must be a probability"),
        ("mask_prompt_logit", math.inf, "field 'mask_prompt_logit' must be a positive number; got inf"),
        ("mask_prompt_logit", True, "field 'mask_prompt_logit' must be a positive number"),
        ("sam_type", 3, "field 'sam_type' must be a string"),
        ("sam_source", ["a"], "field 'sam_source' must be a string or null"),
        ("extra", [], "field 'extra' must be a JSON object"),
        ("colour", "red", r"unknown fields \['colour'\]"),
    ],
)
def test_wrong_types_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        AmodalConfig.from_dict(_config_dict(**{field: value}))


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("pixel_std", [58.0, 0.0, 57.0], "field 'sam_spec.pixel_std' must be a positive number; got 0.0"),
        ("pixel_mean", [1.0, math.nan, 2.0], "field 'sam_spec.pixel_mean' must be a finite number; got nan"),
        ("pixel_mean", [1.0, 2.0], r"must hold 3 numbers \(R, G, B\)"),
        ("patch_size", 0, "field 'sam_spec.patch_size' must be a positive int; got 0"),
        ("encoder_depth", 2.0, "field 'sam_spec.encoder_depth' must be a positive int"),
        ("encoder_global_attn_indexes", [5], r"block indices in \[0, 2\); got \[5\]"),
        ("image_size", 250, r"image_size' \(250\) must be a multiple of patch_size \(16\)"),
    ],
)
def test_bad_sam_specs_are_named(field, value, message):
    spec = sam_spec_for("tiny").to_dict()
    spec[field] = value
    with pytest.raises(ValueError, match=message):
        AmodalConfig.from_dict(_config_dict(sam_spec=spec))


def test_a_missing_field_is_the_dataclass_default():
    defaults = {f.name: f.default for f in dataclasses.fields(AmodalConfig) if f.default is not dataclasses.MISSING}
    assert defaults["hull_prompt"] is False and defaults["detail_branch"] is False  # documented: old = off
    minimal = {k: v for k, v in _config_dict().items() if k in ("format_version", "model_type", "sam_type", "sam_spec")}
    loaded = AmodalConfig.from_dict(minimal)
    for name, default in defaults.items():
        assert getattr(loaded, name) == default, name
    assert loaded.extra == {}
    current = AmodalConfig.current("tiny", sam_spec_for("tiny"))
    assert current.hull_prompt and current.detail_branch and current.occluder_prompt and current.clean_masks
    assert AmodalConfig.from_dict(current.to_dict()) == current
    with pytest.raises(ValueError, match="config.json has no 'sam_spec'"):
        AmodalConfig.from_dict({k: v for k, v in minimal.items() if k != "sam_spec"})
    with pytest.raises(ValueError, match=r"sam_spec lacks the fields \['encoder_depth'\]"):
        spec = {k: v for k, v in sam_spec_for("tiny").to_dict().items() if k != "encoder_depth"}
        SamSpec.from_dict(spec)


def test_a_config_file_that_is_not_an_object_is_named(tmp_path):
    AmodalSAM.random("tiny").save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps([1, 2]))
    with pytest.raises(
        ValueError,
        match=r"config.json' is not a valid amodal_sam config: config.json must hold a JSON object; got list",
    ):
        AmodalSAM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(_config_dict(hull_prompt="false")))
    with pytest.raises(ValueError, match=r"config.json' is not a valid amodal_sam config: field 'hull_prompt'"):
        AmodalSAM.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        AmodalSAM.from_pretrained(tmp_path)
