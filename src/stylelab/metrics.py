"""stylelab's own yardstick: how far an image is from its content and its style.

Independent of any recipe's weights, layers or loss convention, so results of
different recipes, optimisers and even other tools can be compared:

* style distance: the mean over relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of
  ||G(x) - G(s)||_F / ||G(s)||_F, with G = F F^T / (H W) (several styles: their
  Grams blended with the given weights);
* the style distance under each style loss (``Distances.by_loss``): the same
  mean over the same layers of ``style_losses.distance``, the square root of
  each loss (gram: the style distance above; moments: the relative error of
  the channels' means and deviations; swd: the sliced Wasserstein distance on
  fixed directions, so an image always measures the same). A sweep over
  ``style_loss`` can so be read by every loss, not only the one each run
  optimised;
* content distance: ||F(x) - F(c)||_F / ||F(c)||_F at relu4_2.

A task with regions (style sets with masks, a background style) is measured
region by region: each region's features, weighted by its mask carried down to
each layer (guides.py), against its own style set's statistics; the style
distance is the mean over regions weighted by their areas. What no region
covers has no style distance (it keeps the content).

Always measured with the bundled Caffe VGG19, max pooling, the image resized so
its longest side is ``size`` (512 by default, the default run's size; never the
input's raw size, so a huge or odd input costs bounded memory), the content
resized to it and the styles to the same longest side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import guides, images, style_losses
from .recipes import STYLE_LOSSES
from .vgg import build

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
DEFAULT_SIZE = 512  # the default recipe's size
SWD_CHUNK = 16  # swd directions measured at a time: the exact 1-D distances hold every pixel of both images


@dataclass(frozen=True)
class Distances:
    """Content distance, style distance (Gram), and the style distance under each style loss."""

    content: float
    style: float
    by_loss: dict[str, float] = field(default_factory=dict, compare=False)  # {"gram": .., "moments": .., "swd": ..}

    def as_dict(self) -> dict:
        return {"content_distance": self.content, "style_distance": self.style, "style_distances": dict(self.by_loss)}

    def record(self, digits: int = 5) -> dict:
        """The form run.json keeps under ``distances``: content, style, and one entry per style loss."""
        return {
            "content": round(self.content, digits),
            "style": round(self.style, digits),
            **{kind: round(v, digits) for kind, v in self.by_loss.items()},
        }


_net_cache: dict[str, torch.nn.Module] = {}


def _net(device: str):
    if device not in _net_cache:
        _net_cache[device] = build((*STYLE_LAYERS, CONTENT_LAYER), "caffe", "max", device)
    return _net_cache[device]


@dataclass(frozen=True)
class Region:
    """One style set as the yardstick sees it: its statistics per loss and layer, its mask per layer, its area."""

    stats: dict[str, dict[str, object]]  # kind -> layer -> statistics (style_losses.stats, blended)
    guides: dict[str, torch.Tensor] | None  # layer -> (1, 1, h, w) mask; None: the whole image
    share: float  # the region's share of the image


@dataclass(frozen=True)
class Reference:
    """What images of one size are measured against: the content's features and each region's statistics."""

    size: tuple[int, int]  # (width, height) of the images it measures
    content: torch.Tensor  # relu4_2 of the content resized to ``size``
    regions: list[Region]
    kinds: tuple[str, ...] = STYLE_LOSSES


@torch.no_grad()
def reference(
    content,
    styles: Sequence,
    size: tuple[int, int],
    style_weights: Sequence[float] | None = None,
    device: str = "cpu",
    *,
    kinds: Sequence[str] = STYLE_LOSSES,
) -> Reference:
    """The targets for images of ``size`` (width, height): made once, reused for every image of that size.
    ``styles`` are blended with ``style_weights`` (default: equal); ``kinds``: the style losses to measure."""
    from .task import Task

    styles = list(styles)
    weights = list(style_weights) if style_weights and len(styles) > 1 else None  # one style: nothing to blend
    task = Task.of(content, styles, weights=weights)
    return task_reference(task, size, device, kinds=kinds)


@torch.no_grad()
def task_reference(task, size: tuple[int, int], device: str = "cpu", *, kinds: Sequence[str] = STYLE_LOSSES):
    """``reference`` for a ``Task``: its style sets, their blend weights, style-image and region masks."""
    from .errors import ImageError
    from .plan import decode_sets

    kinds = tuple(style_losses.check_kind(k) for k in (kinds or ("gram",)))
    if "gram" not in kinds:
        kinds = ("gram", *kinds)  # the style distance itself
    net = _net(device)
    w, h = size
    content = images.load_rgb(task.content, what="content")[0]
    regions = []
    for s in decode_sets(task, content):
        per_image = []
        for j, img in enumerate(s.images):
            style = images.fit(img, max(size))
            if min(style.size) < 16:
                raise ImageError(
                    f"a style image ({style.width}x{style.height} at {max(size)} px) is too narrow to measure"
                )
            fs = net(images.to_tensor(style).to(device), STYLE_LAYERS)
            mask = None if s.image_masks is None or s.image_masks[j] is None else s.image_masks[j]
            hw = (style.height, style.width)
            at = {la: None if mask is None else guides.to_layer(mask, la, hw).to(device) for la in STYLE_LAYERS}
            per_image.append({k: {la: style_losses.stats(k, fs[la], at[la]) for la in STYLE_LAYERS} for k in kinds})
        stats = {
            k: {
                layer: style_losses.blend(k, [p[k][layer] for p in per_image], s.weights)
                if len(per_image) > 1
                else per_image[0][k][layer]
                for layer in STYLE_LAYERS
            }
            for k in kinds
        }
        if s.mask is None:
            regions.append(Region(stats, None, 1.0))
            continue
        at_size = guides.to_layer(s.mask, "conv1_1", (h, w)).to(device)
        regions.append(Region(stats, guides.to_layers(at_size, STYLE_LAYERS), float(at_size.mean())))
    c = images.to_tensor(content.resize(size, images.RESAMPLE)).to(device)
    return Reference(tuple(size), net(c, [CONTENT_LAYER])[CONTENT_LAYER], regions, kinds)


def _layer_distance(kind: str, features: torch.Tensor, target, mask) -> torch.Tensor:
    """``style_losses.distance``; swd a few directions at a time (the same directions, so the same value)."""
    if kind != "swd":
        return style_losses.distance(kind, features, target, mask)[0]
    gen = torch.Generator().manual_seed(style_losses.DISTANCE_SEED)
    directions = style_losses.random_directions(features.shape[1], None, gen)
    parts = [
        style_losses.loss(kind, features, target, mask, directions=d) * d.shape[1]
        for d in directions.split(SWD_CHUNK, dim=1)
    ]
    return (sum(parts) / directions.shape[1])[0].sqrt()


@torch.no_grad()
def distances_to(image, ref: Reference, device: str = "cpu") -> Distances:
    """Content distance and style distances of ``image`` (of ``ref.size``) from a ``reference``."""
    img = images.load_rgb(image)[0]
    if img.size != ref.size:
        raise ValueError(f"the image is {img.size}, the reference was made for {ref.size}")
    fx = _net(device)(images.to_tensor(img).to(device))
    content_d = (fx[CONTENT_LAYER] - ref.content).norm() / ref.content.norm().clamp_min(1e-12)
    by_loss = {}
    covered = sum(r.share for r in ref.regions)
    for kind in ref.kinds:
        total = 0.0
        for r in ref.regions:
            per_layer = [
                _layer_distance(kind, fx[la], r.stats[kind][la], None if r.guides is None else r.guides[la])
                for la in STYLE_LAYERS
            ]
            total += float(torch.stack(per_layer).mean()) * r.share
        by_loss[kind] = total / max(covered, 1e-12)
    return Distances(float(content_d), by_loss["gram"], by_loss)


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
    *,
    kinds: Sequence[str] = STYLE_LOSSES,
) -> Distances:
    """Content and style distances of ``image`` (any input ``images.load_rgb`` takes), measured at ``size``."""
    img = measured_image(image, size)
    return distances_to(img, reference(content, styles, img.size, style_weights, device, kinds=kinds), device)


def task_distances(
    image, task, device: str = "cpu", size: int = DEFAULT_SIZE, *, kinds: Sequence[str] = STYLE_LOSSES
) -> Distances:
    """``distances`` against a ``Task``: its blend weights, and its regions measured each by its own style."""
    img = measured_image(image, size)
    return distances_to(img, task_reference(task, img.size, device, kinds=kinds), device)
