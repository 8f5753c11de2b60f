"""A clip's progress: plain lines for logs, or two bars in a terminal (the clip with its ETA, the frame).

Both are sinks of ``run_clip``: they read the clip's events (video/events.py) and the engine's
events of the frame being painted.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..events import Event, Failed, Started, Step
from ..progress import _clock, _loss_text
from .events import ClipEnded, ClipStarted, FrameDone


def frame_line(event: FrameDone) -> str:
    """One line about a finished frame: steps, time, how much the flow carried, losses, the clip's ETA."""
    carried = f", carried {event.reliable:.0%}" if event.reliable is not None else ""
    warn = " (diverged: the last good image kept)" if event.status == "diverged" else ""
    eta = f"  clip eta {_clock(event.eta)}" if event.eta is not None and event.frame < event.total else ""
    return (
        f"frame {event.frame}/{event.total}: {event.steps} steps in {event.seconds:.1f}s{carried}{warn}  "
        f"{_loss_text(event.losses)}  elapsed {_clock(event.elapsed)}{eta}"
    )


class ClipLines:
    """A line when the clip starts, one per finished frame (with the clip's ETA), and one at its end;
    with ``every``, also a line every that many steps within a frame."""

    def __init__(self, every: int | None = None, write=None):
        self.every = every
        self.write = write or (lambda line: print(line, file=sys.stderr, flush=True))

    def __call__(self, event: Event | ClipStarted | FrameDone | ClipEnded) -> None:
        if isinstance(event, ClipStarted):
            again = f", going on from frame {event.first}" if event.first > 1 else ""
            self.write(
                f"clip: {event.total} frames at {event.size[0]}x{event.size[1]}, {event.first_steps} steps for "
                f"frame 1 and {event.later_steps} for each later one{again}"
            )
        elif isinstance(event, Step) and self.every and (event.step % self.every == 0):
            per_step = event.elapsed / max(1, event.step)
            self.write(f"  {event.step}/{event.total_steps}  {_loss_text(event.losses)}  {per_step:.3g} s/step")
        elif isinstance(event, Failed) and event.kind in ("interrupted", "cancelled", "error"):
            self.write(f"  {event.kind} at step {event.step}: {event.reason}")
        elif isinstance(event, FrameDone):
            self.write(frame_line(event))
        elif isinstance(event, ClipEnded):
            self.write(f"clip {event.status}: {event.frames_done}/{event.total} frames")


class ClipBar:
    """Two bars on stderr: the clip (frames, elapsed, ETA from the pace of the frames so far) and the
    frame being painted (steps and losses). Usable as a context manager."""

    def __init__(self, console: Console | None = None):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console or Console(stderr=True),
        )
        self.clip = None
        self.frame = None
        self._live = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._live:
            self.progress.stop()
            self._live = False

    def __call__(self, event) -> None:
        if isinstance(event, ClipStarted):
            if not self._live:
                self.progress.start()
                self._live = True
            self.clip = self.progress.add_task("clip", total=event.total, completed=event.first - 1, info="")
        elif isinstance(event, Started) and self.clip is not None:
            if self.frame is not None:
                self.progress.remove_task(self.frame)
            self.frame = self.progress.add_task(event.label or "frame", total=event.total_steps, info="")
        elif isinstance(event, Step) and self.frame is not None:
            self.progress.update(self.frame, completed=event.step, info=_loss_text(event.losses))
        elif isinstance(event, FrameDone) and self.clip is not None:
            eta = f"eta {_clock(event.eta)}" if event.eta is not None else ""
            self.progress.update(self.clip, completed=event.frame, info=eta)
        elif isinstance(event, ClipEnded) and self.clip is not None:
            self.progress.update(self.clip, info=event.status)
