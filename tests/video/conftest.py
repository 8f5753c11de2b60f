"""Small generated clips with known motion (no downloaded video): 96x64 pixels, a few frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from stylelab.video.synthetic import SyntheticClip, make_clip, write_clip

FPS = 24
FRAMES = 12


@pytest.fixture(scope="session")
def clip() -> SyntheticClip:
    return make_clip(FRAMES, (96, 64), seed=0)


@pytest.fixture(scope="session")
def clip_mp4(clip, tmp_path_factory) -> Path:
    """The clip as H.264 with a 440 Hz AAC tone as long as the video (0.5 s)."""
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", clip, FPS, audio_hz=440.0)


def psnr(a, b) -> float:
    import numpy as np

    mse = ((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


TINY_FRAMES = 6


@pytest.fixture(scope="session")
def tiny_clip() -> SyntheticClip:
    """Six 64x48 frames: small enough for the stand-in network to paint a clip in a second."""
    return make_clip(TINY_FRAMES, (64, 48), seed=1)


@pytest.fixture(scope="session")
def tiny_mp4(tiny_clip, tmp_path_factory) -> Path:
    """The tiny clip as H.264 at 24 fps with a 440 Hz tone as long as the video (0.25 s)."""
    return write_clip(tmp_path_factory.mktemp("tiny") / "tiny.mp4", tiny_clip, FPS, audio_hz=440.0)


@pytest.fixture(scope="session")
def stripes(tmp_path_factory) -> Path:
    """A style image: diagonal stripes in two colours."""
    import numpy as np
    from PIL import Image

    yy, xx = np.mgrid[0:48, 0:48]
    a = np.where((((xx + yy) // 4) % 2)[..., None] == 1, [200, 40, 40], [30, 30, 160]).astype(np.uint8)
    path = tmp_path_factory.mktemp("style") / "stripes.png"
    Image.fromarray(a, "RGB").save(path)
    return path
