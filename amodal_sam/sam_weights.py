"""SAM checkpoint formats: segment-anything ``.pth`` files and transformers-layout safetensors.

segment-anything names its tensors after its modules (``image_encoder.blocks.0.norm1.weight``);
transformers' ``SamModel`` (the Hub's ``facebook/sam-vit-*``) renames them
(``vision_encoder.layers.0.layer_norm1.weight``). :func:`transformers_to_sam` and
:func:`sam_to_transformers` map one layout onto the other, tensor for tensor.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

StateDict = dict[str, torch.Tensor]

# Key prefixes, segment-anything -> transformers; "{}" stands for an index. The first rule whose
# prefix matches renames the key; keys no rule matches are named alike in both layouts.
_PREFIX_RULES: list[tuple[str, str]] = [
    ("image_encoder.blocks.{}.norm{}.", "vision_encoder.layers.{}.layer_norm{}."),
    ("image_encoder.blocks.{}.", "vision_encoder.layers.{}."),
    ("image_encoder.patch_embed.proj.", "vision_encoder.patch_embed.projection."),
    ("image_encoder.neck.0.", "vision_encoder.neck.conv1."),
    ("image_encoder.neck.1.", "vision_encoder.neck.layer_norm1."),
    ("image_encoder.neck.2.", "vision_encoder.neck.conv2."),
    ("image_encoder.neck.3.", "vision_encoder.neck.layer_norm2."),
    ("image_encoder.", "vision_encoder."),
    ("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix", "shared_image_embedding.positional_embedding"),
    ("prompt_encoder.point_embeddings.{}.", "prompt_encoder.point_embed.{}."),
    ("prompt_encoder.mask_downscaling.0.", "prompt_encoder.mask_embed.conv1."),
    ("prompt_encoder.mask_downscaling.1.", "prompt_encoder.mask_embed.layer_norm1."),
    ("prompt_encoder.mask_downscaling.3.", "prompt_encoder.mask_embed.conv2."),
    ("prompt_encoder.mask_downscaling.4.", "prompt_encoder.mask_embed.layer_norm2."),
    ("prompt_encoder.mask_downscaling.6.", "prompt_encoder.mask_embed.conv3."),
    ("mask_decoder.transformer.layers.{}.norm{}.", "mask_decoder.transformer.layers.{}.layer_norm{}."),
    ("mask_decoder.transformer.norm_final_attn.", "mask_decoder.transformer.layer_norm_final_attn."),
    ("mask_decoder.output_upscaling.0.", "mask_decoder.upscale_conv1."),
    ("mask_decoder.output_upscaling.1.", "mask_decoder.upscale_layer_norm."),
    ("mask_decoder.output_upscaling.3.", "mask_decoder.upscale_conv2."),
]
# Decoder MLPs (IoU head, hypernetworks) of depth D: segment-anything's layers.0 .. layers.D-1
# are transformers' proj_in, layers.0 .. layers.D-3, proj_out.
_MLP_PREFIX = r"^(mask_decoder\.(?:iou_prediction_head|output_hypernetworks_mlps\.\d+))"
_SAM_MLP = re.compile(_MLP_PREFIX + r"\.layers\.(\d+)\.(.+)$")
_HF_MLP = re.compile(_MLP_PREFIX + r"\.(proj_in|proj_out|layers\.\d+)\.(.+)$")
# transformers ties this name to shared_image_embedding.positional_embedding; a file holds one of them.
_HF_TIED_ALIAS = "prompt_encoder.shared_embedding.positional_embedding"
_HF_SHARED_EMBEDDING = "shared_image_embedding.positional_embedding"


def _template_regex(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{\}", r"(\d+)"))


def _fill(template: str, groups: tuple[str, ...]) -> str:
    return template.replace("{}", "%s") % groups if groups else template


_SAM_TO_HF = [(_template_regex(sam), hf) for sam, hf in _PREFIX_RULES]
_HF_TO_SAM = [(_template_regex(hf), sam) for sam, hf in _PREFIX_RULES]


def _rename_prefix(key: str, rules: list[tuple[re.Pattern, str]]) -> str:
    for pattern, replacement in rules:
        match = pattern.match(key)
        if match:
            return _fill(replacement, match.groups()) + key[match.end() :]
    return key


def _mlp_depths(keys, sam_layout: bool) -> dict[str, int]:
    """Depth of every decoder MLP found in ``keys``, by its prefix."""
    depths: dict[str, int] = {}
    for key in keys:
        match = (_SAM_MLP if sam_layout else _HF_MLP).match(key)
        if not match:
            continue
        layer = match.group(2)
        if sam_layout:
            count = int(layer) + 1
        else:
            count = 1 if layer == "proj_in" else 2 if layer == "proj_out" else int(layer.split(".")[1]) + 3
        depths[match.group(1)] = max(depths.get(match.group(1), 0), count)
    return depths


def sam_to_transformers(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename a segment-anything ``Sam`` state dict to transformers' ``SamModel`` layout."""
    depths = _mlp_depths(state_dict, sam_layout=True)
    converted: StateDict = {}
    for key, tensor in state_dict.items():
        match = _SAM_MLP.match(key)
        if match:
            prefix, index, rest = match.group(1), int(match.group(2)), match.group(3)
            last = depths[prefix] - 1
            layer = "proj_in" if index == 0 else "proj_out" if index == last else f"layers.{index - 1}"
            converted[f"{prefix}.{layer}.{rest}"] = tensor
        else:
            converted[_rename_prefix(key, _SAM_TO_HF)] = tensor
    return converted


def transformers_to_sam(state_dict: Mapping[str, torch.Tensor]) -> StateDict:
    """Rename a transformers ``SamModel`` state dict to segment-anything's ``Sam`` layout."""
    depths = _mlp_depths(state_dict, sam_layout=False)
    converted: StateDict = {}
    for key, tensor in state_dict.items():
        if key == _HF_TIED_ALIAS:
            if _HF_SHARED_EMBEDDING in state_dict:
                continue
            key = _HF_SHARED_EMBEDDING
        match = _HF_MLP.match(key)
        if match:
            prefix, layer, rest = match.groups()
            if layer == "proj_in":
                index = 0
            elif layer == "proj_out":
                index = depths[prefix] - 1
            else:
                index = int(layer.split(".")[1]) + 1
            converted[f"{prefix}.layers.{index}.{rest}"] = tensor
        else:
            converted[_rename_prefix(key, _HF_TO_SAM)] = tensor
    return converted


def is_transformers_layout(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True when the keys follow transformers' ``SamModel`` names rather than segment-anything's."""
    return any(key.startswith("vision_encoder.") for key in state_dict)


def state_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors (in name order):
    stored in the metadata of saved weights, so that changed bytes are found on loading."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def non_finite_tensors(state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state_dict`` holding a NaN or an infinity."""
    return [
        key for key, tensor in state_dict.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]


def read_safetensors(path: str | Path, what: str) -> StateDict:
    """The tensors of a ``.safetensors`` file on the CPU; a truncated or corrupt file, or one
    whose tensors no longer match the ``digest`` in its metadata (:func:`state_digest`, written
    by ``save_pretrained``), is a ValueError naming ``what`` and the path."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            stored = (handle.metadata() or {}).get("digest")
        state_dict = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise ValueError(
            f"{what} {str(path)!r} is not a readable safetensors file ({error}); is it truncated?"
        ) from None
    if stored is not None and stored != state_digest(state_dict):
        raise ValueError(f"{what} {str(path)!r} changed since it was saved: its tensors do not match the stored digest")
    return state_dict


def read_sam_checkpoint(path: str | Path) -> StateDict:
    """Read a SAM checkpoint file into segment-anything's key layout.

    Arguments:
        path: a segment-anything ``.pth`` (read with ``weights_only=True`` onto the CPU), or a
            ``.safetensors`` / ``.bin`` file in either layout.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SAM checkpoint {str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        state_dict = read_safetensors(path, "SAM checkpoint")
    else:
        try:
            state_dict = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for a file that is no checkpoint
            raise ValueError(f"SAM checkpoint {str(path)!r} could not be read as a PyTorch file: {error}") from error
        if isinstance(state_dict, dict) and isinstance(state_dict.get("model"), dict):
            state_dict = state_dict["model"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"SAM checkpoint {str(path)!r} does not hold a state dict of tensors")
    return transformers_to_sam(state_dict) if is_transformers_layout(state_dict) else dict(state_dict)


def first_names(names: list[str], shown: int = 10) -> str:
    """The first ``shown`` of ``names`` as a list, and how many more there are (for an error
    message: ``"['a', 'b'] and 3 more"``)."""
    return f"{names[:shown]}" + (f" and {len(names) - shown} more" if len(names) > shown else "")


def load_state_dict_strict(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    """Load ``state_dict`` into ``module``, or raise a ``ValueError`` (``module`` unchanged) that
    names its missing, unexpected, mis-shaped and non-finite tensors, the first ten of each kind
    and how many more (``what`` says which weights these are)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = [
        f"{key}: file {tuple(state_dict[key].shape)}, model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    nonfinite = non_finite_tensors(state_dict)
    problems = [
        f"{kind} {first_names(names)}"
        for kind, names in (
            ("missing tensors", missing),
            ("unexpected tensors", unexpected),
            ("mis-shaped tensors", misshaped),
            ("non-finite values (NaN or infinity: a corrupt file?) in", nonfinite),
        )
        if names
    ]
    if problems:
        raise ValueError(f"{what} do not fit the model: " + ", ".join(problems))
    module.load_state_dict(state_dict, strict=True)
