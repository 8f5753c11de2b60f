"""Region masks for the bundled coffee photo, made from the photo itself: the cup and saucer, and the table.

    python examples/make_region_masks.py            # writes examples/masks/*.png
    python examples/make_region_masks.py OUT_DIR    # or somewhere else

The cup and saucer are two ellipses placed on the photo (the saucer tilted as it
lies in the picture), in coordinates relative to the photo's size so the masks
fit it at any size. Written:

    cup-hard.png, table-hard.png   0/255 masks, one the other's complement
    cup.png, table.png             the same with soft edges (a Gaussian feather of FEATHER px):
                                   they still add up to white, so the styles blend across the rim
    labels.png                     one colour-label image (red: cup, blue: table), for --masks labels.png

examples/regions.toml sweeps these mask sets; the README shows the results.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

HERE = Path(__file__).resolve().parent
PHOTO = HERE / "images" / "coffee.jpg"
FEATHER = 6.0  # px at the photo's 300x200: about the width of the saucer's rim
# (centre x, centre y, radius x, radius y) as shares of the width and height, and a tilt in degrees.
SAUCER = (0.465, 0.60, 0.345, 0.375, -12.0)
CUP = (0.487, 0.30, 0.20, 0.27, 0.0)


def _ellipse(w: int, h: int, cx: float, cy: float, rx: float, ry: float, degrees: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    t = np.deg2rad(degrees)
    x, y = xx - cx * w, yy - cy * h
    u, v = x * np.cos(t) + y * np.sin(t), -x * np.sin(t) + y * np.cos(t)
    return (u / (rx * w)) ** 2 + (v / (ry * h)) ** 2 <= 1


def cup_mask(size: tuple[int, int]) -> np.ndarray:
    """The cup and saucer of the coffee photo, True inside, for a photo of ``size`` (width, height)."""
    w, h = size
    return _ellipse(w, h, *SAUCER) | _ellipse(w, h, *CUP)


def make_masks(out_dir: Path, photo: Path = PHOTO) -> list[Path]:
    """Write the masks (see the module's docstring) into ``out_dir``; returns their paths."""
    size = Image.open(photo).size
    cup = cup_mask(size)
    hard = Image.fromarray(np.where(cup, 255, 0).astype(np.uint8), "L")
    soft = hard.filter(ImageFilter.GaussianBlur(FEATHER * max(size) / 300))
    labels = np.where(cup[..., None], [220, 40, 40], [40, 60, 200]).astype(np.uint8)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "cup-hard.png": hard,
        "table-hard.png": Image.fromarray(255 - np.asarray(hard), "L"),
        "cup.png": soft,
        "table.png": Image.fromarray(255 - np.asarray(soft), "L"),  # the complement: together exactly white
        "labels.png": Image.fromarray(labels, "RGB"),
    }
    for name, img in files.items():
        img.save(out_dir / name, optimize=True)
    return [out_dir / name for name in files]


if __name__ == "__main__":
    for path in make_masks(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "masks"):
        print(path)
