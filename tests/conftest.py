"""Shared fixtures: the test images beside the project, and tiny generated ones."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# One intra-op thread: the tests' images are small (32-128 px), where a second thread
# gains little, and on a busy 2-core machine OpenMP threads that spin-wait for each
# other made the suite several times slower (measured: 13.9 s vs 1.7 s for one 32-px run).
# STYLELAB_TEST_THREADS=2 restores torch's default on a quiet machine.
torch.set_num_threads(int(os.environ.get("STYLELAB_TEST_THREADS", "1")))


def _find_shared_images() -> Path:
    """``../shared/images`` beside the project root (or beside a folder above it, for worktrees)."""
    if os.environ.get("STYLELAB_TEST_IMAGES"):
        return Path(os.environ["STYLELAB_TEST_IMAGES"])
    root = Path(__file__).resolve().parents[1]
    for parent in root.parents:
        if (parent / "shared" / "images").is_dir():
            return parent / "shared" / "images"
    # A checkout made elsewhere (e.g. a clone in /tmp) still finds this machine's copy.
    fallback = Path("/work/shared/images")
    return fallback if fallback.is_dir() else root.parent / "shared" / "images"


SHARED_IMAGES = _find_shared_images()


def _shared(kind: str, name: str) -> Path:
    path = SHARED_IMAGES / kind / name
    if not path.is_file():
        pytest.fail(f"test image missing: {path} (the shared images live in ../shared/images)")
    return path


@pytest.fixture(scope="session")
def tubingen() -> Path:
    return _shared("content", "tubingen.jpg")


@pytest.fixture(scope="session")
def starry_night() -> Path:
    return _shared("style", "starry_night.jpg")


def png_with_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header declares ``width`` x ``height``: a decompression bomb's calling card."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def gradient_image(width: int = 40, height: int = 30, seed: int = 0) -> Image.Image:
    """A small RGB picture with structure in every channel (gradients plus a few blobs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    r = xx / max(1, width - 1)
    g = yy / max(1, height - 1)
    b = 0.5 + 0.5 * np.sin(xx / 3.0 + yy / 5.0)
    a = np.stack([r, g, b], -1) + rng.normal(0, 0.03, (height, width, 3))
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8), "RGB")


@pytest.fixture
def tiny_content() -> Image.Image:
    return gradient_image(40, 30, seed=1)


@pytest.fixture
def tiny_style() -> Image.Image:
    """Stripes: a strong, simple texture."""
    yy, xx = np.mgrid[0:32, 0:32]
    stripes = ((xx + yy) // 4) % 2
    a = np.where(stripes[..., None] == 1, [200, 40, 40], [30, 30, 160]).astype(np.uint8)
    return Image.fromarray(a, "RGB")


@pytest.fixture
def tiny_paths(tmp_path, tiny_content, tiny_style) -> tuple[Path, Path]:
    """The tiny content and style images saved as files (PNG and JPEG)."""
    content = tmp_path / "inputs" / "content.png"
    style = tmp_path / "inputs" / "style.jpg"
    content.parent.mkdir()
    tiny_content.save(content)
    tiny_style.save(style, quality=95)
    return content, style
