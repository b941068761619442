"""Shared fixtures: tiny random models, synthetic images and masks, a fake Hub cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from amodal_sam import AmodalSAM

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def tiny_model() -> AmodalSAM:
    """A tiny SAM-shaped model with seeded random weights (256-px encoder, 64-px low-res frame)."""
    return AmodalSAM.random("tiny", seed=0)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


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
