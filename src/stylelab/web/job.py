"""One studio job (what it asks for, its state, how the page sees it, the task it paints),
and the hub that carries the queue's events to every open page.

Events reach browsers through ``Hub``: the worker thread publishes, each
server-sent-event stream reads its own asyncio queue.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..recipes import Recipe
from ..task import BACKGROUND, LabelMask, StyleSet, Task, TaskError
from .gallery import thin
from .labels import Painted, labels, stem

JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
STATES = ("queued", "running", "done", "cancelled", "diverged", "failed", "interrupted")
FINISHED = frozenset(STATES[2:])
STATE_OF = {"error": "failed"}  # a run's status as a job's state (the others are the same words)
STEP_EVERY = 0.1  # seconds between step events per job; the history keeps every step


class StepRelay:
    """A job's steps: each one into its history, and a ``step`` event on the hub at most every
    ``STEP_EVERY`` seconds (and at the last step) with the history rows since the one before."""

    def __init__(self, hub: Hub):
        self.hub, self.last_sent, self.sent_rows = hub, 0.0, 0

    def __call__(self, job: Job, event, extra: dict | None = None) -> None:
        losses = dict(event.losses)
        job.step, job.elapsed, job.losses = event.step, event.elapsed, losses
        job.history.append([event.step, *(losses.get(k, 0.0) for k in job.terms)])
        now = time.monotonic()
        if now - self.last_sent >= STEP_EVERY or event.step == event.total_steps:
            rows, self.sent_rows, self.last_sent = job.history[self.sent_rows :], len(job.history), now
            self.hub.publish(
                "step",
                {"id": job.id, "step": job.step, "total": job.total, "elapsed": job.elapsed}
                | {"eta": job.eta, "losses": losses, "rows": rows}
                | (extra or {}),
            )


class Hub:
    """Fan-out of events from the worker thread to every open event stream."""

    def __init__(self, queue_size: int = 1000):
        self._subs: dict[asyncio.Queue, asyncio.AbstractEventLoop] = {}
        self._lock = threading.Lock()
        self.queue_size = queue_size
        self.closed = False

    def subscribe(self) -> asyncio.Queue:
        """A queue of (event, json) pairs; call from the event loop that will read it."""
        q: asyncio.Queue = asyncio.Queue(self.queue_size)
        with self._lock:
            self._subs[q] = asyncio.get_running_loop()
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        with self._lock:
            self._subs.pop(q, None)

    def publish(self, kind: str, data: dict) -> None:
        message = (kind, json.dumps(data, separators=(",", ":"), default=str))
        with self._lock:
            subs = list(self._subs.items())
        for q, loop in subs:
            try:
                loop.call_soon_threadsafe(self._put, q, message)
            except RuntimeError:  # that loop has closed
                self.unsubscribe(q)

    @staticmethod
    def _put(q: asyncio.Queue, message) -> None:
        if q.full():
            # A reader this far behind has missed events: tell it to fetch the state again.
            while not q.empty():
                q.get_nowait()
            message = ("resync", "{}")
        q.put_nowait(message)

    def close(self) -> None:
        self.closed = True
        self.publish("bye", {})


@dataclass
class Job:
    """One queued or finished studio run; the persisted fields come first."""

    id: str
    recipe: dict
    content: str  # upload ids
    styles: list[str]
    names: dict  # display names of the inputs
    start: str | None = None
    state: str = "queued"
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    step: int = 0
    total: int = 0
    elapsed: float = 0.0
    losses: dict = field(default_factory=dict)
    message: str = ""
    run: str | None = None  # the run folder, relative to the runs folder, once written
    history: list = field(default_factory=list, repr=False)  # [step, *the losses in the order of terms]
    snapshot: bytes | None = field(default=None, repr=False)
    snapshot_step: int = -1
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    resolved: Recipe | None = field(default=None, repr=False)  # the submitted Recipe itself, until a restart
    weights: list[float] | None = None  # the styles' blend weights (several styles)
    terms: list[str] = field(default_factory=list)  # the loss terms, in the order of history's columns
    masks: list[str | None] | None = None  # per style, the upload id of its region mask (white where it paints)
    startup: float | None = None  # seconds from the worker taking the job to its first event
    build_seconds: float = 0.0  # of those, building the network (0 when the queue's engine had it already)
    # A video job (kind "video"): ``content`` is a video upload, painted frame by frame (video_jobs.py)
    # into the video run folder ``folder``; ``step``/``total`` count the current frame's steps.
    kind: str = "image"
    video: dict | None = None  # frame_steps, start, end, max_frames (None: the defaults)
    folder: str | None = None  # the video run folder's name (a job run again goes on in the same one)
    frame: int = 0  # frames done
    frames: int = 0  # frames in the selection
    clip_eta: float | None = None  # seconds left for the clip, from the pace of the frames so far
    resumed_from: int = 0  # frames the run folder held when this job started
    labels: str | None = None  # the upload id of a colour-label image: a colour per style, the regions
    image_masks: list[str | None] | None = None  # per style, the upload id of its style-image mask (the part used)

    PERSISTED = (
        "id recipe content styles names start state created started finished step total elapsed losses message run"
        " weights terms masks startup build_seconds kind video folder frame frames clip_eta resumed_from labels"
        " image_masks"
    ).split()

    def record(self) -> dict:
        return {k: getattr(self, k) for k in self.PERSISTED}

    @property
    def eta(self) -> float | None:
        if self.kind == "video":
            return self.clip_eta if self.state == "running" else None
        if self.state != "running" or not self.step or not self.total:
            return None
        return self.elapsed / self.step * (self.total - self.step)

    @property
    def live_url(self) -> str:
        if self.kind == "video":
            return f"/api/jobs/{self.id}/live.png?frame={self.frame}"
        return f"/api/jobs/{self.id}/live.png?step={self.snapshot_step}"

    def painted(self) -> Painted:
        names = self.names if isinstance(self.names, dict) else {}
        styles = tuple(names.get("styles") or self.styles)
        masks = tuple(names.get("masks") or self.masks or ()) or None
        if self.labels:  # every style paints its colour of the one label image
            masks = (str(names.get("labels") or self.labels),)
        blend = tuple(self.weights) if self.weights else None
        recipe = self.recipe if isinstance(self.recipe, dict) else {}
        extra = video_aspects(self.video) if self.kind == "video" else {}
        if self.image_masks:
            extra = extra | {"parts": parts_aspect(names.get("image_masks") or self.image_masks)}
        return Painted(str(names.get("content", "content")), styles, recipe, blend, masks, names.get("start"), extra)

    def public(self, history: bool = False, label: str | None = None) -> dict:
        """The job as the page sees it; ``label`` is its queue's (``JobQueue.labels``)."""
        out = self.record() | {"eta": self.eta, "snapshot_step": self.snapshot_step}
        out["label"] = label or labels([self.painted()])[0]
        out["live"] = self.live_url if self.snapshot else None
        if history:
            out["history"] = thin(self.history, 1000)
        return out


VIDEO_FIELDS = {"frame_steps": "frame steps", "start": "from", "end": "to", "max_frames": "max frames"}


def video_aspects(video: dict | None) -> dict[str, str]:
    """What may set a video job apart from others of the same clip, in the form's words (``labels``)."""
    video = video if isinstance(video, dict) else {}
    out = {}
    for key, words in VIDEO_FIELDS.items():
        value = video.get(key)
        if value is None:
            shown = "–"
        else:
            shown = f"{value:g}" if isinstance(value, float) else str(value)
            shown += " s" if key in ("start", "end") else ""
        out[f"video_{key}"] = f"{words} {shown}"
    return out


def parts_aspect(parts) -> str:
    """Style-image masks in a label's words: "style masks sky.png –"."""
    return "style masks " + " ".join(stem(p) if p else "–" for p in parts or ())


def job_task(
    content,
    styles: list,
    weights=None,
    masks: list | None = None,
    start=None,
    *,
    labels=None,
    image_masks: list | None = None,
) -> Task:
    """The Task a job paints: its styles blended by ``weights``; or, where ``masks`` has any (one
    entry per style, None for none), each masked style in its region and at most one style
    without a mask painting what the masks leave; or, with ``labels`` (a colour-label image),
    each style where the image has its colour (the colours in order of first appearance).
    ``image_masks``: per style, the part of its painting to take the style from (None: all of it).
    TaskError for what does not go together."""
    parts = list(image_masks) if image_masks and any(m is not None for m in image_masks) else None
    if parts is not None and len(parts) != len(styles):
        raise TaskError(f"{len(parts)} style-image masks for {len(styles)} styles")
    if labels is not None:
        if masks and any(m is not None for m in masks):
            raise TaskError("a label image or masks, not both: the label image's colours are the regions")
        if weights is not None and any(w != 1 for w in weights):
            raise TaskError("blend weights and a label image do not go together: each style paints its own colour")
        sets = [
            StyleSet((s,), mask=LabelMask(labels, i), image_masks=None if p is None else (p,))
            for i, (s, p) in enumerate(zip(styles, parts or [None] * len(styles)))
        ]
        return Task(content, tuple(sets), start)
    if not masks or not any(m is not None for m in masks):
        return Task.of(content, styles, weights=weights, init=start, image_masks=parts)
    if len(masks) != len(styles):
        raise TaskError(f"{len(masks)} masks for {len(styles)} styles")
    if weights is not None and any(w != 1 for w in weights):
        raise TaskError("blend weights and region masks do not go together: each region has its own style")
    own = parts or [None] * len(styles)
    regions = [(s, m, p) for s, m, p in zip(styles, masks, own) if m is not None]
    rest = [(s, p) for s, m, p in zip(styles, masks, own) if m is None]
    if len(rest) > 1:
        raise TaskError("with masks, every style but one needs a mask (the one without paints the rest)")
    # One style set per region (and the background's, with its own style-image mask where it has one).
    sets = [StyleSet((s,), mask=m, image_masks=None if p is None else (p,)) for s, m, p in regions]
    sets += [StyleSet((s,), mask=BACKGROUND, image_masks=None if p is None else (p,)) for s, p in rest]
    return Task(content, tuple(sets), start)


def recorded_task(job: Job, task: Task, folder: Path, files: dict[str, Path]) -> dict:
    """The task as the run records it: the copies of the inputs kept in its folder, with their
    content hashes and the names they were uploaded under (never the upload store's paths)."""
    names = job.names if isinstance(job.names, dict) else {}
    shown = {"content": names.get("content"), "start": names.get("start"), "labels": names.get("labels")}
    for role, listed in (("style", "styles"), ("mask", "masks"), ("style_mask", "image_masks")):
        for i, name in enumerate(names.get(listed) or [], 1):
            shown[f"{role}_{i}"] = name
    kept = {}
    for file_name, path in files.items():
        stem = Path(file_name).stem
        kept.setdefault(str(path.resolve()), (str(folder / "inputs" / file_name), shown.get(stem) or file_name))

    def entry(value):
        if isinstance(value, dict) and value.get("name") in kept:
            name, upload = kept[value["name"]]
            return value | {"name": name, "upload": upload}
        if isinstance(value, dict) and "labels" in value:
            return value | {"labels": entry(value["labels"])}
        return value

    out = task.to_dict()
    out["content"] = entry(out["content"])
    for s in out["styles"]:
        s["images"] = [entry(i) for i in s["images"]]
        if "mask" in s:
            s["mask"] = entry(s["mask"])
        if s.get("image_masks"):
            s["image_masks"] = [entry(m) if m is not None else None for m in s["image_masks"]]
    if "init" in out:
        out["init"] = entry(out["init"])
    return out


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
