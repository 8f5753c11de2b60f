"""Make the README's picture: a photo that ships with scikit-image, in a style stylelab generates.

    .venv/bin/python docs/make_result_image.py [--content coffee] [--style mosaic|waves|hubble] [--steps 80]

Writes docs/images/result.jpg: content and style small on the left, the 512-px result
on the right. Only images the project may ship are used (scikit-image's data and the
demo's generated styles), never the test images in ../shared/images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageOps
from skimage import data

import stylelab
from stylelab.demo import builtin_images

OUT = Path(__file__).resolve().parent / "images" / "result.jpg"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--content", default="coffee", help="a scikit-image data function: astronaut, coffee, ...")
    parser.add_argument("--style", default="mosaic")
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--scales", type=int, default=2)
    args = parser.parse_args()
    content = Image.fromarray(getattr(data, args.content)())
    style = builtin_images()[1][args.style]
    result = stylelab.stylize(content, style, size=512, steps=args.steps, scales=args.scales, progress=True)
    img = result.image.convert("RGB")
    w, h = img.size
    thumb = h // 2
    sheet = Image.new("RGB", (w + thumb + 8, h), "white")
    sheet.paste(ImageOps.fit(content.convert("RGB"), (thumb, thumb), Image.Resampling.LANCZOS), (0, 0))
    sheet.paste(ImageOps.fit(style.convert("RGB"), (thumb, thumb), Image.Resampling.LANCZOS), (0, h - thumb))
    sheet.paste(img, (thumb + 8, 0))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(OUT, quality=85, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB), {result.steps} steps in {result.elapsed:.0f}s")


if __name__ == "__main__":
    main()
