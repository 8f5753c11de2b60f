"""The gallery: every run folder under the runs folder, read back for the studio.

Runs made by the studio, by ``stylelab run --run-dir`` and by sweeps (run
folders inside experiment folders) are found the same way. Keys in URLs are run
folders' paths relative to the runs folder, and every key goes through
``security.confined`` before use. Every file of a run is read or listed only
through ``security.inside``: a file or folder that is a symlink to somewhere
outside the runs folder is treated as absent, and a run whose ``run.json`` or
``recipe.toml`` is one is no run at all.
"""

from __future__ import annotations

import functools
import io
import os
import threading
import time
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from .. import images
from ..errors import StylelabError
from ..recipes import FIELDS
from ..runs import PARTIAL, Run, is_complete, load_run, read_metrics
from .security import UnsafePath, confined, inside, readable, relative_key

THUMB_SIZE = 360
MAX_COMPARE = 12
INPUT_ROLES = ("content", "style", "start")


class RunNotFound(StylelabError):
    """No complete run folder under that key."""


def file_url(key: str, name: str = "") -> str:
    """The /files URL of ``name`` in the folder ``key`` (or of ``key`` itself)."""
    return "/files/" + quote(f"{key}/{name}" if name else key)


def thin(rows: list, n: int = 600) -> list:
    """At most about ``n`` rows, evenly spread, always keeping the last (loss curves need no more)."""
    if len(rows) <= n:
        return rows
    stride = len(rows) / n
    return [rows[int(i * stride)] for i in range(n)] + [rows[-1]]


@functools.lru_cache(maxsize=512)
def _thumbnail(path: str, mtime_ns: int, size: int) -> bytes:
    img = images.open_image(path)
    img.thumbnail((size, size), images.RESAMPLE)
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


class Gallery:
    """Run folders under ``root``, listed from a cache at most ``ttl`` seconds old."""

    def __init__(self, root: Path, ttl: float = 2.0):
        self.root = Path(root).resolve()  # once: summaries compare folders against it
        self.ttl = ttl
        self._cache: tuple[float, list[Run]] | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._cache = None

    def all_runs(self) -> list[Run]:
        # One thread rescans while concurrent requests wait for its answer, rather than
        # fifty requests walking the same folders at once.
        with self._lock:
            if self._cache is None or time.monotonic() - self._cache[0] > self.ttl:
                self._cache = (time.monotonic(), self._find())
            return self._cache[1]

    def _find(self) -> list[Run]:
        """Every complete run folder under the root (any depth), oldest first.

        ``runs.find_runs`` with confinement: linked folders are not entered
        (``os.walk`` does not follow them), hidden and ``.partial`` folders are
        skipped, and each run's files are checked before they are read.
        """
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(PARTIAL)]
            folder = Path(dirpath)
            if "run.json" not in filenames or folder == self.root:
                continue
            try:
                run = self._load(folder)
            except (OSError, ValueError, KeyError):
                continue  # a folder that is not ours, or damaged: skip rather than fail the listing
            if run is not None:
                found.append(run)
        return sorted(found, key=lambda r: r.info.get("finished", 0))

    def _load(self, folder: Path) -> Run | None:
        """The run in ``folder``, or None where the folder, its run.json or its recipe.toml leads outside."""
        try:
            folder = inside(self.root, folder)
        except UnsafePath:
            return None
        # load_run reads whatever these name: check them before it does.
        if readable(self.root, folder / "run.json") is None or readable(self.root, folder / "recipe.toml") is None:
            return None
        return load_run(folder)

    def file(self, run: Run, name: str) -> Path | None:
        """The file ``name`` of a run folder, resolved; None if absent or a link leading outside the runs folder."""
        return readable(self.root, run.folder / name)

    def _listed(self, folder: Path) -> list[tuple[Path, Path]]:
        """(path, resolved) of the files in a folder of a run (snapshots/, inputs/), leaving out links leading out."""
        try:
            if not inside(self.root, folder).is_dir():
                return []
        except UnsafePath:
            return []  # a folder linked elsewhere: not even its names are listed
        found = [(p, readable(self.root, p)) for p in sorted(folder.iterdir())]
        return [(p, r) for p, r in found if r is not None]

    def metrics(self, run: Run) -> list[dict[str, float]]:
        """The run's metrics.csv rows; none where it is missing or linked outside."""
        path = self.file(run, "metrics.csv")
        return read_metrics(path) if path is not None else []

    def snapshots(self, run: Run) -> list[tuple[int, Path]]:
        """(step, path) of the run's snapshots in step order: ``Run.snapshots`` without links leading outside."""
        out = []
        for path, _ in self._listed(run.folder / "snapshots"):
            stem = path.stem
            if path.suffix == ".png" and stem.startswith("step_") and stem[5:].isdigit():
                out.append((int(stem[5:]), path))
        return sorted(out)

    def files(self, run: Run) -> list[tuple[str, Path]]:
        """Every file of a run folder as (its path inside the folder, resolved), leaving out links leading outside."""
        out = []
        for dirpath, _, filenames in os.walk(run.folder):  # linked folders are not entered
            for name in filenames:
                path = Path(dirpath) / name
                resolved = readable(self.root, path)
                if resolved is not None:
                    out.append((path.relative_to(run.folder).as_posix(), resolved))
        return sorted(out)

    def key(self, run: Run) -> str:
        return relative_key(self.root, run.folder)

    def summary(self, run: Run) -> dict:
        key = self.key(run)
        parent = run.folder.parent.resolve()
        has_result = self.file(run, "result.png") is not None
        info = run.info
        names = (info.get("studio") or {}).get("names") or {}
        return {
            "key": key,
            "name": run.name,
            "title": f"{run.recipe.name} · {names['content']}" if names.get("content") else run.name,
            "experiment": None if parent == self.root else relative_key(self.root, parent),
            "status": run.status,
            "message": info.get("message", ""),
            "finished": info.get("finished"),
            "steps": info.get("steps"),
            "elapsed": info.get("elapsed"),
            "losses": info.get("losses") or {},
            "recipe": run.recipe.name,
            "size": run.recipe.size,
            "optimizer": run.recipe.optimizer,
            "studio": bool(info.get("studio")),
            "result": file_url(key, "result.png") if has_result else None,
            "thumb": "/api/thumb/" + quote(key) if has_result else None,
            "process": file_url(key, "process.png") if self.file(run, "process.png") else None,
        }

    def listing(self) -> dict:
        """Runs newest first, and the experiment folders that hold them (with their report)."""
        runs = [self.summary(r) for r in reversed(self.all_runs())]
        experiments = {}
        for r in runs:
            exp = r["experiment"]
            if exp and exp not in experiments:
                report = readable(self.root, self.root / exp / "report.html")
                experiments[exp] = {
                    "key": exp,
                    "runs": 0,
                    "report": file_url(exp, "report.html") if report is not None else None,
                }
            if exp:
                experiments[exp]["runs"] += 1
        return {"runs": runs, "experiments": list(experiments.values())}

    def run(self, key: str) -> Run:
        """The run folder under ``key``; raises RunNotFound (also for keys outside the runs folder)."""
        try:
            folder = confined(self.root, key)
        except UnsafePath:
            raise RunNotFound(f"no run {key!r} in the runs folder") from None
        if not folder.is_dir() or not is_complete(folder):
            raise RunNotFound(f"no run {key!r} in the runs folder")
        try:
            run = self._load(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise RunNotFound(f"run {key!r} cannot be read: {exc}".splitlines()[0]) from None
        if run is None:
            raise RunNotFound(f"no run {key!r} in the runs folder")
        return run

    def inputs(self, run: Run) -> list[tuple[str, Path, str]]:
        """The inputs kept in a run's ``inputs/`` folder as (role, path, name shown), content first.

        The name shown is the one the file had when uploaded, where the studio recorded it.
        The path is the resolved one, to read; files linked outside the runs folder are left out.
        """
        names = (run.info.get("studio") or {}).get("names") or {}
        styles = names.get("styles") or []
        found = []
        for path, resolved in self._listed(run.folder / "inputs"):
            role, _, number = path.stem.partition("_")
            if role not in INPUT_ROLES:
                continue
            index = int(number) if number.isdigit() else 0
            if role == "style":
                name = styles[index - 1] if 0 < index <= len(styles) else None
            else:
                name = names.get(role)
            found.append((INPUT_ROLES.index(role), index, role, resolved, str(name or path.name)))
        return [(role, path, name) for *_, role, path, name in sorted(found, key=lambda f: f[:2])]

    def detail(self, key: str) -> dict:
        run = self.run(key)
        key = self.key(run)
        out = self.summary(run)
        out["recipe_values"] = run.recipe.to_dict()
        recipe_toml = self.file(run, "recipe.toml")
        out["recipe_toml"] = recipe_toml.read_text(encoding="utf-8") if recipe_toml is not None else ""
        out["info"] = run.info
        out["metrics"] = thin(self.metrics(run))
        out["snapshots"] = [
            {"step": step, "url": file_url(key, f"snapshots/{p.name}")} for step, p in self.snapshots(run)
        ]
        out["inputs"] = [
            {"role": role, "name": name, "url": file_url(p.relative_to(self.root).as_posix())}
            for role, p, name in self.inputs(run)
        ]
        out["downloads"] = {
            name: file_url(key, name) + "?download=1"
            for name in ("result.png", "process.png", "recipe.toml", "metrics.csv", "run.json")
            if self.file(run, name) is not None
        }
        out["downloads"]["everything (.zip)"] = "/api/zip/" + quote(key)
        return out

    def thumbnail(self, key: str) -> bytes:
        result = self.file(self.run(key), "result.png")
        if result is None:
            raise RunNotFound(f"run {key!r} has no result image")
        return _thumbnail(str(result), result.stat().st_mtime_ns, THUMB_SIZE)

    def _compared(self, keys: list[str]) -> tuple[list[Run], set[str]]:
        """The runs to compare and the settings in which they differ (``Recipe.diff``)."""
        if not 1 <= len(keys) <= MAX_COMPARE:
            raise StylelabError(f"compare between 1 and {MAX_COMPARE} runs, not {len(keys)}")
        chosen = [self.run(k) for k in keys]
        differs: set[str] = set()
        for other in chosen[1:]:
            differs.update(chosen[0].recipe.diff(other.recipe))
        return chosen, differs

    def compare(self, keys: list[str]) -> dict:
        """Runs side by side: every setting, with the ones that differ marked (``Recipe.diff``)."""
        chosen, differs = self._compared(keys)
        values = [r.recipe.to_dict() for r in chosen]
        fields = [
            {"name": name, "values": [v[name] for v in values], "differs": name in differs, "help": f.metadata["help"]}
            for name, f in FIELDS.items()
            if f.metadata.get("cli", True)
        ]
        return {
            "runs": [self.summary(r) | {"metrics": thin(self.metrics(r), 300)} for r in chosen],
            "fields": fields,
            "differs": [f["name"] for f in fields if f["differs"]],
        }

    def compare_picture(self, keys: list[str]) -> Image.Image:
        """The compared results as one labelled grid picture (``sheets.grid_picture``)."""
        from ..sheets import figure_to_image, grid_picture

        chosen, differs = self._compared(keys)
        shown = [name for name, f in FIELDS.items() if name in differs and f.metadata.get("cli", True)]
        pictures, labels = [], []
        for run in chosen:
            result = self.file(run, "result.png")
            if result is None:
                continue
            pictures.append(images.load_rgb(result)[0])
            values = run.recipe.to_dict()
            labels.append("\n".join([run.name, *[f"{name}={values[name]}" for name in shown][:4]]))
        if not pictures:
            raise RunNotFound("none of these runs has a result image")
        return figure_to_image(grid_picture([("", pictures)], labels))
