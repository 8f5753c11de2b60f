"""Video run folders in the gallery: found, summarised, shown with their video, frames and per-frame losses.

A video run folder (``video.run_folder``: video.json, recipe.toml, frames.csv,
frames/frame_NNNNNN.png, video.mp4 at the end) is written in place, by the
studio's video jobs and by ``stylelab video --run-dir``, so one being painted is
listed as running (or stalled, when it has not moved for ``STALE_AFTER``
seconds and no job of this studio is painting it). Only folders that
``is_video_folder`` recognises are read, which holds nothing but what stylelab
writes there, no symlinks among it; every file is still read or served only
through ``security.inside`` (``readable``), as the gallery's other files are.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from ..recipes import Recipe, recipe_from_toml
from .labels import Painted
from .live_runs import STALE_AFTER
from .security import UnsafePath, inside, readable, relative_key

FRAME = re.compile(r"frame_(\d{6})\.png")
FIXED_COLUMNS = ("frame", "index", "steps", "seconds", "status", "reliable")
MOST_STRIP = 48  # frames shown in a run's strip (evenly spread; every frame is in frames/ and the zip)


def file_url(key: str, name: str = "") -> str:
    """The /files URL of ``name`` in the folder ``key`` (or of ``key`` itself)."""
    return "/files/" + quote(f"{key}/{name}" if name else key)


@dataclass
class VideoRun:
    """A video run folder under the runs folder."""

    folder: Path  # resolved, inside the runs folder
    key: str
    info: dict  # its video.json
    recipe: Recipe | None

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def settings(self) -> dict:
        settings = self.info.get("settings")
        return settings if isinstance(settings, dict) else {}

    @property
    def frames_done(self) -> int:
        done = self.info.get("frames_done")
        return done if isinstance(done, int) and done >= 0 else 0

    @property
    def frames_total(self) -> int:
        total = self.info.get("frames_total")
        return total if isinstance(total, int) and total >= 0 else 0


def load_video_run(root: Path, folder: Path) -> VideoRun | None:
    """The video run in ``folder`` (under the resolved ``root``), or None: not one, or leading outside."""
    from ..video.run_folder import KIND, is_video_folder

    try:
        resolved = inside(root, folder)
    except UnsafePath:
        return None
    if not is_video_folder(resolved):
        return None
    info_file = readable(root, resolved / "video.json")
    if info_file is None:
        return None  # a demo's folder that holds only its inputs so far
    try:
        info = json.loads(info_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(info, dict) or info.get("kind") != KIND:
        return None
    recipe = None
    recipe_file = readable(root, resolved / "recipe.toml")
    if recipe_file is not None:
        try:
            recipe = recipe_from_toml(recipe_file.read_text(encoding="utf-8"), "recipe.toml")
        except (OSError, ValueError):
            recipe = None
    return VideoRun(resolved, relative_key(root, resolved), info, recipe)


def _listed_frames(root: Path, run: VideoRun) -> list[int]:
    """The numbers of the frame files in the run's frames/, in order (not yet checked one by one)."""
    try:
        folder = inside(root, run.folder / "frames")
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
    except (UnsafePath, OSError):
        return []
    return sorted(int(m.group(1)) for n in names if (m := FRAME.fullmatch(n)))


def frame_numbers(root: Path, run: VideoRun) -> list[int]:
    """The frames saved in the run's frames/, in order (files linked outside are left out)."""
    return [n for n in _listed_frames(root, run) if _readable_frame(root, run, n) is not None]


def _readable_frame(root: Path, run: VideoRun, n: int) -> Path | None:
    return readable(root, run.folder / "frames" / f"frame_{n:06d}.png")


def frame_file(root: Path, run: VideoRun, frame: int | None = None) -> Path | None:
    """Frame ``frame`` of the run (default: the poster, frame 1), resolved; None if absent or linked out."""
    return _readable_frame(root, run, frame or 1)


def latest_frame(root: Path, run: VideoRun) -> tuple[int, Path] | None:
    """(number, resolved path) of the newest frame saved, of those video.json counts (a frame written
    just before a kill, and not counted yet, is painted again when the run goes on)."""
    # From the newest down, each checked only until one is readable (as live_runs.latest_snapshot):
    # the gallery asks this of every video run at each poll, and a clip holds hundreds of frames.
    for n in reversed([n for n in _listed_frames(root, run) if n <= run.frames_done]):
        if (path := _readable_frame(root, run, n)) is not None:
            return n, path
    return None


def frame_rows(root: Path, run: VideoRun) -> tuple[list[str], list[dict]]:
    """(the loss terms, one row per frame: frame, steps, seconds, status, reliable, each term) of frames.csv."""
    path = readable(root, run.folder / "frames.csv")
    if path is None:
        return [], []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return [], []
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        if None in row.values() or not str(row.get("frame", "")).isdigit():
            continue  # a torn last line
        rows.append(row)
    columns = [c for c in reader.fieldnames or [] if c not in FIXED_COLUMNS]
    terms = [c for c in columns if any(r.get(c) for r in rows)]
    out = []
    for row in rows:
        entry = {"step": int(row["frame"]), "frame": int(row["frame"]), "status": row.get("status", "")}
        for key in ("steps", "seconds", "reliable", *terms):
            try:
                entry[key] = float(row[key]) if row.get(key) else None
            except ValueError:
                entry[key] = None
        out.append(entry)
    return terms, out


def painted(run: VideoRun, name_of: Callable[[str], str | None]) -> Painted:
    """What the run painted, for its label: the names the clip and styles were uploaded under, where known."""
    from .job import video_aspects

    settings = run.settings

    def shown(entry) -> str:
        path = entry.get("name") if isinstance(entry, dict) else entry
        return name_of(str(path)) or Path(str(path)).name if path else "?"

    source = settings.get("input") if isinstance(settings.get("input"), dict) else {}
    # The style painting what no mask covers (regions) is one of the styles too, last, as the form has it.
    background = [settings["background"]] if settings.get("background") else []
    styles = tuple(shown(s) for s in [*(settings.get("styles") or []), *background])
    selection = settings.get("selection") if isinstance(settings.get("selection"), dict) else {}
    recipe = run.recipe.to_dict() if run.recipe is not None else {}
    video = {"frame_steps": settings.get("frame_steps"), **selection}
    blend = tuple(settings["blend_weights"]) if settings.get("blend_weights") else None
    masks = tuple(shown(m) for m in settings.get("masks") or []) or None
    return Painted(shown(source), styles, recipe, blend, masks, None, video_aspects(video))


def inputs(run: VideoRun, name_of: Callable[[str], str | None]) -> list[dict]:
    """The inputs the run recorded that are uploads of this studio (the clip, the styles), to show and
    reuse. Only paths into the upload store count (``name_of``); anything else a video.json names is left out."""
    settings = run.settings
    found = [("content", 0, settings.get("input"))]
    found += [("style", i, s) for i, s in enumerate(settings.get("styles") or [], 1)]
    out = []
    for role, number, entry in found:
        path = str(entry.get("name", "")) if isinstance(entry, dict) else ""
        name = name_of(path) if path else None
        if name is not None:
            out.append({"role": role, "number": number, "name": name, "upload": Path(path).stem})
    return out


def status_of(run: VideoRun, painting: bool) -> tuple[str, str]:
    """(status, message) as the gallery shows them: a folder left "running" that has not moved for
    ``STALE_AFTER`` seconds, and that no job of this studio is painting (``painting``), is stalled."""
    status = str(run.info.get("status") or "running")
    message = str(run.info.get("message") or "")
    if status == "running" and not painting:
        updated = run.info.get("updated")
        idle = time.time() - updated if isinstance(updated, (int, float)) else STALE_AFTER + 1
        if idle > STALE_AFTER:
            return "stalled", f"no new frame for {int(idle)} s (the program painting it may have stopped)"
    return ("failed" if status == "error" else status), message


def summary(root: Path, run: VideoRun, title: str, experiment: str | None, painting: bool, studio: bool) -> dict:
    """The gallery's card of a video run (the keys of a still's, and the video's own)."""
    key = run.key
    status, message = status_of(run, painting)
    running = status == "running"
    latest = latest_frame(root, run)
    video = readable(root, run.folder / "video.mp4") if run.frames_done >= run.frames_total else None
    thumb = f"/api/thumb/{quote(key)}" + (f"?frame={latest[0]}" if running and latest else "")
    updated = run.info.get("updated") if isinstance(run.info.get("updated"), (int, float)) else None
    recipe = run.recipe
    return {
        "key": key,
        "name": run.name,
        "title": title,
        "experiment": experiment,
        "kind": "video",
        "status": status,
        "running": running,
        "message": message,
        "finished": None if running else updated,
        "updated": updated or 0.0,
        "steps": None,
        "frames_done": run.frames_done,
        "frames_total": run.frames_total,
        "size": recipe.size if recipe else None,
        "painted_size": run.info.get("size"),
        "fps": run.info.get("fps"),
        "total": None,
        "elapsed": run.info.get("seconds"),
        "losses": {},
        "recipe": recipe.name if recipe else "",
        "optimizer": recipe.optimizer if recipe else "",
        "studio": studio,
        "result": file_url(key, f"frames/{latest[1].name}") if latest else None,
        "thumb": thumb if latest else None,
        "poster": file_url(key, "frames/frame_000001.png") if frame_file(root, run) else None,
        "video": file_url(key, "video.mp4") if video is not None else None,
        "process": None,
    }


def strip(numbers: list[int], most: int = MOST_STRIP) -> list[int]:
    """At most ``most`` frames, evenly spread, the first and the last always among them."""
    if len(numbers) <= most:
        return numbers
    picked = {numbers[round(i * (len(numbers) - 1) / (most - 1))] for i in range(most)}
    return sorted(picked)


def detail(root: Path, run: VideoRun, card: dict, inputs: list[dict]) -> dict:
    """One video run's page: the card, its settings, per-frame losses, the strip of frames, downloads."""
    key = run.key
    terms, rows = frame_rows(root, run)
    numbers = frame_numbers(root, run)
    out = dict(card)
    out["recipe_values"] = run.recipe.to_dict() if run.recipe is not None else {}
    recipe_toml = readable(root, run.folder / "recipe.toml")
    out["recipe_toml"] = recipe_toml.read_text(encoding="utf-8") if recipe_toml is not None else ""
    out["info"] = run.info
    out["terms"], out["metrics"] = terms, rows
    out["frames"] = [
        {"frame": n, "url": file_url(key, f"frames/frame_{n:06d}.png"), "thumb": f"/api/thumb/{quote(key)}?frame={n}"}
        for n in strip(numbers)
    ]
    out["inputs"] = [i | {"url": f"/api/uploads/{i['upload']}"} for i in inputs]
    out["snapshots"] = []
    out["downloads"] = {
        name: file_url(key, name) + "?download=1"
        for name in ("video.mp4", "frames.csv", "video.json", "recipe.toml")
        if readable(root, run.folder / name) is not None
    }
    out["downloads"]["everything (.zip)"] = "/api/zip/" + quote(key)
    return out
