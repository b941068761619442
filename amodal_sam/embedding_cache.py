"""On-disk cache of frozen-encoder image embeddings.

The encoder never changes during training, so each image is embedded once and reused by every
epoch and run. An entry is keyed by the image's content hash and the encoder's identity (type,
input size and a hash of its weights): a different encoder never reads another's entries.
Entries are written to a temporary name and renamed, so a crash leaves no half-written entry and
concurrent writers of one entry each leave a whole file. Each entry stores the SHA-256 of its
tensor data: an entry whose bytes changed on disk (zeroed, bit-flipped) is rejected and
recomputed, like one from another encoder or an older entry format.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from amodal_sam.atomic import atomic_output
from amodal_sam.data.readers import AmodalDataset
from amodal_sam.geometry import ImageFrame
from amodal_sam.modeling.amodal_sam import AmodalSAM
from amodal_sam.modeling.encoded_image import EncodedImage
from amodal_sam.sam_weights import state_digest

ENTRY_FORMAT = "amodal_sam-embedding-2"  # 2: with the digest of the data


def image_key(image: np.ndarray) -> str:
    """SHA-256 of an image's shape, dtype and pixels."""
    digest = hashlib.sha256(f"{image.shape}|{image.dtype}|".encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


def encoder_identity(model: AmodalSAM) -> str:
    """``<sam_type>-<input side>-<encoder mode>-<16 hex of the encoder weights' SHA-256>``; the
    mode (reference fp32, or the fast path's precision) is part of it: its embeddings differ."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.sam.image_encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest.update(np.asarray(model.spec.pixel_mean + model.spec.pixel_std).tobytes())
    return f"{model.config.sam_type}-{model.spec.image_size}-{model.encoder_mode}-{digest.hexdigest()[:16]}"


@dataclass
class CacheStats:
    hits: int = 0
    computed: int = 0
    rejected: int = 0


class EmbeddingCache:
    """Embeddings of one encoder under ``root/<encoder identity>/``.

    Arguments:
        root: cache folder (shared by any number of encoders).
        model: the model whose frozen encoder fills the cache.
    """

    def __init__(self, root: str | Path, model: AmodalSAM) -> None:
        self.model = model
        self.encoder = encoder_identity(model)
        self.folder = Path(root) / self.encoder
        self.stats = CacheStats()
        spec = model.spec
        self.shape = (1, spec.prompt_embed_dim, spec.embedding_size, spec.embedding_size)

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.safetensors"

    def read(self, key: str) -> torch.Tensor | None:
        """The cached (1, C, h, w) embedding, or None when absent, corrupt or not this encoder's."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
                embedding = handle.get_tensor("embedding") if "embedding" in handle.keys() else None  # noqa: SIM118 (safe_open has no __contains__)
        except (SafetensorError, OSError, ValueError) as error:
            return self._reject(path, f"unreadable ({error})")
        if metadata.get("format") != ENTRY_FORMAT:
            return self._reject(path, f"entry format {metadata.get('format')!r}, not {ENTRY_FORMAT!r}")
        if metadata.get("encoder") != self.encoder:
            return self._reject(path, f"written by encoder {metadata.get('encoder')!r}, not {self.encoder!r}")
        if metadata.get("image") != key:
            return self._reject(path, "its image hash does not match its name")
        if embedding is None or tuple(embedding.shape) != self.shape:
            return self._reject(path, f"embedding shape is not {self.shape}")
        if metadata.get("digest") != state_digest({"embedding": embedding}):
            return self._reject(
                path, "its data does not match its stored digest (changed on disk, or written by an older amodal_sam)"
            )
        return embedding

    def _reject(self, path: Path, why: str) -> None:
        self.stats.rejected += 1
        warnings.warn(f"embedding cache entry {str(path)!r} rejected: {why}; recomputing it", stacklevel=3)

    def write(self, key: str, embedding: torch.Tensor) -> None:
        """Store a (1, C, h, w) embedding; a non-finite one is an error (a broken encoder)."""
        data = embedding.detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(data).all():
            raise ValueError(f"the encoder gave a non-finite embedding (NaN or infinity) for image {key[:16]}...")
        metadata = {
            "format": ENTRY_FORMAT,
            "encoder": self.encoder,
            "image": key,
            "digest": state_digest({"embedding": data}),
        }
        with atomic_output(self.path(key)) as temporary:
            save_file({"embedding": data}, str(temporary), metadata=metadata)

    def embedding(self, image: np.ndarray) -> torch.Tensor:
        """(1, C, h, w) embedding of an (H, W, 3) uint8 RGB image, from the cache or computed
        (and stored)."""
        key = image_key(image)
        cached = self.read(key)
        if cached is not None:
            self.stats.hits += 1
            return cached
        embedding = self.model.encode_images(self.model.input_pixels(image)).cpu()
        self.stats.computed += 1
        self.write(key, embedding)
        return embedding

    def encode(self, image: np.ndarray) -> EncodedImage:
        """:meth:`AmodalSAM.encode` of an (H, W, 3) uint8 RGB image, its embedding from the cache."""
        return self.model.encoded_from_embedding(self.embedding(image), image.shape[:2], image=image)


def embed_dataset(
    dataset: AmodalDataset,
    cache: EmbeddingCache,
    progress: bool = True,
    *,
    rank: int = 0,
    world: int = 1,
) -> list[str]:
    """Content hash of every image of ``dataset`` (in record order), each image's embedding made
    sure to be in ``cache``.

    Split over ``world`` processes (``torchrun``), process ``rank`` encodes the distinct images
    whose first appearance in record order has an index ``i`` with ``i % world == rank``, so each
    image is encoded exactly once over all processes; every process reads every image for its
    hash. Cache writes are atomic, so processes sharing one cache folder never see half an entry.
    """
    if not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, world); got rank {rank}, world {world}")
    keys: list[str] = []
    seen: set[str] = set()  # distinct images so far: their count is the next one's index i
    for record in tqdm(dataset.records, desc="embed", disable=not progress):
        image = dataset.load_image(record)
        key = image_key(image)
        keys.append(key)
        ImageFrame.for_spec(image.shape[:2], cache.model.spec, str(record.image_path))  # a size the encoder can take
        if key in seen:
            continue
        if len(seen) % world == rank:
            cache.embedding(image)
        seen.add(key)
    return keys
