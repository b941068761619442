"""AmodalSAM: a frozen segment-anything model plus a trainable amodal prompt encoder and decoder."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import torch
from segment_anything.modeling import Sam
from torch import nn

from amodal_sam.config import HUB_SAM_TYPES, AmodalConfig, SamSpec, sam_spec_for
from amodal_sam.decision import Decision
from amodal_sam.device import default_decoder_batch
from amodal_sam.geometry import ImageFrame, mask_boxes
from amodal_sam.hub import resolve_sam_checkpoint
from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput, AmodalMaskDecoder
from amodal_sam.modeling.attention_choice import choose_attention, emulated_precision_warning
from amodal_sam.modeling.channels_last import output_channels_last
from amodal_sam.modeling.completion import Completion, decide_amodal, probability_logit
from amodal_sam.modeling.decoder_precision import choose_decoder_dtype
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.modeling.extra_mask_prompt import ExtraMaskPromptEncoder
from amodal_sam.modeling.fast_encoder import DTYPES, check_dtype, encode, make_fast
from amodal_sam.modeling.prompts import (
    DecoderPrompts,
    dense_prompt_levels,
    known_occluder_levels,
    shape_memory_levels,
)
from amodal_sam.modeling.sam_builder import build_prompt_encoder, build_sam
from amodal_sam.sam_weights import (
    load_state_dict_strict,
    read_sam_checkpoint,
    state_digest,
)
from amodal_sam.validation import check_decoder_batch

_TRAINABLE = ("prompt_encoder", "decoder", "occluder_prompt", "memory_prompt")
# Most float logit pixels brought to the original resolution together (32 M floats: 128 MB): the
# instances of one step are as many as fit, at least one.
_ORIGINAL_RESOLUTION_FLOATS = 2**25


class AmodalSAM(nn.Module):
    """Frozen SAM (image encoder, prompt encoder, mask decoder) + trainable amodal head.

    Data flow: image -> ``sam.image_encoder`` (frozen, cacheable) -> embedding; visible mask
    (low-res logits) + its box -> ``prompt_encoder`` -> ``decoder`` -> amodal hypotheses,
    predicted IoU, the visible part and the occluders. With ``config.detail_branch`` the decoder
    also reads the image's pixels (:meth:`detail_features`). Point and box prompts first go
    through SAM's own frozen prompt encoder and mask decoder (:meth:`sam_visible`) to get the
    visible mask.

    With ``config.occluder_prompt``, known occluders (scene mode) enter as a second dense prompt
    (``occluder_prompt``, :class:`ExtraMaskPromptEncoder`); with ``config.memory_prompt``, a shape
    memory (video) as a third (``memory_prompt``).

    Only ``prompt_encoder``, ``decoder``, ``occluder_prompt`` and ``memory_prompt`` are trained
    and saved by :meth:`save_pretrained`.
    """

    def __init__(self, *, config: AmodalConfig, sam: Sam | None = None) -> None:
        super().__init__()
        self.config = config
        self.sam = sam if sam is not None else build_sam(config.sam_spec)
        self.sam.requires_grad_(False).eval()
        self.prompt_encoder = build_prompt_encoder(config.sam_spec)
        output_channels_last(self.prompt_encoder.mask_downscaling)
        self.decoder = AmodalMaskDecoder(spec=config.sam_spec, detail=config.detail_branch)
        self.occluder_prompt: ExtraMaskPromptEncoder | None = None
        if config.occluder_prompt:
            spec = config.sam_spec
            self.occluder_prompt = ExtraMaskPromptEncoder(
                embed_dim=spec.prompt_embed_dim, mask_in_chans=spec.mask_in_chans
            )
        self.memory_prompt: ExtraMaskPromptEncoder | None = None
        if config.memory_prompt:
            self.add_memory_prompt()
        self.init_trainable_from_sam()
        self._fast_encoder: nn.Module | None = None
        self._onnx_decoder = None  # amodal_sam.onnx_export.OnnxDecoder, see use_onnx_decoder
        self.encoder_mode = "reference-fp32"

    # ----------------------------------------------------------------- construction
    @classmethod
    def random(cls, model_type: str | SamSpec = "tiny", seed: int = 0, *, sam_prompts: bool = False) -> AmodalSAM:
        """A model whose frozen SAM has seeded random weights (tests, smoke runs; not meaningful).
        Its point and box prompts are refused unless ``sam_prompts`` (tests of the prompt path's
        mechanics): a random SAM turns them into noise (``config.sam_prompts``)."""
        spec = sam_spec_for(model_type) if isinstance(model_type, str) else model_type
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            config = AmodalConfig.current(model_type if isinstance(model_type, str) else "custom", spec)
            model = cls(config=dataclasses.replace(config, sam_prompts=sam_prompts))
        finally:
            torch.random.set_rng_state(generator_state)
        return model

    @classmethod
    def from_sam(
        cls,
        checkpoint_or_hub_id: str,
        model_type: str | None = None,
        *,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | None = None,
    ) -> AmodalSAM:
        """A not-yet-trained amodal model on SAM weights, its decoder initialised from SAM's.

        Arguments:
            checkpoint_or_hub_id: a segment-anything ``.pth`` (e.g. ``sam_vit_b_01ec64.pth``), a
                safetensors file in either layout, or a Hub id (``facebook/sam-vit-base``).
            model_type: ``vit_b`` / ``vit_l`` / ``vit_h`` / ``tiny``; inferred for the
                ``facebook/sam-vit-*`` ids, else ``vit_b``.
        """
        model_type = model_type or HUB_SAM_TYPES.get(checkpoint_or_hub_id, "vit_b")
        path = resolve_sam_checkpoint(
            checkpoint_or_hub_id, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        spec = sam_spec_for(model_type)
        sam = build_sam(spec)
        state = read_sam_checkpoint(path)
        load_state_dict_strict(sam, state, f"SAM weights {str(path)!r} ({model_type})")
        # a local file or transformers-layout folder is recorded by its absolute place; a Hub id as it is
        local = Path(checkpoint_or_hub_id)
        source = str(local.resolve()) if local.exists() else checkpoint_or_hub_id
        return cls(config=AmodalConfig.current(model_type, spec, source, state_digest(state)), sam=sam)

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_dir: str | Path,
        *,
        sam_checkpoint: str | None = None,
        encoder_dtype: str | None = None,
        attention: str = "auto",
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | None = None,
    ) -> AmodalSAM:
        """Load a model saved by :meth:`save_pretrained`, from a local folder or a Hub repo: see
        :func:`amodal_sam.model_files.load_pretrained`, which this calls."""
        from amodal_sam.model_files import load_pretrained

        return load_pretrained(
            model_id_or_dir,
            sam_checkpoint=sam_checkpoint,
            encoder_dtype=encoder_dtype,
            attention=attention,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )

    # ----------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | Path, *, include_sam: bool = False) -> Path:
        """Write the model folder (config, trainable weights, model card): see
        :func:`amodal_sam.model_files.save_pretrained`, which this calls."""
        from amodal_sam.model_files import save_pretrained

        return save_pretrained(self, save_directory, include_sam=include_sam)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        include_sam: bool = False,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str = "Upload amodal_sam model",
    ):
        """Save to a temporary folder and upload it to ``repo_id`` in one commit (created if needed):
        see :func:`amodal_sam.model_files.push_to_hub`."""
        from amodal_sam.model_files import push_to_hub

        return push_to_hub(
            self,
            repo_id,
            include_sam=include_sam,
            private=private,
            token=token,
            revision=revision,
            commit_message=commit_message,
        )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """State of the trainable parts, keys prefixed ``prompt_encoder.`` / ``decoder.``."""
        return {k: v.detach().contiguous() for k, v in self._trainable_modules().state_dict().items()}

    def load_trainable_state_dict(self, state_dict: dict[str, torch.Tensor], what: str = "amodal weights") -> None:
        """Strictly load :meth:`trainable_state_dict`-style weights; errors name each bad tensor."""
        load_state_dict_strict(self._trainable_modules(), state_dict, what)

    def trainable_parameters(self):
        """Parameters that training updates (the frozen SAM has none)."""
        return self._trainable_modules().parameters()

    def _trainable_modules(self) -> nn.ModuleDict:
        return nn.ModuleDict({name: getattr(self, name) for name in _TRAINABLE if getattr(self, name) is not None})

    def add_memory_prompt(self) -> None:
        """Give the model a shape-memory input (``config.memory_prompt``), untrained: its last
        convolution starts at zero, so every output stays as it was until the input is trained
        (``amodal-sam train --init DIR --memory-prompt``). Nothing changes when it has one."""
        if self.memory_prompt is not None:
            return
        spec = self.config.sam_spec
        self.config = dataclasses.replace(self.config, memory_prompt=True)
        self.memory_prompt = ExtraMaskPromptEncoder(embed_dim=spec.prompt_embed_dim, mask_in_chans=spec.mask_in_chans)
        self.memory_prompt.to(self.prompt_encoder.no_mask_embed.weight.device)

    @torch.no_grad()
    def init_trainable_from_sam(self) -> None:
        """Start the amodal prompt encoder and decoder from SAM's own."""
        self.prompt_encoder.load_state_dict(self.sam.prompt_encoder.state_dict())
        self.decoder.init_from_sam_decoder(self.sam.mask_decoder)

    def train(self, mode: bool = True) -> AmodalSAM:
        super().train(mode)
        self.sam.eval()
        return self

    # ----------------------------------------------------------------- inference pieces
    @property
    def device(self) -> torch.device:
        return self.decoder.iou_token.weight.device

    @property
    def spec(self) -> SamSpec:
        return self.config.sam_spec

    def accelerate_encoder(self, dtype: str = "bf16", compile: bool = False, attention: str = "auto") -> AmodalSAM:
        """Run the frozen encoder through the fast path (attention ``folded``, ``sdpa``, ``chunked``
        or ``flex``, or ``auto``: the fastest on this machine, measured once and remembered, see
        :mod:`amodal_sam.modeling.attention_choice`; ``dtype`` fp32 / bf16 / fp16 weights;
        optional ``torch.compile``; a RuntimeWarning where the CPU emulates ``dtype``, see
        :func:`~amodal_sam.modeling.attention_choice.emulated_precision_warning`); see
        :mod:`amodal_sam.modeling.fast_encoder`. Move the model
        to its device first: the choice is the device's. Changes this model in place (its
        ``config.encoder_dtype`` too, so that a model trained this way is loaded this way) and
        returns it. ``encoder_mode`` (part of the embedding cache's key) names the path."""
        attention = choose_attention(self.sam.image_encoder, check_dtype(dtype), self.device, attention)
        if message := emulated_precision_warning(dtype, self.device):
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        self._fast_encoder = make_fast(self.sam.image_encoder, dtype=dtype, compile=compile, attention=attention)
        self.encoder_mode = f"{attention}-{dtype}" + ("-compiled" if compile else "")
        self.config = dataclasses.replace(self.config, encoder_dtype=dtype)  # saved: loading restores it
        return self.accelerate_decoder()

    def accelerate_decoder(self, dtype: str = "auto") -> AmodalSAM:
        """Run the decoder at inference in ``dtype`` (``fp32``, ``bf16``, ``fp16``: autocast where
        no gradient is taken), or ``auto``: the encoder's precision where that is measured clearly
        faster on this machine and agrees with fp32, else fp32, see
        :mod:`amodal_sam.modeling.decoder_precision` (:meth:`accelerate_encoder` calls it so;
        ``$AMODAL_SAM_DECODER_DTYPE`` overrides ``auto``). Move the model to its device first.
        Changes this model in place and returns it; training is unaffected."""
        chosen = choose_decoder_dtype(
            self.decoder,
            self.spec.image_size // self.spec.patch_size,
            self.config.encoder_dtype,
            self.device,
            dtype,
        )
        self.decoder.inference_dtype = None if chosen == "fp32" else DTYPES[chosen]
        return self

    @property
    def decoder_dtype(self) -> str:
        """The decoder's precision at inference (:meth:`accelerate_decoder`): ``fp32``, ``bf16`` or
        ``fp16``."""
        dtype = self.decoder.inference_dtype or torch.float32
        return next(name for name, value in DTYPES.items() if value == dtype)

    def use_onnx_decoder(self, path: str | Path | None) -> AmodalSAM:
        """Run the amodal head through the ONNX file at ``path`` (exported from this model by
        :func:`amodal_sam.onnx_export.export_onnx`) with onnxruntime on the CPU, wherever
        :meth:`decode` runs it; None: back to PyTorch. The encoder and the decision are unchanged.
        Returns the model."""
        if path is None:
            self._onnx_decoder = None
            return self
        from amodal_sam.onnx_export import OnnxDecoder

        self._onnx_decoder = OnnxDecoder(path, self)
        return self

    def input_pixels(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (1, 3, S, S) normalised, padded input-frame pixels, on the
        model's device: what :meth:`encode_images` and :meth:`detail_features` take."""
        frame = ImageFrame.for_spec(image.shape[:2], self.spec)
        return frame.prepare_image(image, self.sam.pixel_mean, self.sam.pixel_std)

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) normalised, padded pixels -> (B, C, S/16, S/16) float32 frozen image
        embeddings; several images per call are fine."""
        if self._fast_encoder is not None:
            return encode(self._fast_encoder, pixels)
        return self.sam.image_encoder(pixels)

    def detail_features(self, pixels: torch.Tensor) -> torch.Tensor | None:
        """(B, 3, S, S) normalised, padded pixels (what :meth:`encode_images` takes) -> (B, C/8, L, L)
        features of the decoder's detail branch, or None when the decoder has none. Trainable:
        computed on every forward pass, never cached."""
        return self.decoder.detail(pixels)

    def mask_prompt(self, levels: torch.Tensor) -> torch.Tensor:
        """(N, L, L) prompt levels in [-1, 1] (see :func:`amodal_sam.geometry.visible_prompt_levels`)
        -> (N, 1, L, L) mask-prompt logits."""
        return (levels * self.config.mask_prompt_logit)[:, None]

    def decode(
        self,
        image_embeddings: torch.Tensor,
        prompts: DecoderPrompts,
        *,
        image_index: torch.Tensor | None = None,
        detail_features: torch.Tensor | None = None,
    ) -> AmodalDecoderOutput:
        """Run the amodal prompt encoder and decoder on N objects' ``prompts``.

        Arguments:
            image_embeddings: (B, C, h, w) frozen embeddings.
            prompts: the N objects' :class:`~amodal_sam.modeling.prompts.DecoderPrompts` (their
                known occluders are ignored by a model without ``config.occluder_prompt``, their
                shape memory by one without ``config.memory_prompt``).
            image_index: (N,) image of each prompt; needed when B > 1.
            detail_features: (B, C/8, L, L) :meth:`detail_features` of the B images, when the
                decoder has a detail branch.
        """
        occluder_levels, occluders_known = _read_by(
            self.occluder_prompt, prompts.occluder_levels, prompts.occluders_known
        )
        memory_levels, memory_known = _read_by(self.memory_prompt, prompts.memory_levels, prompts.memory_known)
        if self._onnx_decoder is not None:
            if image_index is not None:
                raise ValueError("the ONNX decoder decodes one image's prompts at a time: no image_index")
            return self._onnx_decoder(
                image_embeddings,
                mask_logits=prompts.mask_logits,
                boxes=prompts.boxes,
                points=prompts.points,
                detail_features=detail_features,
                occluder_levels=occluder_levels,
                occluders_known=occluders_known,
                memory_levels=memory_levels,
                memory_known=memory_known,
                count=len(prompts),
                low_res_size=self.spec.low_res_size,
            )
        sparse, dense = self.prompt_encoder(points=prompts.points, boxes=prompts.boxes, masks=prompts.mask_logits)
        if occluder_levels is not None:
            dense = dense + self.occluder_prompt(occluder_levels, occluders_known)
        if memory_levels is not None:
            dense = dense + self.memory_prompt(memory_levels, memory_known)
        return self.decoder(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, image_index, detail_features
        )

    def build_prompts(
        self,
        frame: ImageFrame,
        *,
        visible_masks: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        points: tuple[np.ndarray, np.ndarray] | None = None,
        occluder_masks: np.ndarray | None = None,
        memory_masks: np.ndarray | None = None,
    ) -> DecoderPrompts:
        """N objects' :class:`~amodal_sam.modeling.prompts.DecoderPrompts` on this model's device
        from (N, H, W) bool ``visible_masks`` (each with its box unless ``boxes`` are given), (N, 4)
        ``boxes`` and ((N, P, 2), (N, P)) ``points`` in the original pixels of ``frame``, (N, H, W)
        bool known ``occluder_masks`` (read by a model with ``config.occluder_prompt``; its mask
        prompt then leaves only the hull under them undecided) and (N, H, W) bool shape
        ``memory_masks`` (read by a model with ``config.memory_prompt``; an empty memory is none: the
        row is not given one). Training builds the same levels (:func:`dense_prompt_levels`)."""
        if visible_masks is not None and boxes is None:
            boxes = mask_boxes(visible_masks)
        boxes_t, points_t = self._prompt_tensors(frame, boxes, points)
        occluders = occluder_masks if self.occluder_prompt is not None else None
        memories = memory_masks if self.memory_prompt is not None else None
        mask_logits = None
        if visible_masks is not None:
            levels = dense_prompt_levels(
                frame, visible_masks, occluders, with_hull=self.config.hull_prompt, memory_masks=memories
            )
            mask_logits = self.mask_prompt(torch.as_tensor(levels.mask, device=self.device))
            occluder = None if occluders is None else (levels.occluder, levels.occluders_known)
            memory = None if memories is None else (levels.memory, levels.memory_known)
        else:  # (levels, rows given), numpy
            occluder = None if occluders is None else known_occluder_levels(frame, occluders)
            memory = None if memories is None else shape_memory_levels(frame, memories)
        return DecoderPrompts(mask_logits, boxes_t, points_t, *self._given(occluder), *self._given(memory))

    def _given(self, levels_given: tuple[np.ndarray, np.ndarray] | None) -> tuple[torch.Tensor | None, ...]:
        """A further prompt's (N, L, L) levels and (N,) rows given (numpy) as (N, 1, L, L) and (N,)
        tensors on this model's device; (None, None) when not given."""
        if levels_given is None:
            return None, None
        levels, given = levels_given
        return torch.as_tensor(levels, device=self.device)[:, None], torch.as_tensor(given, device=self.device)

    @torch.no_grad()
    def sam_visible(
        self,
        image_embedding: torch.Tensor,
        *,
        boxes: torch.Tensor | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """SAM's own (frozen) answer to point/box prompts: the visible mask.

        Returns (N, 1, L, L) low-res logits and (N,) predicted IoU. Like ``SamPredictor``, a
        single point without a box asks for three hypotheses and keeps the best one.
        """
        sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        single_point = boxes is None and points is not None and points[0].shape[1] == 1
        logits, iou = self.sam.mask_decoder(
            image_embedding, self.sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=single_point
        )
        best = iou.argmax(dim=1)
        rows = torch.arange(len(best), device=best.device)
        return logits[rows, best][:, None], iou[rows, best]

    # ----------------------------------------------------------------- images and completions
    def frame(self, original_size: tuple[int, int]) -> ImageFrame:
        """The coordinate frames of an (H, W) image for this model's encoder."""
        return ImageFrame.for_spec(original_size, self.spec)

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> EncodedImage:
        """Embed an (H, W, 3) uint8 RGB image with the frozen encoder (and the detail branch)."""
        pixels = self.input_pixels(image)
        embedding = self.encode_images(pixels).contiguous(memory_format=torch.channels_last)  # see channels_last.py
        return EncodedImage(self.frame(image.shape[:2]), embedding, self.detail_features(pixels))

    @torch.no_grad()
    def encoded_from_embedding(
        self, embedding: torch.Tensor, original_size: tuple[int, int], *, image: np.ndarray | None = None
    ) -> EncodedImage:
        """An :class:`EncodedImage` from a precomputed (1, C, h, w) embedding (e.g. read from the
        embedding cache) of an image of ``original_size`` (H, W). A decoder with a detail branch
        reads the pixels too: it needs the (H, W, 3) uint8 RGB ``image``."""
        spec = self.spec
        expected = (1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)
        if tuple(embedding.shape) != expected:
            raise ValueError(f"embedding must have shape {expected}; got {tuple(embedding.shape)}")
        if image is not None and tuple(image.shape[:2]) != tuple(original_size):
            raise ValueError(f"image must be {tuple(original_size)} (original_size); got {image.shape[:2]}")
        detail = None
        if self.decoder.has_detail:
            if image is None:
                raise ValueError("this model's decoder reads the image's pixels (detail branch): pass image=")
            detail = self.detail_features(self.input_pixels(image))
        embedding = embedding.to(self.device, torch.float32).contiguous(memory_format=torch.channels_last)
        return EncodedImage(self.frame(original_size), embedding, detail)

    @torch.no_grad()
    def sam_visible_masks(
        self,
        image: EncodedImage,
        *,
        boxes: np.ndarray | None = None,
        points: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> torch.Tensor:
        """SAM's own (frozen) visible masks for N point/box prompts: (N, H, W) bool.

        Arguments:
            image: the encoded image.
            boxes: (N, 4) (x0, y0, x1, y1) original pixels.
            points: ((N, P, 2) (x, y) original pixels, (N, P) labels 1 = object, 0 = background).
        """
        self._check_sam_prompts()
        boxes_t, points_t = self._prompt_tensors(image.frame, boxes, points)
        logits, _ = self.sam_visible(image.embedding, boxes=boxes_t, points=points_t)
        return image.frame.low_res_to_original(logits)[:, 0] > 0

    def _check_sam_prompts(self) -> None:
        """Refuse point and box prompts when the frozen SAM is random (``config.sam_prompts``)."""
        if not self.config.sam_prompts:
            raise ValueError(
                f"point and box prompts need a frozen SAM with real weights; this model's SAM "
                f"({self.config.sam_type}) is random (config sam_prompts=false, e.g. the demo model), so the "
                "visible part it found would be noise. Give the visible mask instead (visible_mask=, --visible), "
                "or use a model on SAM weights"
            )

    @torch.no_grad()
    def complete(
        self,
        image: EncodedImage,
        *,
        visible_masks: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        points: tuple[np.ndarray, np.ndarray] | None = None,
        occluder_masks: np.ndarray | None = None,
        multimask: bool = True,
        hidden_threshold: float | None = None,
        decoder_batch: int | None = None,
        prior_regions: np.ndarray | None = None,
        memory_masks: np.ndarray | None = None,
    ) -> Completion:
        """Complete N objects of one encoded image; prompts in original pixels, inputs checked
        by the caller.

        Arguments:
            image: from :meth:`encode` or :meth:`encoded_from_embedding`.
            visible_masks: (N, H, W) bool visible parts, the dense mask prompt. Each object's box
                goes with it unless ``boxes`` are given.
            boxes: (N, 4) (x0, y0, x1, y1) boxes.
            points: ((N, P, 2) (x, y) points, (N, P) labels 1 = object, 0 = background).
                Without ``visible_masks``, boxes and points go straight to the amodal decoder and
                its own visible output (logits > 0) is the visible part.
            occluder_masks: (N, H, W) bool, what is known to be able to hide each object (e.g.
                the other objects' visible masks): the rule then hides parts only there, in
                place of the decoder's own occluder estimate. An empty mask: nothing is hidden.
                A model with ``config.occluder_prompt`` also reads them as a prompt, and its
                mask prompt leaves only the hull under them undecided.
            multimask: choose among the K hypotheses by predicted IoU (else the single output).
            hidden_threshold: the probability of :func:`amodal_rule` inside the hull (default: the
                config's decision, :meth:`AmodalConfig.decision_for` known occluders or not, which
                this replaces by :meth:`Decision.at`).
            decoder_batch: most instances per decoder call (default: all on a GPU, 1 on a CPU).
            prior_regions: (N, H, W) bool, where a hidden pixel needs only the decision's
                ``threshold`` (:func:`~amodal_sam.modeling.completion.amodal_rule`; elsewhere its
                ``outside_threshold``); default: each visible mask's convex hull.
            memory_masks: (N, H, W) bool shape memories (video: each object's shape as earlier
                frames showed it, carried into this one), read by a model with
                ``config.memory_prompt`` and ignored by others.
        """
        if visible_masks is None and boxes is None and points is None:
            raise ValueError("complete() needs visible_masks, boxes or points")
        if visible_masks is None:
            self._check_sam_prompts()
        frame = image.frame
        prompts = self.build_prompts(
            frame,
            visible_masks=visible_masks,
            boxes=boxes,
            points=points,
            occluder_masks=occluder_masks,
            memory_masks=memory_masks,
        )
        count = len(prompts)
        decision = self.config.decision_for(occluder_masks is not None, hidden_threshold)
        check_decoder_batch(decoder_batch)
        batch = decoder_batch or default_decoder_batch(self.device)
        parts = []
        for start in range(0, count, batch):
            rows = slice(start, start + batch)
            output = self.decode(image.embedding, prompts.rows(rows), detail_features=image.detail)
            visible = None if visible_masks is None else torch.as_tensor(visible_masks[rows], device=self.device)
            known = None if occluder_masks is None else torch.as_tensor(occluder_masks[rows], device=self.device)
            prior = None if prior_regions is None else torch.as_tensor(prior_regions[rows], device=self.device)
            parts.append(
                self._decide(frame, output, visible, known, multimask, decision, self.config.clean_masks, prior)
            )
        return Completion(
            frame=frame,
            decision=decision,
            clean=self.config.clean_masks,
            prior_region=None if prior_regions is None else torch.as_tensor(prior_regions, device=self.device),
            **{name: torch.cat([part[name] for part in parts]) for name in parts[0]},
        )

    @staticmethod
    def _decide(
        frame: ImageFrame,
        output: AmodalDecoderOutput,
        visible: torch.Tensor | None,
        known_occluders: torch.Tensor | None,
        multimask: bool,
        decision: Decision,
        clean: bool,
        prior: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One decoder call's outputs -> the :class:`Completion` fields of its instances; known
        occluders, when given, replace the decoder's estimate (else its pixels above the
        decision's ``occluder_threshold``, and its low-res logits are kept); ``prior``, when given, the
        visible masks' hulls as the region of the decision's threshold. Logits reach the original
        resolution a few instances at a time, to bound memory."""
        logits = output.hypotheses if multimask else output.amodal_logits[:, :1]
        scores = output.hypothesis_iou if multimask else output.amodal_iou[:, :1]
        amodal, visible_parts, occluders = [], [], []
        height, width = frame.original_size
        step = max(1, _ORIGINAL_RESOLUTION_FLOATS // (2 * height * width))  # the best and the plausible logits
        for start in range(0, len(scores), step):
            rows = slice(start, start + step)
            part_visible = (
                frame.low_res_to_original(output.visible_logits[rows])[:, 0] > 0 if visible is None else visible[rows]
            )
            if known_occluders is None:
                occluder_level = probability_logit(decision.occluder_threshold)
                occluder = frame.low_res_to_original(output.occluder_logits[rows])[:, 0] > occluder_level
            else:
                occluder = known_occluders[rows]
            part_prior = None if prior is None else prior[rows]
            decided = decide_amodal(
                frame, logits[rows], scores[rows], occluder, part_visible, [decision], clean, part_prior
            )
            amodal.append(decided[decision])
            visible_parts.append(part_visible)
            occluders.append(occluder)
        decided = {
            "amodal": torch.cat(amodal),
            "visible": torch.cat(visible_parts),
            "occluder": torch.cat(occluders),
            "hypothesis_scores": scores,
            "hypothesis_logits": logits,
            "visible_logits": output.visible_logits[:, 0],
        }
        if known_occluders is None:
            decided["occluder_logits"] = output.occluder_logits[:, 0]
        return decided

    def _prompt_tensors(
        self,
        frame: ImageFrame,
        boxes: np.ndarray | None,
        points: tuple[np.ndarray, np.ndarray] | None,
    ) -> tuple[torch.Tensor | None, tuple[torch.Tensor, torch.Tensor] | None]:
        """Original-pixel boxes (N, 4) and points ((N, P, 2), (N, P)) -> input-frame tensors."""
        boxes_t = points_t = None
        if boxes is not None:
            boxes_t = torch.as_tensor(frame.boxes_to_input(boxes), dtype=torch.float32, device=self.device)
        if points is not None:
            coords, labels = points
            points_t = (
                torch.as_tensor(frame.points_to_input(coords), dtype=torch.float32, device=self.device),
                torch.as_tensor(np.asarray(labels), device=self.device),
            )
        return boxes_t, points_t


def _read_by(
    encoder: nn.Module | None, levels: torch.Tensor | None, given: torch.Tensor | None
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """A further dense prompt's (N, 1, L, L) levels and (N,) bool rows given, as the model reads
    them: none without its ``encoder``; every row given when ``given`` is None."""
    if encoder is None or levels is None:
        return None, None
    if given is None:
        given = torch.ones(len(levels), dtype=torch.bool, device=levels.device)
    return levels, given
