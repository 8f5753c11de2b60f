"""``stylelab report``: an experiment's pictures and numbers, as one HTML page and one PDF.

Written into the experiment folder::

    effect.png / effect.pdf        the effect picture (one per content: effect-<content>.*)
    process-grid.png               the runs' snapshots at the same steps
    losses.png                     the runs' loss curves, small multiples
    report.html                    all of it: the sheets as embedded JPEG thumbnails linked to the
                                   full-size files beside it; no server, no network
    report.pdf                     a lab notebook: a title page with the settings, then one figure
                                   per A4 page with its caption, then the table of runs

This module gathers what the report says (title, settings, environment, the
table of runs); report_pages.py draws the PDF and report_html.py writes the page.
Fields older runs did not record (torch version, precision, machine) show as "-".
"""

from __future__ import annotations

import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from . import folders, images, sheets
from .errors import StylelabError
from .experiments import format_value
from .runs import Run, find_runs

SETTING_SKIP = ("name", "description")
COLUMNS = (
    *("run", "settings", "status", "steps", "time s", "s/step", "batch", "peak MiB"),
    *("content d", "style d", "moments d", "swd d"),
)
NUMERIC = frozenset(COLUMNS[3:])
DIMENSIONS = ("content", "style", "recipe")


def experiment_runs(folder: Path) -> list[Run]:
    """The finished runs under ``folder`` in plan order where an experiment.toml says it, else by name."""
    runs = find_runs(folder)
    order: dict[str, int] = {}
    if (folder / "experiment.toml").is_file():
        from .experiments import load

        try:
            order = {spec.name: i for i, spec in enumerate(load(folder / "experiment.toml").plan())}
        except StylelabError:
            order = {}  # inputs moved since: fall back to names
    return sorted(runs, key=lambda r: (order.get(r.name, len(order)), r.name))


def experiment_name(folder: Path) -> str:
    """The experiment's own name (experiment.toml's ``name``), else the folder's name."""
    try:
        name = tomllib.loads((folder / "experiment.toml").read_text(encoding="utf-8")).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        name = None
    return str(name) if name else folder.resolve().name


def _settings(run: Run) -> dict[str, str]:
    return {k: format_value(v) for k, v in run.recipe.to_dict().items() if k not in SETTING_SKIP}


def differing_settings(runs: list[Run]) -> list[dict[str, str]]:
    """Per run, its values of the recipe settings that differ between the runs, except those its name
    already says (the varied ones of a sweep): what a recipe brings with it."""
    dicts = [_settings(r) for r in runs]
    keys = list(dict.fromkeys(k for d in dicts for k in d))
    keys = [k for k in keys if len({d.get(k, "-") for d in dicts}) > 1]
    points = [sheets.run_point(r) for r in runs]
    return [{k: d.get(k, "-") for k in keys if k not in p} for d, p in zip(dicts, points)]


def settings_table(runs: list[Run]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(shared, differing): what every run has alike (key, value), and what differs (key, its values in order)."""
    points = [sheets.run_point(r) for r in runs]
    values: dict[str, list[str]] = {}
    for point, run in zip(points, runs):
        for k in DIMENSIONS:
            values.setdefault(k, []).append(point.get(k, "?"))
        for k, v in _settings(run).items():
            values.setdefault(k, []).append(v)
    shared, differs = [], []
    for key, vals in values.items():
        distinct = list(dict.fromkeys(vals))
        if len(distinct) == 1:
            shared.append((key, distinct[0]))
        else:
            differs.append((key, ", ".join(distinct) + (f" ({len(distinct)})" if len(distinct) > 3 else "")))
    return shared, differs


def _distinct(runs: list[Run], key: str) -> str:
    """The values runs recorded for ``key``, with counts where they differ; '-' where none did."""
    found = Counter(_plain(r.info.get(key)) for r in runs if r.info.get(key) not in (None, "", {}))
    if not found:
        return "-"
    if len(found) == 1:
        return next(iter(found))
    return ", ".join(f"{v} ({n} runs)" for v, n in found.most_common())


def _plain(value) -> str:
    if isinstance(value, dict):  # a machine description: its most telling parts first
        parts = [str(value[k]) for k in ("cpu", "gpu", "platform") if value.get(k)]
        if value.get("cores"):
            parts.insert(1, f"{value['cores']} cores")
        return ", ".join(parts) or ", ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(t)) if t else "-"


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@dataclass
class Batches:
    """Which runs were optimised together: their batch's number and size, and each batch's time once."""

    number: dict[str, int] = field(default_factory=dict)
    size: dict[str, int] = field(default_factory=dict)
    first: set[str] = field(default_factory=set)  # the first run of each batch (where its shared figures go)
    seconds: dict[int, float] = field(default_factory=dict)


def batches(runs: list[Run]) -> Batches:
    """Batches in order of their first run; runs from before sweeps recorded batches are batches of one."""
    out = Batches()
    keys: dict[tuple, int] = {}
    for run in runs:
        key = tuple(sorted(run.info.get("batch_runs") or [run.name]))
        if key not in keys:
            keys[key] = len(keys) + 1
            out.first.add(run.name)
            if run.info.get("elapsed") is not None:
                out.seconds[keys[key]] = float(run.info["elapsed"])
        out.number[run.name] = keys[key]
        out.size[run.name] = max(1, int(run.info.get("batch_size") or 1))
    return out


def environment(runs: list[Run]) -> list[tuple[str, str]]:
    """Where and with what the runs were made, and the report."""
    from . import __version__

    statuses = Counter(r.status for r in runs)
    b = batches(runs)
    started = [r.info["started"] for r in runs if r.info.get("started")]
    finished = [r.info["finished"] for r in runs if r.info.get("finished")]
    n_batches = len(set(b.number.values()))
    return [
        ("runs", f"{len(runs)}: " + ", ".join(f"{n} {s}" for s, n in statuses.most_common())),
        ("batches", f"{n_batches}, {sum(b.seconds.values()):.1f} s in all (each batch's time counted once)"),
        ("stylelab", _distinct(runs, "version")),
        ("torch", _distinct(runs, "torch")),
        ("device", _distinct(runs, "device")),
        ("precision", _distinct(runs, "precision")),
        ("machine", _distinct(runs, "machine")),
        ("made", f"{_when(min(started, default=None))} to {_when(max(finished, default=None))}"),
        ("report made", f"{_when(time.time())} with stylelab {__version__}, torch {_package_version('torch')}"),
    ]


def distances(run: Run) -> dict[str, float] | None:
    """The run's content and style distances (style: Gram; moments, swd: under those losses): from
    run.json, or measured now (runs not made by a sweep), a run with regions by its own task."""
    if run.info.get("distances"):
        return run.info["distances"]
    if not run.result.is_file():
        return None
    from .metrics import task_distances
    from .task import StyleSet, Task

    try:
        if isinstance(run.info.get("task"), dict):
            task = Task.from_dict(run.info["task"], str(run.folder / "run.json"))
        else:
            task = Task(run.info["content"], (StyleSet(tuple(run.info["styles"])),))
        return task_distances(run.result, task, size=run.recipe.size).record()
    except (StylelabError, KeyError, TypeError):
        return None  # inputs no longer where they were


def table_rows(runs: list[Run], dists: dict[str, dict] | None = None) -> list[list[str]]:
    """One row of ``COLUMNS`` per run. Times are the run's share of its batch (batch time / runs in it),
    so they add up; peak memory is the batch's, given on its first run only."""
    if dists is None:
        dists = {r.name: distances(r) for r in runs}
    b = batches(runs)
    rows = []
    for run, diff in zip(runs, differing_settings(runs)):
        info, size = run.info, b.size[run.name]
        d = dists.get(run.name) or {}
        steps = info.get("steps") or 0
        share = info["elapsed"] / size if info.get("elapsed") is not None else None
        peak = info.get("peak_memory") if run.name in b.first else None
        rows.append(
            [
                run.name,
                " ".join(f"{k}={v}" for k, v in diff.items()) or "-",
                run.status,
                str(steps),
                f"{share:.2f}" if share is not None else "-",
                f"{share / steps:.4f}" if share is not None and steps else "-",
                f"#{b.number[run.name]} ×{size}" if size > 1 else f"#{b.number[run.name]}",
                f"{peak / 2**20:.0f}" if peak else ("" if info.get("peak_memory") else "-"),
                *(f"{d[k]:.3f}" if isinstance(d.get(k), (int, float)) else "-" for k in DISTANCE_KEYS),
            ]
        )
    return rows


DISTANCE_KEYS = ("content", "style", "moments", "swd")  # run.json's distances, in the order of their columns
TIME_NOTE = (
    "time s: the run's share of its batch's wall time (the batch's time divided by the runs optimised together "
    "in it), so the column adds up to the sweep's time; s/step likewise. batch: #number ×runs in it. peak MiB: "
    "the batch's peak memory, given once, on its first run. content d / style d: stylelab's own yardstick "
    "(metrics.py): relative feature distance to the content at relu4_2, relative Gram distance to the style "
    "at relu1_1..relu5_1; moments d / swd d: the style distance under those style losses (per-channel mean and "
    "deviation; sliced Wasserstein on fixed directions), so a sweep over style_loss can be read by each; all "
    "independent of each recipe's weights (regions: each by its own style, weighted by area); lower is closer."
)


@dataclass
class Report:
    """Everything the report shows, gathered once."""

    folder: Path
    title: str
    runs: list[Run]
    shared: list[tuple[str, str]]
    differs: list[tuple[str, str]]
    environment: list[tuple[str, str]]
    distances: dict[str, dict | None]
    rows: list[list[str]]
    columns: tuple[str, ...] = COLUMNS

    def by_content(self) -> dict[str, list[Run]]:
        groups: dict[str, list[Run]] = {}
        for run in self.runs:
            groups.setdefault(sheets.run_point(run)["content"], []).append(run)
        return groups


def gather(folder: str | Path) -> Report:
    """Read the experiment folder into a ``Report`` (distances the runs lack are measured now)."""
    folder = Path(folder)
    runs = experiment_runs(folder)
    if not runs:
        raise StylelabError(f"no finished runs under {folder} (stylelab sweep writes them)")
    shared, differs = settings_table(runs)
    dists = {r.name: distances(r) for r in runs}
    rows, columns = table_rows(runs, dists), COLUMNS
    if all(row[1] == "-" for row in rows):  # one recipe: no settings beyond those in the names
        rows, columns = [[row[0], *row[2:]] for row in rows], (COLUMNS[0], *COLUMNS[2:])
    return Report(folder, experiment_name(folder), runs, shared, differs, environment(runs), dists, rows, columns)


def report_files(report: Report) -> list[Path]:
    """Every file ``write_report`` writes (or removes, when stale) in the report's folder."""
    from .report_pages import effect_stem

    stems = [effect_stem(report, content) for content in report.by_content()]
    names = [f"{stem}.{kind}" for stem in stems for kind in ("png", "pdf")]
    return [report.folder / n for n in (*names, "process-grid.png", "losses.png", "report.pdf", "report.html")]


def made_by_stylelab(path: Path) -> bool:
    """Whether a report file is stylelab's: marked so (PNG Software, PDF Creator, HTML generator),
    or inside an experiment folder that a sweep made (whose report files are its own)."""
    from .figures import CREATOR
    from .report_html import GENERATOR
    from .sweep import is_experiment_file

    if is_experiment_file(path.parent / "experiment.toml"):
        return True
    try:
        if path.suffix == ".png":
            with Image.open(path) as img:
                return str(getattr(img, "text", {}).get("Software", "")).startswith(CREATOR)
        data = path.read_bytes()
    except (OSError, ValueError):
        return False
    if path.suffix == ".pdf":
        return f"/Creator ({CREATOR})".encode() in data
    return f"content='{GENERATOR}'".encode() in data[:4096]


def write_report(folder: str | Path) -> list[Path]:
    """Write the sheets, report.html and report.pdf into ``folder``; returns their paths."""
    from . import report_html, report_pages

    report = gather(folder)
    for path in report_files(report):  # a file of the user's with one of these names is left alone
        folders.check_output_file(path, made_by_stylelab, option="stylelab report would replace")
    written = report_pages.write_sheets(report)
    pdf_path = report_pages.write_pdf(report, report.folder / "report.pdf")
    html_path = images.atomic_write_text(report.folder / "report.html", report_html.render(report))
    return [html_path, pdf_path, *written]
