"""AmodalSAM: a frozen segment-anything model plus a trainable amodal prompt encoder and decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from segment_anything.modeling import Sam
from torch import nn

from amodal_sam.atomic import atomic_output
from amodal_sam.config import HUB_SAM_TYPES, AmodalConfig, SamSpec, sam_spec_for
from amodal_sam.geometry import ImageFrame
from amodal_sam.hub import resolve_file, resolve_sam_checkpoint, upload_to_hub
from amodal_sam.modeling.amodal_decoder import AmodalDecoderOutput, AmodalMaskDecoder
from amodal_sam.modeling.fast_encoder import encode, make_fast
from amodal_sam.modeling.sam_builder import build_prompt_encoder, build_sam
from amodal_sam.sam_weights import load_state_dict_strict, read_sam_checkpoint

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BUNDLED_SAM_NAME = "sam.safetensors"
_TRAINABLE = ("prompt_encoder", "decoder")


class AmodalSAM(nn.Module):
    """Frozen SAM (image encoder, prompt encoder, mask decoder) + trainable amodal head.

    Data flow: image -> ``sam.image_encoder`` (frozen, cacheable) -> embedding; visible mask
    (low-res logits) + its box -> ``prompt_encoder`` -> ``decoder`` -> amodal hypotheses,
    predicted IoU, the visible part and the occluders. With ``config.detail_branch`` the decoder
    also reads the image's pixels (:meth:`detail_features`). Point and box prompts first go
    through SAM's own frozen prompt encoder and mask decoder (:meth:`sam_visible`) to get the
    visible mask.

    Only ``prompt_encoder`` and ``decoder`` are trained and saved by :meth:`save_pretrained`.
    """

    def __init__(self, config: AmodalConfig, sam: Sam | None = None) -> None:
        super().__init__()
        self.config = config
        self.sam = sam if sam is not None else build_sam(config.sam_spec)
        self.sam.requires_grad_(False).eval()
        self.prompt_encoder = build_prompt_encoder(config.sam_spec)
        self.decoder = AmodalMaskDecoder(config.sam_spec, detail=config.detail_branch)
        self.init_trainable_from_sam()
        self._fast_encoder: nn.Module | None = None
        self.encoder_mode = "reference-fp32"

    # ----------------------------------------------------------------- construction
    @classmethod
    def random(cls, model_type: str | SamSpec = "tiny", seed: int = 0) -> AmodalSAM:
        """A model whose frozen SAM has seeded random weights (tests, smoke runs; not meaningful)."""
        spec = sam_spec_for(model_type) if isinstance(model_type, str) else model_type
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        try:
            model = cls(AmodalConfig(sam_type=model_type if isinstance(model_type, str) else "custom", sam_spec=spec))
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
        load_state_dict_strict(sam, read_sam_checkpoint(path), f"SAM weights {str(path)!r} ({model_type})")
        source = str(path.resolve()) if Path(checkpoint_or_hub_id).is_file() else checkpoint_or_hub_id
        return cls(AmodalConfig(sam_type=model_type, sam_spec=spec, sam_source=source), sam=sam)

    @classmethod
    def from_pretrained(
        cls,
        model_id_or_dir: str | Path,
        *,
        sam_checkpoint: str | None = None,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        token: str | None = None,
    ) -> AmodalSAM:
        """Load a model saved by :meth:`save_pretrained`, from a local folder or a Hub repo.

        Arguments:
            model_id_or_dir: folder holding ``config.json`` and ``model.safetensors``, or a Hub id.
            sam_checkpoint: overrides the config's ``sam_source`` (e.g. a local copy of the SAM
                ``.pth`` the model was trained on).
            revision, cache_dir, local_files_only, token: as ``huggingface_hub.hf_hub_download``.
        """
        hub = {"revision": revision, "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        model_id_or_dir = str(model_id_or_dir)
        config_path = resolve_file(model_id_or_dir, CONFIG_NAME, **hub)
        try:
            config = AmodalConfig.from_dict(json.loads(config_path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise ValueError(f"{str(config_path)!r} is not a valid amodal_sam config: {error!r}") from error
        weights_path = resolve_file(model_id_or_dir, WEIGHTS_NAME, **hub)
        source = sam_checkpoint or config.sam_source
        if source is None:
            raise ValueError(f"{str(config_path)!r} names no sam_source; pass sam_checkpoint=")
        sam_path = resolve_sam_checkpoint(source, model_dir=None if sam_checkpoint else model_id_or_dir, **hub)
        sam = build_sam(config.sam_spec)
        load_state_dict_strict(sam, read_sam_checkpoint(sam_path), f"SAM weights {str(sam_path)!r}")
        model = cls(config, sam=sam)
        model.load_trainable_state_dict(load_file(str(weights_path), device="cpu"), f"weights {str(weights_path)!r}")
        return model

    # ----------------------------------------------------------------- saving
    def save_pretrained(self, save_directory: str | Path, *, include_sam: bool = False) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (trainable weights only) atomically.

        With ``include_sam=True``, or when the frozen SAM has no source to reload it from (a
        random one), its weights go to ``sam.safetensors`` in the same folder and the config
        points there.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        config = AmodalConfig.from_dict(self.config.to_dict())
        if include_sam or config.sam_source is None or config.sam_source == BUNDLED_SAM_NAME:
            with atomic_output(folder / BUNDLED_SAM_NAME) as temporary:
                save_file({k: v.float().contiguous() for k, v in self.sam.state_dict().items()}, str(temporary))
            config.sam_source = BUNDLED_SAM_NAME
        with atomic_output(folder / WEIGHTS_NAME) as temporary:
            save_file(self.trainable_state_dict(), str(temporary), metadata={"format": "pt"})
        with atomic_output(folder / CONFIG_NAME) as temporary:
            temporary.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        return folder

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
        """Save to a temporary folder and upload it to ``repo_id`` in one commit (created if needed)."""
        return upload_to_hub(
            lambda folder: self.save_pretrained(folder, include_sam=include_sam),
            repo_id,
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
        return nn.ModuleDict({name: getattr(self, name) for name in _TRAINABLE})

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

    def accelerate_encoder(self, dtype: str = "bf16", compile: bool = False) -> AmodalSAM:
        """Run the frozen encoder through the fast path (SDPA attention, ``dtype`` fp32 / bf16 /
        fp16 weights, optional ``torch.compile``); see :mod:`amodal_sam.modeling.fast_encoder`.
        Changes this model in place and returns it."""
        self._fast_encoder = make_fast(self.sam.image_encoder, dtype=dtype, compile=compile)
        self.encoder_mode = f"sdpa-{dtype}" + ("-compiled" if compile else "")
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
        *,
        mask_logits: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        image_index: torch.Tensor | None = None,
        detail_features: torch.Tensor | None = None,
    ) -> AmodalDecoderOutput:
        """Run the amodal prompt encoder and decoder on N prompts.

        Arguments:
            image_embeddings: (B, C, h, w) frozen embeddings.
            mask_logits: (N, 1, L, L) visible-mask prompt logits (see :meth:`mask_prompt`).
            boxes: (N, 4) boxes (x0, y0, x1, y1) in input-frame pixels.
            points: ((N, P, 2) input-frame (x, y), (N, P) labels 1 = object, 0 = background).
            image_index: (N,) image of each prompt; needed when B > 1.
            detail_features: (B, C/8, L, L) :meth:`detail_features` of the B images, when the
                decoder has a detail branch.
        """
        sparse, dense = self.prompt_encoder(points=points, boxes=boxes, masks=mask_logits)
        return self.decoder(
            image_embeddings, self.prompt_encoder.get_dense_pe(), sparse, dense, image_index, detail_features
        )

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
