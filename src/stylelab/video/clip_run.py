"""A video's run folder, and painting a clip into it: frames saved as they finish, resumable.

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

The output video is written when every frame is done (again on every later run: re-assembling
is cheap), with the input's frame rate, frame size and audio for the same span. It carries a
marker in its container tags (a folder of frames: in every PNG), and an existing output is
replaced only when it carries that marker: a file of the user's is refused before any work.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .. import __version__, folders, images
from ..errors import VideoError
from ..terms import term_names
from .events import ClipEnded, ClipStarted, FrameDone
from .pipeline import ClipPlan, ClipSpec, PaintedFrame, paint_frames, plan_clip

KIND = "stylelab-video"
MARKER = "made by stylelab video"  # the container's comment tag, or each PNG frame's comment
FRAME_FILE = r"frame_\d{6}\.png"
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
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")


def frame_name(frame: int) -> str:
    return f"frame_{frame:06d}.png"


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


# ---------------------------------------------------------------- the outcome


@dataclass
class ClipOutcome:
    """What a clip's run came to."""

    status: str  # done | interrupted | cancelled | error
    frames_done: int
    total: int
    run_dir: Path
    output: Path | None = None  # the video, once every frame is done
    resumed_from: int = 0  # frames the run folder already held
    painted: int = 0  # frames painted by this run
    seconds: float = 0.0  # this run's wall time
    message: str = ""
    diverged: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the writer adjusted (odd sizes, no audio)

    @property
    def ok(self) -> bool:
        return self.status == "done"


# ---------------------------------------------------------------- the folder


class VideoRunFolder:
    """A video run folder: what it holds, where a run goes on from, and the writes as frames finish."""

    def __init__(self, folder: Path, plan: ClipPlan, settings: dict[str, Any]):
        self.folder = folder
        self.plan = plan
        self.settings = json.loads(json.dumps(settings, default=str))  # as video.json reads back
        self.info: dict[str, Any] = {}

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
        while k < done and (self.folder / "frames" / frame_name(k + 1)).is_file():
            if self.plan.luminance and not (self.carried_dir / frame_name(k + 1)).is_file():
                break
            k += 1
        return info, k

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

    def begin(self, k: int, info: dict | None, restart: bool) -> None:
        """Start writing: cleared on restart, else kept up to frame ``k``."""
        if restart and self.folder.exists():
            folders.remove_ours(self.folder, VIDEO_LAYOUT)
        (self.folder / "frames").mkdir(parents=True, exist_ok=True)
        if self.plan.luminance:
            (self.folder / "luminance").mkdir(exist_ok=True)
        images.atomic_write_text(self.folder / "recipe.toml", self.plan.spec.recipe.to_toml())
        rows = self.rows()[:k] if k else []
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        writer.writerows([[row.get(c, "") for c in CSV_COLUMNS] for row in rows])
        images.atomic_write_text(self.folder / "frames.csv", buf.getvalue())
        plan = self.plan
        self.info = {
            "kind": KIND,
            "version": __version__,
            "settings": self.settings,
            "fps": str(plan.fps),
            "frames_total": plan.count,
            "frames_done": k,
            "first_index": plan.first_index,
            "size": list(plan.size),
            "frame_size": list(plan.frame_size),
            "has_audio": bool(plan.info.has_audio),
            "luminance": plan.luminance,
            "status": "running",
            "message": "",
            "output": None,
            "started": info.get("started", time.time()) if k and info else time.time(),
            "seconds": float(info.get("seconds", 0.0)) if k and info else 0.0,
            "updated": time.time(),
        }
        self.write_info()

    def rows(self) -> list[dict[str, str]]:
        """frames.csv's rows, frame 1 first, as far as they run in order (a torn last line is dropped)."""
        try:
            text = (self.folder / "frames.csv").read_text(encoding="utf-8")
        except OSError:
            return []
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            if row.get("frame") != str(len(out) + 1) or None in row.values():
                break
            out.append(row)
        return out

    def save(self, pf: PaintedFrame, seconds_total: float) -> None:
        """A finished frame: its pictures, its row, then video.json counts it (in that order, so a
        kill in between leaves at most a frame that video.json does not count yet)."""
        images.save_png(pf.image, self.folder / "frames" / frame_name(pf.frame))
        if self.plan.luminance:
            images.save_png(pf.painted, self.carried_dir / frame_name(pf.frame))
        losses = pf.result.losses
        row = {
            "frame": pf.frame,
            "index": pf.index,
            "steps": pf.result.steps,
            "seconds": f"{pf.seconds:.3f}",
            "status": pf.result.status,
            "reliable": "" if pf.reliable is None else f"{pf.reliable:.4f}",
            **{k: repr(float(v)) for k, v in losses.items()},
        }
        with open(self.folder / "frames.csv", "a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([row.get(c, "") for c in CSV_COLUMNS])
        self.info["frames_done"] = pf.frame
        self.info["seconds"] = seconds_total
        self.write_info()

    def write_info(self, **changes) -> None:
        self.info.update(changes, updated=time.time())
        images.atomic_write_text(self.folder / "video.json", json.dumps(self.info, indent=2, default=str))


# ---------------------------------------------------------------- running a clip


def _emit(sinks: Sequence, event) -> bool:
    """Send a clip event to every sink; True when one asks to stop."""
    stop = False
    for sink in sinks:
        if sink(event) is True:
            stop = True
    return stop


def _emit_ending(sinks: Sequence, event) -> None:
    for sink in sinks:
        try:
            sink(event)
        except Exception:  # noqa: BLE001 - the ending reaches every sink; the clip's state is saved already
            pass


def prepare_clip(
    spec: ClipSpec,
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    engine=None,
    restart: bool = False,
    own_inputs: bool = False,
):
    """Every check of ``run_clip``, and nothing written: (engine, plan, folder, output, frames to keep, video.json).

    ``own_inputs``: the inputs may lie in the run folder's inputs/ (the demo's).
    Raises StylelabError (VideoError, UnsafeFolderError...) with one line."""
    from ..engine import make_engine

    source = Path(spec.source).expanduser()
    run_dir = Path(run_dir).expanduser()
    inside = output is None
    output = run_dir / VIDEO_NAME if output is None else check_output(output, source)
    protect = [] if own_inputs else [source, *[s for s in spec.styles if isinstance(s, (str, Path))]]
    if not inside:
        protect.append(output)
    folder = folders.check_folder(
        run_dir,
        layout=VIDEO_LAYOUT,
        recognise=is_video_folder,
        what="video run folder",
        option="--run-dir",
        protect=tuple(protect),
    )
    if not inside and output.exists() and output.resolve() == folder.resolve():
        raise VideoError(f"-o {output} is the run folder; name another output")
    if engine is None:
        engine = make_engine(spec.recipe)
    plan = plan_clip(spec, engine)
    run = VideoRunFolder(folder, plan, spec.settings())
    info, k = run.held()
    if info is not None and not restart:
        diff = run.differences(info)
        if diff:
            shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
            raise VideoError(
                f"--run-dir {folder} holds frames painted with other settings ({shown}); "
                "pass --restart to paint it afresh, or choose another --run-dir"
            )
    if restart:
        k = 0
    return engine, plan, run, output, k, info


def run_clip(
    spec: ClipSpec,
    run_dir: str | Path,
    output: str | Path | None = None,
    *,
    sinks: Sequence = (),
    stop: threading.Event | None = None,
    engine=None,
    restart: bool = False,
) -> ClipOutcome:
    """Paint ``spec`` into the run folder ``run_dir`` and write the video to ``output``.

    ``output``: a .mp4/.mov/.mkv file or a folder of frames (no suffix), replaced only when
    ``stylelab video`` wrote it; None writes ``run_dir/video.mp4``. A run folder holding frames
    of the same settings goes on after them (see the module's docstring). ``sinks`` get every
    frame's engine events and the clip's (video/events.py); ``stop`` (a threading.Event) cancels
    the frame being painted and ends the clip. Ctrl-C ends it as ``interrupted``; either way
    the frames done are saved and the same call goes on from there.

    Returns a ClipOutcome; raises StylelabError (one line) for anything refused, before any write.
    """
    engine, plan, run, output, k, info = prepare_clip(spec, run_dir, output, engine=engine, restart=restart)
    return paint_into(engine, plan, run, output, k, info, sinks=sinks, stop=stop, restart=restart)


def paint_into(
    engine,
    plan: ClipPlan,
    run: VideoRunFolder,
    output: Path,
    k: int,
    info,
    *,
    sinks=(),
    stop=None,
    restart: bool = False,
) -> ClipOutcome:
    """``run_clip`` after its checks (``prepare_clip``): the writes and the painting."""
    t0 = time.perf_counter()
    spec = plan.spec
    outcome = ClipOutcome("running", k, plan.count, run.folder, resumed_from=k)
    previous = None
    if k and spec.temporal and k < plan.count:
        before = next(plan.frames(k - 1), None)
        if before is None:
            raise VideoError(f"{spec.source} has fewer frames than the run folder holds; pass --restart")
        previous = (before[2], run.previous(k))
    run.begin(k, info, restart)
    sinks = list(sinks)
    earlier = run.info["seconds"]
    later_seconds: list[float] = []
    first_seconds = None
    try:
        stopped = _emit(
            sinks,
            ClipStarted(plan.count, k + 1, plan.size, float(plan.fps), spec.steps_for(1), spec.later_steps, run.folder),
        )
        if k < plan.count and not stopped:
            for pf in paint_frames(plan, engine, skip=k, previous=previous, sinks=sinks, stop=stop):
                status = pf.result.status
                if status not in ("done", "diverged"):
                    outcome.status = status
                    outcome.message = f"frame {pf.frame}: {pf.result.message or status}"
                    break
                run.save(pf, earlier + time.perf_counter() - t0)
                outcome.frames_done, outcome.painted = pf.frame, outcome.painted + 1
                if status == "diverged":
                    outcome.diverged.append(pf.frame)
                if pf.frame == 1:
                    first_seconds = pf.seconds
                else:
                    later_seconds.append(pf.seconds)
                eta = _eta(plan.count - pf.frame, later_seconds, first_seconds, spec)
                done = FrameDone(
                    pf.frame,
                    pf.index,
                    plan.count,
                    pf.image,
                    pf.result.steps,
                    pf.seconds,
                    dict(pf.result.losses),
                    pf.reliable,
                    status,
                    time.perf_counter() - t0,
                    eta,
                )
                if _emit(sinks, done) or (stop is not None and stop.is_set()):
                    outcome.status, outcome.message = "cancelled", f"stopped after frame {pf.frame}"
                    break
            else:
                if outcome.frames_done < plan.count:
                    # The file said it was longer than it is: the clip is what it holds.
                    outcome.total = plan.count = outcome.frames_done
                    run.info["frames_total"] = plan.count
        elif stopped:
            outcome.status, outcome.message = "cancelled", "stopped before the first frame"
        if outcome.status == "running":
            outcome.output, outcome.notes = assemble(run.folder, output, plan)
            outcome.status = "done"
    except KeyboardInterrupt:
        outcome.status, outcome.message = "interrupted", f"interrupted after frame {outcome.frames_done}"
    except BaseException as exc:
        outcome.status = "error"
        outcome.message = (str(exc).splitlines() or [type(exc).__name__])[0]
        _finish(run, outcome, engine, t0)
        _emit_ending(sinks, ClipEnded("error", outcome.frames_done, outcome.total, None, outcome.message, outcome))
        raise
    _finish(run, outcome, engine, t0)
    _emit_ending(
        sinks, ClipEnded(outcome.status, outcome.frames_done, outcome.total, outcome.output, outcome.message, outcome)
    )
    return outcome


def _finish(run: VideoRunFolder, outcome: ClipOutcome, engine, t0: float) -> None:
    outcome.seconds = time.perf_counter() - t0
    styles = getattr(engine, "styles", None)
    run.write_info(
        status=outcome.status,
        message=outcome.message,
        output=str(outcome.output) if outcome.output else None,
        engine={
            "network_builds": getattr(engine, "builds", 0),
            "style_cache_hits": getattr(styles, "hits", 0),
            "style_cache_misses": getattr(styles, "misses", 0),
        },
    )


def _eta(left: int, later: list[float], first: float | None, spec: ClipSpec) -> float | None:
    if left <= 0:
        return 0.0
    if later:
        return left * sum(later) / len(later)
    if first is not None:
        return left * first * spec.later_steps / max(1, spec.steps_for(1))
    return None


def assemble(run_dir: str | Path, output: str | Path, plan: ClipPlan) -> tuple[Path, list[str]]:
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
