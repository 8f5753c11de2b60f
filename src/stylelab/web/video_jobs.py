"""A video job on the studio's queue: its clip painted by ``video.clip_run`` into a video run folder.

The job's run folder is ``<runs>/<folder>/``, a video run folder (``video.run_folder``)
written in place as frames finish, which the gallery lists (``video_gallery``). The queue's
worker paints it on the queue's ``EngineCache`` (the network the still jobs use), with the
job's stop event as the clip's: Cancel stops the frame being painted and ends the clip, the
frames done staying saved. A job run again after it stopped (cancelled, interrupted by a
restart of the server) paints into the same folder, and ``run_clip`` goes on from the
first frame not saved: the frames are those an uninterrupted run paints.

The relay publishes over the event stream what the page shows: ``frame`` when a frame is
saved (its picture, frame k of n, the clip's ETA, its losses), and the engine's ``step``
events of the frame being painted (its step losses, from step 1 for every frame).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from .. import images
from ..events import Started, Step
from ..recipes import recipe_from_dict
from .job import STATE_OF, StepRelay
from .security import readable

if TYPE_CHECKING:
    from .job import Job
    from .jobs import JobQueue


def clip_spec(job: Job, recipe, inputs: dict[str, Path]):
    """The ClipSpec a job paints: its clip, its styles (blended, or each in its region as ``job_task``)."""
    from ..video.pipeline import ClipSpec

    video = job.video or {}
    styles = [str(inputs[f"style_{i}"]) for i in range(1, len(job.styles) + 1)]
    masks = background = None
    if job.labels:  # one colour-label image: each style where it has that style's colour (Task.of)
        masks = (str(inputs["labels"]),)
    elif job.masks:
        paired = [(s, str(inputs[f"mask_{i}"]) if f"mask_{i}" in inputs else None) for i, s in enumerate(styles, 1)]
        rest = [s for s, m in paired if m is None]
        styles, masks = [s for s, m in paired if m is not None], tuple(m for _, m in paired if m is not None)
        background = rest[0] if rest else None
    return ClipSpec(
        str(inputs["content"]),
        tuple(styles),
        recipe,
        blend_weights=tuple(job.weights) if job.weights and not (job.masks or job.labels) else None,
        masks=masks,
        background=background,
        start=video.get("start"),
        end=video.get("end"),
        max_frames=video.get("max_frames"),
        frame_steps=video.get("frame_steps"),
    )


def run_video_job(queue: JobQueue, job: Job) -> None:
    """Paint a video job into its run folder; sets the job's state and message from the clip's outcome.

    Raises StylelabError (one line) for what the clip's checks refuse, before anything is written."""
    from ..video.clip_run import paint_into, prepare_clip
    from ..video.run_folder import is_video_folder

    began = time.perf_counter()
    recipe = job.resolved or recipe_from_dict(job.recipe, f"job {job.id}")
    queue.check(recipe)
    spec = clip_spec(job, recipe, queue._inputs(job))
    engine = queue.engines.get(recipe)
    built = engine.build_seconds
    job.folder = job.folder or job.id
    folder = queue.runs / job.folder
    engine, plan, run, output, k, info = prepare_clip(spec, folder, engine=engine)
    job.build_seconds = round(engine.build_seconds - built, 4)
    sink = relay(queue, job, folder, began)
    outcome = paint_into(engine, plan, run, output, k, info, sinks=[sink], stop=job.stop)
    job.state = STATE_OF.get(outcome.status, outcome.status)
    job.frame, job.frames, job.clip_eta = outcome.frames_done, outcome.total, None
    job.message = outcome.message
    if outcome.status == "cancelled":
        job.message = stopped_message(outcome.frames_done, outcome.total)
    elif outcome.diverged:
        shown = ", ".join(map(str, outcome.diverged[:10]))
        job.message = f"frame(s) {shown} diverged (the last good image was kept); lower the lr or the style weight"
    job.run = job.folder if is_video_folder(folder) else None
    job.history = job.history[-1000:]
    if job.run is not None:
        job.snapshot = None  # the run folder has every frame: the live image is read from there


def stopped_message(done: int, total: int) -> str:
    """What a stopped video job says: the frames kept, and that "Run again" goes on from there."""
    if not done:
        return "stopped before the first frame was saved"
    if done >= total:
        return f"stopped with all {total} frames saved; “Run again” writes the video"
    return f"stopped after frame {done} of {total} (saved); “Run again” goes on from frame {done + 1}"


def relay(queue: JobQueue, job: Job, folder: Path, began: float):
    """The clip's events to the job's state and the event stream (``frame`` and ``step`` events)."""
    from ..video.events import ClipStarted, FrameDone
    from ..video.output import frame_name

    hub = queue.hub
    steps = StepRelay(hub)

    def on_event(event) -> None:
        if isinstance(event, ClipStarted):
            job.frames, job.frame, job.resumed_from = event.total, event.first - 1, event.first - 1
            job.startup = round(time.perf_counter() - began, 4)
            hub.publish("job", queue.public(job))
        elif isinstance(event, FrameDone):
            # The run folder has just saved this frame: read its file back rather than encode it again.
            saved = readable(queue.runs.resolve(), folder / "frames" / frame_name(event.frame))
            job.snapshot = saved.read_bytes() if saved is not None else images.png_bytes(event.image)
            job.frame, job.frames, job.clip_eta = event.frame, event.total, event.eta
            job.snapshot_step, job.losses = event.frame, dict(event.losses)
            hub.publish(
                "frame",
                {"id": job.id, "frame": event.frame, "total": event.total, "eta": event.eta, "url": job.live_url}
                | {"elapsed": event.elapsed, "losses": job.losses, "steps": event.steps, "status": event.status},
            )
        elif isinstance(event, Started) and event.item == 0:
            job.total, job.terms, job.step, job.history = event.total_steps, list(event.terms), 0, []
            steps.sent_rows = 0  # each frame's chart starts afresh
        elif isinstance(event, Step) and event.item == 0:
            steps(job, event, {"frame": job.frame + 1, "frames": job.frames})

    return on_event


def saved_frames(runs: Path, job: Job) -> tuple[int, int]:
    """(frames saved, frames in all) of a video job, as its run folder's video.json counts them (after a
    crash, the job's own record is older); the job's record where the folder says nothing."""
    from .video_gallery import load_video_run

    run = load_video_run(runs.resolve(), runs / job.folder) if job.folder else None
    if run is None or not run.frames_total:
        return job.frame, job.frames
    return run.frames_done, run.frames_total


def latest_frame(runs: Path, job: Job) -> Path | None:
    """The newest frame a video job's run folder holds (resolved, inside the runs folder), or None."""
    from .video_gallery import latest_frame as newest
    from .video_gallery import load_video_run

    if not job.folder:
        return None
    run = load_video_run(runs.resolve(), runs / job.folder)
    found = newest(runs.resolve(), run) if run is not None else None
    return found[1] if found else None
