"""The amodal head as a tensors-only module, the part of :class:`AmodalSAM` an ONNX graph holds.

Segment-anything exports its prompt decoder the same way (``utils/onnx.py``): the image
embedding is computed once per image and given as an input; every prompt of one image is one
row of the inputs; the box enters as two points with labels 2 and 3, and a padding point
(label -1) stands for "no point". The decision (thresholds, hull, clean-up) stays outside the
graph, in :meth:`AmodalSAM._decide` on the CPU.

Inputs, for N prompts of one image (frames: the model's input frame for coordinates, its
low-res frame of side ``L`` for masks; see :class:`amodal_sam.geometry.ImageFrame`):

- ``image_embeddings`` (1, C, h, w) float32: the frozen encoder's output.
- ``detail_features`` (1, L, L, C/8) float32: :meth:`AmodalSAM.detail_features` (only a model
  with a detail branch has this input).
- ``mask_logits`` (N, 1, L, L) float32: the visible-mask prompt (:meth:`AmodalSAM.mask_prompt`).
- ``has_mask_input`` (1,) float32: 1 when ``mask_logits`` holds prompts, 0 for box / point
  prompts alone (the mask input is then ignored).
- ``point_coords`` (N, P, 2) float32: (x, y) in input-frame pixels; a box is its two corners.
- ``point_labels`` (N, P) float32: 1 object, 0 background, 2 / 3 a box's top-left /
  bottom-right corner, -1 padding.
- ``occluder_levels`` (N, 1, L, L) float32 and ``occluders_known`` (N,) float32 (1 known, 0
  not): the known occluders (only a model with ``config.occluder_prompt``).
- ``memory_levels`` (N, 1, L, L) float32 and ``memory_known`` (N,) float32 (1 given, 0 not): the
  shape memory (only a model with ``config.memory_prompt``).

Outputs: ``amodal_logits`` (N, 4, L, L), ``amodal_iou`` (N, 4), ``visible_logits`` (N, 1, L, L),
``occluder_logits`` (N, 1, L, L), as :class:`AmodalDecoderOutput` holds them.
"""

from __future__ import annotations

import torch
from torch import nn

from amodal_sam.modeling.amodal_decoder import MaskToken
from amodal_sam.modeling.amodal_sam import AmodalSAM

# Point labels of the graph's sparse input (segment-anything's ONNX convention).
PADDING_LABEL = -1
BOX_CORNER_LABELS = (2, 3)


class OnnxAmodalDecoder(nn.Module):
    """``model``'s amodal prompt encoder, occluder and memory prompts and decoder over tensors
    alone (see the module's docstring for the inputs and outputs). Holds the model's modules, not
    copies."""

    def __init__(self, model: AmodalSAM) -> None:
        super().__init__()
        self.prompt_encoder = model.prompt_encoder
        self.occluder_prompt = model.occluder_prompt
        self.memory_prompt = model.memory_prompt
        self.decoder = model.decoder
        self.has_detail = model.decoder.has_detail
        self.spec = model.spec
        self.input_size = (model.spec.image_size, model.spec.image_size)

    @property
    def input_names(self) -> list[str]:
        """The graph's inputs, in :meth:`forward`'s order."""
        names = ["image_embeddings"]
        names += ["detail_features"] if self.has_detail else []
        names += ["mask_logits", "has_mask_input", "point_coords", "point_labels"]
        names += ["occluder_levels", "occluders_known"] if self.occluder_prompt is not None else []
        names += ["memory_levels", "memory_known"] if self.memory_prompt is not None else []
        return names

    output_names = ("amodal_logits", "amodal_iou", "visible_logits", "occluder_logits")

    def _embed_points(self, coords: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(N, P, 2) input-frame points and (N, P) labels -> (N, P, C) sparse embeddings, as the
        prompt encoder embeds points (labels 0 / 1), box corners (2 / 3) and padding (-1)."""
        encoder = self.prompt_encoder
        embedding = encoder.pe_layer.forward_with_coords(coords + 0.5, self.input_size)
        labels = labels[..., None]
        padding = (labels == PADDING_LABEL).to(embedding.dtype)
        embedding = embedding * (1 - padding) + encoder.not_a_point_embed.weight * padding
        for label, learned in enumerate(encoder.point_embeddings):
            embedding = embedding + learned.weight * (labels == label).to(embedding.dtype)
        return embedding

    def forward(self, image_embeddings: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        named = dict(zip(self.input_names[1:], inputs, strict=True))
        mask_logits, has_mask = named["mask_logits"], named["has_mask_input"]
        sparse = self._embed_points(named["point_coords"], named["point_labels"])
        no_mask = self.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        dense = has_mask * self.prompt_encoder.mask_downscaling(mask_logits) + (1 - has_mask) * no_mask
        if self.occluder_prompt is not None:
            dense = dense + self.occluder_prompt(named["occluder_levels"], named["occluders_known"])
        if self.memory_prompt is not None:
            dense = dense + self.memory_prompt(named["memory_levels"], named["memory_known"])
        masks, iou = self.decoder.predict_masks(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, named.get("detail_features")
        )
        visible, occluder = MaskToken.VISIBLE, MaskToken.OCCLUDER
        return masks[:, :visible], iou[:, :visible], masks[:, visible : visible + 1], masks[:, occluder : occluder + 1]
