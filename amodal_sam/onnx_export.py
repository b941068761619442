"""The amodal decoder as an ONNX file: exporting it, and running it through onnxruntime.

:func:`export_onnx` writes :class:`~amodal_sam.modeling.onnx_decoder.OnnxAmodalDecoder` (inputs
and outputs in its docstring and the README) with a dynamic number of prompts and points, and
records in the file's metadata the digest of the head's weights it holds. :class:`OnnxDecoder`
runs such a file where :meth:`AmodalSAM.decode` would run the PyTorch head
(:meth:`AmodalSAM.use_onnx_decoder`), so prediction, scenes and video work unchanged with the
decision kept on the CPU outside the graph. Needs the ``onnx`` extra
(``pip install "amodal-sam[onnx]"``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from amodal_sam.atomic import atomic_output
from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput
from amodal_sam.modeling.onnx_decoder import BOX_CORNER_LABELS, PADDING_LABEL, OnnxAmodalDecoder
from amodal_sam.sam_weights import state_digest

DEFAULT_OPSET = 17
DIGEST_KEY = "amodal_sam.head_sha256"
_EXAMPLE_PROMPTS, _EXAMPLE_POINTS = 2, 3
_PER_IMAGE_INPUTS = ("image_embeddings", "detail_features", "has_mask_input")


def _missing_extra(error: ImportError) -> ImportError:
    return ImportError(f'ONNX needs the onnx extra: pip install "amodal-sam[onnx]" ({error})')


def point_inputs(
    boxes: torch.Tensor | None, points: tuple[torch.Tensor, torch.Tensor] | None, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The graph's ``point_coords`` (N, P, 2) and ``point_labels`` (N, P) for N prompts from the
    decoder's boxes (N, 4) and points ((N, P, 2), (N, P)) in the input frame: the points first,
    then each box's two corners (labels 2, 3); points without a box get a padding point (label
    -1), as the prompt encoder pads them. Neither is an error."""
    coords, labels = [], []
    if points is not None:
        coords.append(points[0].float())
        labels.append(points[1].float())
    if boxes is not None:
        coords.append(boxes.float().reshape(-1, 2, 2))
        labels.append(torch.tensor(BOX_CORNER_LABELS, dtype=torch.float32, device=boxes.device).expand(len(boxes), 2))
    elif points is not None:
        coords.append(torch.zeros(count, 1, 2, device=points[0].device))
        labels.append(torch.full((count, 1), float(PADDING_LABEL), device=points[0].device))
    else:
        raise ValueError("the ONNX decoder needs boxes or points for each prompt")
    return torch.cat(coords, dim=1), torch.cat(labels, dim=1)


def example_inputs(decoder: OnnxAmodalDecoder) -> dict[str, torch.Tensor]:
    """Inputs of the right shapes and kinds for tracing ``decoder`` (2 prompts, 3 points)."""
    spec = decoder.spec
    side = spec.image_size // spec.patch_size
    low_res = 4 * side
    n, p = _EXAMPLE_PROMPTS, _EXAMPLE_POINTS
    generator = torch.Generator().manual_seed(0)
    inputs = {"image_embeddings": torch.randn(1, spec.prompt_embed_dim, side, side, generator=generator)}
    if decoder.has_detail:
        inputs["detail_features"] = torch.randn(1, low_res, low_res, spec.prompt_embed_dim // 8, generator=generator)
    inputs["mask_logits"] = torch.randn(n, 1, low_res, low_res, generator=generator)
    inputs["has_mask_input"] = torch.ones(1)
    inputs["point_coords"] = torch.rand(n, p, 2, generator=generator) * spec.image_size
    inputs["point_labels"] = torch.tensor([[1.0, *BOX_CORNER_LABELS]]).expand(n, p).contiguous()
    if decoder.occluder_prompt is not None:
        inputs["occluder_levels"] = torch.randn(n, 1, low_res, low_res, generator=generator)
        inputs["occluders_known"] = torch.ones(n)
    if decoder.memory_prompt is not None:
        inputs["memory_levels"] = torch.randn(n, 1, low_res, low_res, generator=generator)
        inputs["memory_known"] = torch.ones(n)
    return inputs


def export_onnx(model, path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model``'s amodal head (an :class:`AmodalSAM`) to ``path`` as ONNX (opset
    ``opset``), checked by ``onnx.checker``; written to a temporary name and renamed. Returns the
    path."""
    try:
        import onnx
    except ImportError as error:
        raise _missing_extra(error) from error
    if not isinstance(opset, int) or opset < DEFAULT_OPSET:
        raise ValueError(f"opset must be an integer >= {DEFAULT_OPSET}; got {opset!r}")
    decoder = OnnxAmodalDecoder(model).cpu().eval()
    inputs = example_inputs(decoder)
    dynamic = {name: {0: "prompts"} for name in inputs if name not in _PER_IMAGE_INPUTS}
    dynamic["point_coords"] = dynamic["point_labels"] = {0: "prompts", 1: "points"}
    dynamic.update({name: {0: "prompts"} for name in decoder.output_names})
    path = Path(path)
    with atomic_output(path) as temporary, warnings.catch_warnings():
        # segment-anything's decoder export uses the TorchScript exporter too; the torch.export one
        # cannot yet take the decoder's variable prompt count from these inputs
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with torch.no_grad():
            torch.onnx.export(
                decoder,
                tuple(inputs.values()),
                str(temporary),
                input_names=list(inputs),
                output_names=list(decoder.output_names),
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )
        graph = onnx.load(str(temporary))
        onnx.checker.check_model(graph)
        onnx.helper.set_model_props(graph, {DIGEST_KEY: state_digest(model.trainable_state_dict())})
        onnx.save(graph, str(temporary))
    return path


class OnnxDecoder:
    """An exported amodal head run by onnxruntime on the CPU, called as :meth:`AmodalSAM.decode`
    is for one image. ``model``: the :class:`AmodalSAM` it was exported from; a file exported from
    other weights, or with other inputs, is refused (ValueError naming the file)."""

    def __init__(self, path: str | Path, model) -> None:
        try:
            import onnxruntime
        except ImportError as error:
            raise _missing_extra(error) from error
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX decoder (--onnx) {str(path)!r} does not exist")
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types for unreadable files
            raise ValueError(f"ONNX decoder {str(path)!r} cannot be read by onnxruntime: {error}") from error
        expected = OnnxAmodalDecoder(model).input_names
        found = [i.name for i in self.session.get_inputs()]
        if found != expected:
            raise ValueError(f"ONNX decoder {str(path)!r} takes inputs {found}; this model's head takes {expected}")
        recorded = self.session.get_modelmeta().custom_metadata_map.get(DIGEST_KEY)
        if recorded != state_digest(model.trainable_state_dict()):
            raise ValueError(
                f"ONNX decoder {str(path)!r} was exported from other weights than this model's "
                "(export it again: amodal-sam export-onnx --model DIR --out FILE)"
            )
        self.path = path

    def __call__(
        self,
        image_embeddings: torch.Tensor,
        *,
        mask_logits: torch.Tensor | None,
        boxes: torch.Tensor | None,
        points: tuple[torch.Tensor, torch.Tensor] | None,
        detail_features: torch.Tensor | None,
        occluder_levels: torch.Tensor | None,
        occluders_known: torch.Tensor | None,
        memory_levels: torch.Tensor | None,
        memory_known: torch.Tensor | None,
        count: int,
        low_res_size: int,
    ) -> AmodalDecoderOutput:
        """:meth:`AmodalSAM.decode`'s arguments for ``count`` prompts of one image -> its outputs,
        on the device of ``image_embeddings``."""
        device = image_embeddings.device
        coords, labels = point_inputs(boxes, points, count)
        has_mask = mask_logits is not None
        if mask_logits is None:
            mask_logits = torch.zeros(count, 1, low_res_size, low_res_size)
        feed = {
            "image_embeddings": image_embeddings,
            "detail_features": detail_features,
            "mask_logits": mask_logits,
            "has_mask_input": torch.tensor([float(has_mask)]),
            "point_coords": coords,
            "point_labels": labels,
        }
        names = [i.name for i in self.session.get_inputs()]
        for levels_name, known_name, levels, known in (
            ("occluder_levels", "occluders_known", occluder_levels, occluders_known),
            ("memory_levels", "memory_known", memory_levels, memory_known),
        ):
            if levels_name in names:
                given = levels is not None
                feed[levels_name] = levels if given else torch.zeros(count, 1, low_res_size, low_res_size)
                feed[known_name] = known if known is not None else torch.full((count,), float(given))
        arrays = {name: np.ascontiguousarray(feed[name].detach().float().cpu().numpy()) for name in names}
        amodal, iou, visible, occluder = (torch.from_numpy(o).to(device) for o in self.session.run(None, arrays))
        return AmodalDecoderOutput(
            amodal_logits=amodal, amodal_iou=iou, visible_logits=visible, occluder_logits=occluder
        )
