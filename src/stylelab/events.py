"""What the engine tells the world while it runs.

The engine calls every callback with small frozen records. In a batch (several
styles optimised together) each record carries ``item``, the batch index; a
single run is item 0. A callback that returns ``True`` asks the engine to stop
(as does setting the ``stop`` event passed to the engine): the run ends as
``cancelled`` with the last image kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image

    from .engine import Result
    from .recipes import Recipe


@dataclass(frozen=True)
class Started:
    item: int
    recipe: Recipe
    total_steps: int  # over all scales
    size: tuple[int, int]  # final (width, height)
    device: str
    label: str = ""


@dataclass(frozen=True)
class Step:
    item: int
    step: int  # 1-based, counted over all scales
    total_steps: int
    losses: Mapping[str, float]  # content, style, tv, total (weighted terms are not applied)
    elapsed: float  # seconds since the run started
    scale: int = 0  # index of the current scale, 0 = coarsest


@dataclass(frozen=True)
class Snapshot:
    item: int
    step: int
    image: Image
    losses: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Done:
    item: int
    result: Result


@dataclass(frozen=True)
class Failed:
    item: int
    step: int
    reason: str  # one line, names the likely cause and the knob to change
    kind: str = "diverged"  # diverged | cancelled | error
    result: Result | None = None  # holds the last good image where there is one


Event = Union[Started, Step, Snapshot, Done, Failed]
Callback = Callable[[Event], Any]


def for_item(callback: Callback, item: int) -> Callback:
    """A callback that sees only one batch item's events, renumbered as item 0."""
    import dataclasses

    def relay(event: Event):
        if event.item == item:
            return callback(dataclasses.replace(event, item=0))
        return None

    return relay
