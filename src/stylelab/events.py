"""What the engine tells the world while it runs.

The engine calls every callback with small frozen records. In a batch (several
tasks optimised together) each record carries ``item``, the task's place in the
plan; a single run is item 0. A callback that returns ``True`` asks the engine
to stop (as does setting the ``stop`` event passed to the engine): the run ends
as ``cancelled`` with the last image kept.

Every item that started gets exactly one ending: ``Done``, or ``Failed`` with a
``kind``: ``diverged`` (NaN/inf; the last good image is kept), ``cancelled``,
``interrupted`` (Ctrl-C; the image so far is kept), or ``error`` (an exception,
in a sink too, or out of memory: nothing to keep). ``Started.terms`` names the
loss terms every ``Step.losses`` will hold, in order, ``total`` last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from .engines import Result
    from .recipes import Recipe


@dataclass(frozen=True)
class Started:
    item: int
    recipe: Recipe
    total_steps: int  # over all scales
    size: tuple[int, int]  # final (width, height)
    device: str
    label: str = ""
    terms: tuple[str, ...] = ("content", "style", "tv", "total")


@dataclass(frozen=True)
class Step:
    item: int
    step: int  # 1-based, counted over all scales
    total_steps: int
    losses: Mapping[str, float]  # each term of Started.terms, unweighted, and the weighted total
    elapsed: float  # seconds since the run started
    scale: int = 0  # index of the current scale, 0 = coarsest


@dataclass(frozen=True)
class Snapshot:
    item: int
    step: int
    image: Image
    losses: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preview:
    """The image so far, for a live view, sent every few seconds when the run was asked to
    (``Engine.run(preview=...)``); unlike a Snapshot it is not kept in the run folder."""

    item: int
    step: int
    image: Image


@dataclass(frozen=True)
class Done:
    item: int
    result: Result


@dataclass(frozen=True)
class Failed:
    item: int
    step: int
    reason: str  # one line, names the likely cause and the knob to change
    kind: str = "diverged"  # diverged | cancelled | interrupted | error
    result: Result | None = None  # holds the last good image where there is one


Event = Union[Started, Step, Snapshot, Preview, Done, Failed]
Callback = Callable[[Event], Any]


def for_item(callback: Callback, item: int) -> Callback:
    """A callback that sees only one batch item's events, renumbered as item 0."""
    import dataclasses

    def relay(event: Event):
        if event.item == item:
            return callback(dataclasses.replace(event, item=0))
        return None

    return relay


def deliver(sinks, event: Event) -> tuple[bool, BaseException | None]:
    """Send ``event`` to every sink, whatever the others do: (whether one returned True to ask
    for a stop, the first exception one raised). Both engines' runs end on either, so that a
    sink's failure ends a run instead of leaving it half-done, and an ending reaches every sink."""
    stop, error = False, None
    for cb in sinks:
        try:
            stop = cb(event) is True or stop
        except Exception as exc:  # noqa: BLE001 - kept for the caller, who ends the run with it
            error = error or exc
    return stop, error


def said_in_one_line(exc: BaseException) -> str:
    """An exception as the one line an ending carries: its type and the first line of its message."""
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
