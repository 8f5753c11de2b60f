"""The process grid: several runs' snapshots side by side, at the same steps.

Only runs that saved snapshots are rows (the others are named once, in the
caption); a run with no snapshot as early as a column's step leaves that cell
empty. Drawn into a ``figures.Frame`` like the other sheets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .figures import Frame, new_figure, pixels_for, text_width, wrap
from .sheets import SCREEN_DPI, Thumbnails, _pick, column_label, run_point, varying


@dataclass
class ProcessGrid:
    """Rows of runs' snapshots at shared steps; ``left_out``: runs that saved none."""

    steps: list[int]
    rows: list[tuple[str, list[Path | None]]]
    left_out: list[str]
    thumbs: Thumbnails = field(default_factory=Thumbnails)

    def part(self, start: int, stop: int) -> ProcessGrid:
        return ProcessGrid(self.steps, self.rows[start:stop], self.left_out, self.thumbs)


def _snapshot_at(snaps: Sequence[tuple[int, Path]], step: int):
    """The last snapshot at or before ``step``."""
    best = None
    for s, path in snaps:
        if s <= step:
            best = (s, path)
    return best


def process_rows(runs: Sequence, max_steps: int = 6) -> ProcessGrid:
    """The runs with snapshots, at the steps they share (else all their steps, thinned to ``max_steps``)."""
    snaps = {r.name: r.snapshots() for r in runs}
    with_snaps = [r for r in runs if snaps[r.name]]
    sets = [{s for s, _ in snaps[r.name]} for r in with_snaps]
    shared = set.intersection(*sets) if sets else set()
    steps = _pick(sorted(shared) or sorted(set().union(*sets)), max_steps) if sets else []
    points = [run_point(r) for r in runs]
    keys = varying(points) or ["style"]
    labels = {r.name: column_label(p, keys).replace("\n", " · ") for r, p in zip(runs, points)}
    rows = []
    for run in with_snaps:
        found = [_snapshot_at(snaps[run.name], step) for step in steps]
        rows.append((labels[run.name], [f[1] if f else None for f in found]))
    return ProcessGrid(steps, rows, [r.name for r in runs if not snaps[r.name]])


def process_layout(
    grid: ProcessGrid, width: float, height: float, cell: float = 1.6, rows: int | None = None
) -> tuple[float, float, float]:
    """(label column width, cell width, aspect) so ``rows`` rows (default: all) fit ``width`` x ``height`` inches."""
    fs = 8
    label_w = min(2.6, max([text_width(wrap(label, 2.4, fs), fs) for label, _ in grid.rows] or [0.5]) + 0.15)
    first = next((p for _, paths in grid.rows for p in paths if p is not None), None)
    aspect = grid.thumbs.aspect(first)
    cw = min(cell, (width - label_w) / max(1, len(grid.steps)))
    rows = rows or len(grid.rows)
    if rows:
        cw = min(cw, ((height - 0.3) / rows - 0.08) / aspect)
    return label_w, max(0.2, cw), aspect


def draw_process_grid(frame: Frame, grid: ProcessGrid, layout: tuple[float, float, float], dpi: int) -> None:
    label_w, cw, aspect = layout
    px = pixels_for(cw, dpi)
    for c, step in enumerate(grid.steps):
        frame.text(label_w + (c + 0.5) * cw, 0.25, f"step {step}", ha="center", va="bottom", fontsize=8)
    for r, (label, paths) in enumerate(grid.rows):
        y = 0.3 + r * (cw * aspect + 0.08)
        frame.text(
            label_w - 0.1, y + cw * aspect / 2, wrap(label, label_w - 0.15, 8), ha="right", va="center", fontsize=8
        )
        for c, path in enumerate(paths):
            if path is not None:  # a run without a snapshot this early: an empty cell, not a word
                frame.image(label_w + c * cw + 0.02, y, cw - 0.04, cw * aspect, grid.thumbs.get(path, px))


def process_grid(runs: Sequence, max_steps: int = 6, cell: float = 1.6, title: str = ""):
    """Rows = runs with snapshots, columns = the same steps for all; returns a figure (None: no run saved any)."""
    grid = process_rows(runs, max_steps)
    if not grid.rows:
        return None
    label_w, cw, aspect = process_layout(grid, float("inf"), float("inf"), cell)
    top = 0.45 if title else 0.1
    body = 0.3 + len(grid.rows) * (cw * aspect + 0.08)
    fig = new_figure(label_w + len(grid.steps) * cw + 0.3, top + body + 0.1)
    if title:
        fig.text(0.5, 1 - 0.12 / fig.get_figheight(), title, ha="center", va="top", fontsize=11)
    draw_process_grid(Frame(fig, 0.15, top, fig.get_figwidth() - 0.3, body), grid, (label_w, cw, aspect), SCREEN_DPI)
    return fig
