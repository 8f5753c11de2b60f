"""Progress sinks: a rich progress bar for terminals, a live display for notebooks."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .events import Done, Event, Failed, Preview, Snapshot, Started, Step


def _loss_text(losses) -> str:
    return "  ".join(f"{k} {v:.3g}" for k, v in losses.items())  # the run's own terms, in its order


class ProgressBar:
    """Step, losses and ETA on stderr, one bar per batch item; usable as a context manager."""

    def __init__(self, console: Console | None = None, transient: bool = False):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
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

    def __call__(self, event: Event) -> None:
        if isinstance(event, Started) and not self._live:
            self.progress.start()
            self._live = True
        if isinstance(event, Started):
            self.tasks[event.item] = self.progress.add_task(
                event.label or "stylising", total=event.total_steps, losses=""
            )
        elif isinstance(event, Step) and event.item in self.tasks:
            self.progress.update(self.tasks[event.item], completed=event.step, losses=_loss_text(event.losses))
        elif isinstance(event, Failed) and event.item in self.tasks:
            self.progress.update(self.tasks[event.item], losses=f"[red]{event.kind}")


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


class SweepProgress(ProgressBar):
    """A sweep's progress: runs done of all (with ETA) above a bar for each run in the current batch."""

    def __init__(self, total: int, console: Console | None = None, description: str = "sweep"):
        super().__init__(console)
        self.overall = self.progress.add_task(f"[bold]{description}", total=total, losses="runs")

    def run_finished(self, *_) -> None:
        self.progress.advance(self.overall)

    def __call__(self, event: Event) -> None:
        super().__call__(event)
        if isinstance(event, (Done, Failed)) and event.item in self.tasks:
            # Each run's bar goes when it ends; the next batch reuses the item numbers.
            self.progress.remove_task(self.tasks.pop(event.item))
