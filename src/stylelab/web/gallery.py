"""The gallery: every run folder under the runs folder, read back for the studio.

Runs made by the studio, by ``stylelab run --run-dir`` and by sweeps (run
folders inside experiment folders) are found the same way, by
``runs.find_runs``. Keys in URLs are run folders' paths relative to the runs
folder, and every key goes through ``security.confined`` before use.
"""

from __future__ import annotations

import functools
import io
import threading
import time
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from .. import images
from ..errors import StylelabError
from ..recipes import FIELDS
from ..runs import Run, find_runs, is_complete, load_run
from .security import UnsafePath, confined, relative_key

THUMB_SIZE = 360
MAX_COMPARE = 12
INPUT_ROLES = ("content", "style", "start")


class RunNotFound(StylelabError):
    """No complete run folder under that key."""


def file_url(key: str, name: str = "") -> str:
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
                self._cache = (time.monotonic(), find_runs(self.root))
            return self._cache[1]

    def key(self, run: Run) -> str:
        return relative_key(self.root, run.folder)

    def summary(self, run: Run) -> dict:
        key = self.key(run)
        parent = run.folder.parent.resolve()
        has_result = run.result.is_file()
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
            "process": file_url(key, "process.png") if run.process.is_file() else None,
        }

    def listing(self) -> dict:
        """Runs newest first, and the experiment folders that hold them (with their report)."""
        runs = [self.summary(r) for r in reversed(self.all_runs())]
        experiments = {}
        for r in runs:
            exp = r["experiment"]
            if exp and exp not in experiments:
                report = self.root / exp / "report.html"
                experiments[exp] = {
                    "key": exp,
                    "runs": 0,
                    "report": file_url(exp, "report.html") if report.is_file() else None,
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
            return load_run(folder)
        except (OSError, ValueError, KeyError) as exc:
            raise RunNotFound(f"run {key!r} cannot be read: {exc}".splitlines()[0]) from None

    def inputs(self, run: Run) -> list[tuple[str, Path, str]]:
        """The inputs kept in a run's ``inputs/`` folder as (role, path, name shown), content first.

        The name shown is the one the file had when uploaded, where the studio recorded it.
        """
        folder = run.folder / "inputs"
        if not folder.is_dir():
            return []
        names = (run.info.get("studio") or {}).get("names") or {}
        styles = names.get("styles") or []
        found = []
        for path in folder.iterdir():
            role, _, number = path.stem.partition("_")
            if role not in INPUT_ROLES or not path.is_file():
                continue
            index = int(number) if number.isdigit() else 0
            if role == "style":
                name = styles[index - 1] if 0 < index <= len(styles) else None
            else:
                name = names.get(role)
            found.append((INPUT_ROLES.index(role), index, role, path, str(name or path.name)))
        return [(role, path, name) for *_, role, path, name in sorted(found, key=lambda f: f[:2])]

    def detail(self, key: str) -> dict:
        run = self.run(key)
        key = self.key(run)
        out = self.summary(run)
        out["recipe_values"] = run.recipe.to_dict()
        out["recipe_toml"] = (run.folder / "recipe.toml").read_text(encoding="utf-8")
        out["info"] = run.info
        out["metrics"] = thin(run.metrics())
        out["snapshots"] = [{"step": step, "url": file_url(key, f"snapshots/{p.name}")} for step, p in run.snapshots()]
        out["inputs"] = [
            {"role": role, "name": name, "url": file_url(key, f"inputs/{p.name}")} for role, p, name in self.inputs(run)
        ]
        out["downloads"] = {
            name: file_url(key, name) + "?download=1"
            for name in ("result.png", "process.png", "recipe.toml", "metrics.csv", "run.json")
            if (run.folder / name).is_file()
        }
        out["downloads"]["everything (.zip)"] = "/api/zip/" + quote(key)
        return out

    def thumbnail(self, key: str) -> bytes:
        run = self.run(key)
        if not run.result.is_file():
            raise RunNotFound(f"run {key!r} has no result image")
        return _thumbnail(str(run.result), run.result.stat().st_mtime_ns, THUMB_SIZE)

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
            "runs": [self.summary(r) | {"metrics": thin(r.metrics(), 300)} for r in chosen],
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
            if not run.result.is_file():
                continue
            pictures.append(images.load_rgb(run.result)[0])
            values = run.recipe.to_dict()
            labels.append("\n".join([run.name, *[f"{name}={values[name]}" for name in shown][:4]]))
        if not pictures:
            raise RunNotFound("none of these runs has a result image")
        return figure_to_image(grid_picture([("", pictures)], labels))
