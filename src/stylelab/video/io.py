"""Reading videos (any file FFmpeg opens, through PyAV) or folders of frames, one frame at a time.

Frames are streamed: at most one decoded frame is held, whatever the length of the video. Every
input a user may give is either read or refused with one line (``VideoError``): missing, empty,
not a video, a still image, damaged, frames over ``MAX_FRAME_PIXELS``, or a selection over
``MAX_FRAMES`` frames. ``VideoWriter`` (in ``writer.py``) is importable from here too.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image

from ..errors import StylelabError, VideoError

# 8K UHD (7680x4320) is the largest frame any camera or editor makes; a file that declares more
# is damaged or hostile, and one such RGB frame is already 100 MB.
MAX_FRAME_PIXELS = 7680 * 4320
# Painting takes seconds a frame, so 20 000 frames (14 minutes at 24 fps) is days of work: a
# longer selection is almost surely a mistake, and the message says how to choose a piece.
MAX_FRAMES = 20_000
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FOLDER_FPS = Fraction(24)  # a folder of frames has no frame rate of its own
# Demuxers that open a single picture: a still image is not a video.
_STILL_FORMATS = re.compile(r"(_pipe|^image2|^tty)$")


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` learns about a video without decoding it (frame count and duration may be unknown)."""

    path: Path
    fps: Fraction
    width: int
    height: int
    frames: int | None
    duration: float | None
    has_audio: bool
    codec: str
    audio_codec: str | None = None
    is_folder: bool = False


def _first_line(exc: BaseException) -> str:
    # FFmpeg's errors read "[Errno 1094995529] Invalid data found...: 'file'"; its words are enough.
    text = (getattr(exc, "strerror", None) or str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: str | Path) -> list[Path]:
    """The image files of a folder of frames, in natural order (frame_2 before frame_10); hidden files skipped."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")]
    files = [p for p in files if p.is_file()]
    if not files:
        raise VideoError(f"{folder} holds no frames ({', '.join(FRAME_SUFFIXES)} files)")
    return sorted(files, key=_natural_key)


def _check_path(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise VideoError(f"no such file or folder: {path}")
    if path.is_file() and path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes), not a video")
    if not os.access(path, os.R_OK):
        raise VideoError(f"{path} cannot be read (permission denied)")
    return path


def _check_pixels(path: Path, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise VideoError(f"{path} declares a frame size of {width}x{height}; the file is damaged")
    if width * height > max_pixels:
        raise VideoError(f"{path} has {width}x{height} frames, over the limit of {max_pixels:,} pixels")


def _open(path: Path, max_pixels: int):
    """Open a video file and return (container, video stream), or raise VideoError with one line."""
    import av

    try:
        container = av.open(str(path), "r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path} is not a video stylelab can read ({_first_line(exc)})") from None
    try:
        if _STILL_FORMATS.search(container.format.name or ""):
            raise VideoError(f"{path} is a still image, not a video; paint it with `stylelab run`")
        if not container.streams.video:
            what = "it holds only audio" if container.streams.audio else "no video stream: damaged or not a video"
            raise VideoError(f"{path} has no video to paint ({what})")
        stream = container.streams.video[0]
        _check_pixels(path, stream.codec_context.width, stream.codec_context.height, max_pixels)
        stream.thread_type = "AUTO"  # frame threads: the decoder, not Python, keeps the cores busy
        return container, stream
    except BaseException:
        container.close()
        raise


def probe(path: str | Path, *, fps: float | Fraction | None = None, max_pixels: int = MAX_FRAME_PIXELS) -> VideoInfo:
    """Frame rate, size, frame count, duration, audio and codec of a video file or a folder of frames.

    ``fps`` is only for a folder of frames (default 24). Width and height are those of the frames as
    stored; ``read_frames`` turns frames with a display rotation upright (swapping them for 90 degrees).

    Raises:
        VideoError: missing, empty, not a video, or frames over ``max_pixels``.
    """
    path = _check_path(path)
    if path.is_dir():
        files = frame_files(path)
        rate = _folder_fps(fps)
        first = _load_frame(files[0], max_pixels)
        return VideoInfo(
            path, rate, first.width, first.height, len(files), len(files) / float(rate), False, "images", is_folder=True
        )
    container, stream = _open(path, max_pixels)
    try:
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate or rate <= 0:
            raise VideoError(f"{path} does not say its frame rate; the file is damaged")
        duration = None
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000  # AV_TIME_BASE
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            path=path,
            fps=Fraction(rate),
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            frames=stream.frames or None,
            duration=duration,
            has_audio=audio is not None,
            codec=stream.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )
    finally:
        container.close()


def _folder_fps(fps) -> Fraction:
    if fps is None:
        return FOLDER_FPS
    rate = Fraction(fps).limit_denominator(1001)
    if not 0 < rate <= 1000:
        raise VideoError(f"--fps must be between 0 and 1000, not {fps}")
    return rate


def _load_frame(path: Path, max_pixels: int) -> Image.Image:
    from ..images import load_rgb

    try:
        return load_rgb(path, max_pixels=max_pixels)[0]
    except StylelabError as exc:
        raise VideoError(f"frame {exc}") from None


def _target_size(size, width: int, height: int, max_pixels: int) -> tuple[int, int]:
    """``size`` as (W, H): None keeps the frame size, an int is the longest side, a pair is exact."""
    if size is None:
        return width, height
    if isinstance(size, int):
        if size < 8:
            raise VideoError(f"size must be at least 8 pixels, not {size}")
        scale = size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    w, h = (int(v) for v in size)
    if w < 1 or h < 1 or w * h > max_pixels:
        raise VideoError(f"size {w}x{h} must be positive and at most {max_pixels:,} pixels")
    return w, h


def _selection(start, end, max_frames, fps: Fraction, duration: float | None, known: int | None, limit: int):
    """(first index, end index or None, frame cap) for a --start/--end/--max-frames selection, checked."""
    if start is not None and (not math.isfinite(start) or start < 0):
        raise VideoError(f"--start must be a time in seconds, 0 or more, not {start}")
    if end is not None and (not math.isfinite(end) or end <= (start or 0)):
        raise VideoError(f"--end must be a time in seconds after --start ({start or 0}), not {end}")
    if max_frames is not None and max_frames < 1:
        raise VideoError(f"--max-frames must be 1 or more, not {max_frames}")
    # A frame belongs to the selection when its time is in [start, end); 1e-6 forgives float noise.
    first = math.ceil((start or 0) * fps - 1e-6)
    stop = math.ceil(end * fps - 1e-6) if end is not None else None
    total = known if known is not None else (math.ceil(duration * fps - 1e-6) if duration else None)
    if total is not None and first >= total:
        length = f"{duration:.2f} s" if duration else f"{total} frames"
        raise VideoError(f"--start {start} is past the end of the video ({length})")
    ends = [v for v in (stop, total) if v is not None]
    caps = [v for v in (min(ends) - first if ends else None, max_frames) if v is not None]
    if not caps:
        raise VideoError("the video does not say how long it is; give --end or --max-frames")
    count = min(caps)
    if count < 1:
        raise VideoError(f"no frame falls between --start {start or 0} and --end {end} at {float(fps):g} fps")
    if count > limit:
        raise VideoError(
            f"the selection is {count:,} frames, over the limit of {limit:,}; "
            "choose a piece with --start/--end or --max-frames"
        )
    return first, stop, count


def read_frames(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    max_frames: int | None = None,
    size: int | tuple[int, int] | None = None,
    *,
    fps: float | Fraction | None = None,
    max_pixels: int = MAX_FRAME_PIXELS,
    limit: int = MAX_FRAMES,
    skip: int = 0,
) -> Iterator[tuple[int, Image.Image]]:
    """Yield ``(index, RGB image)`` for the frames of a video file or folder of frames, one at a time.

    ``start``/``end`` are seconds (frames with start <= time < end); ``max_frames`` caps the count.
    ``index`` is the frame's number from the beginning of the video, ``round(time * fps)``, so a
    piece read with ``start`` keeps its place. ``size`` resizes every frame (an int: the longest
    side; a pair: exact (W, H)); without it all frames take the first frame's size, so a stream that
    changes resolution midway still gives frames one writer can take. Display rotation is applied.
    ``skip``: the first ``skip`` frames of the selection are passed over unconverted and unresized
    (a video's are still decoded, as they must be; a folder's are not read).

    Raises:
        VideoError: as ``probe``, a selection outside the video or over ``limit`` frames, or a
            file that turns out to be damaged while it is decoded.
    """
    info = probe(path, fps=fps, max_pixels=max_pixels)
    first, stop, count = _selection(start, end, max_frames, info.fps, info.duration, info.frames, limit)
    if info.is_folder:
        return _read_folder(info, first, stop, count, size, max_pixels, skip)
    return _read_video(info, first, stop, count, size, max_pixels, skip)


def _fit(img: Image.Image, target: tuple[int, int] | None) -> Image.Image:
    return img if target is None or img.size == target else img.resize(target, Image.Resampling.LANCZOS)


def _read_folder(info: VideoInfo, first: int, stop, count: int, size, max_pixels: int, skip: int = 0):
    files = frame_files(info.path)[first : stop if stop is not None else None][:count]
    target = _target_size(size, info.width, info.height, max_pixels)
    for i, file in enumerate(files[skip:], skip):
        yield first + i, _fit(_load_frame(file, max_pixels), target)


def _upright(img: Image.Image, rotation: int) -> Image.Image:
    # The display matrix rotates counter-clockwise, as PIL's ROTATE_* transposes do.
    ops = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return img.transpose(ops[rotation]) if rotation in ops else img


def _read_video(info: VideoInfo, first: int, stop, count: int, size, max_pixels: int, skip: int = 0):
    import av

    container, stream = _open(info.path, max_pixels)
    name, fps, n, target, last = info.path, info.fps, 0, None, -1
    ended = True  # the stream ran out before the selection did
    try:
        origin = stream.start_time or 0
        if first > 0:
            # Seek to the keyframe at or before the start, then decode forward to it.
            container.seek(origin + int(Fraction(first, 1) / fps / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is not None:
                index = round((frame.pts - origin) * stream.time_base * fps)
            else:
                index = last + 1
            index = max(index, last + 1)  # variable frame rates must not repeat an index
            if index < first:
                continue
            if stop is not None and index >= stop:
                ended = False
                break
            _check_pixels(name, frame.width, frame.height, max_pixels)
            rotation = round((frame.rotation or 0) / 90) * 90 % 360
            if target is None:  # the first selected frame's size, upright
                upright = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
                target = _target_size(size, *upright, max_pixels)
            last = index
            if n >= skip:  # a skipped frame is decoded (the stream needs it) but never converted
                yield index, _fit(_upright(frame.to_image(), rotation), target)
            n += 1
            if n >= count:
                ended = False
                break
    except av.FFmpegError as exc:
        raise VideoError(f"{name} is damaged near frame {last + 1} ({_first_line(exc)})") from None
    finally:
        container.close()
    if n == 0:
        raise VideoError(f"{name} has no frames to read in the selection (the file may be damaged)")
    # A file cut short still opens and decodes up to the cut; only its declared length tells. Two
    # frames of slack: declared counts can be off by one or two (edit lists, variable rates).
    if ended and info.frames and last + 1 < min(first + count, info.frames) - 2:
        raise VideoError(f"{name} ends after frame {last} though it declares {info.frames}; the file is truncated")


def __getattr__(name: str):
    # VideoWriter lives in writer.py (which uses this module); importing it lazily avoids a cycle.
    if name == "VideoWriter":
        from .writer import VideoWriter

        return VideoWriter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
