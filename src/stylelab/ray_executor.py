"""Sweeps on a Ray cluster: each batch of runs is a Ray task; the driver keeps the experiment folder.

``RayExecutor`` implements ``sweep.Executor``. The driver (``sweep.run_sweep``)
plans and batches the runs as for a local sweep; each batch becomes one Ray
task that asks for one GPU where the cluster has GPUs, else a few CPUs (and
uses as many torch threads). The input images travel with the tasks (each file
put into Ray's object store once), so workers need not see the driver's files.

Two ways to get the runs back:

- default: a task returns its runs as ``RunRecord``s (result and snapshot PNG
  bytes, losses, timings) and the driver writes each run folder atomically as
  the task finishes; no shared file system is needed.
- ``runs_dir`` (``--shared-dir``): the experiment folder is on a file system
  every node mounts at the same path; workers write run folders themselves
  (the same ``.partial`` then rename) and return only a summary.

Guarantees, as for the local executor: a run folder is complete or absent; a
task whose worker dies, or that raises, is tried again (``retries`` times; a
bad input or setting, ``StylelabError``, is not: it would fail the same way)
and is then reported with its reason while the other tasks go on; the driver
delivers at most one record per run, and in shared-dir mode a retried task
keeps the folders an earlier attempt finished instead of doing them again.
Ctrl-C (or ``stop``) writes what is finished and cancels the rest.

Workers report progress (start, steps a few times a second, end) to a small
actor the driver reads; a retried run's first attempt is closed in the
progress display before its second starts. The worker's side is ray_worker.py.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__, images
from .errors import StylelabError
from .events import Callback, Done, Event, Failed, Started, Step
from .ray_worker import Inbox, Outcome, one_line, probe_memory, run_batch
from .recipes import INITS
from .records import RunRecord
from .sweep import Batch, Deliver

INSTALL_HINT = "the Ray executor needs Ray: pip install 'stylelab[ray]'"
POLL = 0.25  # seconds the driver waits for a task before it reads progress again


def import_ray():
    """The ``ray`` module, or a one-line StylelabError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise StylelabError(INSTALL_HINT) from None
    return ray


# ---------------------------------------------------------------- resources


@dataclass(frozen=True)
class TaskResources:
    """What one batch task asks Ray for, and how many such tasks share one node's memory."""

    num_cpus: float
    num_gpus: float
    per_node: int  # tasks of this size running side by side on one node (or one GPU)

    @property
    def threads(self) -> int:
        """Torch threads in the task: one per CPU it holds."""
        return int(self.num_cpus)

    def options(self) -> dict[str, float]:
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}


def plan_resources(
    cluster: dict[str, float],
    node_cpus: Sequence[float],
    cpus_per_task: int | None = None,
    gpus_per_task: float | None = None,
    tasks: int | None = None,
) -> TaskResources:
    """One GPU per task where the cluster has GPUs (or ``gpus_per_task``; 0 forces CPUs), else CPUs.

    ``cluster`` is ``ray.cluster_resources()``, ``node_cpus`` each live node's
    CPU count. Without ``cpus_per_task``, the cluster's CPUs are shared among
    the ``tasks`` to run (at least 1 each, at most the largest node's), so many
    tasks run one thread each: single-threaded processes side by side give the
    most runs per hour, and keep their pace on a busy machine, where torch's
    threads wait for each other (4x slower measured here; see docs/ray.md).
    Without ``tasks`` (planning memory) a task is assumed to take one CPU.
    """
    if gpus_per_task is None:
        gpus_per_task = 1.0 if cluster.get("GPU", 0) > 0 else 0.0
    if gpus_per_task < 0 or (cpus_per_task is not None and cpus_per_task < 1):
        raise StylelabError("--cpus-per-task must be at least 1 and --gpus-per-task at least 0")
    if gpus_per_task > 0:
        cpus = cpus_per_task or 1
        return TaskResources(cpus, gpus_per_task, max(1, int(1 / gpus_per_task)))
    largest = int(max(node_cpus, default=0))
    if cpus_per_task is None:
        if largest < 1:
            raise StylelabError("the Ray cluster has no CPUs (and no GPUs); start a worker node first")
        share = int(cluster.get("CPU", largest) // tasks) if tasks else 1
        cpus_per_task = max(1, min(share, largest))
    return TaskResources(cpus_per_task, 0, max(1, largest // cpus_per_task))


# ---------------------------------------------------------------- the driver's side


class _Progress:
    """Forwards the workers' events to the driver's callback, keeping each run's sequence whole:
    a run started again (its task retried) or lost with its task is closed with a Failed first."""

    def __init__(self, events: Callback | None):
        self.events = events
        self.open: dict[int, int] = {}  # item -> last step seen

    def forward(self, event: Event) -> None:
        if self.events is None:
            return
        if isinstance(event, Started):
            self.close([event.item], "its worker was lost; trying again")
            self.open[event.item] = 0
        elif event.item not in self.open:
            return  # from an attempt already closed
        elif isinstance(event, Step):
            self.open[event.item] = event.step
        elif isinstance(event, (Done, Failed)):
            del self.open[event.item]
        self.events(event)

    def close(self, items: Sequence[int], reason: str) -> None:
        for item in items:
            if item in self.open and self.events is not None:
                self.events(Failed(item, self.open.pop(item), reason, "error"))


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not minutes, when HOST:PORT (or ray://HOST:PORT) does not answer:
    Ray itself keeps trying to reach a cluster's GCS for a long time."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", or a form Ray checks itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise StylelabError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); "
            "is `ray start --head` running there, and is the port open?"
        ) from None


def _reason(exc: Exception) -> str:
    """One line saying why a task failed for good."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    text = one_line(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Task:
    batch: Batch
    items: list[int]


class RayExecutor:
    """Runs a sweep's batches as Ray tasks (see the module's docstring).

    Args:
        address: the cluster to use ("auto", "HOST:PORT" or "ray://HOST:PORT");
            None starts a local Ray instance for the sweep. When Ray is already
            initialised in this process, that connection is used as it is.
        num_cpus: CPUs of the local instance (default: all of this machine's).
        cpus_per_task: CPUs (and torch threads) per CPU task; see ``plan_resources``.
        gpus_per_task: GPUs per task (default 1 where the cluster has GPUs; 0.5
            runs two tasks on each GPU; 0 keeps to CPUs).
        retries: times a task is tried again after its worker died or it raised.
        runs_dir: shared-dir mode: the experiment's runs folder, which every
            node sees at this path; workers write run folders into it.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_cpus: int | None = None,
        cpus_per_task: int | None = None,
        gpus_per_task: float | None = None,
        retries: int = 2,
        runs_dir: str | Path | None = None,
    ):
        import_ray()  # fail now, with the install hint, rather than when the sweep starts
        if retries < 0:
            raise StylelabError("--retries must be 0 or more")
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_task, self.gpus_per_task, self.retries = cpus_per_task, gpus_per_task, retries
        self.runs_dir = str(Path(runs_dir).resolve()) if runs_dir is not None else None
        self._started = False  # this executor called ray.init (and so shuts it down)
        self._memory: int | None = None

    # ------------------------------------------------------------ connection

    def connect(self) -> None:
        """Start or join Ray unless this process is already connected."""
        ray = import_ray()
        if ray.is_initialized():
            return
        quiet = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
        try:
            if self.address is None:
                ray.init(address="local", num_cpus=self.num_cpus, **quiet)
            else:
                _check_reachable(self.address)
                ray.init(address=self.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            hint = ""
            if self.address not in (None, "auto") and "RAY_AUTH_MODE" not in os.environ:
                # Clusters started by `ray start` use token authentication unless told otherwise.
                hint = " (if the cluster uses token authentication, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN)"
            raise StylelabError(f"cannot start or reach {where}: {_reason(exc)}{hint}") from None
        self._started = True

    def close(self) -> None:
        """Disconnect from Ray (stopping the local instance) if this executor connected."""
        if self._started:
            import_ray().shutdown()
            self._started = False

    def resources(self, tasks: int | None = None) -> TaskResources:
        """What each task asks for, when ``tasks`` of them are to run (see ``plan_resources``)."""
        ray = import_ray()
        self.connect()
        nodes = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
        return plan_resources(ray.cluster_resources(), nodes, self.cpus_per_task, self.gpus_per_task, tasks)

    def worker_memory(self) -> int:
        """Bytes one task may plan with: a worker's free memory (GPU memory on GPU nodes)
        shared among the tasks that run beside it. Asked of a worker once."""
        if self._memory is None:
            ray = import_ray()
            res = self.resources()
            probe = ray.remote(probe_memory).options(**res.options())
            free, node = ray.get(probe.remote())
            per_node = res.per_node
            if not res.num_gpus:
                cpus = next((n["Resources"].get("CPU", 0) for n in ray.nodes() if n["NodeID"] == node), 0)
                per_node = max(1, int(cpus // res.num_cpus)) if cpus else per_node
            self._memory = int(free // per_node)
        return self._memory

    # ------------------------------------------------------------ running

    def run(
        self, batches: Sequence[Batch], deliver: Deliver, *, events: Callback | None = None, stop: threading.Event
    ) -> None:
        if not batches:
            return
        ray = import_ray()
        self.connect()
        try:
            self._run(ray, batches, deliver, events, stop)
        finally:
            self.close()

    def _run(self, ray, batches, deliver, events, stop) -> None:
        res = self.resources(len(batches))
        remote = ray.remote(run_batch).options(
            **res.options(), max_retries=self.retries, retry_exceptions=True, name="stylelab-batch"
        )
        # Every input image is checked here (a bad one costs no run) and put into the object
        # store once, before any task starts, so the workers need not see the driver's files.
        shipped = {path: ray.put(_image_file(path)) for batch in batches for path in batch_inputs(batch)}
        inbox = ray.remote(num_cpus=0, max_restarts=0)(Inbox).remote() if events is not None else None
        progress = _Progress(events)
        tasks: dict[object, _Task] = {}
        first = 0
        for batch in batches:
            items = list(range(first, first + len(batch.runs)))
            first += len(batch.runs)
            paths = batch_inputs(batch)
            data = [shipped[path] for path in paths]
            ref = remote.remote(batch, items, res.threads, inbox, self.runs_dir, paths, *data, version=__version__)
            tasks[ref] = _Task(batch, items)

        def read_progress() -> None:
            if inbox is not None:
                try:
                    for event in ray.get(inbox.drain.remote(), timeout=30):
                        progress.forward(event)
                except ray.exceptions.RayError:
                    pass  # progress lost, runs not: go on

        def finish(ref) -> None:
            task = tasks.pop(ref)
            try:
                outcomes = {o.name: o for o in ray.get(ref)}
            except ray.exceptions.TaskCancelledError:
                outcomes = {}
            except ray.exceptions.RayError as exc:
                why = _reason(exc)
                outcomes = {spec.name: Outcome(spec.name, error=why) for spec in task.batch.runs}
            read_progress()
            for spec, item in zip(task.batch.runs, task.items):
                outcome = outcomes.get(spec.name)
                if outcome is None:
                    continue
                if outcome.error:
                    progress.close([item], outcome.error)
                record = outcome.record or RunRecord(
                    spec.recipe, spec.content, [spec.style], status="error", message=outcome.error
                )
                deliver(spec, record, written=outcome.written)
            progress.close(task.items, "its task ended without a word about it")

        try:
            while tasks and not stop.is_set():
                ready, _ = ray.wait(list(tasks), num_returns=1, timeout=POLL)
                for ref in ready:
                    finish(ref)
                read_progress()
        finally:
            # What is finished is written before the rest is cancelled.
            if tasks:
                ready, _ = ray.wait(list(tasks), num_returns=len(tasks), timeout=0)
                for ref in ready:
                    finish(ref)
                for ref in tasks:
                    ray.cancel(ref)
                progress.close([i for task in tasks.values() for i in task.items], "cancelled")
            if inbox is not None:
                ray.kill(inbox)


def batch_inputs(batch: Batch) -> list[str]:
    """The image files a batch reads: its content, its styles (and region masks), and an init image named by path."""
    paths = [batch.content, *(path for spec in batch.runs for path in spec.inputs)]
    if batch.recipe.init not in INITS:
        paths.append(batch.recipe.init)
    return list(dict.fromkeys(paths))


def _image_file(path: str) -> bytes:
    """The file's bytes, once it has been checked to be an image stylelab can read (else ImageError)."""
    images.open_image(path)
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StylelabError(f"cannot read {path}: {exc.strerror or exc}") from None


def describe(executor: RayExecutor) -> str:
    """One line about the cluster a sweep runs on, for the CLI."""
    ray = import_ray()
    res = executor.resources()
    cluster = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if res.num_gpus:
        each = f"{res.num_gpus:g} GPU and {res.num_cpus:g} CPU each"
    elif executor.cpus_per_task:
        each = f"{res.num_cpus:g} CPU (and torch threads) each"
    else:
        each = "the CPUs shared among them"
    return f"Ray: {nodes} node(s), {cluster.get('CPU', 0):g} CPUs, {cluster.get('GPU', 0):g} GPUs; tasks: {each}"
