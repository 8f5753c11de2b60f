"""stylelab's own yardstick: how far an image is from its content and its style.

Independent of any recipe's weights, layers or loss convention, so results of
different recipes, optimisers and even other tools can be compared:

* style distance: the mean over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of
  ||G(x) - G(s)||_F / ||G(s)||_F, with G = F F^T / (H W) (several styles: their
  Grams blended with the given weights);
* content distance: ||F(x) - F(c)||_F / ||F(c)||_F at relu4_2.

Always measured with the bundled Caffe VGG19, max pooling, the image resized so
its longest side is ``size`` (512 by default, the default run's size; never the
input's raw size, so a huge or odd input costs bounded memory), the content
resized to it and the styles to the same longest side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import images
from .losses import blend_grams, gram_matrix
from .vgg import build

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
DEFAULT_SIZE = 512  # the default recipe's size


@dataclass(frozen=True)
class Distances:
    content: float
    style: float

    def as_dict(self) -> dict[str, float]:
        return {"content_distance": self.content, "style_distance": self.style}


_net_cache: dict[str, torch.nn.Module] = {}


def _net(device: str):
    if device not in _net_cache:
        _net_cache[device] = build((*STYLE_LAYERS, CONTENT_LAYER), "caffe", "max", device)
    return _net_cache[device]


@dataclass(frozen=True)
class Reference:
    """What images of one size are measured against: the content's features and the styles' Grams."""

    size: tuple[int, int]  # (width, height) of the images it measures
    content: torch.Tensor  # relu4_2 of the content resized to ``size``
    grams: dict[str, torch.Tensor]  # blended style Gram per style layer


@torch.no_grad()
def reference(
    content, styles: Sequence, size: tuple[int, int], style_weights: Sequence[float] | None = None, device: str = "cpu"
) -> Reference:
    """The targets for images of ``size`` (width, height): made once, reused for every image of that size."""
    net = _net(device)
    c = images.to_tensor(images.load_rgb(content, what="content")[0].resize(size, images.RESAMPLE)).to(device)
    style_grams = {layer: [] for layer in STYLE_LAYERS}
    for s in styles:
        style = images.fit(images.load_rgb(s, what="style")[0], max(size))
        if min(style.size) < 16:
            from .errors import ImageError

            raise ImageError(f"a style image ({style.width}x{style.height} at {max(size)} px) is too narrow to measure")
        fs = net(images.to_tensor(style).to(device), STYLE_LAYERS)
        for layer in STYLE_LAYERS:
            style_grams[layer].append(gram_matrix(fs[layer]))
    weights = list(style_weights) if style_weights else [1.0] * len(styles)
    grams = {layer: blend_grams(style_grams[layer], weights) for layer in STYLE_LAYERS}
    return Reference(tuple(size), net(c, [CONTENT_LAYER])[CONTENT_LAYER], grams)


@torch.no_grad()
def distances_to(image, ref: Reference, device: str = "cpu") -> Distances:
    """Content and style distance of ``image`` (of ``ref.size``) from a ``reference``."""
    img = images.load_rgb(image)[0]
    if img.size != ref.size:
        raise ValueError(f"the image is {img.size}, the reference was made for {ref.size}")
    fx = _net(device)(images.to_tensor(img).to(device))
    content_d = (fx[CONTENT_LAYER] - ref.content).norm() / ref.content.norm().clamp_min(1e-12)
    per_layer = [
        (gram_matrix(fx[layer]) - target).norm() / target.norm().clamp_min(1e-12) for layer, target in ref.grams.items()
    ]
    return Distances(float(content_d), float(torch.stack(per_layer).mean()))


def measured_image(image, size: int = DEFAULT_SIZE):
    """``image`` as the yardstick measures it: RGB, its longest side ``size`` pixels (checked
    to be large enough for relu5_1 on both sides)."""
    from .errors import ImageError
    from .layers import min_side
    from .recipes import MAX_SIZE

    if not 16 <= size <= MAX_SIZE:
        raise ImageError(f"--size must be between 16 and {MAX_SIZE}, not {size}")
    img = images.load_rgb(image, what="the image")[0]
    fitted = images.fit(img, size)
    need = min_side((*STYLE_LAYERS, CONTENT_LAYER))
    if min(fitted.size) < need:
        raise ImageError(
            f"the image ({img.width}x{img.height}) becomes {fitted.width}x{fitted.height} at {size} px; "
            f"the yardstick needs {need} px on each side (a larger --size, or a less narrow image)"
        )
    return fitted


def distances(
    image,
    content,
    styles: Sequence,
    style_weights: Sequence[float] | None = None,
    device: str = "cpu",
    size: int = DEFAULT_SIZE,
):
    """Content and style distance of ``image`` (any input ``images.load_rgb`` takes), measured at ``size``."""
    img = measured_image(image, size)
    return distances_to(img, reference(content, styles, img.size, style_weights, device), device)
