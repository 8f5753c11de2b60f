"""The report's files: the sheets beside it (PNG, the effect picture also PDF) and report.pdf.

report.pdf is a lab notebook on A4 landscape pages, every page the same size:
a title page (the experiment's name, what all runs share, what differs, where
and with what they ran), then one figure per page, each with its heading above
and its caption below, then the table of runs. A sheet too large for a page
continues on the next (effect picture: by style rows; process grid: by runs;
loss curves: by groups). Images are downscaled to what the page shows and
embedded as JPEG (figures.py), so the file stays small enough to mail.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.lines import Line2D

from . import curves, process_grid, sheets
from .figures import CREATOR, PAGE, PDF_DPI, Frame, JpegPdfPages, new_figure, save_figure, text_width, wrap
from .report import NUMERIC, TIME_NOTE, Report

MARGIN = 0.5
HEAD = 0.55  # heading block at the top of a page
FOOT = 0.35  # page number
CAPTION_FS = 8.5


def sheet_titles(report: Report) -> dict[str, str]:
    return {
        "effect": f"{report.title}: effect picture",
        "process": f"{report.title}: process",
        "losses": f"{report.title}: losses (unweighted terms, log scale)",
    }


def effect_stem(report: Report, content: str) -> str:
    return "effect" if len(report.by_content()) == 1 else f"effect-{content}"


def write_sheets(report: Report) -> list[Path]:
    """effect.png/.pdf (one per content), process-grid.png and losses.png beside the report."""
    titles, written = sheet_titles(report), []
    for content, group in report.by_content().items():
        stem, title = effect_stem(report, content), f"{titles['effect']} ({content})"
        for kind, dpi in (("png", sheets.SCREEN_DPI), ("pdf", PDF_DPI)):  # images sized for each
            fig = sheets.effect_picture(group, title, metrics=report.distances, dpi=dpi)
            written += save_figure(fig, **{kind: report.folder / f"{stem}.{kind}"}, dpi=dpi)
    for name, make in (("process-grid", process_grid.process_grid), ("losses", curves.loss_curves)):
        fig = make(report.runs, title=titles["process" if name == "process-grid" else "losses"])
        if fig is not None:
            written += save_figure(fig, report.folder / f"{name}.png")
        else:
            (report.folder / f"{name}.png").unlink(missing_ok=True)  # a stale one from an earlier report
    return written


# ---------------------------------------------------------------- captions (the HTML uses them too)


def effect_caption(report: Report, content: str) -> str:
    return (
        f"Effect picture for content {content}: each row a style, each column a setting that varies; "
        "a red word above a result is its status when not done. Under each result: c, the content distance, "
        "and s, the style distance, by stylelab's own yardstick (metrics.py; lower is closer; it ignores each "
        "recipe's weights, so recipes compare). Full-size results: runs/<run>/result.png."
    )


def loss_caption(grid: curves.LossGrid) -> str:
    return (
        f"Loss terms against the step, log scale: one row per group of runs, one column per term, one line per "
        f"{grid.line_key} (the same colour in every panel). The panels of a column share their y range. Terms are "
        "unweighted and in each recipe's own normalisation, so levels compare within a recipe, not across recipes."
    )


def process_caption(grid: process_grid.ProcessGrid) -> str:
    own = "Each run's own process picture, with every snapshot and its curves: runs/<run>/process.png."
    if not grid.rows:
        return f"No run saved snapshots (save_every = 0), so there is no process grid. {own}"
    text = (
        "Snapshots of each run at the same steps (the steps all runs saved, or the nearest one before); an empty "
        f"cell is a step before the run's first snapshot. {own}"
    )
    if grid.left_out:
        text += f" {len(grid.left_out)} run(s) saved no snapshots (save_every = 0) and are left out."
    return text


# ---------------------------------------------------------------- pages


class Pages:
    """A4 landscape pages with a running header, a heading, a caption under the body and a page number."""

    def __init__(self, pdf: JpegPdfPages, title: str):
        self.pdf, self.title, self.number = pdf, title, 0

    @staticmethod
    def _layout(heading: str, caption: str) -> tuple[float, str, float]:
        """(top of the body, the wrapped caption, the caption's height), inches."""
        text = wrap(caption, PAGE[0] - 2 * MARGIN, CAPTION_FS) if caption else ""
        cap_h = (text.count("\n") + 1) * CAPTION_FS * 1.4 / 72 + 0.15 if caption else 0.0
        return MARGIN + (HEAD if heading else 0.0), text, cap_h

    def body_size(self, heading: str, caption: str) -> tuple[float, float]:
        """The width and height a page with this heading and caption leaves for its body."""
        top, _, cap_h = self._layout(heading, caption)
        return PAGE[0] - 2 * MARGIN, PAGE[1] - top - FOOT - cap_h - 0.15

    def page(self, heading: str = "", caption: str = ""):
        """A new page; returns (figure, the frame left for the body between heading and caption)."""
        self.number += 1
        fig = new_figure(*PAGE)
        width, height = PAGE
        fig.text(MARGIN / width, 1 - 0.3 / height, f"{self.title} · stylelab report", fontsize=7, color="grey")
        fig.text(1 - MARGIN / width, 0.25 / height, str(self.number), fontsize=7, color="grey", ha="right")
        if heading:
            fig.text(MARGIN / width, 1 - (MARGIN + 0.05) / height, heading, fontsize=13, weight="bold", va="top")
        top, text, cap_h = self._layout(heading, caption)
        if caption:
            fig.text(
                MARGIN / width,
                (FOOT + cap_h - 0.1) / height,
                text,
                fontsize=CAPTION_FS,
                va="top",
                color="#222",
                linespacing=1.3,
            )
        return fig, Frame(fig, MARGIN, top, *self.body_size(heading, caption))

    def save(self, fig) -> None:
        self.pdf.savefig(fig, facecolor="white", dpi=PDF_DPI)  # no bbox_inches: every page keeps the A4 size


def _rows_per_page(total: int, fits: int) -> list[tuple[int, int]]:
    fits = max(1, fits)
    return [(s, min(total, s + fits)) for s in range(0, total, fits)]


def _part_note(start: int, stop: int, total: int, what: str) -> str:
    return "" if (start, stop) == (0, total) else f" ({what} {start + 1}-{stop} of {total})"


def draw_pairs(
    frame: Frame, y: float, heading: str, pairs: list[tuple[str, str]], width: float, fs: float = 8
) -> float:
    """A heading and key/value lines from ``y``; returns where they end."""
    frame.text(0, y, heading, fontsize=10, weight="bold", va="top")
    y += 0.3
    key_w = min(1.6, max([text_width(k, fs) for k, _ in pairs] or [0.5]) + 0.15)
    for key, value in pairs:
        text = wrap(value, width - key_w, fs)
        frame.text(0, y, key, fontsize=fs, va="top", color="#555")
        frame.text(key_w, y, text, fontsize=fs, va="top")
        y += (text.count("\n") + 1) * fs * 1.45 / 72
    return y + 0.2


def title_page(pages: Pages, report: Report) -> None:
    fig, body = pages.page()
    counts = {k: len({sheets.run_point(r).get(k) for r in report.runs}) for k in ("content", "style", "recipe")}
    what = " × ".join(f"{count} {k}s" for k, count in counts.items() if count > 1) or "one setting"
    body.text(0, 0.1, report.title, fontsize=22, weight="bold", va="top")
    body.text(0, 0.65, f"stylelab report · {len(report.runs)} runs · {what}", fontsize=11, va="top", color="#333")
    half = (body.width - 0.4) / 2
    draw_pairs(body, 1.2, "Shared by all runs", report.shared, half, fs=7.5)
    right = Frame(body.fig, body.left + half + 0.4, body.top, half, body.height)
    y = draw_pairs(right, 1.2, "Differs between runs", report.differs or [("-", "nothing: the runs are alike")], half)
    draw_pairs(right, y, "Made", report.environment, half)
    pages.save(fig)


def effect_pages(pages: Pages, report: Report) -> None:
    """One page per content, or several with as many style rows each as fit at a readable cell size."""
    for content, group in report.by_content().items():
        sheet = sheets.effect_sheet(group, report.distances)
        caption = effect_caption(report, content)
        width, height = pages.body_size("Effect picture", caption)
        readable = sheets.effect_layout(sheet, min(1.2, sheets.fit_effect(sheet.part(0, 1), width, height).cw))
        fits = max(1, min(len(sheet.rows), int((height - readable.head) / readable.row_h)))
        layout = sheets.fit_effect(sheet.part(0, fits), width, height)  # the same cells on every page
        for start, stop in _rows_per_page(len(sheet.rows), fits):
            note = _part_note(start, stop, len(sheet.rows), "styles")
            fig, body = pages.page(f"Effect picture: {content}{note}", caption)
            sheets.draw_effect(body, sheet.part(start, stop), layout, PDF_DPI)
            pages.save(fig)


def loss_pages(pages: Pages, report: Report) -> None:
    grid = curves.loss_grid(report.runs)
    if not grid.terms:
        return
    caption, lims = loss_caption(grid), curves.term_limits(grid)
    per_page = 4
    for start, stop in _rows_per_page(len(grid.groups), per_page):
        part = grid.part(start, stop)
        fig, body = pages.page("Loss curves" + _part_note(start, stop, len(grid.groups), "groups"), caption)
        legend = curves.legend_height(part, body.width) + 0.25
        panel_h = min(2.2, curves.panel_height(min(per_page, len(grid.groups)), body.height - legend))
        curves.draw_losses(body, part, max(0.8, panel_h), lims)
        pages.save(fig)


def process_pages(pages: Pages, report: Report) -> None:
    grid = process_grid.process_rows(report.runs)
    caption = process_caption(grid)
    if not grid.rows:
        fig, _ = pages.page("Process", caption)
        pages.save(fig)
        return
    per_page = 7
    for start, stop in _rows_per_page(len(grid.rows), per_page):
        part = grid.part(start, stop)
        fig, body = pages.page("Process" + _part_note(start, stop, len(grid.rows), "runs"), caption)
        layout = process_grid.process_layout(grid, body.width, body.height, rows=min(per_page, len(grid.rows)))
        process_grid.draw_process_grid(body, part, layout, PDF_DPI)
        pages.save(fig)


def table_pages(pages: Pages, report: Report) -> None:
    fs, row_h = 6.5, 6.5 * 1.7 / 72
    caps = {"run": 3.4, "settings": 3.0}
    widths = [
        min(caps.get(c, 9.0), max(text_width(c, fs + 0.5), max(text_width(r[i], fs) for r in report.rows)) + 0.2)
        for i, c in enumerate(report.columns)
    ]
    width, height = pages.body_size("Runs", TIME_NOTE)
    widths = [w * min(1.0, width / sum(widths)) for w in widths]
    fits = int((height - 0.3) / row_h)
    for start, stop in _rows_per_page(len(report.rows), fits):
        fig, body = pages.page("Runs" + _part_note(start, stop, len(report.rows), "runs"), TIME_NOTE)
        x = 0.0
        for i, column in enumerate(report.columns):
            right = column in NUMERIC
            anchor = x + widths[i] - 0.06 if right else x
            body.text(anchor, 0.2, column, fontsize=fs + 0.5, weight="bold", ha="right" if right else "left")
            for r, row in enumerate(report.rows[start:stop]):
                text = _clip(row[i], widths[i] - 0.1, fs)
                body.text(anchor, 0.3 + (r + 0.8) * row_h, text, fontsize=fs, ha="right" if right else "left")
            x += widths[i]
        y = body.fy(0.25)
        fig.add_artist(Line2D([body.fx(0), body.fx(sum(widths))], [y, y], color="#888", linewidth=0.6))
        pages.save(fig)


def _clip(text: str, width: float, fs: float) -> str:
    chars = max(3, int(width * 72 / (fs * 0.56)))
    return text if len(text) <= chars else text[: chars - 1] + "…"


def write_pdf(report: Report, path: Path) -> Path:
    """report.pdf, written beside itself and renamed into place."""
    partial = path.with_name(f".{path.name}.partial")
    metadata = {"Title": f"{report.title}: stylelab report", "Creator": CREATOR}
    with JpegPdfPages(partial, metadata=metadata) as pdf:
        pages = Pages(pdf, report.title)
        title_page(pages, report)
        effect_pages(pages, report)
        loss_pages(pages, report)
        process_pages(pages, report)
        table_pages(pages, report)
    partial.replace(path)
    return path
