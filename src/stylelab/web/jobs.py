"""The studio's queue: jobs wait in order, one worker thread runs them through the engine.

Each job (job.py) becomes a run folder ``<runs>/<job id>/`` written by
``runs.RunWriter`` (so the gallery, the CLI and sweeps all read it the same
way), with the uploaded inputs kept in its ``inputs/`` so it can be run again.
Its styles are blended by weight or, with masks, each painted in its own
region (``job.job_task``). Every job runs on the queue's ``EngineCache``: the
network is built once, for the first job (``Job.build_seconds``; ``Job.startup``
is the time from the worker taking a job to its first event). The queue's
state lives in ``<runs>/.studio/jobs.json``, rewritten atomically at every
change of state: after a crash, a job found ``running`` there is marked
``interrupted`` and queued jobs carry on. At most ``max_queue`` jobs wait
(``QueueFull`` beyond that) and at most ``KEEP_JOBS`` finished ones are
remembered, so each rewrite is bounded work. A video job (its content a video upload) paints
its clip into a video run folder instead (video_jobs.py); run again after it stopped, it goes
on in the same folder from the first frame not saved.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .. import images
from ..engines import EngineCache
from ..errors import StylelabError
from ..events import Preview, Snapshot, Started, Step, said_in_one_line
from ..recipes import Recipe, recipe_from_dict
from ..runs import RunWriter
from .gallery import thin
from .job import FINISHED, JOB_ID, STATE_OF, STATES, Hub, Job, StepRelay, job_task, new_job_id, recorded_task
from .labels import labels
from .limits import DEFAULT_MAX_QUEUE, QueueFull
from .security import UnsafePath, inside
from .uploads import UploadStore
from .video_jobs import run_video_job, saved_frames, stopped_message

__all__ = ["Hub", "Job", "JobQueue", "job_task"]

log = logging.getLogger("stylelab.studio")

KEEP_JOBS = 200  # finished jobs remembered in jobs.json; their run folders stay in the gallery regardless
PREVIEW_EVERY = 1.0  # seconds between live images of a running job when it saves no snapshots


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
        self.labels: dict[str, str] = {}  # each job's label among the jobs the queue holds
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
            if job.folder is not None and not JOB_ID.fullmatch(str(job.folder)):
                job.folder = None
            if job.state == "running" and job.kind == "video":
                job.state, job.finished, job.clip_eta, changed = "interrupted", time.time(), None, True
                job.frame, job.frames = saved_frames(self.runs, job)
                job.message = "the server stopped while this job ran; " + stopped_message(job.frame, job.frames)
            elif job.state == "running":
                job.state, job.finished, changed = "interrupted", time.time(), True
                job.message = "the server stopped while this job ran; “Run again” in the queue starts it afresh"
                partial = self.runs / f"{job.id}.partial"
                if partial.is_dir():
                    job.message += f" (its snapshots so far are in {partial.name})"
            self.jobs[job.id] = job
        self._relabel()
        if changed:
            self._save()

    def _relabel(self) -> dict[str, str]:
        """Label the jobs among each other (``labels.labels``); returns the labels that changed."""
        with self._lock:
            jobs = list(self.jobs.values())
            new = dict(zip((j.id for j in jobs), labels([j.painted() for j in jobs])))
            changed = {k: v for k, v in new.items() if self.labels.get(k) != v}
            self.labels = new
        return changed

    def running_labels(self) -> dict[str, str]:
        """The labels of the jobs running now, by the key of the run folder each is writing."""
        with self._lock:
            return {
                (j.folder or j.id) if j.kind == "video" else f"{j.id}.partial": self.labels.get(j.id, "")
                for j in self.jobs.values()
                if j.state == "running"
            }

    def public(self, job: Job, history: bool = False) -> dict:
        """``job.public`` with its label among the queue's jobs."""
        return job.public(history, self.labels.get(job.id))

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
        masks: list[str | None] | None = None,
        *,
        kind: str = "image",
        video: dict | None = None,
        folder: str | None = None,
        labels: str | None = None,
        image_masks: list[str | None] | None = None,
    ) -> Job:
        """Queue a run; the inputs are upload ids already checked by the caller (``masks``: one per style or None;
        ``labels``: a colour-label image instead; ``image_masks``: one per style or None, the part of each painting).

        ``kind = "video"``: ``content`` is a video, painted with the clip settings ``video`` into the
        video run folder ``folder`` (default: one named by the job; an earlier job's to go on there).

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
            masks=list(masks) if masks and any(m is not None for m in masks) else None,
            kind=kind,
            video=dict(video) if video else None,
            folder=folder,
            labels=labels,
            image_masks=list(image_masks) if image_masks and any(m is not None for m in image_masks) else None,
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
            if kind == "video" and job.folder is None:
                job.folder = job.id  # known from the start: after a crash, its frames so far are found there
            self.jobs[job.id] = job
            self._save()
            changed = self._relabel()
            self._wake.notify_all()
        self.hub.publish("job", self.public(job))
        if len(changed) > 1:  # a new job can set others apart: their labels change too
            self.hub.publish("labels", changed)
        return job

    def get(self, job_id: str) -> Job | None:
        return self.jobs.get(job_id) if JOB_ID.fullmatch(job_id or "") else None

    def listing(self) -> list[dict]:
        with self._lock:
            return [self.public(j) for j in reversed(self.jobs.values())]

    def cancel(self, job: Job) -> Job:
        """Cancel a queued job at once; ask a running one to stop (it keeps its last image)."""
        with self._lock:
            if job.state == "queued":
                job.state, job.finished, job.message = "cancelled", time.time(), "cancelled before it started"
                self._save()
            elif job.state == "running":
                job.stop.set()
        self.hub.publish("job", self.public(job))
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
            self.hub.publish("job", self.public(job))
            try:
                self._run(job)
            except StylelabError as exc:
                job.state, job.message = "failed", str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the queue
                log.exception("job %s failed", job.id)
                job.state, job.message = "failed", said_in_one_line(exc)
            with self._lock:
                job.finished = time.time()
                if self._closing and job.state == "cancelled":
                    job.state = "interrupted"
                    job.message = "the server stopped during this job; its last image was kept"
                    if job.kind == "video":
                        job.message = "the server stopped during this job; " + stopped_message(job.frame, job.frames)
                self._save()
            self.on_finished(job)
            self.hub.publish("job", self.public(job))

    def _inputs(self, job: Job) -> dict[str, Path]:
        """The job's upload files by the names the run folder keeps them under: content, style_1, mask_1,
        labels, style_mask_1, start."""
        files = {"content": self.uploads.path(job.content)}
        for i, upload in enumerate(job.styles, 1):
            files[f"style_{i}"] = self.uploads.path(upload)
        for i, upload in enumerate(job.masks or [], 1):
            if upload is not None:
                files[f"mask_{i}"] = self.uploads.path(upload)
        if job.labels:
            files["labels"] = self.uploads.path(job.labels)
        for i, upload in enumerate(job.image_masks or [], 1):
            if upload is not None:
                files[f"style_mask_{i}"] = self.uploads.path(upload)
        if job.start:
            files["start"] = self.uploads.path(job.start)
        return files

    def _run(self, job: Job) -> None:
        if job.kind == "video":
            run_video_job(self, job)
            return
        began = time.perf_counter()
        # The Recipe built from the request travels into the engine; after a restart, its saved values.
        recipe = job.resolved or recipe_from_dict(job.recipe, f"job {job.id}")
        self.check(recipe)
        inputs = self._inputs(job)
        numbers = range(1, len(job.styles) + 1)
        masks = [inputs.get(f"mask_{i}") for i in numbers] if job.masks else None
        parts = [inputs.get(f"style_mask_{i}") for i in numbers] if job.image_masks else None
        styles = [inputs[f"style_{i}"] for i in numbers]
        task = job_task(
            inputs["content"], styles, job.weights, masks, inputs.get("start"), labels=inputs.get("labels"),
            image_masks=parts,
        )  # fmt: skip
        engine = self.engines.get(recipe)
        built = engine.build_seconds
        plan = engine.prepare([task], recipe)  # refused here (one line, the job "failed") before any folder
        job.build_seconds = round(engine.build_seconds - built, 4)
        # Inputs are kept in the run folder under fixed names, so a run can be repeated from it.
        files = {f"{name}{path.suffix}": path for name, path in inputs.items()}
        folder = self.runs / job.id
        recorded = recorded_task(job, task, folder, files)
        writer = RunWriter(folder, extra={"studio": {"job": job.id, "names": job.names}}, task=recorded)

        def keep_inputs(event) -> None:
            # Runs after the writer has made its .partial folder: the inputs travel with the run.
            if isinstance(event, Started) and event.item == 0:
                job.startup = round(time.perf_counter() - began, 4)
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

    def _relay(self, job: Job, writer: RunWriter):
        """Events to the job's state and the event stream; runs after ``writer`` in the callbacks."""
        steps = StepRelay(self.hub)

        def on_event(event) -> None:
            if event.item != 0:
                return
            if isinstance(event, Started):
                job.total, job.terms = event.total_steps, list(event.terms)
                self.hub.publish("job", self.public(job))
            elif isinstance(event, Step):
                steps(job, event)
            elif isinstance(event, Snapshot):
                # The writer has just encoded this snapshot to its file: read it back rather
                # than encode it again on the run's thread.
                job.snapshot, job.snapshot_step = writer.snapshots[-1][1].read_bytes(), event.step
                self.hub.publish("snapshot", {"id": job.id, "step": event.step, "url": job.live_url})
            elif isinstance(event, Preview):  # the live view of a job that saves no snapshots
                job.snapshot, job.snapshot_step = images.png_bytes(event.image), event.step
                self.hub.publish("snapshot", {"id": job.id, "step": event.step, "url": job.live_url})

        return on_event
