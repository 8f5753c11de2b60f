"""Pictures made from runs: the process picture (snapshots and loss curves)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

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


def figure_to_image(fig, dpi: int = 100) -> Image.Image:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


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
