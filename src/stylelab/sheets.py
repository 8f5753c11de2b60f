"""Pictures made from runs: the process picture of one run, and the sheets that compare runs.

* ``process_picture``: one run's snapshots with step and loss, and its loss curves;
* ``effect_picture``: rows = styles (style image at the row head), columns = what
  else varies (recipes, parameter values), the content image and a header naming
  what varies; each cell a result, with its content and style distance when given;
* ``compare_picture``: the same layout for any images (other tools' results too);
* ``process_grid`` (process_grid.py): several runs' snapshots side by side at the same steps;
* ``loss_curves`` (curves.py): small multiples of every run's loss terms.

Sheets are drawn into a ``figures.Frame``, so the same drawing makes a figure of
its own size (``effect_picture`` etc.: PNG or PDF via ``save_figure``) or fills
part of a report's fixed-size PDF page (report_pages.py). No pyplot: see figures.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .figures import Frame, figure_to_image, fit_image, new_figure, pixels_for, save_figure, text_width, wrap

__all__ = ["compare_picture", "effect_picture", "figure_to_image", "grid_picture", "process_picture", "save_figure"]

MAX_SNAPSHOTS = 12
THUMB = 512  # longest side of an image as first read: enough for any cell of any sheet
SCREEN_DPI = 100  # the PNG sheets' resolution (and the pixels their images need)


def _pick(items: Sequence, n: int) -> list:
    """At most ``n`` items, evenly spread, always keeping the first and last."""
    if len(items) <= n:
        return list(items)
    idx = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in idx]


def process_picture(
    snapshots: Sequence[tuple[int, Image.Image, dict]], history: Sequence[dict], title: str = ""
) -> Image.Image:
    """Snapshots in a labelled grid (step and total loss), with the loss curves below."""
    shots = _pick(list(snapshots), MAX_SNAPSHOTS)
    cols = min(4, max(1, len(shots)))
    rows = math.ceil(len(shots) / cols) if shots else 0
    aspect = shots[0][1].height / shots[0][1].width if shots else 0.75
    cell, top = 3.0, (0.45 if title else 0.1)
    shot_h = cell * aspect + 0.3
    plot_h = 2.9 if history else 0.0
    fig = new_figure(cols * cell, max(2.5, top + rows * shot_h + plot_h + 0.1))
    frame = Frame(fig, 0, top, cols * cell, rows * shot_h + plot_h)
    for k, (step, img, losses) in enumerate(shots):
        x, y = (k % cols) * cell, (k // cols) * shot_h
        loss = losses.get("total")
        label = f"step {step}" + (f" · loss {loss:.3g}" if loss is not None else "")
        frame.text(x + cell / 2, y + 0.24, label, ha="center", va="bottom", fontsize=9)
        frame.image(x + 0.05, y + 0.28, cell - 0.1, cell * aspect - 0.02, fit_image(img, pixels_for(cell, 100)))
    if history:
        from .curves import plot_losses

        plot_losses(frame.axes(0.75, rows * shot_h + 0.15, cols * cell - 0.95, plot_h - 0.7), history)
    if title:
        fig.text(0.5, 1 - 0.1 / fig.get_figheight(), title, ha="center", va="top", fontsize=11)
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
    label_w = max([text_width(label, 9) + 0.2 for label, _ in rows if label] or [0.0])
    labels = [wrap(label, cell - 0.1, 9) for label in column_labels[:ncols]]
    label_h = max([label.count("\n") + 1 for label in labels] or [0]) * 9 * 1.3 / 72
    top = (0.5 if title else 0.1) + (label_h + 0.1 if labels else 0)
    fig = new_figure(label_w + ncols * cell + 0.1, top + len(rows) * (cell * aspect + 0.1) + 0.1)
    frame = Frame(fig, label_w, top, ncols * cell, len(rows) * (cell * aspect + 0.1))
    for c, label in enumerate(labels):
        frame.text(c * cell + cell / 2, -0.06, label, ha="center", va="bottom", fontsize=9)
    for r, (label, imgs) in enumerate(rows):
        y = r * (cell * aspect + 0.1)
        if label:
            frame.text(-0.1, y + cell * aspect / 2, label, ha="right", va="center", fontsize=9)
        for c, img in enumerate(imgs):
            if img is not None:  # drawn nearest-neighbour: shrunk to its pixels here, smoothly
                frame.image(
                    c * cell + 0.04, y, cell - 0.08, cell * aspect, fit_image(img, pixels_for(cell, SCREEN_DPI))
                )
    if title:
        fig.text(0.5, 1 - 0.1 / fig.get_figheight(), title, ha="center", va="top", fontsize=11)
    return fig


# ---------------------------------------------------------------- where runs sit


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


class Thumbnails:
    """Images read once (at most ``THUMB`` px) and handed out at the size each use needs."""

    def __init__(self):
        self._read: dict[str, Image.Image | None] = {}

    def get(self, src, px: int) -> Image.Image | None:
        """``src`` (a path or an image) no larger than ``px``; None for a moved, deleted or unreadable file."""
        if src is None:
            return None
        if isinstance(src, Image.Image):
            return fit_image(src, px)
        key = str(src)
        if key not in self._read:
            try:
                from .images import load_rgb

                self._read[key] = fit_image(load_rgb(src)[0], THUMB)
            except Exception:  # noqa: BLE001 - a moved or deleted file shows as an empty cell
                self._read[key] = None
        img = self._read[key]
        return fit_image(img, px) if img is not None else None

    def aspect(self, src, default: float = 0.75) -> float:
        img = self.get(src, THUMB)
        return img.height / img.width if img is not None else default


# ---------------------------------------------------------------- effect picture


@dataclass
class Cell:
    """One result in an effect sheet: its image (path or image), a line above it and one below."""

    image: object = None
    above: str = ""
    below: str = ""
    color: str = "black"


@dataclass
class EffectSheet:
    """What an effect picture shows, independent of how large it is drawn."""

    content: object  # path or image
    content_label: str
    columns: list[str]
    rows: list[tuple[str, object, list[Cell]]]  # (style label, style image, one cell per column)
    header: str = ""
    thumbs: Thumbnails = field(default_factory=Thumbnails)

    def part(self, start: int, stop: int) -> EffectSheet:
        """The same sheet with only rows ``start:stop`` (a page's worth)."""
        return EffectSheet(
            self.content, self.content_label, self.columns, self.rows[start:stop], self.header, self.thumbs
        )


def metrics_label(d: dict | None) -> str:
    """The line under a result: content and style distance (metrics.py), or nothing."""
    if not d or d.get("content") is None or d.get("style") is None:
        return ""
    return f"c {d['content']:.3f}  s {d['style']:.3f}"


def effect_sheet(runs: Sequence, metrics: dict[str, dict] | None = None) -> EffectSheet:
    """The effect sheet of runs of one content; ``metrics``: run name -> {content, style} distances."""
    points = [run_point(r) for r in runs]
    keys = varying(points, skip=("content", "style"))
    columns = list(dict.fromkeys(column_label(p, keys) for p in points))
    styles = list(dict.fromkeys(p["style"] for p in points))
    by_cell = {(p["style"], column_label(p, keys)): r for p, r in zip(points, runs)}
    style_paths = {p["style"]: (r.info.get("styles") or [None])[0] for p, r in zip(points, runs)}
    rows = []
    for style in styles:
        cells = []
        for label in columns:
            run = by_cell.get((style, label))
            if run is None:
                cells.append(Cell(None, "not run", color="grey"))
                continue
            status = "" if run.status == "done" else run.status
            below = metrics_label((metrics or {}).get(run.name))
            cells.append(Cell(run.result if run.result.is_file() else None, status, below, "firebrick"))
        rows.append((f"style: {style}", style_paths[style], cells))
    varies = " × ".join(["style", *keys]) if keys else "style"
    header = f"rows: style · columns: {' × '.join(keys) or 'result'} · varies: {varies}"
    if metrics:
        header += " · under each result: c content distance, s style distance (metrics.py)"
    return EffectSheet(runs[0].info.get("content"), f"content: {points[0]['content']}", columns, rows, header)


@dataclass
class EffectLayout:
    """Sizes in inches: cell width, label strips above and below the images, the header row."""

    cw: float
    aspect: float
    fs: float
    lab: float
    bot: float
    head: float
    labels: list[str]

    @property
    def row_h(self) -> float:
        return self.lab + self.cw * self.aspect + self.bot

    def height(self, rows: int) -> float:
        return self.head + rows * self.row_h


def effect_layout(sheet: EffectSheet, cw: float) -> EffectLayout:
    aspect = sheet.thumbs.aspect(sheet.content)
    fs = min(9.0, max(6.0, 3.0 + 2.7 * cw))
    lab = fs * 1.7 / 72
    bot = lab if any(c.below for _, _, cells in sheet.rows for c in cells) else 0.0
    labels = [wrap(c, cw - 0.08, fs) for c in sheet.columns]
    text_h = max(label.count("\n") + 1 for label in labels) * fs * 1.35 / 72 + 0.08
    head = max(text_h, lab + 0.7 * cw * aspect)
    return EffectLayout(cw, aspect, fs, lab, bot, head, labels)


def fit_effect(sheet: EffectSheet, width: float, height: float, cell: float = 2.2) -> EffectLayout:
    """The largest layout (cells at most ``cell`` inches) that fits ``width`` x ``height`` inches."""
    cw = min(cell, width / (len(sheet.columns) + 1))
    layout = effect_layout(sheet, cw)
    while layout.height(len(sheet.rows)) > height and cw > 0.3:
        cw *= 0.95
        layout = effect_layout(sheet, cw)
    return layout


def draw_effect(frame: Frame, sheet: EffectSheet, layout: EffectLayout, dpi: int) -> None:
    """Draw the sheet into ``frame`` (centred horizontally) with ``layout``; images sized for ``dpi``."""
    cw, a, lab, fs = layout.cw, layout.aspect, layout.lab, layout.fs
    px = pixels_for(cw, dpi)
    x0 = max(0.0, (frame.width - (len(sheet.columns) + 1) * cw) / 2)

    def cell(x: float, y: float, h: float, img, above: str = "", below: str = "", color: str = "black"):
        if above:
            frame.text(
                x + cw / 2,
                y + lab - 0.03,
                wrap(above, cw, fs - 1)[:60],
                ha="center",
                va="bottom",
                fontsize=fs - 1,
                color=color,
            )
        frame.image(x + 0.03, y + lab, cw - 0.06, h, sheet.thumbs.get(img, px))
        if below:
            frame.text(x + cw / 2, y + lab + h + 0.02, below, ha="center", va="top", fontsize=fs - 1.5, color="#333")

    cell(x0, 0, layout.head - lab - 0.02, sheet.content, sheet.content_label)
    for c, label in enumerate(layout.labels):
        frame.text(
            x0 + (c + 1.5) * cw,
            layout.head - 0.04,
            label,
            ha="center",
            va="bottom",
            fontsize=fs,
            weight="bold",
            linespacing=1.2,
        )
    for r, (style_label, style_img, cells) in enumerate(sheet.rows):
        y = layout.head + r * layout.row_h
        cell(x0, y, cw * a, style_img, style_label)
        for c, item in enumerate(cells):
            cell(x0 + (c + 1) * cw, y, cw * a, item.image, item.above, item.below, item.color)


def _sheet_figure(sheet: EffectSheet, title: str, cell: float, dpi: int):
    layout = fit_effect(sheet, (len(sheet.columns) + 1) * cell, float("inf"), cell)
    width = (len(sheet.columns) + 1) * layout.cw + 0.3
    header = wrap(sheet.header, width - 0.3, 9) if sheet.header else ""
    title_h = 0.3 if title else 0.0
    header_h = (header.count("\n") + 1) * 9 * 1.4 / 72 if header else 0.0
    top = 0.15 + title_h + header_h + 0.1
    fig = new_figure(width, top + layout.height(len(sheet.rows)) + 0.15)
    if title:
        fig.text(0.5, 1 - 0.12 / fig.get_figheight(), title, ha="center", va="top", fontsize=12, weight="bold")
    if header:
        y = 1 - (0.15 + title_h) / fig.get_figheight()
        fig.text(0.5, y, header, ha="center", va="top", fontsize=9, color="#333", linespacing=1.2)
    draw_effect(Frame(fig, 0.15, top, width - 0.3, layout.height(len(sheet.rows))), sheet, layout, dpi)
    return fig


def effect_picture(
    runs: Sequence, title: str = "", metrics: dict[str, dict] | None = None, cell: float = 2.2, dpi: int = SCREEN_DPI
):
    """Rows = styles (style image first), columns = everything else that varies; one content.

    ``metrics`` (run name -> {content, style}) puts each result's distances under it; ``dpi``: the
    resolution it will be saved at (images are sized for it: a PDF embeds them as they are).
    Returns a matplotlib figure of its own size; runs of several contents belong in one picture each.
    """
    return _sheet_figure(effect_sheet(runs, metrics), title, cell, dpi)


def compare_picture(
    items: Sequence[tuple[str, object, dict | None]],
    content,
    style,
    *,
    content_label: str = "content",
    style_label: str = "style",
    title: str = "",
    cell: float = 2.2,
    dpi: int = SCREEN_DPI,
):
    """Any images side by side as an effect picture: (label, image or path, distances or None) each,
    with the content at the head and the style at the row's start; returns a figure (for ``dpi``)."""
    cells = [Cell(img, below=metrics_label(d)) for _, img, d in items]
    header = (
        "under each image: c content distance, s style distance (stylelab metrics)"
        if any(c.below for c in cells)
        else ""
    )
    sheet = EffectSheet(
        content,
        f"content: {content_label}",
        [label for label, _, _ in items],
        [(f"style: {style_label}", style, cells)],
        header,
    )
    return _sheet_figure(sheet, title, cell, dpi)
