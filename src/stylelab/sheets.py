"""Pictures made from runs: the process picture of one run, and the sheets that compare runs.

* ``process_picture``: one run's snapshots with step and loss, and its loss curves;
* ``effect_picture``: rows = styles (style image at the row head), columns = what
  else varies (recipes, parameter values), the content image and a header naming
  what varies; each cell a result;
* ``process_grid``: several runs' snapshots side by side at the same steps;
* ``loss_curves``: every run's curve, one plot per loss term, log scale.

The comparison sheets return matplotlib figures, so each can be written as PNG
(``figure_to_image``) or as PDF with vector text and the images embedded
(``save_figure``).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402

LOSS_TERMS = ("content", "style", "tv", "total")
MAX_SNAPSHOTS = 12


def _pick(items: Sequence, n: int) -> list:
    """At most ``n`` items, evenly spread, always keeping the first and last."""
    if len(items) <= n:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in idx]


def figure_bytes(fig, fmt: str = "png", dpi: int = 100, close: bool = True) -> bytes:
    """The figure as PNG or PDF bytes (PDF: text stays text, images are embedded)."""
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", facecolor="white")
    if close:
        plt.close(fig)
    return buf.getvalue()


def figure_to_image(fig, dpi: int = 100) -> Image.Image:
    return Image.open(io.BytesIO(figure_bytes(fig, "png", dpi))).convert("RGB")


def save_figure(fig, png=None, pdf=None, dpi: int = 100) -> list:
    """Write the figure atomically as PNG and/or PDF; returns the paths written."""
    from .images import atomic_write_bytes

    written = []
    if pdf is not None:
        written.append(atomic_write_bytes(pdf, figure_bytes(fig, "pdf", dpi, close=False)))
    if png is not None:
        written.append(atomic_write_bytes(png, figure_bytes(fig, "png", dpi, close=False)))
    plt.close(fig)
    return written


def plot_losses(ax, history: Sequence[dict], terms: Sequence[str] = LOSS_TERMS) -> None:
    steps = [row["step"] for row in history]
    for term in terms:
        values = [row.get(term, 0.0) for row in history]
        if any(v > 0 for v in values):
            ax.plot(steps, [v if v > 0 else float("nan") for v in values], label=term)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (unweighted term)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)


def process_picture(
    snapshots: Sequence[tuple[int, Image.Image, dict]], history: Sequence[dict], title: str = ""
) -> Image.Image:
    """Snapshots in a labelled grid (step and total loss), with the loss curves below."""
    shots = _pick(list(snapshots), MAX_SNAPSHOTS)
    cols = min(4, max(1, len(shots)))
    rows = math.ceil(len(shots) / cols) if shots else 0
    aspect = shots[0][1].height / shots[0][1].width if shots else 0.75
    cell = 3.0
    fig_h = rows * (cell * aspect + 0.4) + (2.8 if history else 0) + 0.5
    fig = plt.figure(figsize=(cols * cell, max(fig_h, 2.5)))
    grid = fig.add_gridspec(
        rows + (1 if history else 0), cols, height_ratios=[cell * aspect] * rows + ([2.6] if history else [])
    )
    for k, (step, img, losses) in enumerate(shots):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        ax.imshow(img)
        ax.set_axis_off()
        loss = losses.get("total")
        label = f"step {step}" + (f" · loss {loss:.3g}" if loss is not None else "")
        ax.set_title(label, fontsize=9)
    if history:
        ax = fig.add_subplot(grid[rows, :])
        plot_losses(ax, history)
    if title:
        fig.suptitle(title, fontsize=11)
    return figure_to_image(fig)


def grid_picture(
    rows: Sequence[tuple[str, Sequence[Image.Image]]],
    column_labels: Sequence[str],
    title: str = "",
    cell: float = 2.6,
):
    """A labelled grid of images as a matplotlib figure (one row per entry of ``rows``).

    Returns the figure so callers can save it as PNG (``figure_to_image``) or PDF.
    """
    ncols = max(len(imgs) for _, imgs in rows)
    first = rows[0][1][0]
    aspect = first.height / first.width
    fig, axes = plt.subplots(len(rows), ncols, figsize=(ncols * cell, len(rows) * cell * aspect + 0.6), squeeze=False)
    for r, (label, imgs) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(imgs) and imgs[c] is not None:
                ax.imshow(imgs[c])
            if r == 0 and c < len(column_labels):
                ax.set_title(column_labels[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- comparing runs

THUMB = 512  # longest side of the images put into sheets (keeps PDFs small)


def run_point(run) -> dict[str, str]:
    """Where a run sits in its experiment: content, style, recipe and each varied setting."""
    point = run.info.get("sweep")
    if point:
        return dict(point)
    styles = run.info.get("styles") or ["?"]
    return {
        "content": Path(str(run.info.get("content", "?"))).stem,
        "style": "+".join(Path(str(s)).stem for s in styles),
        "recipe": run.recipe.name,
    }


def varying(points: Sequence[dict[str, str]], skip: Sequence[str] = ()) -> list[str]:
    """Keys whose value differs between the points, in first-seen order."""
    keys = list(dict.fromkeys(k for p in points for k in p))
    return [k for k in keys if k not in skip and len({p.get(k) for p in points}) > 1]


def column_label(point: dict[str, str], keys: Sequence[str]) -> str:
    return "\n".join(point.get(k, "?") if k == "recipe" else f"{k} {point.get(k, '?')}" for k in keys) or "result"


def _thumb(path) -> Image.Image | None:
    try:
        from .images import load_rgb

        img = load_rgb(path)[0]
    except Exception:  # noqa: BLE001 - a moved or deleted input shows as an empty cell
        return None
    img.thumbnail((THUMB, THUMB), Image.Resampling.LANCZOS)
    return img


def _cell(ax, img: Image.Image | None, label: str = "", color: str = "black") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if img is not None:
        ax.imshow(img, interpolation="none")  # 'none': the PDF embeds the image itself
    else:
        ax.text(0.5, 0.5, "missing", ha="center", va="center", color="grey", transform=ax.transAxes)
    if label:
        ax.set_title(label, fontsize=8, color=color)


def effect_picture(runs: Sequence, title: str = "", cell: float = 2.2):
    """Rows = styles (style image first), columns = everything else that varies; one content.

    Returns a matplotlib figure; runs of several contents belong in one picture each.
    """
    points = [run_point(r) for r in runs]
    keys = varying(points, skip=("content", "style"))
    columns = list(dict.fromkeys(column_label(p, keys) for p in points))
    styles = list(dict.fromkeys(p["style"] for p in points))
    by_cell = {(p["style"], column_label(p, keys)): r for p, r in zip(points, runs)}
    style_paths = {p["style"]: (r.info.get("styles") or [None])[0] for p, r in zip(points, runs)}
    first = runs[0]
    content = _thumb(first.info.get("content"))
    aspect = (content.height / content.width) if content else 0.75
    head = 0.5 + 0.14 * max(c.count("\n") + 1 for c in columns)
    fig = plt.figure(figsize=((len(columns) + 1) * cell, head * cell + len(styles) * cell * aspect + 0.5))
    grid = fig.add_gridspec(len(styles) + 1, len(columns) + 1, height_ratios=[head] + [aspect] * len(styles))
    _cell(fig.add_subplot(grid[0, 0]), content, f"content: {points[0]['content']}")
    for c, label in enumerate(columns):
        ax = fig.add_subplot(grid[0, c + 1])
        ax.set_axis_off()
        ax.text(0.5, 0.1, label, ha="center", va="bottom", fontsize=9, weight="bold", transform=ax.transAxes)
    for r, style in enumerate(styles):
        _cell(fig.add_subplot(grid[r + 1, 0]), _thumb(style_paths[style]), f"style: {style}")
        for c, label in enumerate(columns):
            run = by_cell.get((style, label))
            img = _thumb(run.result) if run is not None else None
            status = run.status if run is not None else "not run"
            _cell(fig.add_subplot(grid[r + 1, c + 1]), img, "" if status == "done" else status, "firebrick")
    varies = " × ".join(["style", *keys]) if keys else "style"
    header = f"rows: style · columns: {' × '.join(keys) or 'result'} · varies: {varies}"
    fig.suptitle(f"{title}\n{header}" if title else f"effect picture\n{header}", fontsize=11)
    fig.tight_layout()
    return fig


def _snapshot_at(snaps: Sequence[tuple[int, Path]], step: int):
    """The last snapshot at or before ``step``."""
    best = None
    for s, path in snaps:
        if s <= step:
            best = (s, path)
    return best


def process_grid(runs: Sequence, max_steps: int = 6, cell: float = 2.0, title: str = ""):
    """Rows = runs, columns = the same steps for all (shared snapshot steps, or the nearest before)."""
    snaps = [r.snapshots() for r in runs]
    shared = set.intersection(*(set(s for s, _ in sn) for sn in snaps)) if snaps else set()
    steps = sorted(shared) or sorted({s for sn in snaps for s, _ in sn})
    steps = _pick(steps, max_steps)
    if not steps:
        steps = [0]
    points = [run_point(r) for r in runs]
    keys = varying(points) or ["style"]
    first = next((_thumb(p) for sn in snaps for _, p in sn[:1]), None)
    aspect = first.height / first.width if first else 0.75
    fig, axes = plt.subplots(
        len(runs), len(steps), figsize=(len(steps) * cell + 1.5, len(runs) * (cell * aspect + 0.3) + 0.6), squeeze=False
    )
    for r, sn in enumerate(snaps):
        for c, step in enumerate(steps):
            found = _snapshot_at(sn, step)
            ax = axes[r][c]
            _cell(ax, _thumb(found[1]) if found else None, f"step {step}" if r == 0 else "")
            if c == 0:
                ax.set_ylabel(column_label(points[r], keys), fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(title or "process: snapshots at the same steps", fontsize=11)
    fig.tight_layout()
    return fig


def loss_curves(runs: Sequence, terms: Sequence[str] = LOSS_TERMS, title: str = ""):
    """One plot per loss term with a line per run, log scale (terms that are zero everywhere are left out)."""
    histories = [r.metrics() for r in runs]
    shown = [t for t in terms if any(row.get(t, 0) > 0 for h in histories for row in h)] or ["total"]
    points = [run_point(r) for r in runs]
    keys = varying(points) or ["style"]
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 3.6 * rows + 0.8), squeeze=False)
    for k, term in enumerate(shown):
        ax = axes[k // cols][k % cols]
        for point, history in zip(points, histories):
            values = [row.get(term, 0.0) for row in history]
            ax.plot(
                [row["step"] for row in history],
                [v if v > 0 else float("nan") for v in values],
                label=column_label(point, keys).replace("\n", " · "),
                linewidth=1,
            )
        ax.set_yscale("log")
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(True, which="both", alpha=0.3)
    for k in range(len(shown), rows * cols):
        axes[k // cols][k % cols].set_axis_off()
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    fig.suptitle(title or "losses (unweighted terms; each recipe's own normalisation)", fontsize=11)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * math.ceil(len(labels) / 4), 1, 1))
    return fig
