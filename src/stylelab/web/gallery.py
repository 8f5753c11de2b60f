"""The gallery: every run folder under the runs folder, read back for the studio.

Runs made by the studio, by ``stylelab run --run-dir`` and by sweeps (run
folders inside experiment folders) are found the same way, and so are runs still being written
(``.partial`` folders, read through ``live_runs``), listed as running, and video run
folders (``video_gallery``: written in place, painted or being painted). Keys in
URLs are run folders' paths relative to the runs folder, and every key goes
through ``security.confined`` (``confined_partial`` for an unfinished run)
before use. Every file of a run is read or listed only
through ``security.inside``: a file or folder that is a symlink to somewhere
outside the runs folder is treated as absent, and a run whose ``run.json`` or
``recipe.toml`` is one is no run at all.
"""

from __future__ import annotations

import functools
import io
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from .. import images
from ..errors import StylelabError
from ..runs import PARTIAL, Run, is_complete, load_run, read_metrics
from . import live_runs, video_gallery
from .distances import distances
from .labels import Painted, labels, recorded_inputs
from .live_runs import Unfinished
from .security import UnsafePath, confined, inside, readable, relative_key
from .video_gallery import VideoRun, file_url

THUMB_SIZE = 360
# Kept in inputs/ as content.jpg, style_1.png, mask_1.png, labels.png, style_mask_1.png, start.png.
INPUT_ROLES = ("content", "style", "mask", "labels", "style_mask", "start")
INPUT_NAME = re.compile(r"(content|start|labels|style_mask|style|mask)(?:_(\d+))?")
NUMBERED = {"style": "styles", "mask": "masks", "style_mask": "image_masks"}  # their names in studio.names


class RunNotFound(StylelabError):
    """No complete run folder under that key."""


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


def painted(run: Run) -> Painted:
    """What a run painted, for its label: the names its inputs were uploaded under, where recorded."""
    info = run.info
    names = (info.get("studio") or {}).get("names") or {}
    inputs = recorded_inputs(info)
    content = names.get("content") or (inputs["content"][0][0] if inputs["content"] else run.name)
    styles = tuple(names.get("styles") or [name for name, _ in inputs["styles"]])
    task = info.get("task") if isinstance(info.get("task"), dict) else {}
    weights = [w for s in task.get("styles") or [] if isinstance(s, dict) for w in s.get("weights") or []]
    masks = tuple(name for name, _ in inputs["masks"]) or None
    start = inputs["start"][0][0] if inputs["start"] else None
    extra = {"parts": "style masks " + " ".join(n for n, _ in inputs["parts"])} if inputs["parts"] else {}
    return Painted(content, styles, run.recipe.to_dict(), tuple(weights) or None, masks, start, extra)


class Gallery:
    """Run folders under ``root``, listed from a cache at most ``ttl`` seconds old."""

    def __init__(
        self,
        root: Path,
        ttl: float = 2.0,
        live_titles: Callable[[], dict[str, str]] | None = None,
        name_of: Callable[[str], str | None] | None = None,
    ):
        """``live_titles``: labels of the unfinished folders someone knows better (the studio's running jobs);
        ``name_of``: the name an input file was uploaded under, where it is an upload (a video run's inputs)."""
        self.root = Path(root).resolve()  # once: summaries compare folders against it
        self.ttl = ttl
        self.live_titles = live_titles or dict
        self.name_of = name_of or (lambda path: None)
        self._cache: tuple[float, list[Run], list[Unfinished], dict[str, str], list[VideoRun]] | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._cache = None

    def _scan(self) -> tuple[list[Run], list[Unfinished], dict[str, str], list[VideoRun]]:
        # One thread rescans while concurrent requests wait for its answer, rather than
        # fifty requests walking the same folders at once.
        with self._lock:
            if self._cache is None or time.monotonic() - self._cache[0] > self.ttl:
                found, unfinished, videos = self._find()
                painted_all = [painted(r) for r in found] + [video_gallery.painted(v, self.name_of) for v in videos]
                keys = [self.key(r) for r in found] + [v.key for v in videos]
                titles = dict(zip(keys, labels(painted_all)))
                self._cache = (time.monotonic(), found, unfinished, titles, videos)
            return self._cache[1:]  # taken under the lock: invalidate() may drop the cache meanwhile

    def title(self, run: Run) -> str:
        """The run's label among the gallery's runs (``labels.labels``)."""
        titles = self._scan()[2]
        return titles.get(self.key(run)) or labels([painted(run)])[0]

    def _find(self) -> tuple[list[Run], list[Unfinished], list[VideoRun]]:
        """Every complete run folder under the root (any depth), oldest first, the unfinished ones, and
        the video run folders (not entered: nothing but their own files is in them).

        ``runs.find_runs`` with confinement: linked folders are not entered
        (``os.walk`` does not follow them), hidden folders are skipped,
        ``.partial`` folders are read (``live_runs``) but not entered, and each
        run's files are checked before they are read.
        """
        found, unfinished, videos = [], [], []
        for dirpath, dirnames, filenames in os.walk(self.root):
            folder = Path(dirpath)
            if "video.json" in filenames and folder != self.root:
                if (video := video_gallery.load_video_run(self.root, folder)) is not None:
                    videos.append(video)
                    dirnames[:] = []
                    continue
            for d in dirnames:
                if d.endswith(PARTIAL) and not d.startswith(".") and not (folder / d).is_symlink():
                    if (run := live_runs.load_unfinished(self.root, folder / d)) is not None:
                        unfinished.append(run)
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(PARTIAL)]
            if "run.json" not in filenames or folder == self.root:
                continue
            try:
                run = self._load(folder)
            except (OSError, ValueError, KeyError):
                continue  # a folder that is not ours, or damaged: skip rather than fail the listing
            if run is not None:
                found.append(run)
        return sorted(found, key=lambda r: r.info.get("finished", 0)), unfinished, videos

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

    def terms(self, run: Run) -> list[str]:
        """The loss terms of a run, from its metrics.csv's header (the run's own, whatever they are)."""
        return live_runs.read_terms(self.file(run, "metrics.csv"))

    def history(self, key: str) -> tuple[list[str], list[list[float]]]:
        """(terms, rows [step, *terms]) of the run folder ``key``, finished or still being written;
        none where there is no such run. What a job shows after a restart, when its own history is gone."""
        run = live_runs.find_unfinished(self.root, key) if key.endswith(PARTIAL) else None
        if run is not None:
            terms, rows = live_runs.read_metrics_so_far(live_runs.metrics_file(self.root, run))
        else:
            try:
                finished = self.run(key)
            except RunNotFound:
                return [], []
            terms, rows = self.terms(finished), self.metrics(finished)
        return terms, [[int(r["step"]), *(r.get(t, 0.0) for t in terms)] for r in rows]

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

    def experiment(self, folder: Path) -> str | None:
        parent = folder.parent.resolve()
        return None if parent == self.root else relative_key(self.root, parent)

    def summary(self, run: Run) -> dict:
        key = self.key(run)
        has_result = self.file(run, "result.png") is not None
        info = run.info
        return {
            "key": key,
            "name": run.name,
            "title": self.title(run),
            "experiment": self.experiment(run.folder),
            "status": run.status,
            "running": False,
            "message": info.get("message", ""),
            "finished": info.get("finished"),
            "steps": info.get("steps"),
            "total": run.recipe.total_steps,
            "elapsed": info.get("elapsed"),
            "losses": info.get("losses") or {},
            "recipe": run.recipe.name,
            "size": run.recipe.size,
            "optimizer": run.recipe.optimizer,
            "studio": bool(info.get("studio")),
            "result": file_url(key, "result.png") if has_result else None,
            "thumb": "/api/thumb/" + quote(key) if has_result else None,
            "process": file_url(key, "process.png") if self.file(run, "process.png") else None,
            "distances": distances(info),
        }

    def listing(self) -> dict:
        """Runs being written first, then finished ones newest first; and the experiment folders that hold them."""
        runs, unfinished, _, videos = self._scan()  # one scan: both halves of the answer agree
        running = [live_runs.summary(self.root, u, self.experiment(u.folder)) for u in unfinished]
        known = self.live_titles()
        for r in running:
            if known.get(r["key"]):
                r["title"], r["studio"] = known[r["key"]], True
        finished = [self.summary(r) for r in runs]
        for v in videos:
            card = self.video_summary(v, known)
            (running if card["running"] else finished).append(card)
        finished.sort(key=lambda r: -(r["finished"] or 0))
        listed = sorted(running, key=lambda r: -r["updated"]) + finished
        experiments = {}
        for r in listed:
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
        return {"runs": listed, "experiments": list(experiments.values())}

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

    def inputs(self, run: Run) -> list[tuple[str, int, Path, str]]:
        """The inputs kept in a run's ``inputs/`` folder as (role, number, path, name shown), content first.

        ``number`` counts styles and their masks from 1 (0 for the content, the label image and the start image).
        The name shown is the one the file had when uploaded, where the studio recorded it.
        The path is the resolved one, to read; files linked outside the runs folder are left out.
        """
        names = (run.info.get("studio") or {}).get("names") or {}
        found = []
        for path, resolved in self._listed(run.folder / "inputs"):
            if (match := INPUT_NAME.fullmatch(path.stem)) is None:
                continue
            role, number = match.groups()
            if (role in NUMBERED) != (number is not None):
                continue  # style.png, labels_2.png: not a name the studio keeps
            index = int(number) if number else 0
            if role in NUMBERED:
                listed = names.get(NUMBERED[role]) or []
                name = listed[index - 1] if 0 < index <= len(listed) else None
            else:
                name = names.get(role)
            found.append((INPUT_ROLES.index(role), index, role, resolved, str(name or path.name)))
        return [(role, index, path, name) for _, index, role, path, name in sorted(found, key=lambda f: f[:2])]

    def detail(self, key: str) -> dict:
        """One run's page: a finished run, or one still being written (a ``.partial`` key)."""
        if key.endswith(PARTIAL):
            return self.running_detail(key)
        if (video := self.video(key)) is not None:
            inputs = video_gallery.inputs(video, self.name_of)
            return video_gallery.detail(self.root, video, self.video_summary(video), inputs)
        run = self.run(key)
        key = self.key(run)
        out = self.summary(run)
        out["recipe_values"] = run.recipe.to_dict()
        recipe_toml = self.file(run, "recipe.toml")
        out["recipe_toml"] = recipe_toml.read_text(encoding="utf-8") if recipe_toml is not None else ""
        out["info"] = run.info
        out["terms"] = self.terms(run)
        out["metrics"] = thin(self.metrics(run))
        out["snapshots"] = [
            {"step": step, "url": file_url(key, f"snapshots/{p.name}")} for step, p in self.snapshots(run)
        ]
        out["inputs"] = [
            {"role": role, "number": number, "name": name, "url": file_url(p.relative_to(self.root).as_posix())}
            for role, number, p, name in self.inputs(run)
        ]
        out["downloads"] = {
            name: file_url(key, name) + "?download=1"
            for name in ("result.png", "process.png", "recipe.toml", "metrics.csv", "run.json")
            if self.file(run, name) is not None
        }
        out["downloads"]["everything (.zip)"] = "/api/zip/" + quote(key)
        return out

    def _unfinished(self, key: str) -> Unfinished:
        run = live_runs.find_unfinished(self.root, key)
        if run is None:
            raise RunNotFound(f"no run being written under {key!r} (it may have finished)")
        return run

    def running_detail(self, key: str) -> dict:
        """A run still being written: its settings, its metrics so far and its newest snapshot;
        once it has finished, where it now is (``finished_as``: the page that follows it moves there)."""
        run = live_runs.find_unfinished(self.root, key)
        if run is None:
            # Through ``run``, the one confined lookup: no path from the request is looked at
            # on disk before it is known to be inside the runs folder.
            try:
                final = self.run(key[: -len(PARTIAL)])
            except RunNotFound:
                raise RunNotFound(f"no run being written under {key!r} (it may have finished)") from None
            return {"key": key, "running": False, "finished_as": self.key(final)}
        out = live_runs.summary(self.root, run, self.experiment(run.folder))
        out["title"] = self.live_titles().get(run.key) or out["title"]
        terms, rows = live_runs.read_metrics_so_far(live_runs.metrics_file(self.root, run))
        out |= {"recipe_values": run.recipe.to_dict(), "recipe_toml": run.recipe.to_toml(), "info": {}}
        out |= {"terms": terms, "metrics": thin(rows), "snapshots": [], "inputs": [], "downloads": {}}
        return out

    def running_image(self, key: str) -> Path:
        """The newest snapshot of a run still being written (resolved, inside the runs folder)."""
        snapshot = live_runs.latest_snapshot(self.root, self._unfinished(key))
        if snapshot is None:
            raise RunNotFound("no snapshot yet")
        return snapshot[1]

    def thumbnail(self, key: str, frame: int | None = None) -> bytes:
        """A run's result, small; of a video run, its frame ``frame`` (default: the first, its poster)."""
        if (video := self.video(key)) is not None:
            result = video_gallery.frame_file(self.root, video, frame)
        else:
            result = self.file(self.run(key), "result.png")
        if result is None:
            raise RunNotFound(f"run {key!r} has no {'such frame' if frame else 'result image'}")
        return _thumbnail(str(result), result.stat().st_mtime_ns, THUMB_SIZE)

    # ------------------------------------------------------------ video runs

    def video(self, key: str) -> VideoRun | None:
        """The video run folder under ``key``, or None (keys outside the runs folder are None too)."""
        try:
            folder = confined(self.root, key)
        except UnsafePath:
            return None
        if not (folder / "video.json").is_file():
            return None
        return video_gallery.load_video_run(self.root, folder)

    def video_summary(self, video: VideoRun, known: dict[str, str] | None = None) -> dict:
        """A video run's card; ``known``: the labels of the folders the studio's jobs are painting now."""
        known = self.live_titles() if known is None else known
        title = known.get(video.key) or self._scan()[2].get(video.key) or video.name
        studio = video.key in known or bool(video_gallery.inputs(video, self.name_of))
        return video_gallery.summary(self.root, video, title, self.experiment(video.folder), video.key in known, studio)
