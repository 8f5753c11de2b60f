"""Style losses to choose from (``Recipe.style_loss``): Gram matrices, channel moments, sliced Wasserstein.

``gram``: today's loss, ``losses.style_term`` under each normalisation, unchanged.

``moments``: per-channel mean and standard deviation (Huang and Belongie's AdaIN
statistics; Li et al., "Demystifying Neural Style Transfer", 2017)::

    loss = (||mu - mu_s||^2 + ||sigma - sigma_s||^2) / (||mu_s||^2 + ||sigma_s||^2)

One denominator, the style's mean square feature (mu^2 + sigma^2 = E[f^2]): two
relative errors would weigh a near-zero part as much as the features' scale.

``swd``: the sliced Wasserstein loss of Heitz et al. (CVPR 2021): project every
pixel's features on K random unit directions (new ones each step from the
``torch.Generator`` given; K defaults to the channel count, as in the paper)
and take the squared 2-Wasserstein distance of each pair of projected 1-D
distributions, exactly: sorted, their step quantile functions compared over the
merged breakpoints of both, so the image and the style may have any pixel
counts and pixel weights. Mean over directions, divided by the style's mean
square projection E||f_s||^2 / C. It matches the whole distribution of
features, not only its first two moments.

All three are relative, 1 for all-zero features (gram: under ``stylelab``);
moments and swd are the same under every normalisation, which only name Gram
conventions. Masks are pixel weights in 0..1 at the features' resolution
(``guides.to_layer``), (1 or B, 1, H, W), for every kind: a region's statistics
are weighted means over its pixels, normalised by its own area sum(m). Gram:
sum_p m_p f_p f_p^T / sum(m) = (F sqrt(m))(F sqrt(m))^T / sum(m), which for a
binary mask is Gatys et al.'s guided Gram (F*m)(F*m)^T / sum(m); for soft masks
it keeps the kinds on the same weights, and a partition of unity's regions add
up to the image. In the other normalisations a region's area replaces H W. A
region with no pixels at a layer (cropped by pooling) contributes 0.

Statistics are "weighted sums, then normalise" (``sums``, ``finish``): a tiled
image adds its tiles' ``Sums`` (``+``); swd's are the weighted pixels
themselves (``Samples``, ``+`` concatenates). Several style images blend as the
mixture of their feature distributions (``blend``). Everything is per batch
item, targets broadcast from batch 1, and bf16/fp16 are summed in float32.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import losses
from .errors import RecipeError
from .losses import _wide
from .recipes import NORMALIZATIONS, STYLE_LOSSES

STD_EPS = 1e-5  # added to the variance (as instance norm does): a dead channel's sigma stays differentiable
DISTANCE_SEED = 0  # swd distances use fixed directions, so the same image always measures the same
# How each normalisation's Gram scales with the pixel count H W (``losses._normalized``): a region's area replaces it.
_AREA_POWER = {"stylelab": 1.0, "family-a": 0.0, "family-b": 0.5, "jcjohnson": 1.0}


def check_kind(kind: str) -> str:
    """``kind`` if it is a style loss. Raises RecipeError naming the choices."""
    if kind not in STYLE_LOSSES:
        raise RecipeError(f"unknown style loss {kind!r}; use one of {', '.join(STYLE_LOSSES)}")
    return kind


@dataclass(frozen=True)
class Sums:
    """Weighted sums over pixels (gram, moments): what adds up over tiles.

    ``weight``: sum(m) per item (B,), or the pixel count H W (an int) without a mask,
    so that an unmasked Gram normalises exactly as ``losses.gram_matrix``;
    ``second``: sum m f f^T (B, C, C) for gram, sum m f^2 (B, C) for moments;
    ``first``: sum m f (B, C), moments only.
    """

    weight: torch.Tensor | int
    second: torch.Tensor
    first: torch.Tensor | None = None

    def __add__(self, other: Sums) -> Sums:
        first = None if self.first is None else self.first + other.first
        return Sums(self.weight + other.weight, self.second + other.second, first)


@dataclass(frozen=True)
class GramStats:
    gram: torch.Tensor  # (B, C, C), normalised under ``normalization``
    normalization: str


@dataclass(frozen=True)
class MomentStats:
    mean: torch.Tensor  # (B, C): E[f]
    square: torch.Tensor  # (B, C): E[f^2], kept rather than sigma so that blends are exact mixtures

    @property
    def std(self) -> torch.Tensor:
        return (self.square - self.mean**2).clamp_min(0).add(STD_EPS).sqrt()


@dataclass(frozen=True)
class Samples:
    """The weighted pixels of a feature map (swd): its statistics are the distribution itself."""

    values: torch.Tensor  # (B, C, M)
    weights: torch.Tensor | None = None  # (B, M) >= 0; None: all pixels count alike

    def __add__(self, other: Samples) -> Samples:
        if self.weights is None and other.weights is None:
            return Samples(torch.cat([self.values, other.values], -1))
        return Samples(torch.cat([self.values, other.values], -1), torch.cat([_w(self), _w(other)], -1))


def _w(s: Samples) -> torch.Tensor:
    return s.weights if s.weights is not None else s.values.new_ones(s.values.shape[0], s.values.shape[-1])


def _mask(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    b, _, h, w = x.shape
    if mask.dim() != 4 or mask.shape[1] != 1 or tuple(mask.shape[2:]) != (h, w) or mask.shape[0] not in (1, b):
        raise ValueError(
            f"mask {tuple(mask.shape)} does not fit features {tuple(x.shape)}: it must be (1 or B, 1, H, W) "
            "at the layer's resolution (guides.to_layer)"
        )
    return mask.to(x.dtype)


def _area(mask: torch.Tensor, b: int) -> torch.Tensor:
    return mask.sum(dim=(1, 2, 3)).expand(b)


def _present(weight) -> torch.Tensor | float:
    """1 for items whose region has pixels, 0 for the others (their loss would be a constant)."""
    return 1.0 if isinstance(weight, int) else (weight > 0).to(torch.float32)


# ------------------------------------------------------------------ weighted sums and their statistics


def sums(kind: str, features: torch.Tensor, mask: torch.Tensor | None = None) -> Sums | Samples:
    """The additive part of a feature map's statistics (see the module's docstring).

    Shape:
        features: (B, C, H, W); mask: (1 or B, 1, H, W) or None.
    """
    check_kind(kind)
    with torch.autocast(features.device.type, enabled=False):
        x = _wide(features)
        m = _mask(mask, x)
        b, c, h, w = x.shape
        if kind == "swd":
            weights = None if m is None else m.reshape(m.shape[0], h * w).expand(b, h * w)
            return Samples(x.reshape(b, c, h * w), weights)
        if kind == "gram":
            if m is None:  # losses' own product, so that finish() equals gram_matrix exactly
                return Sums(h * w, losses.gram_matrix(features, "family-a"))
            return Sums(_area(m, b), losses.gram_matrix(x * m.sqrt(), "family-a"))
        if m is None:
            return Sums(h * w, (x * x).sum(dim=(2, 3)), x.sum(dim=(2, 3)))
        return Sums(_area(m, b), (x * x * m).sum(dim=(2, 3)), (x * m).sum(dim=(2, 3)))


def finish(kind: str, s: Sums | Samples, normalization: str = "stylelab"):
    """Statistics from sums: ``GramStats``, ``MomentStats`` or ``Samples``.

    ``normalization`` applies to gram only; moments and swd are relative under every one.
    """
    check_kind(kind)
    if kind == "swd":
        return _compact(s)
    if kind == "gram":
        c = s.second.shape[-1]
        if isinstance(s.weight, int):
            return GramStats(losses._normalized(s.second, (0, c, s.weight, 1), normalization), normalization)
        g = losses._normalized(s.second, (0, c, 1, 1), normalization)  # the C part; the area's below
        return GramStats(g * s.weight.clamp_min(1e-12).pow(-_AREA_POWER[normalization]).view(-1, 1, 1), normalization)
    weight = s.weight if isinstance(s.weight, int) else s.weight.clamp_min(1e-12)[:, None]
    return MomentStats(s.first / weight, s.second / weight)


def stats(kind: str, features: torch.Tensor, mask: torch.Tensor | None = None, *, normalization: str = "stylelab"):
    """A style image's statistics at one layer: ``finish(kind, sums(kind, features, mask), normalization)``.

    Shape:
        features: (B, C, H, W); mask: (1 or B, 1, H, W) or None.
    """
    if normalization not in NORMALIZATIONS:
        raise RecipeError(f"unknown normalization {normalization!r}; use one of {', '.join(NORMALIZATIONS)}")
    return finish(kind, sums(kind, features, mask), normalization)


def guided_gram(features: torch.Tensor, mask: torch.Tensor | None = None, normalization: str = "stylelab"):
    """Gram matrices of the masked region, area-normalised; ``losses.gram_matrix`` when ``mask`` is None.

    Shape:
        features: (B, C, H, W); mask: (1 or B, 1, H, W) or None; returns (B, C, C), float32 or wider.
    """
    return stats("gram", features, mask, normalization=normalization).gram


def _compact(s: Samples) -> Samples:
    """Zero-weight pixels moved out (to the end of each item, then cut to the longest item)."""
    if s.weights is None:
        return s
    keep = s.weights > 0
    n = int(keep.sum(1).max())
    if n == s.weights.shape[1]:
        return s
    order = torch.argsort((~keep).to(torch.uint8), dim=1, stable=True)[:, :n]
    values = s.values.gather(2, order[:, None, :].expand(-1, s.values.shape[1], -1))
    return Samples(values, s.weights.gather(1, order))


def blend(kind: str, items: Sequence, weights: Sequence[float]):
    """The statistics of the mixture of several style images' features, in proportion to ``weights``."""
    check_kind(kind)
    total = float(sum(weights))
    if len(items) != len(weights) or not total > 0:
        raise ValueError("blend needs one weight per style image and a positive sum")
    if kind == "gram":
        if len({s.normalization for s in items}) > 1:
            raise ValueError("blend: the Grams were made under different normalisations")
        return GramStats(losses.blend_grams([s.gram for s in items], weights), items[0].normalization)
    if kind == "moments":
        share = [w / total for w in weights]
        return MomentStats(
            sum(p * s.mean for p, s in zip(share, items)), sum(p * s.square for p, s in zip(share, items))
        )
    # Each style's pixel weights scaled to sum to its share: the mixture's masses.
    parts = [
        Samples(s.values, _w(s) * (w / total) / _w(s).sum(1, keepdim=True).clamp_min(1e-30))
        for w, s in zip(weights, items)
    ]
    return _compact(functools.reduce(operator.add, parts))


def cat(kind: str, items: Sequence):
    """Per-item targets stacked into one batch (swd: shorter items padded with zero-weight pixels)."""
    check_kind(kind)
    if kind == "gram":
        return GramStats(torch.cat([s.gram for s in items]), items[0].normalization)
    if kind == "moments":
        return MomentStats(torch.cat([s.mean for s in items]), torch.cat([s.square for s in items]))
    m = max(s.values.shape[-1] for s in items)
    if all(s.weights is None and s.values.shape[-1] == m for s in items):
        return Samples(torch.cat([s.values for s in items]))
    pad = [(0, m - s.values.shape[-1]) for s in items]
    values, weights = zip(*[(F.pad(s.values, p), F.pad(_w(s), p)) for s, p in zip(items, pad)])
    return Samples(torch.cat(values), torch.cat(weights))


# ------------------------------------------------------------------ losses


def loss(
    kind: str,
    features: torch.Tensor,
    target,
    mask: torch.Tensor | None = None,
    *,
    generator: torch.Generator | None = None,
    directions: torch.Tensor | None = None,
    n_directions: int | None = None,
) -> torch.Tensor:
    """One layer's style loss per image against a target made by ``stats`` (and ``blend``/``cat``).

    swd draws ``n_directions`` new directions (default: the channel count) from
    ``generator`` at each call, unless ``directions`` (C, K) are given.

    Shape:
        features: (B, C, H, W); target: batch 1 or B; mask: (1 or B, 1, H, W) or None; returns (B,).
    """
    check_kind(kind)
    expected = {"gram": GramStats, "moments": MomentStats, "swd": Samples}[kind]
    if not isinstance(target, expected):
        raise ValueError(f"the {kind} loss needs a {expected.__name__} target, not {type(target).__name__}")
    with torch.autocast(features.device.type, enabled=False):
        if kind == "gram":
            return _gram_loss(features, target, mask)
        if kind == "moments":
            return _moments_loss(features, target, mask)
        if directions is None:
            if generator is None:
                raise ValueError("the swd loss needs generator= (new directions each step) or directions=")
            directions = random_directions(features.shape[1], n_directions, generator)
        return _swd_loss(features, target, mask, directions)


def _gram_loss(features: torch.Tensor, target: GramStats, mask) -> torch.Tensor:
    norm = target.normalization
    if mask is None:
        return losses.style_term(features, target.gram, norm)
    s = sums("gram", features, mask)
    _, _, h, w = features.shape
    # style_term normalises by H W; scaling the raw Gram by (H W / area)^p makes that the region's area.
    per_pixel = (h * w) / s.weight.clamp_min(1e-12)
    out = losses.style_term(
        features, target.gram, norm, raw_gram=s.second * per_pixel.pow(_AREA_POWER[norm]).view(-1, 1, 1)
    )
    if norm == "family-a":
        out = out * per_pixel  # its style term divides by C H W too
    return out * _present(s.weight)


def _moments_loss(features: torch.Tensor, target: MomentStats, mask) -> torch.Tensor:
    s = sums("moments", features, mask)
    mine = finish("moments", s)
    t_mean, t_std = target.mean.to(mine.mean.dtype), target.std.to(mine.mean.dtype)
    err = ((mine.mean - t_mean) ** 2).sum(1) + ((mine.std - t_std) ** 2).sum(1)
    return err / (t_mean**2 + t_std**2).sum(1).clamp_min(1e-12) * _present(s.weight)


def random_directions(channels: int, n: int | None, generator: torch.Generator) -> torch.Tensor:
    """``n`` (default ``channels``) random unit vectors as the columns of a (C, n) float32 tensor.

    Drawn on the generator's device in float32 whatever the features' device and
    precision, so one seed gives the same directions everywhere.
    """
    n = channels if n is None else int(n)
    if n < 1:
        raise RecipeError(f"the number of swd directions must be at least 1, not {n}")
    d = torch.randn((channels, n), generator=generator, device=generator.device, dtype=torch.float32)
    return d / d.norm(dim=0, keepdim=True).clamp_min(1e-12)


def _weighted_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean(-1)
    return (weights * values).sum(-1) / weights.sum(-1).clamp_min(1e-30)


def _cumulative(w: torch.Tensor) -> torch.Tensor:
    """Cumulative weights of sorted samples, ending at exactly 1 (0 throughout when there are none)."""
    c = w.cumsum(-1)
    return c / c[..., -1:].clamp_min(1e-30)


def _merge(cx: torch.Tensor, cy: torch.Tensor, n: int, m: int):
    """The intervals of 0..1 between the breakpoints of two cumulative weights.

    Returns each interval's length and the index of the sample of either set
    that covers it (both quantile functions are constant there). Ties order x's
    breakpoints first and keep each set's own order, so a zero-weight sample
    only ever covers intervals of length 0.
    """
    t, order = torch.sort(torch.cat([cx, cy], -1), dim=-1, stable=True)
    is_x = (order < n).to(torch.int64)
    ix = (is_x.cumsum(-1) - is_x).clamp(max=n - 1)
    iy = ((1 - is_x).cumsum(-1) - (1 - is_x)).clamp(max=m - 1)
    return torch.diff(t, dim=-1, prepend=t.new_zeros(t.shape[:-1] + (1,))), ix, iy


def _wasserstein(mine: torch.Tensor, ws, theirs: torch.Tensor, vs) -> torch.Tensor:
    """Squared 2-Wasserstein distance between 1-D weighted samples, exactly, per (item, direction).

    ``mine`` (B, K, N) and ``theirs`` (1 or B, K, M) sorted, their weights sorted
    alike (None: equal weights). W2^2 is the integral over 0..1 of the squared
    difference of the two quantile functions, which are steps: a sum over the
    merged breakpoints, whatever the two sets' sizes and weights.
    """
    b, k, n = mine.shape
    m = theirs.shape[-1]
    if ws is None and vs is None:  # the same breakpoints for every item and direction: merge once
        cx = torch.arange(1, n + 1, device=mine.device, dtype=torch.float64) / n
        cy = torch.arange(1, m + 1, device=mine.device, dtype=torch.float64) / m
        dt, ix, iy = _merge(cx, cy, n, m)
        return (dt.to(mine.dtype) * (mine[..., ix] - theirs[..., iy]) ** 2).sum(-1)
    one = mine.new_ones(1, 1, 1)
    cx = _cumulative((one.expand(1, 1, n) if ws is None else ws).expand(b, k, n))
    cy = _cumulative((one.expand(1, 1, m) if vs is None else vs).expand(b, k, m))
    dt, ix, iy = _merge(cx, cy, n, m)
    return (dt * (mine.gather(-1, ix) - theirs.expand(b, k, m).gather(-1, iy)) ** 2).sum(-1)


def _swd_loss(features: torch.Tensor, target: Samples, mask, directions: torch.Tensor) -> torch.Tensor:
    x = _wide(features)
    m = _mask(mask, x)
    b, c, h, w = x.shape
    n = h * w
    d = directions.to(device=x.device, dtype=x.dtype).t()  # (K, C)
    mine, order = torch.sort(torch.matmul(d, x.reshape(b, c, n)), dim=-1)  # (B, K, N)
    k = mine.shape[1]
    ws = None if m is None else m.reshape(m.shape[0], 1, n).expand(b, k, n).gather(-1, order)
    y = target.values.to(x.dtype)
    v = None if target.weights is None else target.weights.to(x.dtype)
    theirs, order = torch.sort(torch.matmul(d, y), dim=-1)  # (1 or B, K, M)
    vs = None if v is None else v[:, None, :].expand_as(theirs).gather(-1, order)
    err = _wasserstein(mine, ws, theirs, vs).mean(-1)
    power = _weighted_mean((y**2).sum(1), v) / c  # E||f_s||^2 / C: the mean square projection
    present = 1.0 if m is None else (_area(m, b) > 0).to(x.dtype)
    return err / power.clamp_min(1e-12) * present


def distance(
    kind: str, features: torch.Tensor, target, mask: torch.Tensor | None = None, *, n_directions: int | None = None
) -> torch.Tensor:
    """A yardstick: the square root of ``loss`` (a relative distance), deterministic for swd (fixed directions).

    For gram with a ``stylelab`` target this is ``metrics``' per-layer style
    distance, ||G - G_s|| / ||G_s||.
    """
    gen = torch.Generator().manual_seed(DISTANCE_SEED)
    with torch.no_grad():
        return loss(kind, features, target, mask, generator=gen, n_directions=n_directions).sqrt()


class StyleLoss(torch.nn.Module):
    """One kind of style loss as a module: ``StyleLoss("swd", seed=1)(features, target, mask)``.

    swd draws new directions at each call from its own generator, seeded with ``seed``.
    """

    def __init__(self, kind: str = "gram", *, n_directions: int | None = None, seed: int = 0):
        super().__init__()
        self.kind = check_kind(kind)
        self.n_directions = n_directions
        self.generator = torch.Generator().manual_seed(seed) if kind == "swd" else None

    def forward(self, features: torch.Tensor, target, mask: torch.Tensor | None = None) -> torch.Tensor:
        return loss(self.kind, features, target, mask, generator=self.generator, n_directions=self.n_directions)
