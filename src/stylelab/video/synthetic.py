"""A short clip whose true motion is known, made from scikit-image's built-in photos.

The camera pans and zooms over ``skimage.data.coffee()`` (an affine map per frame) while a disc
textured with ``skimage.data.astronaut()`` slides across it. Because every pixel's motion is
computed, not estimated, the clip tests optical flow, occlusion checks and stability scores
without any downloaded video.

Conventions (the ones ``flow.py`` uses): a flow ``w`` from frame a to frame b says where each pixel
of a is in b, ``a(x) ~ b(x + w(x))``, so ``warp(b, w) ~ a``.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

# Pixels this close to the disc's rim mix object and background (its edge is anti-aliased, and
# bilinear sampling reaches one pixel further), so their motion is neither; they are marked invalid.
_RIM = 1.5


@dataclass
class SyntheticClip:
    """Frames and their true motion.

    ``forward[t]`` is the flow from frame t to t+1 on frame t's grid; ``backward[t]`` the flow from
    frame t+1 to t on frame t+1's grid. ``forward_valid[t]`` / ``backward_valid[t]`` are 1 where that
    flow is exact and the pixel is visible in the other frame, 0 where it is occluded there, leaves
    the picture, or lies on the disc's rim. ``object_masks[t]`` marks the disc in frame t.
    """

    frames: list[Image.Image]
    forward: list[np.ndarray]
    backward: list[np.ndarray]
    forward_valid: list[np.ndarray]
    backward_valid: list[np.ndarray]
    object_masks: list[np.ndarray]
    radius: float
    centres: list[tuple[float, float]]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self.frames[0].size


def _crop_to_aspect(photo: np.ndarray, aspect: float) -> np.ndarray:
    h, w = photo.shape[:2]
    if w / h > aspect:
        cw = max(1, round(h * aspect))
        x0 = (w - cw) // 2
        return photo[:, x0 : x0 + cw]
    ch = max(1, round(w / aspect))
    y0 = (h - ch) // 2
    return photo[y0 : y0 + ch]


def _category(px: np.ndarray, py: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """1 inside the disc, 0 clearly outside it, -1 on its rim."""
    d = np.hypot(px - centre[0], py - centre[1])
    return np.where(d <= radius - _RIM, 1, np.where(d >= radius + _RIM, 0, -1))


def _inside(px: np.ndarray, py: np.ndarray, w: int, h: int) -> np.ndarray:
    return (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)


def make_clip(
    frames: int = 24,
    size: tuple[int, int] = (96, 64),
    seed: int = 0,
    *,
    pan: tuple[float, float] | None = None,
    zoom: float = 0.01,
    velocity: tuple[float, float] | None = None,
) -> SyntheticClip:
    """Render ``frames`` frames of ``size`` = (width, height) with their true flows and occlusions.

    Args:
        pan: camera motion in pixels per frame (the picture moves the other way); by default a
            random gentle pan drawn from ``seed``.
        zoom: relative zoom per frame (0.01 = 1 % closer each frame).
        velocity: the disc's motion in pixels per frame; by default 2.5 % of the width to the right
            (60 % of it in 24 frames) and a little up or down.

    With ``zoom=0`` and whole-pixel ``pan`` and ``velocity``, consecutive frames are exact shifts of
    each other away from the disc's rim, so warping along the true flow reproduces them exactly.
    """
    import cv2
    from skimage import data

    w, h = size
    if frames < 2 or frames > 2000 or w < 8 or h < 8 or w * h > 4096 * 4096:
        raise ValueError(f"make_clip needs 2..2000 frames of at least 8x8 pixels, not {frames} of {w}x{h}")
    rng = np.random.default_rng(seed)
    if pan is None:
        pan = (float(rng.uniform(0.6, 1.2)), float(rng.uniform(-0.5, 0.5)))
    radius = 0.2 * min(w, h)
    if velocity is None:
        velocity = (0.025 * w, float(rng.uniform(-0.005, 0.005)) * h)
    mid = (frames - 1) / 2.0
    zooms = [(1.0 + zoom) ** (t - mid) for t in range(frames)]
    pans = [(pan[0] * (t - mid), pan[1] * (t - mid)) for t in range(frames)]
    centres = [(0.2 * w + velocity[0] * t, 0.5 * h + velocity[1] * t) for t in range(frames)]

    # The photo is resized once to just cover every frame's view (so no frame samples outside it).
    # Frame pixel p shows base point b = cb + (p - cf) / z_t + pan_t.
    z_min = min(zooms)
    half_w = (w - 1) / 2 / z_min + max(abs(p[0]) for p in pans) + 2
    half_h = (h - 1) / 2 / z_min + max(abs(p[1]) for p in pans) + 2
    bw, bh = 2 * math.ceil(half_w) + 1, 2 * math.ceil(half_h) + 1
    photo = _crop_to_aspect(data.coffee(), bw / bh)
    base = cv2.resize(photo, (bw, bh), interpolation=cv2.INTER_AREA).astype(np.float32)
    cb = ((bw - 1) / 2.0, (bh - 1) / 2.0)
    cf = ((w - 1) / 2.0, (h - 1) / 2.0)

    side = int(2 * math.ceil(radius) + 4)
    face = data.astronaut()[20:320, 120:420]
    texture = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    tc = (side - 1) / 2.0

    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)

    def to_base(t: int, px, py):
        return cb[0] + (px - cf[0]) / zooms[t] + pans[t][0], cb[1] + (py - cf[1]) / zooms[t] + pans[t][1]

    def from_base(t: int, bx, by):
        return cf[0] + (bx - cb[0] - pans[t][0]) * zooms[t], cf[1] + (by - cb[1] - pans[t][1]) * zooms[t]

    images, masks = [], []
    for t in range(frames):
        bx, by = to_base(t, xs, ys)
        bx, by = bx.astype(np.float32), by.astype(np.float32)
        bg = cv2.remap(base, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        c = centres[t]
        obj = cv2.remap(
            texture,
            (xs - c[0] + tc).astype(np.float32),
            (ys - c[1] + tc).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        alpha = np.clip(radius + 0.5 - np.hypot(xs - c[0], ys - c[1]), 0.0, 1.0).astype(np.float32)[..., None]
        img = bg * (1.0 - alpha) + obj * alpha
        images.append(Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8), "RGB"))
        masks.append(alpha[..., 0] >= 0.5)

    def flow_between(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """True flow from frame a to frame b on a's grid, and where it is valid."""
        cat_a = _category(xs, ys, centres[a], radius)
        qx_bg, qy_bg = from_base(b, *to_base(a, xs, ys))
        dx, dy = centres[b][0] - centres[a][0], centres[b][1] - centres[a][1]
        # Rim pixels are invalid either way, but their flow is that of the layer that dominates them
        # (alpha >= 0.5), so that a check following the flow onto the rim sees the disc's motion.
        on_obj = np.hypot(xs - centres[a][0], ys - centres[a][1]) <= radius
        qx = np.where(on_obj, xs + dx, qx_bg)
        qy = np.where(on_obj, ys + dy, qy_bg)
        valid = (cat_a != -1) & _inside(qx, qy, w, h) & (_category(qx, qy, centres[b], radius) == cat_a)
        flow = np.stack([qx - xs, qy - ys], -1).astype(np.float32)
        return flow, valid.astype(np.float32)

    forward, backward, fvalid, bvalid = [], [], [], []
    for t in range(frames - 1):
        f, fv = flow_between(t, t + 1)
        b, bv = flow_between(t + 1, t)
        forward.append(f)
        fvalid.append(fv)
        backward.append(b)
        bvalid.append(bv)
    return SyntheticClip(images, forward, backward, fvalid, bvalid, masks, radius, centres)


def write_sine(
    path: str | Path, seconds: float, hz: float = 440.0, *, sample_rate: int = 44100, codec: str = "aac"
) -> Path:
    """Write an audio-only file holding a sine tone (``codec`` "aac" for .m4a, "pcm_s16le" for .wav)."""
    import av

    path = Path(path)
    n = max(1, round(seconds * sample_rate))
    tone = (0.3 * np.sin(2 * np.pi * hz * np.arange(n) / sample_rate)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono", rate=sample_rate)
        pts = 0
        for k in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, k : k + 1024], format="flt", layout="mono")
            frame.sample_rate = sample_rate
            for r in resampler.resample(frame):
                r.pts = pts
                pts += r.samples
                out.mux(stream.encode(r))
        out.mux(stream.encode(None))
    return path


def write_clip(
    path: str | Path,
    clip: SyntheticClip,
    fps: float | Fraction = 24,
    *,
    audio_hz: float | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the clip as a video file (or a folder of frames), with a sine tone as audio if ``audio_hz``."""
    from .writer import VideoWriter

    with tempfile.TemporaryDirectory(prefix="stylelab-tone-") as tmp:
        tone = None
        if audio_hz is not None:
            tone = write_sine(Path(tmp) / "tone.m4a", len(clip.frames) / float(fps), audio_hz)
        with VideoWriter(path, fps, clip.size, audio_from=tone, overwrite=overwrite) as writer:
            for frame in clip.frames:
                writer.write(frame)
    return Path(path)
