"""Writing a painted video: H.264 in an MP4, MOV or MKV file, or a folder of PNG frames, never half-written.

Everything goes to a hidden temporary name beside the output (``.out.mp4.<random>.part.mp4`` or a
``.part`` folder) and is renamed into place only when the last frame is in; on any error, or an
exception in the ``with`` block, the temporary is removed and nothing else is touched. An existing
output is refused unless ``overwrite=True``; a folder is only replaced when it holds nothing but
``frame_NNNNNN.png`` files.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import VideoError
from .io import MAX_FRAME_PIXELS, _first_line

FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
FRAME_NAME = "frame_{:06d}.png"
_FRAME_FILE = re.compile(r"frame_\d{6}\.png")
# Audio codecs an MP4/MOV file can hold as they are; others (PCM, Vorbis, FLAC...) are re-encoded
# to AAC. Matroska takes any codec, so its audio is always copied.
_AAC_RATES = {7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
_COPYABLE = {"mp4": {"aac", "mp3", "alac", "ac3", "eac3"}, "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le"}}


def pick_codec() -> str:
    """The video encoder: libx264 when PyAV's FFmpeg build has it (its wheels do), else mpeg4."""
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:  # noqa: BLE001 - any failure to find the encoder means "not available"
        return "mpeg4"


class _Audio:
    """Copies (or re-encodes) the source's audio for the written span, interleaved with the video."""

    def __init__(self, source: Path, out, fmt: str, start: float, end: float | None):
        import av

        try:
            self.src = av.open(str(source), "r")
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot read the audio of {source} ({_first_line(exc)})") from None
        self.stream = self.src.streams.audio[0] if self.src.streams.audio else None
        if self.stream is None:
            return
        try:
            self._setup(out, fmt, start, end)
        except BaseException:
            self.src.close()
            raise

    def _setup(self, out, fmt: str, start: float, end: float | None) -> None:
        import av

        ctx = self.stream.codec_context
        self.copy = fmt == "matroska" or ctx.name in _COPYABLE.get(fmt, set())
        if self.copy:
            self.out = out.add_stream_from_template(self.stream)
        else:
            # By channel count, not the source's layout name: a WAV's "1 channels" (unordered) is
            # refused by the AAC encoder; other counts are mixed down to stereo.
            layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(ctx.channels, "stereo")
            rate = ctx.sample_rate if ctx.sample_rate in _AAC_RATES else 48000
            self.out = out.add_stream("aac", rate=rate, layout=layout)
            self.resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            self.samples = 0
        tb = self.stream.time_base
        self.origin = (self.stream.start_time or 0) + (round(Fraction(start) / tb) if start else 0)
        self.trim = bool(start)
        self.end = end - start if end is not None else None
        if start:
            self.src.seek(self.origin, stream=self.stream, backward=True)
        self.packets = self.src.demux(self.stream)
        self.pending = None
        self.done = False

    def until(self, out, seconds: float) -> None:
        """Mux the audio from the span's start up to ``seconds`` into it."""
        if self.stream is None or self.done:
            return
        if self.end is not None:
            seconds = min(seconds, self.end)
        stop = self.origin + seconds / self.stream.time_base
        while True:
            packet = self.pending or next(self.packets, None)
            self.pending = None
            if packet is None:
                self.done = True
                return
            if packet.dts is None:  # the demuxer's final empty packet: flushes the decoder
                if not self.copy:
                    self._encode(out, packet.decode())
                continue
            if packet.pts is not None and packet.pts >= stop:
                self.pending = packet
                return
            if self.trim and packet.pts is not None and packet.pts < self.origin:
                continue
            if self.copy:
                if self.trim:
                    packet.pts -= self.origin
                    packet.dts -= self.origin
                packet.stream = self.out
                out.mux(packet)
            else:
                self._encode(out, packet.decode())

    def _encode(self, out, frames) -> None:
        # The span's end is kept packet by packet in until(); here a packet is decoded whole.
        for frame in frames:
            for part in self.resampler.resample(frame):
                self._mux(out, part)

    def _mux(self, out, frame) -> None:
        frame.pts = self.samples
        self.samples += frame.samples
        out.mux(self.out.encode(frame))

    def finish(self, out, seconds: float) -> None:
        if self.stream is None:
            return
        self.until(out, seconds)
        if not self.copy:
            for part in self.resampler.resample(None):
                self._mux(out, part)
            out.mux(self.out.encode(None))

    def close(self) -> None:
        self.src.close()


class VideoWriter:
    """Write frames to ``path`` (.mp4/.m4v/.mov/.mkv: H.264, yuv420p; no suffix: a folder of PNG frames).

    Use as a context manager::

        with VideoWriter("out.mp4", info.fps, (w, h), audio_from="in.mp4", start=2.0) as out:
            for _, frame in read_frames("in.mp4", start=2.0):
                out.write(paint(frame))

    ``audio_from`` copies that file's audio (re-encoded to AAC where the container cannot hold it)
    from ``start`` seconds for as long as the frames written last (at most to ``end``). An odd
    width or height is padded by one pixel (repeating the edge), as yuv420p needs even sizes; such
    adjustments are listed in ``notes`` for the caller to show. ``codec`` defaults to ``pick_codec()``.
    ``metadata`` (text) goes into the container's tags (``comment``, ``title``...: MP4 and MOV keep
    only the standard keys), or into every PNG frame's text chunks for a folder.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float | Fraction,
        size: tuple[int, int],
        audio_from: str | Path | None = None,
        start: float | None = None,
        end: float | None = None,
        *,
        overwrite: bool = False,
        codec: str | None = None,
        crf: int = 18,
        max_pixels: int = MAX_FRAME_PIXELS,
        metadata: dict[str, str] | None = None,
    ):
        self.path = Path(path).expanduser()
        suffix = self.path.suffix.lower()
        self.is_folder = suffix == "" or self.path.is_dir()
        if not self.is_folder and suffix not in FORMATS:
            raise VideoError(f"cannot write {suffix} files; name the output .mp4, .mov, .mkv or a folder")
        self.fps = Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps
        if not 0 < self.fps <= 1000:
            raise VideoError(f"the frame rate must be between 0 and 1000, not {fps}")
        w, h = (int(v) for v in size)
        if w < 1 or h < 1 or w * h > max_pixels:
            raise VideoError(f"frame size {w}x{h} must be positive and at most {max_pixels:,} pixels")
        self.size = (w, h)
        self.output_size = self.size if self.is_folder else (w + w % 2, h + h % 2)
        self.notes: list[str] = []
        if self.output_size != self.size:
            self.notes.append(
                f"{w}x{h} has an odd side: padded to {self.output_size[0]}x{self.output_size[1]} "
                "by repeating the last column/row (H.264 in yuv420p needs even sizes)"
            )
        self.overwrite = overwrite
        self.codec = codec or pick_codec()
        self.crf = crf
        self.metadata = dict(metadata or {})
        self.start, self.end = start or 0.0, end
        self.audio_from = Path(audio_from).expanduser() if audio_from is not None else None
        if self.audio_from is not None and self.is_folder:
            self.notes.append("a folder of frames keeps no audio")
            self.audio_from = None
        if self.audio_from is not None and self.path.exists() and self.path.resolve() == self.audio_from.resolve():
            raise VideoError(f"{self.path} is the input; write the result under another name")
        self._check_target()
        self.frames_written = 0
        self._tmp: Path | None = None
        self._out = self._stream = self._audio = None

    # -- the target -------------------------------------------------------------------------

    def _check_target(self) -> None:
        p = self.path
        if self.is_folder:
            if p.exists() and not p.is_dir():
                raise VideoError(f"{p} is a file; a folder of frames needs a new or empty folder")
            entries = list(p.iterdir()) if p.is_dir() else []
            if entries and not self.overwrite:
                raise VideoError(f"{p} is not empty; pass --overwrite to replace its frames, or choose a new folder")
            if entries and not all(e.is_file() and _FRAME_FILE.fullmatch(e.name) for e in entries):
                raise VideoError(f"{p} holds files other than frame_NNNNNN.png; choose a new or empty folder")
        elif p.exists() and not self.overwrite:
            raise VideoError(f"{p} exists; pass --overwrite to replace it, or choose another name")
        elif p.is_dir():
            raise VideoError(f"{p} is a folder; give a file name ending in .mp4, .mov or .mkv")

    # -- opening, writing, closing ---------------------------------------------------------

    def __enter__(self) -> VideoWriter:
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Create the temporary output (``__enter__`` does this)."""
        import av

        token = secrets.token_hex(6)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.is_folder:
                self._tmp = self.path.parent / f".{self.path.name}.{token}.part"
                self._tmp.mkdir()
                return
            # The real suffix last, so that anything looking at the name sees what it is.
            self._tmp = self.path.parent / f".{self.path.name}.{token}.part{self.path.suffix}"
            fmt = FORMATS[self.path.suffix.lower()]
            options = {"movflags": "+faststart"} if fmt in ("mp4", "mov") else {}
            self._out = av.open(str(self._tmp), "w", format=fmt, options=options)
            self._out.metadata.update(self.metadata)
            stream = self._out.add_stream(self.codec, rate=self.fps)
            stream.width, stream.height = self.output_size
            stream.pix_fmt = "yuv420p"
            if self.codec == "libx264":
                stream.options = {"crf": str(self.crf), "preset": "medium"}
            else:
                # mpeg4 has no constant-quality mode in PyAV's options; ~1 bit per pixel looks clean.
                stream.bit_rate = max(1_000_000, int(self.output_size[0] * self.output_size[1] * float(self.fps)))
            self._stream = stream
            if self.audio_from is not None:
                self._audio = _Audio(self.audio_from, self._out, fmt, self.start, self.end)
                if self._audio.stream is None:
                    self.notes.append(f"{self.audio_from} has no audio")
        except VideoError:
            self.abort()
            raise
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(f"cannot write {self.path} ({_first_line(exc)})") from None

    def _as_array(self, frame: Any) -> np.ndarray:
        if hasattr(frame, "detach"):  # a (1, 3, H, W) or (3, H, W) tensor in 0..1
            from ..images import to_pil

            frame = to_pil(frame)
        if isinstance(frame, Image.Image):
            frame = np.asarray(frame.convert("RGB"))
        a = np.asarray(frame)
        if a.dtype.kind == "f":  # floats are 0..1 by convention, as tensors are
            a = (np.clip(np.nan_to_num(a), 0.0, 1.0) * 255.0).round().astype(np.uint8)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            raise VideoError(f"a frame must be an RGB image or HxWx3 array, not {a.dtype} {a.shape}")
        if (a.shape[1], a.shape[0]) != self.size:
            got, want = f"{a.shape[1]}x{a.shape[0]}", f"{self.size[0]}x{self.size[1]}"
            raise VideoError(f"frame {self.frames_written} is {got}, not {want} like the others")
        ph, pw = self.output_size[1] - a.shape[0], self.output_size[0] - a.shape[1]
        return np.pad(a, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else a

    def _png_info(self):
        if not self.metadata:
            return None
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        for key, value in self.metadata.items():
            info.add_itxt(key, value)
        return info

    def write(self, frame: Any) -> None:
        """Append one frame of ``size``: a PIL image, an HxWx3 array (uint8, or float in 0..1) or a 1x3xHxW tensor."""
        import av

        if self._tmp is None:
            raise VideoError("the writer is not open; use it as `with VideoWriter(...) as out:`")
        a = self._as_array(frame)
        try:
            if self.is_folder:
                name = self._tmp / FRAME_NAME.format(self.frames_written + 1)
                Image.fromarray(a, "RGB").save(name, compress_level=4, pnginfo=self._png_info())
            else:
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24")
                vf.pts = self.frames_written
                self._out.mux(self._stream.encode(vf))
                if self._audio is not None:
                    self._audio.until(self._out, (self.frames_written + 1) / self.fps)
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot write frame {self.frames_written} to {self.path} ({_first_line(exc)})") from None
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file and move it into place; returns the output path."""
        import av

        if self._tmp is None:
            raise VideoError("the writer is not open")
        if self.frames_written == 0:
            self.abort()
            raise VideoError(f"no frames were written; {self.path} was not created")
        try:
            if not self.is_folder:
                self._out.mux(self._stream.encode(None))
                if self._audio is not None:
                    self._audio.finish(self._out, self.frames_written / self.fps)
                self._out.close()
                self._out = None
                with open(self._tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            self._move_into_place()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise VideoError(f"cannot finish {self.path} ({_first_line(exc)})") from None
        except BaseException:
            self.abort()
            raise
        self._close_audio()
        self._tmp = None
        return self.path

    def _move_into_place(self) -> None:
        tmp, path = self._tmp, self.path
        if self.is_folder:
            if path.is_dir() and any(path.iterdir()):
                self._check_target()  # still only our kind of files
                old = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
                path.rename(old)
                tmp.rename(path)
                for f in old.iterdir():
                    f.unlink()
                old.rmdir()
            else:
                if path.is_dir():
                    path.rmdir()
                tmp.rename(path)
            return
        if self.overwrite:
            os.replace(tmp, path)
            return
        try:
            # A hard link fails if the name was taken meanwhile, where a rename would replace it.
            os.link(tmp, path)
        except FileExistsError:
            raise VideoError(f"{path} appeared while writing; pass --overwrite to replace it") from None
        except OSError:
            if path.exists():
                raise VideoError(f"{path} appeared while writing; pass --overwrite to replace it") from None
            os.replace(tmp, path)
            return
        tmp.unlink()

    def _close_audio(self) -> None:
        if self._audio is not None:
            self._audio.close()
        self._audio = None

    def abort(self) -> None:
        """Discard what was written: close everything and remove the temporary output."""
        if self._out is not None:
            try:
                self._out.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away; its trailer does not matter
                pass
            self._out = None
        if self._audio is not None:
            self._close_audio()
        if self._tmp is not None:
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None
