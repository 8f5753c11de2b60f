"""``stylelab report``: an experiment's pictures and numbers, as one HTML page and one PDF.

Written into the experiment folder::

    effect.png / effect.pdf        the effect picture (one per content: effect-<content>.*)
    process-grid.png               every run's snapshots at the same steps
    losses.png                     every run's loss curves, one plot per term
    report.html                    all of it, self-contained: the sheets embedded as data URIs,
                                   each run's process picture by relative path; no server, no network
    report.pdf                     the same, with vector text

The table gives, per run, the settings that differ between runs, wall time,
seconds per step, peak memory, batch size and stylelab's own content and style
distance of the result (metrics.py), so runs of different recipes compare.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from pathlib import Path

from . import images, sheets
from .errors import StylelabError
from .experiments import format_value
from .runs import Run, find_runs

SETTING_SKIP = ("name", "description")
COLUMNS = ("run", "differs", "status", "steps", "wall s", "s/step", "batch", "peak MiB", "content d", "style d")


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


def differing_settings(runs: list[Run]) -> list[dict[str, str]]:
    """Per run, the recipe settings whose value is not the most common one among the runs."""
    dicts = [{k: format_value(v) for k, v in r.recipe.to_dict().items() if k not in SETTING_SKIP} for r in runs]
    common = {k: Counter(d.get(k) for d in dicts).most_common(1)[0][0] for k in (dicts[0] if dicts else {})}
    return [{k: v for k, v in d.items() if v != common.get(k)} for d in dicts]


def distances(run: Run) -> dict[str, float] | None:
    """The run's content and style distance: from run.json, or measured now (runs not made by a sweep)."""
    if run.info.get("distances"):
        return run.info["distances"]
    if not run.result.is_file():
        return None
    from .metrics import distances as measure

    try:
        d = measure(run.result, run.info["content"], run.info["styles"])
    except (StylelabError, KeyError):
        return None  # inputs no longer where they were
    return {"content": d.content, "style": d.style}


def table_rows(runs: list[Run]) -> list[list[str]]:
    rows = []
    for run, diff in zip(runs, differing_settings(runs)):
        info = run.info
        d = distances(run) or {}
        steps = info.get("steps") or 0
        elapsed = info.get("elapsed")
        per_step = info.get("seconds_per_step") or (elapsed / steps if elapsed and steps else None)
        peak = info.get("peak_memory")
        rows.append(
            [
                run.name,
                ", ".join(f"{k}={v}" for k, v in diff.items()) or "-",
                run.status,
                str(steps),
                f"{elapsed:.1f}" if elapsed is not None else "-",
                f"{per_step:.3f}" if per_step else "-",
                str(info.get("batch_size", 1)),
                f"{peak / 2**20:.0f}" if peak else "-",
                f"{d['content']:.3f}" if "content" in d else "-",
                f"{d['style']:.3f}" if "style" in d else "-",
            ]
        )
    return rows


def _by_content(runs: list[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(sheets.run_point(run)["content"], []).append(run)
    return groups


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _table_figure(header, rows, title):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11.7, 0.6 + 0.32 * (len(rows) + 1)))
    ax.set_axis_off()
    wrapped = [[r[0], r[1][:60]] + r[2:] for r in rows]
    t = ax.table(cellText=wrapped, colLabels=header, loc="upper center", cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(6.5)
    t.auto_set_column_width(list(range(len(header))))
    ax.set_title(title, fontsize=10)
    return fig


def write_report(folder: str | Path) -> list[Path]:
    """Write the sheets, report.html and report.pdf into ``folder``; returns their paths."""
    from matplotlib.backends.backend_pdf import PdfPages

    folder = Path(folder)
    runs = experiment_runs(folder)
    if not runs:
        raise StylelabError(f"no finished runs under {folder} (stylelab sweep writes them)")
    title = folder.resolve().name
    groups = _by_content(runs)
    written: list[Path] = []
    pdf_path = folder / "report.pdf"
    partial_pdf = pdf_path.with_name(".report.pdf.partial")
    sections: list[tuple[str, Path]] = []
    with PdfPages(partial_pdf) as pdf:
        for content, group in groups.items():
            stem = "effect" if len(groups) == 1 else f"effect-{content}"
            fig = sheets.effect_picture(group, title=f"{title}: effect picture ({content})")
            pdf.savefig(fig, bbox_inches="tight")
            written += sheets.save_figure(fig, folder / f"{stem}.png", folder / f"{stem}.pdf")
            sections.append((f"Effect picture: {content}", folder / f"{stem}.png"))
        for name, make in (("process-grid", sheets.process_grid), ("losses", sheets.loss_curves)):
            fig = make(runs)
            pdf.savefig(fig, bbox_inches="tight")
            written += sheets.save_figure(fig, folder / f"{name}.png")
            sections.append(({"process-grid": "Process", "losses": "Loss curves"}[name], folder / f"{name}.png"))
        rows = table_rows(runs)
        for start in range(0, len(rows), 30):
            pdf.savefig(_table_figure(COLUMNS, rows[start : start + 30], f"{title}: runs"), bbox_inches="tight")
        for run in runs:
            if run.process.is_file():
                pdf.savefig(_image_page(run.process, run.name), bbox_inches="tight")
    partial_pdf.replace(pdf_path)
    html_path = images.atomic_write_text(folder / "report.html", _html(title, folder, runs, rows, sections))
    return [html_path, pdf_path, *written]


def _image_page(path: Path, title: str):
    import matplotlib.pyplot as plt
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
    fig, ax = plt.subplots(figsize=(8.3, 8.3 * img.height / img.width + 0.4))
    ax.imshow(img, interpolation="none")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    return fig


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
img.sheet { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.runs { display: flex; flex-wrap: wrap; gap: 1em; } .runs figure { margin: 0; width: 420px; }
.runs img { width: 100%; } figcaption { font-size: 0.8em; word-break: break-all; }
"""


def _html(title: str, folder: Path, runs: list[Run], rows: list[list[str]], sections) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}: stylelab report</title><style>{CSS}</style></head><body>",
        f"<h1>{e(title)}</h1><p>{len(runs)} runs. Distances are stylelab's own yardstick (relative feature "
        "distance to the content at relu4_2, relative Gram distance to the style at relu1_1..relu5_1), "
        "independent of each recipe's weights.</p>",
    ]
    for heading, path in sections:
        parts.append(f"<h2>{e(heading)}</h2><img class='sheet' alt='{e(heading)}' src='{_data_uri(path)}'>")
    parts.append("<h2>Runs</h2><table><tr>" + "".join(f"<th>{e(c)}</th>" for c in COLUMNS) + "</tr>")
    for row in rows:
        cells = [f"<td>{e(row[0])}</td>", f"<td>{e(row[1])}</td>", f"<td>{e(row[2])}</td>"]
        cells += [f"<td class='num'>{e(v)}</td>" for v in row[3:]]
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table><h2>Process pictures</h2><div class='runs'>")
    for run in runs:
        if run.process.is_file():
            rel = run.process.relative_to(folder).as_posix()
            parts.append(
                f"<figure><a href='{e(rel)}'><img loading='lazy' alt='{e(run.name)}' src='{e(rel)}'></a>"
                f"<figcaption>{e(run.name)}</figcaption></figure>"
            )
    parts.append("</div></body></html>")
    return "\n".join(parts)
