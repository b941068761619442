"""Shared fixtures: tiny random models, synthetic images and masks, a fake Hub cache."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from amodal_sam import AmodalSAM

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Where the tests run models: the CPU unless AMODAL_TEST_DEVICE says otherwise (e.g. "cuda", as
# benchmarks/gpu_check.sh sets it), so that the same assertions run on a GPU.
TEST_DEVICE = os.environ.get("AMODAL_TEST_DEVICE", "cpu")


@pytest.fixture(autouse=True, scope="session")
def user_cache_in_a_temporary_folder(tmp_path_factory):
    """The user cache (the encoder's remembered attention choice) goes to a folder of this run,
    never the home folder, the fast encoder takes the ``folded`` path and the decoder stays in
    fp32 unless a test says otherwise (the tests of the measured choices clear the overrides)."""
    names = ("XDG_CACHE_HOME", "AMODAL_SAM_ATTENTION", "AMODAL_SAM_DECODER_DTYPE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
    os.environ["AMODAL_SAM_ATTENTION"] = "folded"
    os.environ["AMODAL_SAM_DECODER_DTYPE"] = "fp32"
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def tiny_model() -> AmodalSAM:
    """A tiny SAM-shaped model with seeded random weights (256-px encoder, 64-px low-res frame).
    Its point and box prompts are allowed (the tests check the prompt path's mechanics) and it
    decides by the plain rule, clean masks off (tests compare it with the decoder's logits; the
    clean-up has tests of its own)."""
    model = AmodalSAM.random("tiny", seed=0, sam_prompts=True)
    model.config = dataclasses.replace(model.config, clean_masks=False)
    return model


def record_score_products(monkeypatch, keys: int) -> list[tuple[str, int]]:
    """Spy on ``torch.bmm`` and ``torch.baddbmm``: the list it returns fills with (name, size) of
    each product whose result has ``keys`` columns (an attention's scores, when the head width
    differs from the key count)."""
    import torch

    products: list[tuple[str, int]] = []
    for name in ("bmm", "baddbmm"):
        original = getattr(torch, name)

        def spy(*args, _original=original, _name=name, **kwargs):
            result = _original(*args, **kwargs)
            if result.shape[-1] == keys:
                products.append((_name, result.numel()))
            return result

        monkeypatch.setattr(torch, name, spy)
    return products


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def smooth_texture(shape: tuple[int, int], seed: int) -> np.ndarray:
    """(H, W) uint8 noise blurred to the grain of a photo's texture (pixel noise is not trackable)."""
    noise = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    blurred = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip(128 + 60 * blurred / blurred.std(), 0, 255).astype(np.uint8)


def rect_mask(shape: tuple[int, int], rows: tuple[int, int], cols: tuple[int, int]) -> np.ndarray:
    """(H, W) bool rectangle covering rows [rows[0], rows[1]) and columns [cols[0], cols[1])."""
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def ellipse_mask(height: int, width: int, center=(0.5, 0.5), radii=(0.3, 0.2)) -> np.ndarray:
    """(H, W) bool ellipse; center (x, y) and radii (rx, ry) as fractions of the width and height."""
    ys, xs = np.mgrid[0:height, 0:width]
    cx, cy = center[0] * width, center[1] * height
    rx, ry = radii[0] * width, radii[1] * height
    return ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0


def write_fake_hub_repo(cache_dir: Path, repo_id: str, files: dict[str, Path], commit: str = "0" * 40) -> None:
    """Lay ``files`` out as huggingface_hub's cache does for ``repo_id`` at revision main."""
    repo = cache_dir / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        shutil.copyfile(source, snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


def write_occlusion_dataset(root: Path, count: int = 6, size=(64, 80), seed: int = 0) -> Path:
    """A small COCOA-cls dataset: ellipses partly hidden by a bar; returns the annotations path.
    Odd-numbered annotations also carry the bar as their ``occluder_mask`` (as synth writes it)."""
    from amodal_sam.data.masks import encode_rle
    from amodal_sam.image_io import write_rgb

    rng = np.random.default_rng(seed)
    height, width = size
    images, annotations = [], []
    for number in range(1, count + 1):
        center = rng.uniform(0.35, 0.65, 2)
        amodal = ellipse_mask(height, width, tuple(center), tuple(rng.uniform(0.15, 0.25, 2)))
        bar = np.zeros(size, dtype=bool)
        column = int(center[0] * width + rng.integers(-4, 5))
        bar[:, column : column + 10] = True
        image = random_image(height, width, seed=number)
        image[amodal] = (230, 120, 40)
        image[bar] = (40, 40, 160)
        write_rgb(root / f"{number}.png", image)
        images.append({"id": number, "file_name": f"{number}.png", "height": height, "width": width})
        annotations.append(
            {
                "id": number,
                "image_id": number,
                "category_id": 1,
                "segmentation": encode_rle(amodal),
                "visible_mask": encode_rle(amodal & ~bar),
                "bbox": [0, 0, 1, 1],
            }
        )
        if number % 2:
            annotations[-1]["occluder_mask"] = encode_rle(bar)
    path = root / "annotations.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "blob"}]})
    )
    return path


def convert_dataset(cocoa_cls: Path, format_name: str, out: Path) -> Path:
    """Rewrite a COCOA-cls dataset (as written by :func:`write_occlusion_dataset`) in another
    supported format; returns what ``load_dataset`` should be given."""
    from amodal_sam.data.masks import decode_segmentation
    from amodal_sam.image_io import write_mask

    content = json.loads(cocoa_cls.read_text())
    out.mkdir(parents=True, exist_ok=True)
    for image in content["images"]:
        shutil.copyfile(cocoa_cls.parent / image["file_name"], out / image["file_name"])
    renames = {"kins_2020": ("a_segm", "i_segm"), "kins_legacy": ("segmentation", "inmodal_seg")}
    if format_name in renames:
        amodal_key, visible_key = renames[format_name]
        annotations = [
            {
                "id": a["id"],
                "image_id": a["image_id"],
                "category_id": 1,
                amodal_key: a["segmentation"],
                visible_key: a["visible_mask"],
            }
            for a in content["annotations"]
        ]
        path = out / "annotations.json"
        path.write_text(json.dumps({"images": content["images"], "annotations": annotations}))
        return path
    if format_name == "cocoa":
        for image, annotation in zip(content["images"], content["annotations"]):
            region = {
                "segmentation": annotation["segmentation"],
                "order": 1,
                "isStuff": 0,
                "name": "blob",
                "visible_mask": annotation["visible_mask"],
            }
            record = {"image_id": image["id"], "url": image["file_name"], "regions": [region]}
            (out / f"{Path(image['file_name']).stem}.json").write_text(json.dumps(record))
        return out
    if format_name == "folder":
        for image, annotation in zip(content["images"], content["annotations"]):
            stem = Path(image["file_name"]).stem
            (out / "images").mkdir(exist_ok=True)
            (out / image["file_name"]).rename(out / "images" / image["file_name"])
            size = (image["height"], image["width"])
            write_mask(out / "amodal" / f"img{stem}_0.png", decode_segmentation(annotation["segmentation"], *size))
            write_mask(out / "visible" / f"img{stem}_0.png", decode_segmentation(annotation["visible_mask"], *size))
            (out / "images" / image["file_name"]).rename(out / "images" / f"img{stem}.png")
        return out
    raise ValueError(format_name)
