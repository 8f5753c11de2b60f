"""Run folders: what a run leaves on disk, and reading it back.

A run folder holds::

    recipe.toml      the full resolved settings
    run.json         inputs, status, timings, device, peak memory, final losses
    metrics.csv      step, elapsed seconds, each loss term
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

from . import __version__, folders, images
from .events import Done, Event, Failed, Snapshot, Started, Step
from .recipes import Recipe, recipe_from_toml

METRIC_COLUMNS = ("step", "elapsed", "content", "style", "tv", "total")
PARTIAL = folders.PARTIAL
METADATA_KEY = "stylelab"


def provenance(recipe: Recipe, content: str, styles: list[str], **extra) -> dict[str, Any]:
    """What goes into a result PNG's metadata and run.json: enough to repeat the run."""
    return {
        "version": __version__,
        "content": content,
        "styles": list(styles),
        "recipe": recipe.to_dict(drop_none=True),
        **extra,
    }


def png_metadata(info: dict[str, Any]) -> dict[str, str]:
    return {METADATA_KEY: json.dumps(info, sort_keys=True), "Software": f"stylelab {__version__}"}


def read_provenance(png: str | Path) -> dict[str, Any]:
    """The settings a stylelab PNG was made with. Raises ImageError if it has none."""
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
}


def checked_provenance(info: Any, origin: str) -> dict[str, Any]:
    """Settings read from a PNG or run.json, checked: a damaged or crafted block is one ImageError.

    The recipe becomes a validated ``Recipe`` under ``"resolved"``; the rest keeps its JSON form.
    """
    from .errors import ImageError, RecipeError
    from .recipes import recipe_from_dict

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
    return {**info, "resolved": resolved}


def is_stylelab_png(path: str | Path) -> bool:
    """Whether a file is a PNG that stylelab wrote (it carries stylelab's settings): one it may replace."""
    from .errors import ImageError

    try:
        return METADATA_KEY in images.read_png_text(path)
    except (ImageError, OSError):
        return False


def _input_name(src) -> str:
    return str(src) if isinstance(src, (str, Path)) else f"<{type(src).__name__}>"


@dataclass
class RunWriter:
    """An event sink that builds a run folder for one run (batch item 0 of what it sees).

    It writes as the run goes (metrics.csv, snapshots), so a ``.partial`` folder
    shows a run in progress; ``write_run`` writes the same folder in one go from a
    ``RunRecord`` collected elsewhere (another process or machine).
    """

    folder: Path
    content: Any
    styles: list[Any]
    extra: dict[str, Any] = field(default_factory=dict)
    process_picture: bool = True

    def __post_init__(self):
        # Checked now, before the run: a folder of the user's is refused, not found out at the end.
        self.folder = folders.check_folder(self.folder)
        self.partial = self.folder.with_name(self.folder.name + PARTIAL)
        self._metrics_file = None
        self.snapshots: list[tuple[int, Path, dict]] = []
        self.recipe: Recipe | None = None
        self.started_at = 0.0

    def __call__(self, event: Event) -> None:
        if event.item != 0:
            return
        if isinstance(event, Started):
            self._start(event)
        elif isinstance(event, Step):
            self._metrics.writerow(_metrics_row({"step": event.step, "elapsed": event.elapsed, **event.losses}))
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
        self.recipe = event.recipe
        self.started_at = time.time()
        self._metrics_file = open(self.partial / "metrics.csv", "w", newline="", encoding="utf-8")
        self._metrics = csv.writer(self._metrics_file)
        self._metrics.writerow(METRIC_COLUMNS)

    def _finish(self, event: Done | Failed) -> None:
        self._metrics_file.close()
        self._metrics_file = None
        record = RunRecord.from_event(
            event, self.recipe, _input_name(self.content), [_input_name(s) for s in self.styles], self.started_at
        )
        record.extra.update(self.extra)
        _finish_folder(self.partial, self.folder, record, self.snapshots, self.process_picture)


@dataclass
class RunRecord:
    """Everything a run folder holds, in memory and picklable (images as PNG bytes).

    What a worker elsewhere sends back to the process that keeps the folders.
    """

    recipe: Recipe
    content: str
    styles: list[str]
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

    @classmethod
    def from_event(cls, event: Done | Failed, recipe: Recipe, content: str, styles: list[str], started: float):
        result = event.result
        return cls(
            recipe=recipe,
            content=content,
            styles=list(styles),
            status=result.status if result else event.kind,
            message=result.message if result else event.reason,
            steps=result.steps if result else event.step,
            elapsed=round(result.elapsed, 3) if result else None,
            device=result.device if result else None,
            peak_memory=result.peak_memory if result else None,
            losses=result.losses if result else {},
            history=list(result.history) if result else [],
            image=images.png_bytes(result.image) if result is not None and result.image is not None else None,
            started=started,
            finished=time.time(),
        )

    def info(self) -> dict[str, Any]:
        """run.json's content (also stored in result.png's metadata)."""
        return provenance(
            self.recipe,
            self.content,
            self.styles,
            status=self.status,
            message=self.message,
            steps=self.steps,
            elapsed=self.elapsed,
            device=self.device,
            peak_memory=self.peak_memory,
            losses=self.losses,
            started=self.started,
            finished=self.finished,
            **self.extra,
        )


class RunRecorder:
    """An event sink that collects one run (item 0) into a ``RunRecord`` in memory."""

    def __init__(self, content: Any, styles: list[Any]):
        self.content = _input_name(content)
        self.styles = [_input_name(s) for s in styles]
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
        elif isinstance(event, (Done, Failed)):
            self.record = RunRecord.from_event(event, self.recipe, self.content, self.styles, self.started)
            self.record.snapshots = self.snapshots


def write_run(folder: str | Path, record: RunRecord, *, process_picture: bool = True) -> Path:
    """Write a complete run folder from a ``RunRecord``: into ``.partial``, then renamed."""
    folder = folders.check_folder(folder)
    partial = folder.with_name(folder.name + PARTIAL)
    _begin_folder(partial, record.recipe)
    images.atomic_write_text(partial / "metrics.csv", metrics_csv(record.history))
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


def metrics_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(METRIC_COLUMNS)
    for row in history:
        w.writerow(_metrics_row(row))
    return buf.getvalue()


def _metrics_row(row: dict[str, float]) -> list:
    return [int(row["step"]), f"{row['elapsed']:.4f}", *(repr(float(row.get(k, 0.0))) for k in METRIC_COLUMNS[2:])]
