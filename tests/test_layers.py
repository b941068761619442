"""The package is one-way: each module imports only from its own layer or the layers below."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "amodal_sam"

# Lowest first. A module may import from its own layer and from any layer listed before it.
LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {
            "atomic",
            "output_paths",
            "decision",
            "config",
            "device",
            "distributed",
            "validation",
            "pixel_limit",
            "packed_mask",
            "image_io",
            "mask_files",
            "geometry",
            "canvas",
            "metrics",
            "report",
            "visualize",
            "occlusion",
            "mask_overlap",
            "mask_noise",
            "video_memory",
            "video_files",
        },
    ),
    (
        "data",
        {
            "data",
            "data.masks",
            "data.memory_prior",
            "data.readers",
            "data.objects",
            "data.synth",
            "data.shapes",
            "data.synth_video",
            "data.truncation",
        },
    ),
    (
        "model",
        {
            "hub",
            "sam_weights",
            "modeling",
            "modeling.sam_builder",
            "modeling.channels_last",
            "modeling.upscaling",
            "modeling.detail_encoder",
            "modeling.extra_mask_prompt",
            "modeling.prompts",
            "modeling.amodal_decoder",
            "modeling.encoded_image",
            "modeling.completion",
            "modeling.fast_encoder",
            "modeling.attention_choice",
            "modeling.decoder_precision",
            "modeling.amodal_sam",
            "modeling.onnx_decoder",
            "model_card",
            "model_files",
            "onnx_export",
        },
    ),
    ("inference", {"embedding_cache", "defaults", "factory", "scene", "beyond", "predictor", "video"}),
    (
        "workflows",
        {
            "evaluate",
            "calibration",
            "train",
            "encoder_training",
            "scene_files",
            "video_job",
            "evaluate_video",
            "evaluate_beyond",
            "weight_average",
        },
    ),
    ("interface", {"cli", "app", "__init__"}),
]
LAYER_OF = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every amodal_sam module ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("amodal_sam"):
            found.add(node.module.removeprefix("amodal_sam").lstrip(".") or "__init__")
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("amodal_sam.") for a in node.names if a.name.startswith("amodal_sam.")}
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    names = {_module_name(path) for path in MODULES}
    assert names - set(LAYER_OF) == set(), "add new modules to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_upward(path):
    own = LAYER_OF[_module_name(path)]
    upward = {name for name in _imports(path) if LAYER_OF[name] > own}
    assert upward == set(), f"{_module_name(path)} ({LAYERS[own][0]}) imports from a higher layer: {upward}"
