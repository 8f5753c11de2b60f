"""Uploaded videos: recognised by what FFmpeg finds in them, never by their name, and bounded.

A video upload is a container PyAV reads (MP4/MOV, Matroska/WebM) holding a video
stream that decodes; it is refused with one line for anything else: a text file
named ``.mp4``, a still image, audio only, a damaged file, frames over the pixel
limit, or more frames than the studio paints (``--max-video-frames``). The bytes
are bounded before this runs (``UploadStore``). The studio's own size bound
applies to the painted size, which every job's recipe sets (``limits``).
"""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import StylelabError

DEFAULT_MAX_VIDEO_FRAMES = 300  # 12.5 s at 24 fps: minutes of painting a frame at the studio's sizes
# FFmpeg's demuxer names (``container.format.name`` lists a family) -> the extensions stored, default first.
CONTAINERS = {"mov": ("mp4", "mov"), "mp4": ("mp4", "mov"), "matroska": ("mkv", "webm"), "webm": ("webm", "mkv")}
VIDEO_EXTENSIONS = ("mp4", "mov", "mkv", "webm")
TAKEN = "MP4, MOV, MKV or WebM"


def check_video_limits(max_video_mb: float, max_video_frames: int) -> None:
    """Refuse video bounds out of range (``stylelab serve --max-video-mb / --max-video-frames``)."""
    if not max_video_mb > 0:
        raise StylelabError(f"--max-video-mb must be > 0, not {max_video_mb}")
    if isinstance(max_video_frames, bool) or not isinstance(max_video_frames, int) or max_video_frames < 1:
        raise StylelabError(f"--max-video-frames must be a whole number, at least 1, not {max_video_frames!r}")


class VideoRefused(StylelabError):
    """A video upload the studio will not paint; the message says why."""


def _container(path: Path) -> tuple[str, str | None]:
    """(the demuxer's name, the first video codec's name) of a file FFmpeg opens."""
    import av

    with av.open(str(path), "r") as container:
        codec = container.streams.video[0].codec_context.name if container.streams.video else None
        return container.format.name or "", codec


def _count_packets(path: Path, most: int) -> int:
    """Video packets in the file (one per frame), counted without decoding, up to ``most + 1``."""
    import av

    n = 0
    with av.open(str(path), "r") as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                n += 1
                if n > most:
                    break
    return n


def examine_video(path: Path, shown: str, *, max_frames: int, max_pixels: int) -> dict:
    """Probe the file at ``path`` (uploaded as ``shown``) and describe it, or raise VideoRefused.

    Returns ``{"format", "ext", "width", "height", "frames", "fps", "duration", "has_audio"}``;
    ``frames`` is the declared count, or the duration times the rate, or the packets counted.
    """
    from ..errors import VideoError
    from ..video.io import probe, read_frames

    not_ours = f"{shown} is not an image or a video the studio takes (PNG, JPEG, WebP, GIF, BMP, TIFF; {TAKEN})"
    try:
        family, codec = _container(path)
    except Exception:  # noqa: BLE001 - anything FFmpeg cannot open is not a video we take
        raise VideoRefused(not_ours) from None
    names = [n for n in family.split(",") if n in CONTAINERS]
    if not names:
        raise VideoRefused(not_ours)
    try:  # (probe says why a container without a video stream has nothing to paint)
        info = probe(path, max_pixels=max_pixels)
        next(iter(read_frames(path, max_frames=1, max_pixels=max_pixels)))  # the first frame decodes
    except VideoError as exc:
        raise VideoRefused(str(exc).replace(str(path), shown)) from None
    except Exception:  # noqa: BLE001 - a decoder failing in any other way: damaged
        raise VideoRefused(f"{shown} cannot be decoded (damaged, or a codec FFmpeg lacks here)") from None
    frames = info.frames
    if not frames and info.duration:
        frames = max(1, math.ceil(info.duration * info.fps - 1e-6))
    if not frames:
        frames = _count_packets(path, max_frames)
    if frames > max_frames:
        seconds = f" ({frames / float(info.fps):.1f} s at {float(info.fps):g} fps)"
        raise VideoRefused(
            f"{shown} has {frames} frames{seconds}, over this studio's {max_frames}: cut a shorter piece"
            " (stylelab serve --max-video-frames sets the limit)"
        )
    suffix = Path(shown).suffix.lower().lstrip(".")
    allowed = CONTAINERS[names[0]]
    ext = suffix if suffix in allowed else allowed[0]
    return {
        "format": ext.upper() if ext != "webm" else "WebM",
        "ext": ext,
        "width": info.width,
        "height": info.height,
        "frames": int(frames),
        "fps": float(info.fps),
        "duration": round(frames / float(info.fps), 3),
        "has_audio": info.has_audio,
    }
