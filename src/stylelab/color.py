"""Colour preservation (Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer").

``histogram``: the style images' colours are matched to the content's before the
run. ``luminance``: the run sees only luminance (content and styles as grey
images, the styles' luminance matched to the content's mean and spread) and the
result's luminance is recombined with the content's chrominance (YIQ).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import color, exposure


def _array(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0


def _image(a: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8), "RGB")


def match_histogram(style: Image.Image, content: Image.Image) -> Image.Image:
    """The style image with its colour histograms matched to the content's."""
    matched = exposure.match_histograms(_array(style), _array(content), channel_axis=-1)
    return _image(matched)


def luminance(img: Image.Image) -> np.ndarray:
    return color.rgb2yiq(_array(img))[..., 0]


def luminance_image(img: Image.Image, reference: Image.Image | None = None) -> Image.Image:
    """A grey RGB image of ``img``'s luminance, optionally matched to ``reference``'s mean and spread."""
    y = luminance(img)
    if reference is not None:
        ref = luminance(reference)
        y = (y - y.mean()) / (y.std() + 1e-8) * ref.std() + ref.mean()
    return _image(np.repeat(y[..., None], 3, axis=-1))


def recombine(result: Image.Image, content: Image.Image) -> Image.Image:
    """The result's luminance with the content's chrominance."""
    content = content.resize(result.size, Image.Resampling.LANCZOS)
    yiq = color.rgb2yiq(_array(content))
    yiq[..., 0] = luminance(result)
    return _image(color.yiq2rgb(yiq))
