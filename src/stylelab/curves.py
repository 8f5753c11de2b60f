"""Loss curves: one run's (in its process picture), and many runs' as small multiples.

The loss terms are whatever metrics.csv holds beyond ``step`` and ``elapsed``, in
its order, so a new term shows up here without a change. With many runs one plot
per term is a tangle (36 lines on a 10-colour cycle), so ``loss_curves`` draws a
grid: one row per group of runs (everything that varies except the line key),
one column per term, and in each panel one line per value of the line key
(the style, where styles vary), coloured the same in every panel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib import colormaps
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from .figures import Frame, new_figure, wrap
from .sheets import run_point, varying

NOT_TERMS = ("step", "elapsed")
LINESTYLES = ("-", "--", ":", "-.")


def loss_terms(histories: Sequence[Sequence[dict]], drop_zero: bool = True) -> list[str]:
    """The loss terms the histories hold, in their order; terms zero everywhere are dropped."""
    terms = list(dict.fromkeys(k for h in histories for row in h[:1] for k in row if k not in NOT_TERMS))
    if drop_zero:
        terms = [t for t in terms if any(row.get(t, 0) > 0 for h in histories for row in h)]
    return terms


def _positive(values):
    return [v if v > 0 else float("nan") for v in values]  # log scale: a zero is no point, not -inf


def plot_losses(ax, history: Sequence[dict], terms: Sequence[str] | None = None) -> None:
    """One run's loss terms against the step, log scale (a process picture's lower part)."""
    steps = [row["step"] for row in history]
    for term in terms if terms is not None else loss_terms([history]):
        ax.plot(steps, _positive([row.get(term, 0.0) for row in history]), label=term)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (unweighted term)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=8)


@dataclass
class LossGrid:
    """Runs' histories grouped for small multiples."""

    terms: list[str]
    line_key: str
    lines: list[str]  # every line label, in order (one colour each)
    groups: list[tuple[str, list[tuple[str, list[dict]]]]]  # (group label, [(line label, history)])

    def part(self, start: int, stop: int) -> LossGrid:
        return LossGrid(self.terms, self.line_key, self.lines, self.groups[start:stop])

    def style_of(self, line: str) -> dict:
        """The same colour (and, past 20 lines, dash) for a line in every panel."""
        i = self.lines.index(line)
        palette = colormaps["tab10" if len(self.lines) <= 10 else "tab20"].colors
        return {"color": palette[i % len(palette)], "linestyle": LINESTYLES[(i // len(palette)) % len(LINESTYLES)]}


def loss_grid(runs: Sequence) -> LossGrid:
    """Group ``runs`` for ``loss_curves``: a panel row per group, a line per style (or the last varying key)."""
    points = [run_point(r) for r in runs]
    keys = varying(points)
    line_key = "style" if "style" in keys else (keys[-1] if keys else "run")
    group_keys = [k for k in keys if k != line_key]
    histories = [r.metrics() for r in runs]
    groups: dict[str, list[tuple[str, list[dict]]]] = {}
    for run, point, history in zip(runs, points, histories):
        label = " · ".join(point.get(k, "?") if k == "recipe" else f"{k} {point.get(k, '?')}" for k in group_keys)
        line = run.name if line_key == "run" else point.get(line_key, "?")
        groups.setdefault(label or "all runs", []).append((line, history))
    lines = list(dict.fromkeys(line for members in groups.values() for line, _ in members))
    return LossGrid(loss_terms(histories), line_key, lines, list(groups.items()))


# Panel geometry, inches: room for tick labels left of each panel, the group label left of the row.
LEFT, GAP_X, GAP_Y, BOTTOM, LEGEND_ROW = 0.95, 0.6, 0.22, 0.45, 0.22


def legend_height(grid: LossGrid, width: float) -> float:
    per_row = max(1, int(width / 1.6))
    return 0.15 + LEGEND_ROW * -(-len(grid.lines) // per_row)


def panel_height(rows: int, height: float) -> float:
    """The panel height that fits ``rows`` rows of panels in ``height`` inches (below the legend)."""
    rows = max(1, rows)
    return (height - BOTTOM - 0.25 - (rows - 1) * GAP_Y) / rows


def draw_losses(frame: Frame, grid: LossGrid, panel_h: float, ylims: dict[str, tuple[float, float]]) -> None:
    """The legend across the top, then the panels; ``ylims``: per term, shared by its whole column."""
    cols = max(1, len(grid.terms))
    panel_w = (frame.width - LEFT - (cols - 1) * GAP_X) / cols
    handles = [Line2D([], [], linewidth=1.5, **grid.style_of(line)) for line in grid.lines]
    per_row = max(1, int(frame.width / 1.6))
    frame.fig.legend(
        handles,
        grid.lines,
        loc="upper left",
        bbox_to_anchor=(frame.fx(0), frame.fy(0)),
        ncol=min(per_row, len(handles)),
        fontsize=7,
        frameon=False,
        title=f"lines: {grid.line_key}",
        title_fontsize=7,
        alignment="left",
    )
    top = legend_height(grid, frame.width) + 0.25
    steps = [row["step"] for _, members in grid.groups for _, h in members for row in h]
    for r, (group, members) in enumerate(grid.groups):
        y = top + r * (panel_h + GAP_Y)
        for c, term in enumerate(grid.terms):
            ax = frame.axes(LEFT + c * (panel_w + GAP_X), y, panel_w, panel_h)
            for line, history in members:
                ax.plot(
                    [row["step"] for row in history],
                    _positive([row.get(term, 0.0) for row in history]),
                    linewidth=1.1,
                    **grid.style_of(line),
                )
            ax.set_yscale("log")
            wide = term in ylims and ylims[term][1] / ylims[term][0] > 20
            if term in ylims:
                ax.set_ylim(*ylims[term])
            if wide:  # a decade or more: its powers of ten say enough (and minor ticks cost most of the drawing)
                ax.yaxis.set_minor_locator(NullLocator())
            if steps:
                ax.set_xlim(min(steps), max(steps))  # every panel the same steps, so columns line up
            ax.grid(True, which="major" if wide else "both", alpha=0.25)
            ax.tick_params(which="both", labelsize=6.5)
            if r == 0:
                ax.set_title(term, fontsize=9, weight="bold")
            if r == len(grid.groups) - 1:
                ax.set_xlabel("step", fontsize=7)
            else:
                ax.tick_params(labelbottom=False)
            if c == 0:
                ax.set_ylabel(wrap(group, panel_h, 7), fontsize=7)


def term_limits(grid: LossGrid) -> dict[str, tuple[float, float]]:
    """Per term, the y range of all its values (log scale, a little margin), so panels in a column compare."""
    lims = {}
    for term in grid.terms:
        values = [row[term] for _, members in grid.groups for _, h in members for row in h if row.get(term, 0) > 0]
        if values:
            lims[term] = (min(values) / 1.3, max(values) * 1.3)
    return lims


def loss_curves(runs: Sequence, title: str = "", panel: tuple[float, float] = (3.2, 1.7)):
    """Small multiples of the runs' loss terms (rows: groups of runs; columns: terms), log scale.

    Returns a figure of its own size; None where no run recorded a loss.
    """
    grid = loss_grid(runs)
    if not grid.terms:
        return None
    cols = len(grid.terms)
    width = LEFT + cols * panel[0] + (cols - 1) * GAP_X + 0.3
    top = 0.5 if title else 0.1
    body = legend_height(grid, width) + 0.25 + len(grid.groups) * (panel[1] + GAP_Y) + BOTTOM
    fig = new_figure(width, top + body)
    if title:
        fig.text(0.5, 1 - 0.12 / fig.get_figheight(), title, ha="center", va="top", fontsize=11)
    draw_losses(Frame(fig, 0.1, top, width - 0.2, body), grid, panel[1], term_limits(grid))
    return fig
