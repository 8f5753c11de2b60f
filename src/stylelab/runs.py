"""Run folders: what a run leaves on disk, and reading it back.

A run folder holds::

    recipe.toml      the full resolved settings
    run.json         the run's record (records.py): inputs, status, timings, device, peak memory, losses
    metrics.csv      step, elapsed seconds, each loss term (the run's own terms, objective.py)
    snapshots/       step_000050.png ... (every ``save_every`` steps)
    result.png       the result, with every setting in its PNG metadata
    process.png      the process picture: snapshots with step and loss, and loss curves

It is written into ``<name>.partial/`` and renamed into place when the run ends,
so a folder without that suffix is always complete, and a killed run leaves
only a ``.partial`` folder that the next attempt replaces. Only folders that
stylelab made are ever replaced (folders.py): ``RunWriter`` refuses any other
when it is created, before the run starts.
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from . import folders, images
from .events import Done, Event, Failed, Snapshot, Started, Step
from .recipes import Recipe, recipe_from_toml
from .records import RunRecord, png_metadata
from .terms import term_names

PARTIAL = folders.PARTIAL
STEP_COLUMNS = ("step", "elapsed")  # then one column per loss term, as the run's events name them


@dataclass
class RunWriter:
    """An event sink that builds a run folder for one run (batch item 0 of what it sees).

    It writes as the run goes (metrics.csv, snapshots), so a ``.partial`` folder
    shows a run in progress; ``write_run`` writes the same folder in one go from a
    ``RunRecord`` collected elsewhere (another process or machine).
    """

    folder: Path
    extra: dict[str, Any] = field(default_factory=dict)
    process_picture: bool = True
    task: dict[str, Any] | None = None  # the inputs to record, where not the task's own (the studio's)

    def __post_init__(self):
        # Checked now, before the run: a folder of the user's is refused, not found out at the end.
        self.folder = folders.check_folder(self.folder)
        self.partial = self.folder.with_name(self.folder.name + PARTIAL)
        self._metrics_file = None
        self.snapshots: list[tuple[int, Path, dict]] = []
        self.recipe: Recipe | None = None
        self.terms: tuple[str, ...] = ()
        self.started_at = 0.0

    def __call__(self, event: Event) -> None:
        if event.item != 0:
            return
        if isinstance(event, Started):
            self._start(event)
        elif self.recipe is None:
            return  # an ending without a start: the run never began here
        elif isinstance(event, Step):
            row = {"step": event.step, "elapsed": event.elapsed, **event.losses}
            self._metrics.writerow(_metrics_row(row, self.terms))
            self._metrics_file.flush()
        elif isinstance(event, Snapshot):
            path = self.partial / "snapshots" / f"step_{event.step:06d}.png"
            images.save_png(event.image, path)
            self.snapshots.append((event.step, path, dict(event.losses)))
        elif isinstance(event, Failed) and event.kind == "error":
            self.abandon()  # the run broke: nothing to keep, and the next attempt starts clean
        elif isinstance(event, (Done, Failed)):
            self._finish(event)

    def abandon(self) -> None:
        """Close and remove the ``.partial`` folder of a run that ended without its Done or Failed event."""
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        folders.remove_ours(self.partial)

    def _start(self, event: Started) -> None:
        _begin_folder(self.partial, event.recipe)
        self.recipe, self.terms = event.recipe, tuple(event.terms)
        self.started_at = time.time()
        self._metrics_file = open(self.partial / "metrics.csv", "w", newline="", encoding="utf-8")
        self._metrics = csv.writer(self._metrics_file)
        self._metrics.writerow((*STEP_COLUMNS, *self.terms))

    def _finish(self, event: Done | Failed) -> None:
        self._metrics_file.close()
        self._metrics_file = None
        record = RunRecord.from_result(event.result, self.started_at, self.task)
        record.extra.update(self.extra)
        _finish_folder(self.partial, self.folder, record, self.snapshots, self.process_picture)


def write_run(folder: str | Path, record: RunRecord, *, process_picture: bool = True) -> Path:
    """Write a complete run folder from a ``RunRecord``: into ``.partial``, then renamed."""
    folder = folders.check_folder(folder)
    partial = folder.with_name(folder.name + PARTIAL)
    _begin_folder(partial, record.recipe)
    images.atomic_write_text(partial / "metrics.csv", metrics_csv(record.history, record.terms))
    snapshots = []
    for step, png, losses in record.snapshots:
        path = partial / "snapshots" / f"step_{step:06d}.png"
        images.atomic_write_bytes(path, png)
        snapshots.append((step, path, losses))
    _finish_folder(partial, folder, record, snapshots, process_picture)
    return folder


def _begin_folder(partial: Path, recipe: Recipe) -> None:
    # A .partial left by a killed attempt is stale by definition: start it afresh
    # (remove_ours refuses one that has gathered files stylelab did not write).
    folders.remove_ours(partial)
    (partial / "snapshots").mkdir(parents=True)
    images.atomic_write_text(partial / "recipe.toml", recipe.to_toml())


def _finish_folder(
    partial: Path, folder: Path, record: RunRecord, snapshots: list[tuple[int, Path, dict]], process_picture: bool
) -> None:
    """result.png, process.png and run.json into ``partial``, then the rename that completes it."""
    info = record.info()
    if record.image is not None:
        with Image.open(io.BytesIO(record.image)) as img:
            images.save_png(img, partial / "result.png", png_metadata(info))
    if process_picture and (record.history or snapshots):
        from .sheets import process_picture as make_process_picture

        pic = make_process_picture(
            [(step, Image.open(path), losses) for step, path, losses in snapshots],
            record.history,
            title=folder.name,
        )
        images.save_png(pic, partial / "process.png")
    images.atomic_write_text(partial / "run.json", json.dumps(info, indent=2, default=str))
    folders.replace_folder(partial, folder)


# ---------------------------------------------------------------- reading back


@dataclass
class Run:
    """A finished run folder, read back."""

    folder: Path
    info: dict[str, Any]
    recipe: Recipe

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def result(self) -> Path:
        return self.folder / "result.png"

    @property
    def process(self) -> Path:
        return self.folder / "process.png"

    def snapshots(self) -> list[tuple[int, Path]]:
        out = []
        for p in sorted((self.folder / "snapshots").glob("step_*.png")):
            out.append((int(p.stem.split("_")[1]), p))
        return out

    def metrics(self) -> list[dict[str, float]]:
        return read_metrics(self.folder / "metrics.csv")


def read_metrics(path: Path) -> list[dict[str, float]]:
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def is_complete(folder: Path) -> bool:
    return (folder / "run.json").is_file() and not folder.name.endswith(PARTIAL)


def load_run(folder: str | Path) -> Run:
    """A run folder read back; ValueError (or OSError) for one that is damaged or not stylelab's."""
    folder = Path(folder)
    info = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    if not isinstance(info, dict):
        raise ValueError(f"{folder / 'run.json'} is not a table")
    recipe = recipe_from_toml((folder / "recipe.toml").read_text(encoding="utf-8"), str(folder / "recipe.toml"))
    return Run(folder, info, recipe)


def find_runs(root: str | Path) -> list[Run]:
    """Every complete run folder under ``root`` (any depth), oldest first."""
    root = Path(root)
    if not root.exists():
        return []
    found = []
    for run_json in root.rglob("run.json"):
        folder = run_json.parent
        if any(part.endswith(PARTIAL) for part in folder.relative_to(root).parts):
            continue
        try:
            found.append(load_run(folder))
        except (OSError, ValueError, KeyError):
            continue  # a folder that is not ours, or damaged: skip rather than fail the listing
    return sorted(found, key=lambda r: r.info.get("finished", 0))


def metrics_csv(history: list[dict[str, float]], terms: tuple[str, ...] = ()) -> str:
    """metrics.csv's text: step, elapsed, then ``terms`` (default: those the history holds, or the usual ones)."""
    terms = tuple(terms) or _history_terms(history)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow((*STEP_COLUMNS, *terms))
    for row in history:
        w.writerow(_metrics_row(row, terms))
    return buf.getvalue()


def _history_terms(history: list[dict[str, float]]) -> tuple[str, ...]:
    if not history:
        return term_names()
    return tuple(k for k in history[0] if k not in STEP_COLUMNS)


def _metrics_row(row: dict[str, float], terms: tuple[str, ...]) -> list:
    return [int(row["step"]), f"{row['elapsed']:.4f}", *(repr(float(row.get(k, 0.0))) for k in terms)]
