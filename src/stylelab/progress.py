"""Progress sinks: a rich progress bar for terminals, plain lines for logs, a live display for
notebooks, and a sweep's progress (either kind) with its own time left."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .events import Done, Event, Failed, Preview, Snapshot, Started, Step

if TYPE_CHECKING:  # pragma: no cover
    from .experiments import RunSpec
    from .recipes import Recipe
    from .records import RunRecord


def _loss_text(losses) -> str:
    return "  ".join(f"{k} {v:.3g}" for k, v in losses.items())  # the run's own terms, in its order


class EtaColumn(ProgressColumn):
    """The time left: a task's own ``clock`` field (a callable giving seconds, or None while it
    cannot tell) where it has one, else rich's estimate from the task's recent speed."""

    def __init__(self):
        super().__init__()
        self.rich = TimeRemainingColumn()

    def render(self, task) -> Text:
        clock = task.fields.get("clock")
        if clock is None:
            return self.rich.render(task)
        left = clock()
        if left is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(int(round(left)), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


class ProgressBar:
    """Step, losses and ETA on stderr, one bar per batch item; usable as a context manager."""

    def __init__(self, console: Console | None = None, transient: bool = False):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            EtaColumn(),
            TextColumn("{task.fields[losses]}"),
            console=console or Console(stderr=True),
            transient=transient,
        )
        self.tasks: dict[int, int] = {}
        self._live = False

    def __enter__(self):
        return self  # the bar appears with the first Started event: a refused run draws nothing

    def __exit__(self, *exc):
        if self._live:
            self.progress.stop()
            self._live = False

    def start(self) -> None:
        if not self._live:
            self.progress.start()
            self._live = True

    def __call__(self, event: Event) -> None:
        if isinstance(event, Started):
            self.start()
            self.tasks[event.item] = self.progress.add_task(
                event.label or "stylising", total=event.total_steps, losses=""
            )
        elif isinstance(event, Step) and event.item in self.tasks:
            self.progress.update(self.tasks[event.item], completed=event.step, losses=self.losses(event.losses))
        elif isinstance(event, Failed) and event.item in self.tasks:
            self.progress.update(self.tasks[event.item], losses=f"[red]{event.kind}")

    def losses(self, losses: Mapping[str, float]) -> str:
        return _loss_text(losses)


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class LogLines:
    """One plain line every ``every`` steps, for logs, CI and cluster jobs (neural-style's -print_iter):
    the step, each loss term, seconds per step and the time left; and a line when a run ends."""

    def __init__(self, every: int, write=None):
        self.every = max(1, int(every))
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.labels: dict[int, str] = {}

    def __call__(self, event: Event) -> None:
        label = self.labels.get(event.item, "")
        if isinstance(event, Started):
            self.labels[event.item] = f"{event.label}: " if event.label else ""
        elif isinstance(event, Step) and (event.step % self.every == 0 or event.step == event.total_steps):
            per_step = event.elapsed / max(1, event.step)
            left = per_step * (event.total_steps - event.step)
            self.write(
                f"{label}step {event.step}/{event.total_steps}  {_loss_text(event.losses)}  "
                f"{per_step:.3g} s/step  eta {_clock(left)}"
            )
        elif isinstance(event, Done):
            self.write(f"{label}done: {event.result.steps} steps in {_clock(event.result.elapsed)}")
        elif isinstance(event, Failed):
            self.write(f"{label}{event.kind} at step {event.step}: {event.reason}")


NOTEBOOK_PREVIEW = 2.0  # seconds between the images a notebook's live display shows between snapshots


def in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NotebookDisplay:
    """Updates one output cell in place with the step, the losses and the latest image.

    The image comes from snapshots and, between them, from the run's Preview
    events (``NOTEBOOK_PREVIEW`` seconds apart), so it shows the run as it goes even when
    the recipe saves no snapshots; after a cancel or Ctrl-C it shows where the
    run got to. ``display`` is IPython's ``display`` function (the default);
    anything with the same call signature that returns handles with ``update`` will do.
    """

    def __init__(self, display=None):
        if display is None:
            from IPython.display import display

        self.text = display({"text/plain": "starting..."}, raw=True, display_id=True)
        self.picture = display({"text/plain": ""}, raw=True, display_id=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step) and event.item == 0:
            done = event.step / max(1, event.total_steps)
            eta = event.elapsed / max(done, 1e-9) - event.elapsed
            self.text.update(
                {"text/plain": f"step {event.step}/{event.total_steps}  eta {eta:.0f}s  {_loss_text(event.losses)}"},
                raw=True,
            )
        elif isinstance(event, (Snapshot, Preview, Done)) and event.item == 0:
            img = event.result.image if isinstance(event, Done) else event.image
            if img is not None:
                self.picture.update(img)
        elif isinstance(event, Failed) and event.item == 0:
            self.text.update({"text/plain": f"{event.kind}: {event.reason}"}, raw=True)
            if event.result is not None and event.result.image is not None:
                self.picture.update(event.result.image)


def run_work(recipe: Recipe) -> float:
    """A run's cost in relative units, to weigh runs against each other for a sweep's ETA:
    steps times pixels, summed over its scales (each about half the pixels of the next)."""
    if recipe.engine != "optimise":
        return float(recipe.size) ** 2 / 100  # one forward pass, about a step's worth
    pixels = sum((recipe.size**2) * 0.5**i for i in range(recipe.scales))
    return max(1, recipe.steps) * pixels


class SweepClock:
    """A sweep's time left from the runs finished so far: its wall time per unit of work done,
    times the work left. The runs of a batch are optimised together and finish together, so
    the first run of a batch to come back counts the whole batch as done (otherwise the first
    of three would say three times too much); ``work`` weighs runs of different steps and sizes."""

    def __init__(self, work: Mapping[str, float], clock: Callable[[], float] = time.monotonic):
        self.work = dict(work)
        self.total = sum(self.work.values())
        self.done: set[str] = set()
        self.clock = clock
        self.started = clock()
        self._estimate: tuple[float, float] | None = None  # (when, seconds left then)

    def finish(self, names: Iterable[str]) -> None:
        self.done.update(name for name in names if name in self.work)
        done = sum(self.work[name] for name in self.done)
        if done > 0:
            now = self.clock()
            self._estimate = (now, (now - self.started) / done * max(0.0, self.total - done))

    def elapsed(self) -> float:
        return self.clock() - self.started

    def left(self) -> float | None:
        """Seconds left, counting down from the estimate made when the last run finished;
        None before any run finished (nothing to go by)."""
        if self._estimate is None:
            return None
        when, left = self._estimate
        return max(0.0, left - (self.clock() - when))


def _run_line_facts(record: RunRecord) -> str:
    batch = record.extra.get("batch_size", 1)
    # The content and (Gram) style distance; run.json keeps the style distance under every loss as well.
    measured = {k: v for k, v in (record.extra.get("distances") or record.losses).items() if k in ("content", "style")}
    facts = [f"batch of {batch}"] if isinstance(batch, int) and batch > 1 else []
    if measured:
        facts.append(" ".join(f"{k} {v:.2g}" for k, v in measured.items()))
    return f" ({'; '.join(facts)})" if facts else ""


class SweepProgress:
    """A sweep's progress, with its time left from the runs finished (``SweepClock``).

    In a terminal: runs done of all above a bar for each run of the current batch. Otherwise
    (logs, CI, cluster jobs; or ``lines=True``): one line per finished run,
    ``[3/6] NAME done in 12.3 s (content 0.52 style 0.21) · sweep eta 0:13``, and with
    ``print_every`` each run's steps as ``LogLines`` does. ``runs`` are the runs to come (or
    their number, all weighing the same). Feed it the engine's events and ``run_finished`` /
    ``run_failed`` (``sweep.run_sweep``'s ``on_run`` and ``on_failed``).
    """

    def __init__(
        self,
        runs: Sequence[RunSpec] | int,
        console: Console | None = None,
        description: str = "sweep",
        *,
        lines: bool = False,
        print_every: int | None = None,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        work = (
            {f"run {i}": 1.0 for i in range(runs)}
            if isinstance(runs, int)
            else {s.name: run_work(s.recipe) for s in runs}
        )
        self.count = len(work)
        self.clock = SweepClock(work, clock)
        self.finished = 0
        self.lines = lines or print_every is not None
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))
        self.steps = LogLines(print_every, self.write) if print_every is not None else None
        self.bar = None
        if not self.lines:
            self.bar = _SweepBar(console)
            self.overall = self.bar.progress.add_task(
                f"[bold]{description}", total=self.count, losses="runs", clock=self.clock.left
            )

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if self.bar is not None:
            self.bar(event)
        elif self.steps is not None:
            self.steps(event)

    def run_finished(self, spec: RunSpec, record: RunRecord) -> None:
        """A run came back done or diverged (its folder is written)."""
        self._ended(spec, record.extra.get("batch_runs") or [spec.name])
        if self.lines:
            took = f" in {record.elapsed:.1f} s" if record.elapsed is not None else ""
            self.write(f"{self._count()} {spec.name} {record.status}{took}{_run_line_facts(record)} · {self._left()}")

    def run_failed(self, spec: RunSpec, record: RunRecord) -> None:
        """A run could not be done (it is not written; the next sweep tries it again)."""
        self._ended(spec, record.extra.get("batch_runs") or [spec.name])
        if self.lines:
            self.write(f"{self._count()} {spec.name} failed: {record.message} · {self._left()}")

    def _ended(self, spec: RunSpec, batch: Sequence[str]) -> None:
        self.finished += 1
        self.clock.finish([spec.name, *batch])
        if self.bar is not None:
            self.bar.start()
            self.bar.progress.advance(self.overall)

    def _count(self) -> str:
        return f"[{self.finished}/{self.count}]"

    def _left(self) -> str:
        if self.finished >= self.count:
            return f"sweep took {_clock(self.clock.elapsed())}"
        left = self.clock.left()
        return f"sweep eta {'?' if left is None else _clock(left)}"


class _SweepBar(ProgressBar):
    """The bars of a sweep's current batch under its overall row; each run's bar goes when it ends."""

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if isinstance(event, (Done, Failed)) and event.item in self.tasks:
            # The next batch reuses the item numbers.
            self.progress.remove_task(self.tasks.pop(event.item))

    def losses(self, losses: Mapping[str, float]) -> str:
        # Run names are long: the total alone keeps the bar in 80 columns.
        return f"total {losses['total']:.3g}" if "total" in losses else _loss_text(losses)
