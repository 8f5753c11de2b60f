"""Painting a clip into its run folder (run_folder.py), then its video (output.py): ``run_clip``.

Frames are saved as they finish; a run folder holding frames 1..k painted with the same settings
goes on from frame k+1 (the same frames as an uninterrupted run: see run_folder.py). The video
is written when every frame is done, and again on every later run (re-assembling is cheap).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .. import folders
from ..errors import VideoError
from ..events import deliver
from .chunks import kept, local_runner, plan_chunks
from .events import ClipEnded, ClipStarted, FrameDone
from .output import assemble, check_output, is_stylelab_video
from .pipeline import ClipPlan, ClipSpec, paint_frames, plan_clip
from .run_folder import VIDEO_LAYOUT, VIDEO_NAME, VideoRunFolder, default_run_dir, is_video_folder

__all__ = [
    "ClipOutcome",
    "VIDEO_LAYOUT",
    "default_run_dir",
    "is_stylelab_video",
    "is_video_folder",
    "paint_into",
    "prepare_clip",
    "run_clip",
]


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


# ---------------------------------------------------------------- running a clip


def _emit(sinks: Sequence, event) -> bool:
    """Send a clip event to every sink; True when one asks to stop."""
    stop = False
    for sink in sinks:
        if sink(event) is True:
            stop = True
    return stop


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
    from ..engines import make_engine

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
    runner=None,
) -> ClipOutcome:
    """Paint ``spec`` into the run folder ``run_dir`` and write the video to ``output``.

    ``output``: a .mp4/.mov/.mkv file or a folder of frames (no suffix), replaced only when
    ``stylelab video`` wrote it; None writes ``run_dir/video.mp4``. A run folder holding frames
    of the same settings goes on after them (see the module's docstring). ``sinks`` get every
    frame's engine events and the clip's (video/events.py); ``stop`` (a threading.Event) cancels
    the frame being painted and ends the clip. Ctrl-C ends it as ``interrupted``; either way
    the frames done are saved and the same call goes on from there. With ``spec.chunk_frames``
    the clip is painted in chunks (chunks.py) by ``runner`` (default: here, one after the other;
    ``chunks.ray_runner(executor)``: as Ray tasks).

    Returns a ClipOutcome; raises StylelabError (one line) for anything refused, before any write.
    """
    engine, plan, run, output, k, info = prepare_clip(spec, run_dir, output, engine=engine, restart=restart)
    return paint_into(engine, plan, run, output, k, info, sinks=sinks, stop=stop, restart=restart, runner=runner)


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
    runner=None,
) -> ClipOutcome:
    """``run_clip`` after its checks (``prepare_clip``): the writes and the painting.

    ``runner``: where a chunked clip's chunks are painted (chunks.py; default: here, in turn)."""
    t0 = time.perf_counter()
    spec = plan.spec
    chunked = spec.chunk_frames is not None
    previous = None
    if chunked:
        chunks = plan_chunks(plan.count, spec.chunk_frames)
        held = [] if restart else run.held_chunks(info, chunks)
        keep = {n for c in held for n in kept(c)}
        run.begin(keep, info, restart, chunks_done=held)
        k = run.info["frames_done"]
    else:
        if k and spec.temporal and k < plan.count:
            before = next(plan.frames(k - 1), None)
            if before is None:
                raise VideoError(f"{spec.source} has fewer frames than the run folder holds; pass --restart")
            previous = (before[2], run.previous(k))
        run.begin(range(1, k + 1), info, restart)
    outcome = ClipOutcome("running", k, plan.count, run.folder, resumed_from=k)
    sinks = list(sinks)
    earlier = run.info["seconds"]
    try:
        started = ClipStarted(
            plan.count, k + 1, plan.size, float(plan.fps), spec.steps_for(1), spec.later_steps, run.folder
        )
        if _emit(sinks, started):
            outcome.status, outcome.message = "cancelled", "stopped before the first frame"
        elif chunked:
            todo = [c for c in chunks if c not in held]
            runner = runner or partial(local_runner, engine=engine, plan=plan)  # this clip's plan, not one per chunk
            _paint_chunks(plan, run, outcome, todo, sinks, stop, runner, t0)
        elif k < plan.count:
            _paint_in_turn(plan, engine, run, outcome, previous, sinks, stop, t0, earlier)
        if outcome.status == "running":
            outcome.output, outcome.notes = assemble(run.folder, output, plan)
            outcome.status = "done"
    except KeyboardInterrupt:
        outcome.status, outcome.message = "interrupted", f"interrupted after frame {outcome.frames_done}"
    except BaseException as exc:
        outcome.status = "error"
        outcome.message = (str(exc).splitlines() or [type(exc).__name__])[0]
        _finish(run, outcome, engine, t0)
        deliver(sinks, ClipEnded("error", outcome.frames_done, outcome.total, None, outcome.message, outcome))
        raise
    _finish(run, outcome, engine, t0)
    deliver(  # the ending reaches every sink; the clip's state is saved already
        sinks, ClipEnded(outcome.status, outcome.frames_done, outcome.total, outcome.output, outcome.message, outcome)
    )
    return outcome


def _paint_in_turn(plan, engine, run, outcome, previous, sinks, stop, t0: float, earlier: float) -> None:
    """Frames after those the folder holds, one after the other, each saved as it finishes."""
    spec = plan.spec
    later_seconds: list[float] = []
    first_seconds = None
    for pf in paint_frames(plan, engine, skip=outcome.frames_done, previous=previous, sinks=sinks, stop=stop):
        status = pf.result.status
        if status not in ("done", "diverged"):
            outcome.status = status
            outcome.message = f"frame {pf.frame}: {pf.result.message or status}"
            return
        run.save(pf, earlier + time.perf_counter() - t0)
        outcome.frames_done, outcome.painted = pf.frame, outcome.painted + 1
        if status == "diverged":
            outcome.diverged.append(pf.frame)
        if pf.frame == 1:
            first_seconds = pf.seconds
        else:
            later_seconds.append(pf.seconds)
        eta = _eta(plan.count - pf.frame, later_seconds, first_seconds, spec)
        r = pf.result
        done = FrameDone(
            pf.frame, pf.index, plan.count, pf.image, r.steps, pf.seconds, dict(r.losses), pf.reliable, status,
            time.perf_counter() - t0, eta,
        )  # fmt: skip
        if _emit(sinks, done) or (stop is not None and stop.is_set()):
            outcome.status, outcome.message = "cancelled", f"stopped after frame {pf.frame}"
            return
    if outcome.frames_done < plan.count:
        # The file said it was longer than it is: the clip is what it holds.
        outcome.total = plan.count = outcome.frames_done
        run.info["frames_total"] = plan.count


def _paint_chunks(plan, run, outcome, todo, sinks, stop, runner, t0: float) -> None:
    """The chunks not yet done, through ``runner``; each chunk's frames are saved as it finishes."""
    import io

    from PIL import Image

    stop = stop or threading.Event()
    earlier = run.info["seconds"]
    finished = 0
    for chunk, frames in runner(plan.spec, todo, stop):
        run.save_chunk(chunk, frames, earlier + time.perf_counter() - t0)
        finished += 1
        outcome.painted += len(frames)
        outcome.frames_done = run.info["frames_done"]
        outcome.diverged += [f.frame for f in frames if f.status == "diverged"]
        left = sum(len(kept(c)) for c in todo) - outcome.painted
        elapsed = time.perf_counter() - t0
        asked = False
        for f in frames:
            eta = left * elapsed / max(1, outcome.painted)
            image = Image.open(io.BytesIO(f.image)).convert("RGB")
            done = FrameDone(
                f.frame, f.index, plan.count, image, f.steps, f.seconds, f.losses, f.reliable, f.status, elapsed, eta
            )
            asked = _emit(sinks, done) or asked
        if asked:
            stop.set()
    if finished < len(todo):
        outcome.status = "cancelled"
        outcome.message = f"stopped with {len(todo) - finished} of {len(todo)} chunks to paint"
    elif outcome.frames_done < plan.count:
        outcome.total = plan.count = outcome.frames_done  # the file was shorter than it said
        run.info["frames_total"] = plan.count


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
