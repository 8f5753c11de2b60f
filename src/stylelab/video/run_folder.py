"""A video's run folder: what it holds, recognising it, and writing it as frames finish.

A video run folder holds::

    video.json        the settings (input, selection, styles, recipe, frame steps, flow), the
                      input's rate and sizes, frames done, status, timings, the engine's counters
    recipe.toml       the recipe as resolved
    frames.csv        a row per frame: frame, index, steps, seconds, status, reliable, each loss term
    frames/frame_000001.png ...     each frame as the video shows it, at the painted size, lossless
    luminance/frame_000001.png ...  (luminance preservation) the painted grey frames, which the
                      next frame carries along the flow
    video.mp4         the video, when no other output was named (``run_clip(output=None)``)

Unlike a still's run folder it is written in place, not renamed from ``.partial``: it is the
state a killed run goes on from. On start, a folder holding frames 1..k painted with the same
settings (``video.json``) goes on from frame k+1, carrying frame k's saved picture (exactly the
pixels frame k+1 would have carried: frames are saved lossless and the engine is reseeded per
frame), so the frames are those of an uninterrupted run. A folder painted with other settings
is refused unless ``restart`` (it is then cleared, only if it holds nothing but what stylelab
writes there: folders.py).
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__, folders, images
from ..errors import VideoError
from ..terms import term_names
from .output import FRAME_FILE, VIDEO_SUFFIXES, frame_name
from .pipeline import ClipPlan, PaintedFrame

KIND = "stylelab-video"
VIDEO_NAME = "video.mp4"  # the video inside the run folder when no output is named
DEMO_CLIP, DEMO_STYLE = "clip.mp4", "style.png"  # `stylelab video --demo`'s inputs, in inputs/
VIDEO_LAYOUT = folders.Layout(
    files=r"video\.json|recipe\.toml|frames\.csv|video\.mp4|\.video\.mp4\.[0-9a-f]{12}\.part\.mp4",
    dirs={
        "frames": folders.Layout(files=FRAME_FILE),
        "luminance": folders.Layout(files=FRAME_FILE),
        "inputs": folders.Layout(files=r"clip\.mp4|style\.png|\.clip\.mp4\.[0-9a-f]{12}\.part\.mp4"),
    },
)
CSV_COLUMNS = ("frame", "index", "steps", "seconds", "status", "reliable", *term_names(True))


def default_run_dir(output: str | Path) -> Path:
    """The run folder beside an output: ``out.mp4`` -> ``out-run`` (the same command finds it again)."""
    output = Path(output).expanduser()
    return output.with_name(f"{output.stem if output.suffix.lower() in VIDEO_SUFFIXES else output.name}-run")


def _read_json(path: Path) -> dict | None:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return info if isinstance(info, dict) else None


def is_video_folder(folder: str | Path) -> bool:
    """A video run folder stylelab made: only what it writes there, and its video.json."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or not VIDEO_LAYOUT.holds_only_ours(folder):
        return False
    if [p.name for p in folder.iterdir()] == ["inputs"]:
        return True  # a demo stopped between writing its inputs and its first frame
    info = _read_json(folder / "video.json")
    return info is not None and info.get("kind") == KIND and isinstance(info.get("settings"), dict)


class VideoRunFolder:
    """A video run folder: what it holds, where a run goes on from, and the writes as frames finish."""

    def __init__(self, folder: Path, plan: ClipPlan, settings: dict[str, Any]):
        self.folder = folder
        self.plan = plan
        self.settings = json.loads(json.dumps(settings, default=str))  # as video.json reads back
        self.info: dict[str, Any] = {}
        self._rows: dict[int, dict[str, str]] = {}

    @property
    def carried_dir(self) -> Path:
        """Where the pictures the next frame carries are: luminance/ under luminance preservation."""
        return self.folder / ("luminance" if self.plan.luminance else "frames")

    def held(self) -> tuple[dict | None, int]:
        """(the folder's video.json, frames it holds that this run may keep)."""
        info = _read_json(self.folder / "video.json")
        if info is None:
            return None, 0
        done = info.get("frames_done", 0)
        done = done if isinstance(done, int) and done > 0 else 0
        k = 0
        while k < done and self._has_frame(k + 1):
            k += 1
        return info, k

    def _has_frame(self, n: int) -> bool:
        """Frame ``n`` is saved whole: its picture, and what the next frame carries where that differs."""
        name = frame_name(n)
        return (self.folder / "frames" / name).is_file() and (
            not self.plan.luminance or (self.carried_dir / name).is_file()
        )

    def differences(self, info: dict) -> list[str]:
        """The settings that differ from the folder's, by name (recipe fields by theirs)."""
        old = info.get("settings", {})
        out = []
        for key in sorted(set(old) | set(self.settings)):
            a, b = old.get(key), self.settings.get(key)
            if a == b:
                continue
            if key == "recipe" and isinstance(a, dict) and isinstance(b, dict):
                out += [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
            else:
                out.append(key)
        return out

    def previous(self, k: int) -> Image.Image:
        """Frame ``k``'s saved picture, as the next frame carries it."""
        try:
            with Image.open(self.carried_dir / frame_name(k)) as img:
                img.load()
                picture = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise VideoError(f"{self.carried_dir / frame_name(k)} cannot be read ({exc}); pass --restart") from None
        if picture.size != self.plan.size:
            raise VideoError(f"{self.folder}: frame {k} is {picture.size}, not {self.plan.size}; pass --restart")
        return picture

    def held_chunks(self, info: dict | None, chunks: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """The chunks (of ``chunks``) the folder's video.json counts done and whose frames are all there."""
        from .chunks import kept

        done = {tuple(c) for c in (info or {}).get("chunks_done", []) if isinstance(c, list) and len(c) == 2}
        return [c for c in chunks if c in done and all(self._has_frame(n) for n in kept(c))]

    def begin(self, keep: range | set[int], info: dict | None, restart: bool, chunks_done=None) -> None:
        """Start writing: cleared on restart, else the frames ``keep`` kept (their rows too)."""
        if restart and self.folder.exists():
            folders.remove_ours(self.folder, VIDEO_LAYOUT)
        (self.folder / "frames").mkdir(parents=True, exist_ok=True)
        if self.plan.luminance:
            (self.folder / "luminance").mkdir(exist_ok=True)
        images.atomic_write_text(self.folder / "recipe.toml", self.plan.spec.recipe.to_toml())
        keep = set(keep)
        self._rows = {n: row for n, row in self.rows().items() if n in keep}
        self._write_rows()
        plan = self.plan
        carry_on = bool(keep) and info is not None
        self.info = {
            "kind": KIND,
            "version": __version__,
            "settings": self.settings,
            "fps": str(plan.fps),
            "frames_total": plan.count,
            "frames_done": self._consecutive(keep),
            "first_index": plan.first_index,
            "size": list(plan.size),
            "frame_size": list(plan.frame_size),
            "has_audio": bool(plan.info.has_audio),
            "luminance": plan.luminance,
            "status": "running",
            "message": "",
            "output": None,
            "started": info.get("started", time.time()) if carry_on else time.time(),
            "seconds": float(info.get("seconds", 0.0)) if carry_on else 0.0,
            "updated": time.time(),
        }
        if chunks_done is not None:
            self.info["chunks_done"] = [list(c) for c in chunks_done]
        self.write_info()

    @staticmethod
    def _consecutive(frames) -> int:
        n = 0
        while n + 1 in frames:
            n += 1
        return n

    def _write_rows(self) -> None:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([[row.get(c, "") for c in CSV_COLUMNS] for _, row in sorted(self._rows.items())])
        images.atomic_write_text(self.folder / "frames.csv", buf.getvalue())

    def rows(self) -> dict[int, dict[str, str]]:
        """frames.csv's complete rows by frame (a torn last line is dropped)."""
        try:
            text = (self.folder / "frames.csv").read_text(encoding="utf-8")
        except OSError:
            return {}
        out = {}
        for row in csv.DictReader(io.StringIO(text)):
            if None in row.values() or not str(row.get("frame", "")).isdigit():
                continue
            out[int(row["frame"])] = row
        return out

    def save_chunk(self, chunk: tuple[int, int], frames: list, seconds_total: float) -> None:
        """A finished chunk's frames (chunks.ChunkFrame): pictures, rows, then video.json counts the chunk."""
        for f in frames:
            images.atomic_write_bytes(self.folder / "frames" / frame_name(f.frame), f.image)
            if self.plan.luminance:
                images.atomic_write_bytes(self.carried_dir / frame_name(f.frame), f.painted)
            self._rows[f.frame] = _row(f.frame, f.index, f.steps, f.seconds, f.status, f.reliable, f.losses)
        self._write_rows()
        self.info["chunks_done"] = sorted([*self.info.get("chunks_done", []), list(chunk)])
        self.info["frames_done"] = self._consecutive(self._rows)
        self.info["seconds"] = seconds_total
        self.write_info()

    def save(self, pf: PaintedFrame, seconds_total: float) -> None:
        """A finished frame: its pictures, its row, then video.json counts it (in that order, so a
        kill in between leaves at most a frame that video.json does not count yet)."""
        images.save_png(pf.image, self.folder / "frames" / frame_name(pf.frame))
        if self.plan.luminance:
            images.save_png(pf.painted, self.carried_dir / frame_name(pf.frame))
        r = pf.result
        row = _row(pf.frame, pf.index, r.steps, pf.seconds, r.status, pf.reliable, r.losses)
        self._rows[pf.frame] = row
        with open(self.folder / "frames.csv", "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([row.get(c, "") for c in CSV_COLUMNS])
        self.info["frames_done"] = pf.frame
        self.info["seconds"] = seconds_total
        self.write_info()

    def write_info(self, **changes) -> None:
        self.info.update(changes, updated=time.time())
        images.atomic_write_text(self.folder / "video.json", json.dumps(self.info, indent=2, default=str))


def _row(frame: int, index: int, steps: int, seconds: float, status: str, reliable, losses) -> dict[str, str]:
    return {
        "frame": str(frame),
        "index": str(index),
        "steps": str(steps),
        "seconds": f"{seconds:.3f}",
        "status": status,
        "reliable": "" if reliable is None else f"{reliable:.4f}",
        **{k: repr(float(v)) for k, v in losses.items()},
    }
