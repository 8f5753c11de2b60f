"""The studio's queue: jobs wait in order, one worker thread runs them through the engine.

Each job becomes a run folder ``<runs>/<job id>/`` written by ``runs.RunWriter``
(so the gallery, the CLI and sweeps all read it the same way), with the
uploaded inputs kept in its ``inputs/`` so it can be run again. The queue's
state lives in ``<runs>/.studio/jobs.json``, rewritten atomically at every
change of state: after a crash, a job found ``running`` there is marked
``interrupted`` and queued jobs carry on. At most ``max_queue`` jobs wait
(``QueueFull`` beyond that) and at most ``KEEP_JOBS`` finished ones are
remembered, so each rewrite is bounded work.

Events reach browsers through ``Hub``: the worker thread publishes, each
server-sent-event stream reads its own asyncio queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .. import images
from ..engine import EngineCache
from ..errors import StylelabError
from ..events import Preview, Snapshot, Started, Step
from ..recipes import Recipe, recipe_from_dict
from ..runs import RunWriter
from ..task import Task
from .gallery import thin
from .limits import DEFAULT_MAX_QUEUE, QueueFull
from .security import UnsafePath, inside
from .uploads import UploadStore

log = logging.getLogger("stylelab.studio")

JOB_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")
STATES = ("queued", "running", "done", "cancelled", "diverged", "failed", "interrupted")
FINISHED = frozenset(STATES[2:])
KEEP_JOBS = 200  # finished jobs remembered in jobs.json; their run folders stay in the gallery regardless
STEP_EVERY = 0.1  # seconds between step events per job; the history keeps every step
PREVIEW_EVERY = 1.0  # seconds between live images of a running job when it saves no snapshots
STATE_OF = {"error": "failed"}  # a run's status as a job's state (the others are the same words)


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
    history: list = field(default_factory=list, repr=False)  # [step, content, style, tv, total]
    snapshot: bytes | None = field(default=None, repr=False)
    snapshot_step: int = -1
    stop: threading.Event = field(default_factory=threading.Event, repr=False)
    resolved: Recipe | None = field(default=None, repr=False)  # the submitted Recipe itself, until a restart
    weights: list[float] | None = None  # the styles' blend weights (several styles)
    terms: list[str] = field(default_factory=list)  # the loss terms, in the order of history's columns

    PERSISTED = (
        "id recipe content styles names start state created started finished step total elapsed losses message run"
        " weights terms"
    ).split()

    def record(self) -> dict:
        return {k: getattr(self, k) for k in self.PERSISTED}

    @property
    def eta(self) -> float | None:
        if self.state != "running" or not self.step or not self.total:
            return None
        return self.elapsed / self.step * (self.total - self.step)

    @property
    def live_url(self) -> str:
        return f"/api/jobs/{self.id}/live.png?step={self.snapshot_step}"

    def public(self, history: bool = False) -> dict:
        out = self.record() | {"eta": self.eta, "snapshot_step": self.snapshot_step}
        out["label"] = f"{self.recipe.get('name', 'custom')} · {self.names.get('content', 'content')}"
        out["live"] = self.live_url if self.snapshot else None
        if history:
            out["history"] = thin(self.history, 1000)
        return out


def new_job_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class JobQueue:
    """Jobs in order, one worker thread, state persisted in ``<runs>/.studio/jobs.json``.

    ``check`` is called with each job's Recipe as the worker starts it (the
    studio's bounds: a job queued by an earlier server may exceed today's);
    what it raises fails that job.
    """

    def __init__(
        self,
        runs: Path,
        uploads: UploadStore,
        hub: Hub,
        on_finished=None,
        *,
        max_queue: int = DEFAULT_MAX_QUEUE,
        check: Callable[[Recipe], None] | None = None,
    ):
        self.runs = Path(runs).resolve()
        self.uploads = uploads
        self.hub = hub
        self.on_finished = on_finished or (lambda job: None)
        self.max_queue = max_queue
        self.check = check or (lambda recipe: None)
        self.engines = EngineCache()  # one network for every job (built with the first)
        self.state_file = self.runs / ".studio" / "jobs.json"
        self.jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._thread: threading.Thread | None = None
        self._load()

    # ------------------------------------------------------------ persistence

    def _load(self) -> None:
        try:
            # A jobs.json linked to a file elsewhere is not read (saving replaces the link with a file).
            records = json.loads(inside(self.runs, self.state_file, hidden=True).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except UnsafePath:
            log.warning("ignoring %s: it is a link leading outside the runs folder", self.state_file)
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self.state_file, exc)
            return
        changed = False
        for rec in records if isinstance(records, list) else []:
            try:
                job = Job(**{k: rec[k] for k in Job.PERSISTED if k in rec})
                if job.weights is None and isinstance(job.recipe, dict) and job.recipe.get("style_weights"):
                    job.weights = list(job.recipe["style_weights"])  # saved before blend weights left the recipe
            except TypeError:
                continue
            if not JOB_ID.fullmatch(str(job.id)) or job.state not in STATES:
                continue
            if job.run is not None and not JOB_ID.fullmatch(str(job.run)):
                job.run = None  # only ever a studio run folder, named by its job
            if job.state == "running":
                job.state, job.finished, changed = "interrupted", time.time(), True
                job.message = "the server stopped while this job ran; “Run again” in the queue starts it afresh"
                partial = self.runs / f"{job.id}.partial"
                if partial.is_dir():
                    job.message += f" (its snapshots so far are in {partial.name})"
            self.jobs[job.id] = job
        if changed:
            self._save()

    def _save(self) -> None:
        with self._lock:
            jobs = list(self.jobs.values())
            finished = [j for j in jobs if j.state in FINISHED]
            for old in finished[: max(0, len(finished) - KEEP_JOBS)]:
                del self.jobs[old.id]
            records = [j.record() for j in self.jobs.values()]
        images.atomic_write_text(self.state_file, json.dumps(records, indent=1, default=str))

    # ------------------------------------------------------------ public

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="stylelab-studio-worker", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker: a running job is stopped, keeps its last image, and is marked interrupted."""
        with self._wake:
            self._closing = True
            for job in self.jobs.values():
                if job.state == "running":
                    job.stop.set()
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def waiting(self) -> int:
        with self._lock:
            return sum(j.state == "queued" for j in self.jobs.values())

    def submit(
        self,
        recipe: Recipe,
        content: str,
        styles: list[str],
        names: dict,
        start: str | None = None,
        weights: list[float] | None = None,
    ) -> Job:
        """Queue a run; the inputs are upload ids already checked by the caller.

        Raises:
            QueueFull: ``max_queue`` jobs are waiting already.
        """
        job = Job(
            new_job_id(),
            recipe.to_dict(drop_none=True),
            content,
            list(styles),
            names,
            start,
            resolved=recipe,
            weights=list(weights) if weights else None,
        )
        job.created = time.time()
        with self._wake:
            if (waiting := self.waiting()) >= self.max_queue:
                raise QueueFull(
                    f"the queue is full: {waiting} jobs are waiting, the most this studio takes"
                    " (stylelab serve --max-queue); wait for one to start, or cancel one"
                )
            while job.id in self.jobs:
                job.id = new_job_id()
            self.jobs[job.id] = job
            self._save()
            self._wake.notify_all()
        self.hub.publish("job", job.public())
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if JOB_ID.fullmatch(job_id or "") else None

    def listing(self) -> list[dict]:
        with self._lock:
            return [j.public() for j in reversed(self.jobs.values())]

    def cancel(self, job: Job) -> Job:
        """Cancel a queued job at once; ask a running one to stop (it keeps its last image)."""
        with self._lock:
            if job.state == "queued":
                job.state, job.finished, job.message = "cancelled", time.time(), "cancelled before it started"
                self._save()
            elif job.state == "running":
                job.stop.set()
        self.hub.publish("job", job.public())
        return job

    # ------------------------------------------------------------ the worker

    def _next(self) -> Job | None:
        with self._wake:
            while not self._closing:
                job = next((j for j in self.jobs.values() if j.state == "queued"), None)
                if job is not None:
                    job.state, job.started = "running", time.time()
                    self._save()
                    return job
                self._wake.wait()
            return None

    def _work(self) -> None:
        while (job := self._next()) is not None:
            self.hub.publish("job", job.public())
            try:
                self._run(job)
            except StylelabError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the queue
                log.exception("job %s failed", job.id)
                job.state, job.message = "failed", f"{type(exc).__name__}: {exc}".splitlines()[0]
            with self._lock:
                job.finished = time.time()
                if self._closing and job.state == "cancelled":
                    job.state = "interrupted"
                    job.message = "the server stopped during this job; its last image was kept"
                self._save()
            self.on_finished(job)
            self.hub.publish("job", job.public())

    def _inputs(self, job: Job) -> tuple[Path, list[Path], Path | None]:
        start = self.uploads.path(job.start) if job.start else None
        return self.uploads.path(job.content), [self.uploads.path(s) for s in job.styles], start

    def _run(self, job: Job) -> None:
        # The Recipe built from the request travels into the engine; after a restart, its saved values.
        recipe = job.resolved or recipe_from_dict(job.recipe, f"job {job.id}")
        self.check(recipe)
        content, styles, start = self._inputs(job)
        task = Task.of(content, styles, weights=job.weights, init=start)
        engine = self.engines.get(recipe)
        plan = engine.prepare([task], recipe)  # refused here (one line, the job "failed") before any folder
        # Inputs are kept in the run folder under fixed names, so a run can be repeated from it.
        names = {"content": content, **{f"style_{i}": p for i, p in enumerate(styles, 1)}, "start": start}
        files = {f"{name}{path.suffix}": path for name, path in names.items() if path is not None}
        folder = self.runs / job.id
        writer = RunWriter(
            folder, extra={"studio": {"job": job.id, "names": job.names}}, task=self._recorded_task(job, folder, files)
        )

        def keep_inputs(event) -> None:
            # Runs after the writer has made its .partial folder: the inputs travel with the run.
            if isinstance(event, Started) and event.item == 0:
                for name, src in files.items():
                    images.atomic_write_bytes(writer.partial / "inputs" / name, src.read_bytes())

        try:
            sinks = [writer, keep_inputs, self._relay(job, writer)]
            result = engine.run(plan, sinks, job.stop, preview=PREVIEW_EVERY)[0]
        except BaseException:
            writer.abandon()  # removes its .partial folder (only ever what it wrote there)
            raise
        job.state, job.message = STATE_OF.get(result.status, result.status), result.message
        job.run = job.id if folder.is_dir() else None
        # From now on the run folder holds the picture and the full metrics: keep memory small.
        job.history = thin(job.history, 1000)
        if job.run is not None:
            job.snapshot = None
        elif result.image is not None:
            job.snapshot, job.snapshot_step = images.png_bytes(result.image), job.step

    def _recorded_task(self, job: Job, folder: Path, files: dict[str, Path]) -> dict:
        """The inputs as the run records them: the copies kept in its folder with their content
        hashes and the names they were uploaded under (never the upload store's paths)."""
        from ..task import file_hash

        def entry(name: str, shown: str | None) -> dict:
            return {"name": str(folder / "inputs" / name), "sha256": file_hash(files[name]), "upload": shown or name}

        by_role = {Path(name).stem: name for name in files}
        shown = job.names.get("styles") or []
        styles = [entry(by_role[f"style_{i}"], s) for i, s in enumerate([None] * len(job.styles), 1)]
        for i, e in enumerate(styles):
            e["upload"] = shown[i] if i < len(shown) else e["upload"]
        task = {"content": entry(by_role["content"], job.names.get("content")), "styles": [{"images": styles}]}
        if job.weights:
            task["styles"][0]["weights"] = list(job.weights)
        if "start" in by_role:
            task["init"] = entry(by_role["start"], job.names.get("start"))
        return task

    def _relay(self, job: Job, writer: RunWriter):
        """Events to the job's state and the event stream; runs after ``writer`` in the callbacks."""
        last_sent, sent_rows = 0.0, 0

        def on_event(event) -> None:
            nonlocal last_sent, sent_rows
            if event.item != 0:
                return
            if isinstance(event, Started):
                job.total, job.terms = event.total_steps, list(event.terms)
                self.hub.publish("job", job.public())
            elif isinstance(event, Step):
                losses = dict(event.losses)
                job.step, job.elapsed, job.losses = event.step, event.elapsed, losses
                job.history.append([event.step, *(losses.get(k, 0.0) for k in job.terms)])
                now = time.monotonic()
                if now - last_sent >= STEP_EVERY or event.step == event.total_steps:
                    rows, sent_rows, last_sent = job.history[sent_rows:], len(job.history), now
                    self.hub.publish(
                        "step",
                        {"id": job.id, "step": job.step, "total": job.total, "elapsed": job.elapsed}
                        | {"eta": job.eta, "losses": losses, "rows": rows},
                    )
            elif isinstance(event, Snapshot):
                # The writer has just encoded this snapshot to its file: read it back rather
                # than encode it again on the run's thread.
                job.snapshot, job.snapshot_step = writer.snapshots[-1][1].read_bytes(), event.step
                self.hub.publish("snapshot", {"id": job.id, "step": event.step, "url": job.live_url})
            elif isinstance(event, Preview):  # the live view of a job that saves no snapshots
                job.snapshot, job.snapshot_step = images.png_bytes(event.image), event.step
                self.hub.publish("snapshot", {"id": job.id, "step": event.step, "url": job.live_url})

        return on_event
