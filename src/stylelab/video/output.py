"""The painted video: written from a run folder's frames, marked as stylelab's, replaced only when marked.

The video keeps the input's frame rate, its (upright) frame size and its audio for the span
painted. It carries ``MARKER`` in its container's comment tag (a folder of frames: in every PNG's
text), and an existing output is replaced only when it carries that marker, so a file or folder of
the user's is refused before any work (``check_output``).
"""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from .. import __version__, folders
from ..errors import VideoError

MARKER = "made by stylelab video"  # the container's comment tag, or each PNG frame's comment
FRAME_FILE = r"frame_\d{6}\.png"
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


def frame_name(frame: int) -> str:
    return f"frame_{frame:06d}.png"


def _png_marked(path: Path) -> bool:
    try:
        with Image.open(path) as img:
            return str(img.info.get("comment", "")).startswith(MARKER)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False


def is_stylelab_video(path: str | Path) -> bool:
    """Whether ``path`` is a video (or folder of frames) written by ``stylelab video``: one it may replace.

    A file carries ``MARKER`` in its container's comment tag; a folder holds nothing but
    frame_NNNNNN.png files that each carry it (an empty folder holds nothing to lose)."""
    path = Path(path)
    if path.is_symlink():
        return False
    if path.is_dir():
        entries = list(path.iterdir())
        return all(e.is_file() and re.fullmatch(FRAME_FILE, e.name) and _png_marked(e) for e in entries)
    try:
        import av

        with av.open(str(path), "r") as container:
            tags = {k.lower(): str(v) for k, v in container.metadata.items()}
    except Exception:  # noqa: BLE001 - anything that does not open as a video is not one of ours
        return False
    return tags.get("comment", "").startswith(MARKER)


def check_output(output: str | Path, source: str | Path) -> Path:
    """Refuse, before any work, an output that is the input, of a kind stylelab cannot write, or an
    existing file or folder that stylelab video did not write. Returns it as given (expanded)."""
    output = Path(output).expanduser()
    suffix = output.suffix.lower()
    if suffix and suffix not in VIDEO_SUFFIXES:
        raise VideoError(f"-o {output}: name the output .mp4, .mov, .mkv or a folder (no suffix), not {suffix}")
    if output.exists() and Path(source).expanduser().exists() and output.resolve() == Path(source).resolve():
        raise VideoError(f"-o {output} is the input; write the result under another name")
    if suffix:
        return folders.check_output_file(output, is_stylelab_video, what="video")
    if output.is_symlink():
        raise folders.UnsafeFolderError(f"-o {output} is a symbolic link; give the folder itself")
    if output.exists() and not output.is_dir():
        raise VideoError(f"-o {output} is a file; a folder of frames needs a new or empty folder (or name it .mp4)")
    if output.is_dir() and not is_stylelab_video(output):
        raise folders.UnsafeFolderError(
            f"-o {output} already exists and holds files stylelab video did not write; choose a new folder"
        )
    return output


def assemble(run_dir: str | Path, output: str | Path, plan) -> tuple[Path, list[str]]:
    """Write the video from the run folder's frames: the input's rate, frame size and audio (for
    the selection's span), marked as stylelab's. Returns (output, the writer's notes)."""
    from .writer import VideoWriter

    run_dir, output = Path(run_dir), Path(output)
    spec, info = plan.spec, plan.info
    audio = Path(spec.source) if info.has_audio and not info.is_folder else None
    writer = VideoWriter(
        output,
        plan.fps,
        plan.frame_size,
        audio_from=audio,
        start=spec.start,
        end=spec.end,
        overwrite=output.exists(),
        metadata={"comment": f"{MARKER} {__version__}"},
    )
    with writer:
        for n in range(1, plan.count + 1):
            try:
                with Image.open(run_dir / "frames" / frame_name(n)) as img:
                    frame = img.convert("RGB")
            except (OSError, ValueError) as exc:
                raise VideoError(f"{run_dir / 'frames' / frame_name(n)} cannot be read ({exc})") from None
            if frame.size != plan.frame_size:
                frame = frame.resize(plan.frame_size, Image.Resampling.LANCZOS)
            writer.write(frame)
    return output, list(writer.notes)
