"""Runs still being written, read while they grow: ``<name>.partial/`` folders, shown live.

``runs.RunWriter`` writes a run into ``<name>.partial/`` as it goes (recipe.toml
first, metrics.csv a line per step, snapshots/ as they are saved) and renames
it to ``<name>/`` at the end; that is how a run from ``stylelab run --run-dir``
or a sweep into the studio's runs folder can be followed while it runs. These
folders are read only through ``security.confined_partial`` (a key naming one
``.partial`` folder) and ``inside(..., partial=True)``: never anything outside
the runs folder, never the studio's hidden state. Only the files RunWriter
writes are read, by the names it gives them.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..folders import PARTIAL
from ..recipes import Recipe, recipe_from_toml
from .security import UnsafePath, confined_partial, inside, readable, relative_key

STALE_AFTER = 300.0  # seconds without a new line in metrics.csv before a run is shown as stalled
MAX_METRICS_BYTES = 4_000_000  # a longer metrics.csv is read from its end (the chart thins it anyway)
TAIL_BYTES = 8192  # enough for the last line of any metrics.csv
STEP_COLUMNS = ("step", "elapsed")


@dataclass
class Unfinished:
    """A run folder still being written."""

    folder: Path  # resolved, inside the runs folder
    key: str  # its path relative to the runs folder, ending in .partial
    recipe: Recipe

    @property
    def name(self) -> str:
        """The name the folder will have once complete."""
        return self.folder.name[: -len(PARTIAL)]

    @property
    def final_key(self) -> str:
        return self.key[: -len(PARTIAL)]


def load_unfinished(root: Path, folder: Path) -> Unfinished | None:
    """The unfinished run in ``folder`` (under the resolved ``root``), or None: not one, or leading outside."""
    try:
        resolved = inside(root, folder, partial=True)
    except UnsafePath:
        return None
    recipe_file = readable(root, resolved / "recipe.toml", partial=True)
    if not resolved.name.endswith(PARTIAL) or recipe_file is None:
        return None  # a run that has not begun, or a folder that is not a run
    try:
        recipe = recipe_from_toml(recipe_file.read_text(encoding="utf-8"), "recipe.toml")
    except (OSError, ValueError):
        return None
    return Unfinished(resolved, relative_key(root, folder), recipe)


def find_unfinished(root: Path, key: str) -> Unfinished | None:
    """The unfinished run under a request's ``key``; None for anything else (UnsafePath is not raised)."""
    try:
        folder = confined_partial(root, key)
    except UnsafePath:
        return None
    if not folder.is_dir():
        return None
    return load_unfinished(root, root / key)


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    complete, _, _ = text.rpartition("\n")  # the line being written is not read until it ends
    return complete.splitlines()


def _row(header: list[str], line: list[str]) -> dict[str, float] | None:
    if len(line) != len(header):
        return None
    try:
        return {k: float(v) for k, v in zip(header, line)}
    except ValueError:
        return None


def read_terms(path: Path | None) -> list[str]:
    """The loss terms a metrics.csv's header names (after step and elapsed): the run's own."""
    if path is None:
        return []
    try:
        with open(path, "rb") as fh:
            header = next(csv.reader([fh.readline().decode("utf-8", errors="replace").strip()]), [])
    except OSError:
        return []
    return [c for c in header if c not in STEP_COLUMNS]


def read_metrics_so_far(path: Path | None) -> tuple[list[str], list[dict[str, float]]]:
    """(the loss terms, the rows) of a metrics.csv that may still be growing: complete lines only,
    from its end where it is longer than ``MAX_METRICS_BYTES``."""
    if path is None:
        return [], []
    try:
        with open(path, "rb") as fh:
            header_line = fh.readline()
            size = path.stat().st_size
            if size > MAX_METRICS_BYTES:
                fh.seek(size - MAX_METRICS_BYTES)
                fh.readline()  # the rest of a line cut in two
            data = fh.read()
    except OSError:
        return [], []
    header = next(csv.reader([header_line.decode("utf-8", errors="replace").strip()]), [])
    terms = [c for c in header if c not in STEP_COLUMNS]
    rows = [r for r in (_row(header, line) for line in csv.reader(io.StringIO("\n".join(_lines(data))))) if r]
    return terms, rows


def last_row(path: Path | None) -> dict[str, float]:
    """The last complete row of a growing metrics.csv (its end only is read)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            header = next(csv.reader([fh.readline().decode("utf-8", errors="replace").strip()]), [])
            size = path.stat().st_size
            fh.seek(max(fh.tell(), size - TAIL_BYTES))
            lines = _lines(fh.read())
    except OSError:
        return {}
    for line in reversed(lines):
        row = _row(header, next(csv.reader([line]), []))
        if row is not None:
            return row
    return {}


def latest_snapshot(root: Path, run: Unfinished) -> tuple[int, Path] | None:
    """(step, resolved path) of the newest snapshot written so far."""
    try:
        folder = inside(root, run.folder / "snapshots", partial=True)
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    except (UnsafePath, OSError):
        return None
    steps = sorted(int(n[5:-4]) for n in names if n.startswith("step_") and n.endswith(".png") and n[5:-4].isdigit())
    for step in reversed(steps):
        path = readable(root, run.folder / "snapshots" / f"step_{step:06d}.png", partial=True)
        if path is not None:
            return step, path
    return None


def metrics_file(root: Path, run: Unfinished) -> Path | None:
    return readable(root, run.folder / "metrics.csv", partial=True)


def summary(root: Path, run: Unfinished, experiment: str | None) -> dict:
    """The gallery's card of a running run (the same keys as a finished run's)."""
    metrics = metrics_file(root, run)
    last = last_row(metrics)
    snapshot = latest_snapshot(root, run)
    try:
        updated = (metrics or run.folder).stat().st_mtime
    except OSError:
        updated = 0.0
    stalled = time.time() - updated > STALE_AFTER
    image = f"/api/latest/{quote(run.key)}?step={snapshot[0]}" if snapshot else None
    return {
        "key": run.key,
        "name": run.name,
        "final": run.final_key,
        "title": run.name,
        "experiment": experiment,
        "status": "stalled" if stalled else "running",
        "running": True,
        "message": f"no new step for {int(time.time() - updated)} s" if stalled else "",
        "finished": None,
        "updated": updated,
        "steps": int(last.get("step", 0)),
        "total": run.recipe.total_steps,
        "elapsed": last.get("elapsed"),
        "losses": {k: v for k, v in last.items() if k not in STEP_COLUMNS},
        "recipe": run.recipe.name,
        "size": run.recipe.size,
        "optimizer": run.recipe.optimizer,
        "studio": False,
        "result": image,
        "thumb": image,
        "process": None,
    }
