"""Running an experiment: batches of runs, an executor that runs them, a driver that keeps the folder.

The driver (``run_sweep``) plans the runs, skips the finished ones, groups the
rest into batches and hands them to an executor. Runs that share content and
every setting and differ only in their style image go through VGG19 together
(``engine.stylize_batch``); each keeps its own losses and optimiser state, so a
batched run ends where it would have ended alone.

An executor only runs batches and gives back one ``RunRecord`` per run (the
whole run in memory: result and snapshot PNG bytes, losses, timings, metric);
the driver alone writes run folders, with ``runs.write_run`` (``.partial`` then
rename). ``LocalExecutor`` runs batches here, one after the other; an executor
for a cluster implements the same ``run`` method and sends ``execute_batch``
to its workers.

Experiment folder::

    experiment.toml     the experiment as planned (absolute paths)
    runs/<run name>/    one run folder per run (see runs.py)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from . import images
from .errors import StylelabError
from .events import Callback, for_item, said_in_one_line
from .experiments import Experiment, RunSpec
from .memory import available_memory, batch_that_fits
from .recipes import INITS, Recipe
from .records import RunRecord, RunRecorder
from .runs import Run, is_complete, load_run, write_run

if TYPE_CHECKING:  # pragma: no cover
    from .engines import EngineCache

UNFINISHED = ("cancelled", "interrupted")  # runs cut short: not written, run again by the next sweep
DEFAULT_MAX_BATCH = 8  # beyond this a CPU gains nothing and a GPU little
MEMORY_SHARE = 0.5  # of the memory free at the start, the most a batch may plan to use


@dataclass
class Batch:
    """Runs with one content image and one recipe, differing only in their style image."""

    content: str
    recipe: Recipe
    runs: list[RunSpec]

    @property
    def label(self) -> str:
        return self.runs[0].name if len(self.runs) == 1 else f"{self.runs[0].name} (+{len(self.runs) - 1})"


# ---------------------------------------------------------------- memory and batches


def batch_limit(recipe: Recipe, content: str, requested: int | None = None, free: int | None = None) -> int:
    """How many images of this content and recipe fit in one batch."""
    w, h = images.fit(images.load_rgb(content)[0], recipe.size).size
    free = available_memory(recipe.device) if free is None else free
    fits = batch_that_fits(recipe, w, h, free, MEMORY_SHARE)
    return max(1, min(fits, requested if requested else DEFAULT_MAX_BATCH))


def sweep_batches(todo: Sequence[RunSpec], max_batch: int, executor: Executor | None = None) -> list[Batch]:
    """The batches a sweep runs: sized by each group's memory need against the memory where
    the batches run (``executor.worker_memory()``; this machine's when it says None)."""

    def limit(spec: RunSpec) -> int:  # plan_batches asks once per group of content and recipe
        free = executor.worker_memory() if executor is not None else None
        return batch_limit(spec.recipe, spec.content, max_batch, free)

    return plan_batches(todo, limit)


def plan_batches(specs: Sequence[RunSpec], limit: Callable[[RunSpec], int] | int = 1) -> list[Batch]:
    """Group runs with the same content and recipe (kept in plan order), at most ``limit`` per batch.
    Region layouts go with layouts of as many style sets (the engine batches only style sets of one shape)."""
    groups: dict[tuple[str, str, int], list[RunSpec]] = {}
    for spec in specs:
        sets = len(spec.style_images) if spec.regions is not None else 0
        groups.setdefault((spec.content, spec.recipe.to_toml(), sets), []).append(spec)
    batches = []
    for runs in groups.values():
        n = limit(runs[0]) if callable(limit) else limit
        for i in range(0, len(runs), max(1, n)):
            chunk = runs[i : i + max(1, n)]
            batches.append(Batch(chunk[0].content, chunk[0].recipe, chunk))
    return batches


# ---------------------------------------------------------------- running a batch


def execute_batch(
    batch: Batch,
    *,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    measure: bool = True,
    inputs: dict[str, bytes] | None = None,
    engines: EngineCache | None = None,
) -> list[RunRecord]:
    """Run one batch and return its runs as records; what an executor's worker calls.

    ``measure`` adds stylelab's content distance and style distance under every
    style loss of each result (metrics.py; regions each by its own style), so runs
    can be compared whatever their recipes and losses. ``inputs`` maps
    the batch's image paths to their bytes, for a worker that cannot read the
    driver's files; the records still name the paths. ``engines``: the worker's
    engines, kept across batches (the network is built once). A batch that
    cannot run comes back as records of status ``error`` with the reason.
    """
    from .engines import EngineCache

    def source(path: str):
        return inputs.get(path, path) if inputs else path

    engines = engines or EngineCache()
    recorders = [RunRecorder(_task_record(spec, inputs)) for spec in batch.runs]
    sinks = [for_item(rec, i) for i, rec in enumerate(recorders)]
    init = inputs.get(batch.recipe.init) if inputs else None  # an init image given as a path
    tasks = [spec.task(source, init=init, label=spec.name) for spec in batch.runs]
    try:
        engine = engines.get(batch.recipe)
        engine.run(engine.prepare(tasks, batch.recipe), [*sinks, *callbacks], stop)
    except StylelabError as exc:
        return [_error_record(spec, batch, str(exc)) for spec in batch.runs]
    records = []
    for spec, rec in zip(batch.runs, recorders):
        record = rec.record or _error_record(spec, batch, "the run ended without a result")
        steps = max(1, record.steps)
        record.extra.update(
            run=spec.name,
            sweep=dict(spec.point),
            batch_size=len(batch.runs),
            # In a batch, elapsed, peak memory and seconds per step are the batch's: one
            # step advances all its images. These runs shared them:
            batch_runs=[other.name for other in batch.runs],
            seconds_per_step=round(record.elapsed / steps, 5) if record.elapsed is not None else None,
        )
        if measure and record.image is not None and record.status in ("done", "diverged"):
            from .metrics import task_distances

            # Under every style loss, so a sweep over style_loss can be read by each; regions by their own styles.
            record.extra["distances"] = task_distances(record.image, spec.task(source), size=batch.recipe.size).record()
        records.append(record)
    return records


def _task_record(spec: RunSpec, inputs: dict[str, bytes] | None) -> dict:
    """The inputs a run's record names: the driver's paths, with the hashes of their contents."""
    import hashlib

    from .task import describe

    def entry(path: str) -> dict:
        if inputs and path in inputs:
            return {"name": path, "sha256": hashlib.sha256(inputs[path]).hexdigest()}
        return describe(path)

    return spec.task().to_dict(entry)


def _error_record(spec: RunSpec, batch: Batch, why: str) -> RunRecord:
    return RunRecord(batch.recipe, spec.content, spec.style_images, "error", why.splitlines()[0] if why else "error")


# deliver(spec, record, *, written=False): ``written`` when the executor's worker already wrote
# the run folder itself (on a file system the driver shares); the driver then only counts it.
Deliver = Callable[..., None]


class Executor(Protocol):
    """Runs batches and hands each run's record to ``deliver`` (in the driver's process).

    It stops starting batches once ``stop`` is set; records of runs cut short
    come back with status ``cancelled`` and are not written. A run that could
    not be done comes back with status ``error`` and its reason as ``message``;
    it is reported, not written, and the next sweep tries it again.
    """

    def run(
        self, batches: Sequence[Batch], deliver: Deliver, *, events: Callback | None, stop: threading.Event
    ) -> None: ...

    def worker_memory(self) -> int | None:
        """Bytes one batch may plan with where it runs; None: this machine's free memory."""


class LocalExecutor:
    """One batch after the other, in this process, on engines kept for the whole sweep.

    A batch that fails is recorded (status ``error``, reported, not written) and the
    sweep goes on, as the Ray executor does.
    """

    def __init__(self):
        from .engines import EngineCache

        self.engines = EngineCache()

    def worker_memory(self) -> None:
        return None

    def run(self, batches, deliver, *, events=None, stop):
        for batch in batches:
            if stop.is_set():
                return
            try:
                records = execute_batch(batch, callbacks=[events] if events else (), stop=stop, engines=self.engines)
            except Exception as exc:  # noqa: BLE001 - one broken batch is reported; the sweep goes on
                why = said_in_one_line(exc)
                records = [_error_record(spec, batch, why) for spec in batch.runs]
            for spec, record in zip(batch.runs, records):
                deliver(spec, record)
                if record.status in UNFINISHED:
                    stop.set()


# ---------------------------------------------------------------- the driver


@dataclass
class SweepSummary:
    folder: Path
    planned: int = 0
    skipped: int = 0
    written: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run, why) for runs not done
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def remaining(self) -> int:
        return self.planned - self.skipped - len(self.written)


def experiment_folder(exp: Experiment, out: str | Path | None = None) -> Path:
    return Path(out) if out is not None else exp.out if exp.out is not None else Path("experiments") / exp.name


def made_with(folder: Path, recipe: Recipe) -> Run | None:
    """The complete run folder ``folder``, loaded, if it was made with ``recipe`` (None if not, or unreadable)."""
    try:
        run = load_run(folder)
    except (OSError, ValueError, KeyError, StylelabError):
        return None
    return run if run.recipe.to_dict() == recipe.to_dict() else None


def pending(specs: Sequence[RunSpec], runs_dir: Path, redo: bool = False) -> list[RunSpec]:
    """The runs not finished yet. A finished run made with other settings is an error unless ``redo``."""
    todo, changed = [], []
    for spec in specs:
        folder = runs_dir / spec.name
        if not is_complete(folder):
            todo.append(spec)
        elif made_with(folder, spec.recipe) is None:
            changed.append(spec)
    if changed and not redo:
        raise StylelabError(
            f"{len(changed)} finished run(s) in {runs_dir} were made with other settings "
            f"(e.g. {changed[0].name}); use --redo to run them again, or another -o folder"
        )
    return todo + changed


def is_experiment_file(path: Path) -> bool:
    """Whether an existing experiment.toml is one a sweep wrote (and may write again)."""
    import tomllib

    from .experiments import KEYS

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    return set(data) <= set(KEYS) and {"name", "content", "styles"} <= set(data)


def check_sweep(folder: Path, batches: Sequence[Batch], *, local: bool = True) -> None:
    """Refuse, before anything is written, a sweep that would fail or overwrite later: every input
    image decodes and suits its recipe (sizes for the network; memory, when the batches run here),
    every run folder it will write is new or its own, and so is the experiment file."""
    from . import folders, memory
    from .plan import check_network_sizes, decode_sets

    folders.check_output_file(folder / "experiment.toml", is_experiment_file, option="the experiment file")
    decoded: dict[str, object] = {}

    def image(path: str, what: str):
        if path not in decoded:
            decoded[path] = images.load_rgb(path, what=f"{what} {path}")[0]
        return decoded[path]

    for batch in batches:
        content = image(batch.content, "content")
        styles = [image(path, "style") for spec in batch.runs for path in spec.style_images]
        if batch.recipe.init not in INITS:
            image(batch.recipe.init, "start image")
        for spec in batch.runs:
            if spec.regions is not None:  # masks: decoded, counted and fitted to the content, as the run will
                decode_sets(spec.task(), content, f" of region layout {spec.regions.name}")
        # VGG's limits (sizes, memory) are the optimiser's; the fast engine checks its own when it runs.
        # A cluster's workers have their own memory (the executor sizes the batches for it).
        if batch.recipe.engine != "fast":
            check_network_sizes(content, styles, batch.recipe)
            if local:
                memory.check_fits(batch.recipe, content.size, [s.size for s in styles], len(batch.runs))
        for spec in batch.runs:
            folders.check_folder(folder / "runs" / spec.name, option="run folder", protect=tuple(spec.inputs))


def run_sweep(
    exp: Experiment,
    *,
    out: str | Path | None = None,
    executor: Executor | None = None,
    max_batch: int | None = None,
    events: Callback | None = None,
    on_run: Callable[[RunSpec, RunRecord], None] | None = None,
    stop: threading.Event | None = None,
    redo: bool = False,
    on_failed: Callable[[RunSpec, RunRecord], None] | None = None,
) -> SweepSummary:
    """Run every unfinished run of ``exp`` into its folder; returns what happened.

    ``on_run(spec, record)`` is called for each run written (done or diverged), after its
    folder is; ``on_failed(spec, record)`` for each run that could not be done (status
    ``error``, its reason in ``record.message``; not written). Runs cut short get neither.

    Ctrl-C (KeyboardInterrupt) or ``stop`` ends the sweep after the runs already
    finished are written; running it again continues where it stopped.
    """
    folder = experiment_folder(exp, out)
    runs_dir = folder / "runs"
    specs = exp.plan()
    todo = pending(specs, runs_dir, redo)
    summary = SweepSummary(folder, planned=len(specs), skipped=len(specs) - len(todo))
    batches = sweep_batches(todo, max_batch, executor)
    # Everything the sweep will read or replace is checked before it writes anything.
    check_sweep(folder, batches, local=executor is None)
    images.atomic_write_text(folder / "experiment.toml", exp.to_toml())
    runs_dir.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()

    def deliver(spec: RunSpec, record: RunRecord, *, written: bool = False) -> None:
        if record.status in UNFINISHED:
            return  # not finished: the next sweep runs it again
        if record.status == "error":
            summary.failed.append((spec.name, record.message))
            if on_failed is not None:
                on_failed(spec, record)
            return
        if not written:
            write_run(runs_dir / spec.name, record)
        summary.written.append(spec.name)
        if record.status != "done":
            summary.diverged.append(spec.name)
        if on_run is not None:
            on_run(spec, record)

    t0 = time.perf_counter()
    try:
        (executor or LocalExecutor()).run(batches, deliver, events=events, stop=stop)
    except KeyboardInterrupt:
        stop.set()
    summary.interrupted = stop.is_set() and summary.remaining > 0
    summary.elapsed = time.perf_counter() - t0
    return summary
