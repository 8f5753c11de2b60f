"""The objective of a tiled step, and its loss from the whole image's sums (``tiled_step``).

``TiledObjective`` holds the terms of ``objective.Objective`` (content layers,
style regions of any ``style_losses`` kind, TV, temporal), made from one with
``from_objective``; ``WholeLoss`` turns the whole image's sums, added up over the
tiles by pass 1, into the loss terms and into dL/dS, what pass 2 backpropagates
through each tile. The formulas are those of the untiled code, from sums:
``losses.content_term``, ``losses.style_term`` and ``style_losses.loss``, combined
as ``objective.Objective`` combines them (the exactness tests in
tests/core/test_tiles.py hold them to it). TV and temporal terms are cheap and
are taken on the whole image at once (``tiled_step``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from . import losses
from . import style_losses as sl
from .layers import resolve
from .objective import Objective, TemporalTarget
from .recipes import NORMALIZATIONS
from .terms import TOTAL

SWD_CHUNK = 2**24  # projected values sorted at a time (directions x pixels): bounds the sort's int64 indices


@dataclass(frozen=True)
class ContentTerm:
    """One content layer: the whole content image's features there (1, C, h, w) and the layer's weight."""

    layer: str
    target: torch.Tensor
    weight: float = 1.0


@dataclass(frozen=True)
class StyleTerm:
    """One style term: a layer, a kind of loss, its target (``style_losses.stats``), a weight, and a region.

    ``mask``: the region's weights for the whole image at the layer's resolution
    (``guides.to_layer``), (1, 1, h, w), or None for the whole image.
    ``n_directions``: swd's directions (default: the layer's channels).
    ``region``: which of ``TiledObjective.shares`` the term belongs to (a style set).
    """

    layer: str
    target: sl.GramStats | sl.MomentStats | sl.Samples
    kind: str = "gram"
    weight: float = 1.0
    mask: torch.Tensor | None = None
    n_directions: int | None = None
    region: int = 0


@dataclass
class TiledObjective:
    """The terms of ``objective.Objective``, for ``tiled_step``.

    Layers are combined as ``Objective`` combines them: within content, and within
    each style region, the terms' weighted sum, divided by the weights' sum under
    ``stylelab`` and by their count under ``family-b``; each region's style term is
    scaled by its share of the image (``shares[region]``, a float or a (1,)
    tensor) and the regions' terms are added. ``temporal``: a video frame's target
    (``objective.TemporalTarget``), whose term is reported whenever it is given.
    """

    content: Sequence[ContentTerm]
    style: Sequence[StyleTerm]
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0
    normalization: str = "stylelab"
    shares: Sequence = (1.0,)
    temporal: TemporalTarget | None = None
    temporal_weight: float = 0.0
    _powers: list = field(default_factory=list, init=False, repr=False)

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}")
        self.content = [ContentTerm(resolve(t.layer), t.target, t.weight) for t in self.content]
        self.style = [
            StyleTerm(resolve(t.layer), t.target, sl.check_kind(t.kind), t.weight, t.mask, t.n_directions, t.region)
            for t in self.style
        ]
        self.shares = tuple(self.shares)
        for t in self.style:
            if t.kind == "gram" and t.target.normalization != self.normalization:
                raise ValueError(f"the gram target at {t.layer} was made under {t.target.normalization}")
            if not 0 <= t.region < len(self.shares):
                raise ValueError(f"the style term at {t.layer} is in region {t.region}; there are {len(self.shares)}")
        self._powers = [losses.content_power(t.target) for t in self.content]

    @classmethod
    def from_objective(cls, objective: Objective) -> TiledObjective:
        """The same terms as ``objective`` (an ``objective.Objective`` of one image, its content targets set).

        The style terms go region by region, layer by layer: the order in which
        the untiled objective draws swd's directions from its generator, so that a
        tiled step given the same generator draws the same ones.

        Raises:
            ValueError: content layers without content targets (a tiled step cannot take
            them off its own forward pass: no pass sees the whole image).
        """
        norm, w = objective.normalization, objective.weights
        missing = [k for k in objective.content_layers if k not in objective.content_targets]
        if missing:
            raise ValueError(f"a tiled step needs the content targets at {', '.join(missing)} (tiled_features)")
        targets = objective.content_targets
        content = [ContentTerm(k, targets[k], lw) for k, lw in zip(objective.content_layers, w.content_layers)]
        style, shares = [], []
        if objective.style_layers:
            for r, region in enumerate(objective.regions):
                shares.append(region.share)
                for k, lw in zip(objective.style_layers, w.style_layers):
                    mask = None if region.guides is None else region.guides[k]
                    style.append(StyleTerm(k, region.targets[k], objective.kind, lw, mask, objective.swd_directions, r))
        return cls(content, style, w.content, w.style, w.tv, norm, shares or (1.0,), objective.temporal, w.temporal)

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([t.layer for t in self.content] + [t.layer for t in self.style]))


# ------------------------------------------------------------------ the loss from the whole image's sums


def _gram_loss(target: sl.GramStats, second: torch.Tensor, weight, norm: str) -> torch.Tensor:
    """``style_losses.loss("gram", ...)`` from the raw sums (unmasked: ``losses.style_term``)."""
    g = sl.finish("gram", sl.Sums(weight, second), norm).gram
    diff = (g - target.gram) ** 2
    if norm == "stylelab":
        out = diff.sum(dim=(1, 2)) / (target.gram**2).sum(dim=(1, 2)).clamp_min(1e-12)
    else:
        out = diff.mean(dim=(1, 2))
        if norm == "family-a":  # its style term divides by C times the region's area
            area = weight if isinstance(weight, int) else weight.clamp_min(1e-12)
            out = out / (second.shape[-1] * area)
    return out * sl._present(weight)


def _moments_loss(target: sl.MomentStats, first, second, weight) -> torch.Tensor:
    mine = sl.finish("moments", sl.Sums(weight, second, first))
    t_mean, t_std = target.mean.to(mine.mean.dtype), target.std.to(mine.mean.dtype)
    err = ((mine.mean - t_mean) ** 2).sum(1) + ((mine.std - t_std) ** 2).sum(1)
    return err / (t_mean**2 + t_std**2).sum(1).clamp_min(1e-12) * sl._present(weight)


def _swd(target: sl.Samples, proj: torch.Tensor, weights, directions, coefficient=None):
    """swd's loss from the whole image's projections (B, K, N), as ``style_losses._swd_loss`` computes it.

    With ``coefficient`` (B,), dL/dP scaled by it instead (chunk by chunk over
    directions, so the sort's temporaries stay bounded).
    """
    b, k, n = proj.shape
    weights = None if weights is None else weights.to(proj.dtype)  # as the untiled loss casts its mask
    y = target.values.to(proj.dtype)
    v = None if target.weights is None else target.weights.to(proj.dtype)
    c = y.shape[1]
    power = sl._weighted_mean((y**2).sum(1), v) / c
    present = 1.0 if weights is None else (weights.sum(-1) > 0).to(proj.dtype)
    scale = present / power.clamp_min(1e-12) / k
    d_all = directions.to(device=proj.device, dtype=proj.dtype).t()
    chunk = max(1, SWD_CHUNK // max(1, n))
    total = proj.new_zeros(b)
    grad = None if coefficient is None else torch.empty_like(proj)
    for start in range(0, k, chunk):
        ks = slice(start, min(k, start + chunk))
        p = proj[:, ks]
        if grad is not None:
            p = p.detach().requires_grad_(True)
        with torch.set_grad_enabled(grad is not None):
            mine, order = torch.sort(p, dim=-1)
            ws = None if weights is None else weights[:, None, :].expand(b, mine.shape[1], n).gather(-1, order)
            theirs, t_order = torch.sort(torch.matmul(d_all[ks], y), dim=-1)
            vs = None if v is None else v[:, None, :].expand_as(theirs).gather(-1, t_order)
            err = sl._wasserstein(mine, ws, theirs, vs).sum(-1) * scale
        if grad is not None:
            (grad[:, ks],) = torch.autograd.grad((err * coefficient).sum(), p)
        total = total + err.detach()
    return total if grad is None else grad


class WholeLoss:
    """The whole image's terms from its sums (per term: a tuple of tensors), and dL/dS for pass 2.

    ``weights``: each style term's pixel weights, which do not depend on the image
    (``Sums.weight``; swd: the mask as (1, N), or None); ``directions``: swd's, per style term.
    """

    def __init__(self, objective: TiledObjective, sums: list[tuple], weights: list, directions):
        self.objective, self.directions = objective, directions
        self.sums = [tuple(s.detach().requires_grad_(True) for s in item) for item in sums]
        self.weights = weights
        norm = objective.normalization
        # Each term's loss, with a graph back to its sums (swd: its value only, see ``_swd``).
        self.values = []
        with torch.enable_grad():
            for (s,), t, power in zip(self.sums, objective.content, objective._powers):
                err = s / t.target[0].numel()
                self.values.append(err / power.clamp_min(1e-12) if norm == "stylelab" else err)
            for s, w, t, d in zip(self.sums[len(objective.content) :], weights, objective.style, directions):
                if t.kind == "gram":
                    self.values.append(_gram_loss(t.target, s[0], w, norm))
                elif t.kind == "moments":
                    self.values.append(_moments_loss(t.target, s[0], s[1], w))
                else:
                    self.values.append(_swd(t.target, s[0].detach().flatten(2), w, d))

    def terms(
        self, tv: torch.Tensor, temporal: torch.Tensor | None = None
    ) -> tuple[dict[str, torch.Tensor], list[tuple]]:
        """The named terms (as ``objective.Objective``'s, ``total`` last) and dL/dS for each term's sums.

        ``tv``, ``temporal``: the whole image's terms, taken directly (temporal: only with a target).
        """
        o, norm = self.objective, self.objective.normalization
        leaves = [v.detach().requires_grad_(True) for v in self.values]
        n = len(o.content)
        zero = tv.new_zeros(tv.shape)
        with torch.enable_grad():
            content = losses._weighted(leaves[:n], [t.weight for t in o.content], norm) if n else zero
            style = None
            for r, share in enumerate(o.shares):
                mine = [(leaf, t.weight) for leaf, t in zip(leaves[n:], o.style) if t.region == r]
                if mine:
                    term = losses._weighted([a for a, _ in mine], [b for _, b in mine], norm) * share
                    style = term if style is None else style + term
            style = zero if style is None else style
            total = o.content_weight * content + o.style_weight * style + o.tv_weight * tv
            if temporal is not None:
                total = total + o.temporal_weight * temporal
            coefficients = torch.autograd.grad(total.sum(), leaves, allow_unused=True) if leaves else []
        grads = []
        for i, (value, sums, c) in enumerate(zip(self.values, self.sums, coefficients)):
            c = torch.zeros_like(value) if c is None else c
            t = o.style[i - n] if i >= n else None
            if t is not None and t.kind == "swd":
                w = self.weights[i - n]
                proj = sums[0]
                grads.append((_swd(t.target, proj.detach().flatten(2), w, self.directions[i - n], c).view_as(proj),))
            else:
                g = torch.autograd.grad(value, sums, c, allow_unused=True)
                grads.append(tuple(torch.zeros_like(s) if d is None else d for s, d in zip(sums, g)))
        named = {"content": content.detach(), "style": style.detach(), "tv": tv.detach()}
        if temporal is not None:
            named["temporal"] = temporal.detach()
        named[TOTAL] = total.detach()
        return named, grads
