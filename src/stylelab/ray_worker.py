"""The worker's side of Ray sweeps: the task that runs a batch, and how it reports progress.

The driver's side is ray_executor.py. Nothing here imports Ray at module
level, so ``run_batch`` also runs (and is tested) as a plain function.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .errors import StylelabError
from .events import Done, Event, Failed, Snapshot, Step
from .experiments import RunSpec
from .memory import available_memory
from .records import RunRecord
from .runs import Run, is_complete, write_run
from .sweep import UNFINISHED, Batch, execute_batch, made_with

STEP_INTERVAL = 0.5  # seconds between the Step events a worker sends per run


@functools.cache
def _engines():
    """This worker process's engines: a Ray worker runs batch after batch, and builds the network once."""
    from .engines import EngineCache

    return EngineCache()


def one_line(text: str, limit: int = 300) -> str:
    text = (str(text).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Outcome:
    """One run as a task reports it: its record (full, or a summary once written), or why it failed."""

    name: str
    record: RunRecord | None = None
    error: str = ""
    written: bool = False  # the worker wrote the run folder itself (shared-dir mode)


class Inbox:
    """The actor the workers send progress events to and the driver drains."""

    def __init__(self):
        self.events: list[Event] = []

    def push(self, event: Event) -> None:
        self.events.append(event)

    def drain(self) -> list[Event]:
        events, self.events = self.events, []
        return events


class Relay:
    """A worker's callback: sends its batch's events to the inbox, numbered sweep-wide.

    Snapshots and result images stay behind (the driver's display needs neither)
    and Steps are thinned to one per STEP_INTERVAL. A run's last event waits
    until the inbox has it, so everything a task sent is there when it returns.
    """

    def __init__(self, inbox, items: Sequence[int], interval: float = STEP_INTERVAL):
        self.inbox, self.items, self.interval = inbox, list(items), interval
        self.last: dict[int, float] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, Snapshot):
            return
        if isinstance(event, Step):
            now = time.monotonic()
            if event.step not in (1, event.total_steps) and now - self.last.get(event.item, 0.0) < self.interval:
                return
            self.last[event.item] = now
        elif isinstance(event, Done):
            event = Done(event.item, dataclasses.replace(event.result, image=None, history=event.result.history[-1:]))
        elif isinstance(event, Failed):
            event = dataclasses.replace(event, result=None)
        try:
            sent = self.inbox.push.remote(dataclasses.replace(event, item=self.items[event.item]))
            if isinstance(event, (Done, Failed)):
                import ray

                ray.get(sent, timeout=10)
        except Exception:  # noqa: BLE001 - progress is a nicety: never fail a run for it
            pass


def _written_earlier(folder: Path, spec: RunSpec) -> Run | None:
    """A complete folder with this run's settings, loaded: an earlier attempt of this task wrote it.

    (The driver sent the run because its folder was missing, partial, or made
    with other settings, so such a folder was written during this sweep.)
    """
    return made_with(folder, spec.recipe) if is_complete(folder) else None


def _summary(record: RunRecord) -> RunRecord:
    """A written run's record without its images and history: what the driver needs to count it."""
    return dataclasses.replace(record, image=None, snapshots=[], history=record.history[-1:])


def own_worker(threads: int):
    """What a Ray task does first: its worker process is the task's, as the CLI's is its own:
    sleeping OpenMP threads (effective when the worker has not loaded torch yet), a heap that keeps
    freed activations, ``threads`` torch threads. Returns torch.

    A worker whose earlier task was cancelled (Ctrl-C, ``ray.cancel``) while it imported torch keeps
    a half-imported torch that nothing in the process can use ("partially initialized module
    'torch'"): the process ends here, so that Ray starts a fresh worker and retries the task there.
    """
    from . import allocator
    from .threads import prefer_sleeping_threads

    prefer_sleeping_threads()
    allocator.reuse_freed_memory()
    try:
        import torch

        torch.autograd, torch.nn.functional  # noqa: B018 - present in a whole import, missing in a broken one
    except (ImportError, AttributeError):
        os._exit(1)
    torch.set_num_threads(max(1, int(threads)))
    return torch


def run_batch(
    batch: Batch,
    items: list[int],
    threads: int,
    inbox,
    runs_dir: str | None,
    paths: list[str],
    *data: bytes,
    version: str = __version__,
) -> list[Outcome]:
    """A Ray task: run ``batch`` with the image files ``data`` standing in for ``paths``.

    ``version`` is the driver's stylelab: a node with another would make other runs.
    """
    own_worker(threads)
    if version != __version__:
        why = f"{socket.gethostname()} has stylelab {__version__}, the driver {version}; install one version everywhere"
        return [Outcome(spec.name, error=why) for spec in batch.runs]
    todo = list(zip(batch.runs, items))
    outcomes: list[Outcome] = []
    if runs_dir is not None:
        folder = Path(runs_dir)
        if not folder.is_dir():
            raise StylelabError(
                f"--shared-dir: {folder} is not visible on {socket.gethostname()}; mount the experiment "
                "folder at the same path on every node, or leave out --shared-dir"
            )
        remaining = []
        for spec, item in todo:
            run = _written_earlier(folder / spec.name, spec)
            if run is None:
                remaining.append((spec, item))
                continue
            record = RunRecord(spec.recipe, spec.content, [spec.style], run.status, run.info.get("message", ""))
            outcomes.append(Outcome(spec.name, record, written=True))
        todo = remaining
    if not todo:
        return outcomes
    sub = Batch(batch.content, batch.recipe, [spec for spec, _ in todo])
    callbacks = [Relay(inbox, [item for _, item in todo])] if inbox is not None else []
    try:
        records = execute_batch(sub, callbacks=callbacks, inputs=dict(zip(paths, data)), engines=_engines())
    except StylelabError as exc:
        # Bad input or settings fail the same way on every attempt: report them, don't retry.
        return outcomes + [Outcome(spec.name, error=one_line(str(exc))) for spec, _ in todo]
    for (spec, _), record in zip(todo, records):
        if record.status == "error":
            outcomes.append(Outcome(spec.name, error=one_line(record.message)))
        elif runs_dir is not None and record.status not in UNFINISHED:
            write_run(Path(runs_dir) / spec.name, record)
            outcomes.append(Outcome(spec.name, _summary(record), written=True))
        else:
            outcomes.append(Outcome(spec.name, record))
    return outcomes


def probe_memory() -> tuple[int, str]:
    """A worker's free memory and its node (a Ray task)."""
    import ray

    return available_memory("auto"), ray.get_runtime_context().get_node_id()
