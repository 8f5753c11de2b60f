"""One run's outcome, in one shape: the RunRecord, and the settings it leaves in a PNG.

A ``RunRecord`` is built from the engine's Result (``RunRecord.from_result``)
and is what every place that keeps or shows a run reads: run.json and the
result PNG's settings (``info``, the same dict), a run folder (runs.py), the
CLI's ``-o`` PNG, a sweep's and a Ray worker's results, the studio's job view.
It is picklable (images as PNG bytes), so a worker elsewhere can send it back.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__, images
from .events import Done, Event, Failed, Snapshot, Started
from .recipes import Recipe
from .task import input_name

if TYPE_CHECKING:  # pragma: no cover
    from .engines import Result

METADATA_KEY = "stylelab"


@functools.cache
def machine() -> str:
    """The CPU this process runs on (its model name), for the record."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def torch_version() -> str | None:
    torch = sys.modules.get("torch")
    return getattr(torch, "__version__", None) if torch is not None else None


@dataclass
class RunRecord:
    """Everything a run folder holds, in memory and picklable (images as PNG bytes)."""

    recipe: Recipe
    content: str  # the content's file name (for a file) or kind
    styles: list[str]  # the style images' names, flat
    status: str
    message: str = ""
    steps: int = 0
    elapsed: float | None = None
    device: str | None = None
    peak_memory: int | None = None
    losses: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    snapshots: list[tuple[int, bytes, dict]] = field(default_factory=list)  # (step, PNG bytes, losses)
    image: bytes | None = None  # result PNG without metadata
    started: float = 0.0
    finished: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    task: dict[str, Any] | None = None  # Task.to_dict(): inputs with hashes, blend weights, masks
    precision: str | None = None
    terms: tuple[str, ...] = ()

    @classmethod
    def from_result(cls, result: Result, started: float, task: dict[str, Any] | None = None) -> RunRecord:
        """The record of an engine Result; ``task`` overrides the recorded inputs (the studio
        records the inputs kept in the run folder, not the upload store's)."""
        task = task if task is not None else (result.task.to_dict() if result.task is not None else None)
        content, styles = names_of(task)
        return cls(
            recipe=result.recipe,
            content=content,
            styles=styles,
            status=result.status,
            message=result.message,
            steps=result.steps,
            elapsed=round(result.elapsed, 3),
            device=result.device,
            peak_memory=result.peak_memory,
            losses=result.losses,
            history=list(result.history),
            image=images.png_bytes(result.image) if result.image is not None else None,
            started=started,
            finished=time.time(),
            task=task,
            precision=result.precision,
            terms=tuple(result.terms),
        )

    @classmethod
    def failed(cls, recipe: Recipe, event: Failed, started: float, task: dict | None = None) -> RunRecord:
        """The record of a run that ended with nothing to keep (an error)."""
        content, styles = names_of(task)
        return cls(recipe, content, styles, event.kind, event.reason, event.step, started=started, task=task)

    def info(self) -> dict[str, Any]:
        """run.json's content, also the result PNG's settings: enough to repeat the run."""
        out = {
            "version": __version__,
            "content": self.content,
            "styles": list(self.styles),
            "recipe": self.recipe.to_dict(drop_none=True),
            "status": self.status,
            "message": self.message,
            "steps": self.steps,
            "elapsed": self.elapsed,
            "device": self.device,
            "precision": self.precision,
            "peak_memory": self.peak_memory,
            "losses": self.losses,
            "started": self.started,
            "finished": self.finished,
            "torch": torch_version(),
            "machine": machine(),
        }
        if self.task is not None:
            out["task"] = self.task
        return {**out, **self.extra}


def names_of(task: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The content's and the style images' names in a recorded task."""
    if not task:
        return "", []
    return input_name(task.get("content")), [input_name(i) for s in task.get("styles", []) for i in s["images"]]


class RunRecorder:
    """An event sink that collects one run (item 0 of what it sees) into a ``RunRecord`` in memory."""

    def __init__(self, task: dict[str, Any] | None = None):
        self.task = task
        self.recipe: Recipe | None = None
        self.started = 0.0
        self.snapshots: list[tuple[int, bytes, dict]] = []
        self.record: RunRecord | None = None

    def __call__(self, event: Event) -> None:
        if event.item != 0:
            return
        if isinstance(event, Started):
            self.recipe, self.started, self.snapshots, self.record = event.recipe, time.time(), [], None
        elif isinstance(event, Snapshot):
            self.snapshots.append((event.step, images.png_bytes(event.image), dict(event.losses)))
        elif isinstance(event, (Done, Failed)) and self.recipe is not None:
            if event.result is None:
                self.record = RunRecord.failed(self.recipe, event, self.started, self.task)
            else:
                self.record = RunRecord.from_result(event.result, self.started, self.task)
            self.record.snapshots = self.snapshots


# ---------------------------------------------------------------- the settings in a result PNG


def png_metadata(info: dict[str, Any]) -> dict[str, str]:
    return {METADATA_KEY: json.dumps(info, sort_keys=True, default=str), "Software": f"stylelab {__version__}"}


def read_provenance(png: str | Path) -> dict[str, Any]:
    """The settings a stylelab PNG was made with, checked (``checked_provenance``).
    Raises ImageError if it has none, or damaged ones."""
    from .errors import ImageError

    text = images.read_png_text(png)
    if METADATA_KEY not in text:
        raise ImageError(f"{png} carries no stylelab settings (was it made by stylelab run?)")
    try:
        info = json.loads(text[METADATA_KEY])
    except (json.JSONDecodeError, RecursionError):
        raise ImageError(f"{png}: its stylelab settings are damaged (not JSON)") from None
    return checked_provenance(info, str(png))


# The fields of provenance that are read back, and what each must be.
_PROVENANCE_TYPES = {
    "content": str,
    "styles": list,
    "recipe": dict,
    "status": str,
    "message": str,
    "steps": int,
    "elapsed": (int, float),
    "losses": dict,
    "version": str,
    "task": dict,
}


def checked_provenance(info: Any, origin: str) -> dict[str, Any]:
    """Settings read from a PNG or run.json, checked: a damaged or crafted block is one ImageError.

    The recipe becomes a validated ``Recipe`` under ``"resolved"`` and the inputs a
    ``Task`` under ``"resolved_task"`` (older runs: blend weights from their recipe);
    the rest keeps its JSON form.
    """
    from .errors import ImageError, RecipeError
    from .recipes import recipe_from_dict
    from .task import StyleSet, Task, TaskError

    def damaged(why: str) -> ImageError:
        return ImageError(f"{origin}: its stylelab settings are damaged ({why})")

    if not isinstance(info, dict):
        raise damaged("not a table")
    for key, kind in _PROVENANCE_TYPES.items():
        if key in info and (not isinstance(info[key], kind) or isinstance(info[key], bool)):
            raise damaged(f"{key} is {type(info[key]).__name__}")
    for key in ("content", "styles", "recipe"):
        if key not in info:
            raise damaged(f"no {key}")
    if not info["styles"] or not all(isinstance(s, str) for s in info["styles"]):
        raise damaged("styles must be a list of file names")
    losses = info.get("losses", {})
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses.values()):
        raise damaged("losses must be numbers")
    try:
        resolved = recipe_from_dict(info["recipe"], "its recipe")
    except RecipeError as exc:
        raise damaged(str(exc)) from None
    try:
        if "task" in info:
            task = Task.from_dict(info["task"], "its task")
        else:  # before tasks were recorded: the flat names, blend weights in the recipe
            weights = info["recipe"].get("style_weights")
            task = Task(info["content"], (StyleSet(tuple(info["styles"]), weights),))
    except (TaskError, RecipeError, TypeError, ValueError) as exc:
        raise damaged(str(exc).split(": ", 1)[-1]) from None
    return {**info, "resolved": resolved, "resolved_task": task}


def is_stylelab_png(path: str | Path) -> bool:
    """Whether a file is a PNG that stylelab wrote (it carries stylelab's settings): one it may replace."""
    from .errors import ImageError

    try:
        return METADATA_KEY in images.read_png_text(path)
    except (ImageError, OSError):
        return False
