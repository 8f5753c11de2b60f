"""report.html: one page, small enough to mail, readable from disk with no server or network.

The sheets are embedded as JPEG thumbnails (data URIs), each linked to its
full-size PNG beside the report; each run's process picture is a small embedded
thumbnail linked to runs/<run>/process.png, and each run's name links to its
result. The page's figures are drawn without titles of their own: the heading
above and the caption below say what they show.
"""

from __future__ import annotations

import base64
import html
import io

from PIL import Image

from . import curves, process_grid, sheets
from .figures import figure_bytes, jpeg_bytes
from .report import NUMERIC, TIME_NOTE, Report
from .report_pages import effect_caption, effect_stem, loss_caption, process_caption

SHEET_WIDTH = 1600  # pixels of a sheet's thumbnail: sharp on a laptop screen, ~100-300 KB
PROCESS_WIDTH = 1000  # the process grid is tall: narrower, or it alone weighs megabytes
RUN_THUMB = 360  # longest side of a run's process-picture thumbnail, pixels
QUALITY = 78

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
p.sub { color: #555; margin-top: 0; }
figure.sheet { margin: 1em 0; } figure.sheet img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #333; max-width: 70em; }
table { border-collapse: collapse; font-size: 0.85em; } td, th { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f0f0f0; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { background: none; font-weight: normal; color: #555; }
.settings { display: flex; gap: 2em; flex-wrap: wrap; }
.settings > div { flex: 1 1 30em; } .runs { display: flex; flex-wrap: wrap; gap: 1em; }
.runs figure { margin: 0; width: 320px; } .runs img { width: 100%; } .runs figcaption { word-break: break-all; }
"""


def _uri(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _figure_thumbnail(fig, width: int = SHEET_WIDTH) -> tuple[bytes, str]:
    """The figure no wider than ``width`` pixels, as JPEG or as 8-bit PNG, whichever is smaller
    (pictures: JPEG; plots and text on white: PNG)."""
    img = Image.open(io.BytesIO(figure_bytes(fig, "png", dpi=100))).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    jpeg = jpeg_bytes(img, quality=QUALITY)
    buf = io.BytesIO()
    img.quantize(64, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
    return (jpeg, "image/jpeg") if len(jpeg) <= len(buf.getvalue()) else (buf.getvalue(), "image/png")


def _sheet(e, heading: str, fig, link: str, caption: str, width: int = SHEET_WIDTH) -> str:
    alt, href = e(heading), e(link)
    return (
        f"<h2>{alt}</h2><figure class='sheet'><a href='{href}'><img alt='{alt}' "
        f"src='{_uri(*_figure_thumbnail(fig, width))}'></a><figcaption>{e(caption)} "
        f"Full size: <a href='{href}'>{href}</a>.</figcaption></figure>"
    )


def _pairs(e, heading: str, pairs) -> str:
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs)
    return f"<div><h3>{e(heading)}</h3><table class='kv'>{rows}</table></div>"


GENERATOR = "stylelab report"  # how a later report knows this page is its own to replace


def render(report: Report) -> str:
    """The whole page as a string."""
    e = html.escape
    n = len(report.runs)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='generator' content='{GENERATOR}'>",
        f"<title>{e(report.title)}: stylelab report</title><style>{CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1><p class='sub'>stylelab report · {n} runs · {e(str(report.folder))}</p>",
        "<div class='settings'>",
        _pairs(e, "Shared by all runs", report.shared),
        _pairs(e, "Differs between runs", report.differs or [("-", "nothing: the runs are alike")]),
        _pairs(e, "Made", report.environment),
        "</div>",
    ]
    for content, group in report.by_content().items():
        fig = sheets.effect_picture(group, metrics=report.distances)
        stem = effect_stem(report, content)
        parts.append(_sheet(e, f"Effect picture: {content}", fig, f"{stem}.png", effect_caption(report, content)))
    grid = curves.loss_grid(report.runs)
    fig = curves.loss_curves(report.runs)
    if fig is not None:
        parts.append(_sheet(e, "Loss curves", fig, "losses.png", loss_caption(grid)))
    process = process_grid.process_rows(report.runs)
    fig = process_grid.process_grid(report.runs)
    if fig is not None:
        parts.append(_sheet(e, "Process", fig, "process-grid.png", process_caption(process), PROCESS_WIDTH))
    else:
        parts.append(f"<h2>Process</h2><p>{e(process_caption(process))}</p>")
    parts.append(_table(e, report))
    parts.append(_process_pictures(e, report))
    parts.append("</body></html>")
    return "\n".join(parts)


def _table(e, report: Report) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in report.columns)
    body = []
    for run, row in zip(report.runs, report.rows):
        rel = run.result.relative_to(report.folder).as_posix() if run.result.is_file() else None
        name = f"<a href='{e(rel)}'>{e(row[0])}</a>" if rel else e(row[0])
        cells = [f"<td>{name}</td>"]
        cells += [
            f"<td class='num'>{e(v)}</td>" if c in NUMERIC else f"<td>{e(v)}</td>"
            for c, v in zip(report.columns[1:], row[1:])
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<h2>Runs</h2><table><tr>{head}</tr>" + "\n".join(body) + f"</table><p><small>{e(TIME_NOTE)}</small></p>"


def _process_pictures(e, report: Report) -> str:
    with_picture = [r for r in report.runs if r.process.is_file()]
    parts = ["<h2>Process pictures</h2>"]
    if len(with_picture) < len(report.runs):
        parts.append(f"<p>{len(report.runs) - len(with_picture)} run(s) have no process picture.</p>")
    if not with_picture:
        return "".join(parts)
    parts.append("<div class='runs'>")
    for run in with_picture:
        rel = run.process.relative_to(report.folder).as_posix()
        with Image.open(run.process) as img:
            thumb = jpeg_bytes(img, longest=RUN_THUMB, quality=QUALITY - 8)
        parts.append(
            f"<figure><a href='{e(rel)}'><img loading='lazy' alt='{e(run.name)}' src='{_uri(thumb)}'></a>"
            f"<figcaption>{e(run.name)}</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)
