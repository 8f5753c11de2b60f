"""Matplotlib without pyplot: figures, their files, a layout in inches, small images.

Every picture stylelab draws is a ``matplotlib.figure.Figure`` with its own Agg
canvas: no pyplot, no global figure list (so no "more than 20 figures" warning),
no ``matplotlib.use``. Nothing but the caller holds a figure, so one is freed
as soon as the caller drops it; there is nothing to close.

PDFs are written with ``JpegPdfPages``: photographs go in as JPEG (DCTDecode),
plots and text stay vector, so a page of thumbnails is tens of kilobytes, not
megabytes. Images are downscaled before they are drawn (``fit_image``), because
the PDF embeds every image at its own resolution.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import Name, PdfFile, PdfPages, pdfRepr
from matplotlib.figure import Figure
from PIL import Image

PAGE = (11.69, 8.27)  # A4 landscape, inches: every page of a report
PDF_DPI = 150  # pixels per inch of the images embedded in PDFs
JPEG_QUALITY = 82
MIN_JPEG_PIXELS = 48 * 48  # smaller images stay lossless (icons, swatches)


CREATOR = "stylelab"  # the PNG Software and PDF Creator of every picture stylelab draws


def new_figure(width: float, height: float) -> Figure:
    """A white figure of ``width`` x ``height`` inches with its own Agg canvas (no pyplot)."""
    fig = Figure(figsize=(width, height), facecolor="white")
    # Each image stays its own image in a PDF (one JPEG each), not a composite with transparent gaps.
    fig.suppressComposite = True
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 100, tight: bool = True) -> bytes:
    """The figure as PNG or PDF bytes (PDF: text stays text, photographs are JPEG)."""
    buf = io.BytesIO()
    options = {"bbox_inches": "tight", "pad_inches": 0.1} if tight else {}
    # Marked as stylelab's, so a later report may replace the file (report.made_by_stylelab).
    if fmt == "pdf":
        with JpegPdfPages(buf, metadata={"Creator": CREATOR}) as pdf:
            pdf.savefig(fig, dpi=dpi, facecolor="white", **options)
    else:
        fig.savefig(buf, format=fmt, dpi=dpi, facecolor="white", metadata={"Software": CREATOR}, **options)
    return buf.getvalue()


def figure_to_image(fig: Figure, dpi: int = 100) -> Image.Image:
    """The figure rendered as an RGB image."""
    return Image.open(io.BytesIO(figure_bytes(fig, "png", dpi))).convert("RGB")


def save_figure(fig: Figure, png=None, pdf=None, dpi: int = 100) -> list[Path]:
    """Write the figure atomically as PNG and/or PDF; returns the paths written."""
    from .images import atomic_write_bytes

    written = []
    if pdf is not None:
        written.append(atomic_write_bytes(pdf, figure_bytes(fig, "pdf", PDF_DPI)))
    if png is not None:
        written.append(atomic_write_bytes(png, figure_bytes(fig, "png", dpi)))
    return written


def jpeg_bytes(img: Image.Image, longest: int | None = None, quality: int = JPEG_QUALITY) -> bytes:
    """``img`` as a JPEG, shrunk first so its longest side is at most ``longest``."""
    img = img.convert("RGB")
    if longest and max(img.size) > longest:
        img = fit_image(img, longest)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True, progressive=True)
    return buf.getvalue()


def fit_image(img: Image.Image, longest: int) -> Image.Image:
    """A copy no larger than ``longest`` pixels on its longest side (never enlarged)."""
    img = img.copy()
    img.thumbnail((max(1, longest), max(1, longest)), Image.Resampling.LANCZOS)
    return img


def pixels_for(inches: float, dpi: int = PDF_DPI) -> int:
    """How many pixels an image shown ``inches`` wide needs at ``dpi`` (PDF pages, PNGs at 100 dpi)."""
    return max(16, math.ceil(inches * dpi))


class _JpegPdfFile(PdfFile):
    """matplotlib's PdfFile, writing photographs as JPEG instead of Flate-compressed pixels."""

    def _writeImg(self, data, id, smask=None):  # noqa: N802 - matplotlib's name
        height, width, channels = data.shape
        # Plots rendered as images (few colours) compress better losslessly; so do tiny images.
        if channels != 3 or smask is not None or height * width < MIN_JPEG_PIXELS or _few_colours(data):
            return super()._writeImg(data, id, smask)
        jpeg = jpeg_bytes(Image.fromarray(data, "RGB"))
        header = {
            "Type": Name("XObject"),
            "Subtype": Name("Image"),
            "Width": width,
            "Height": height,
            "ColorSpace": Name("DeviceRGB"),
            "BitsPerComponent": 8,
            "Filter": Name("DCTDecode"),
            "Length": len(jpeg),
        }
        self.recordXref(id)
        self.write(b"%d 0 obj\n" % id + pdfRepr(header) + b"\nstream\n" + jpeg + b"\nendstream\nendobj\n")


def _few_colours(data) -> bool:
    return Image.fromarray(data, "RGB").getcolors(maxcolors=256) is not None


class JpegPdfPages(PdfPages):
    """``PdfPages`` whose photographs are embedded as JPEG (where matplotlib allows it; else as PNG data)."""

    def _ensure_file(self):
        if getattr(self, "_file", None) is None:
            self._file = _JpegPdfFile(self._filename, metadata=self._metadata)
        return self._file


# ---------------------------------------------------------------- layout in inches


@dataclass
class Frame:
    """A rectangle of a figure, in inches from the figure's top-left corner; places axes and text in it.

    Sheets draw into a frame, so the same drawing fills a figure of its own size
    (a PNG) or part of a fixed-size PDF page.
    """

    fig: Figure
    left: float
    top: float
    width: float
    height: float
    _images_axes: object = field(default=None, init=False, repr=False)

    def fx(self, x: float) -> float:
        return (self.left + x) / self.fig.get_figwidth()

    def fy(self, y: float) -> float:
        return 1 - (self.top + y) / self.fig.get_figheight()

    def axes(self, x: float, y: float, w: float, h: float, **kw):
        """Axes whose box is ``w`` x ``h`` inches, its top-left corner at (``x``, ``y``) in the frame."""
        return self.fig.add_axes(
            (self.fx(x), self.fy(y + h), w / self.fig.get_figwidth(), h / self.fig.get_figheight()), **kw
        )

    def text(self, x: float, y: float, s: str, **kw):
        """Text anchored at (``x``, ``y``) inches in the frame (matplotlib's ha/va say which corner)."""
        return self.fig.text(self.fx(x), self.fy(y), s, **kw)

    def image(self, x: float, y: float, w: float, h: float, img: Image.Image | None) -> None:
        """``img`` fitted into the box (its aspect kept), centred; nothing for None (an empty box)."""
        if img is None:
            return
        scale = min(w / img.width, h / img.height)
        bw, bh = img.width * scale, img.height * scale
        bx, by = x + (w - bw) / 2, y + (h - bh) / 2
        # One axes per frame holds all its images (an axes each costs ~15 ms). 'none': a PDF embeds
        # the image as it is, so callers size it for the target (``pixels_for``): an upsampled copy
        # would only add bytes, and Agg's nearest-neighbour drawing is clean at about 1:1.
        self._canvas().imshow(np.asarray(img), extent=(bx, bx + bw, by + bh, by), interpolation="none", aspect="auto")

    def _canvas(self):
        if self._images_axes is None:
            ax = self.axes(0, 0, self.width, self.height)
            ax.set_axis_off()
            ax.set_xlim(0, self.width)
            ax.set_ylim(self.height, 0)  # y grows downwards, as in the frame
            ax.set_autoscale_on(False)
            self._images_axes = ax
        return self._images_axes


def text_width(text: str, fontsize: float) -> float:
    """A generous estimate of a line's width in inches (no renderer needed)."""
    return max((len(line) for line in text.split("\n")), default=0) * fontsize * 0.56 / 72


def wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to lines that fit ``width_in`` inches at ``fontsize``."""
    import textwrap

    chars = max(4, int(width_in * 72 / (fontsize * 0.56)))
    return "\n".join(textwrap.fill(line, chars, break_on_hyphens=False) or "" for line in text.split("\n"))
