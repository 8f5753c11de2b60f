"""One optimisation step over a tiled image: the same loss and gradient as the untiled step, in bounded memory.

Every loss term is a function of sums over the image's feature locations
(``style_losses``' "weighted sums, then normalise"), so the whole image's loss
is a function of its tiles' sums, each over the tile's own features only
(``tiles.TilePlan``)::

    content_l = sum_p (F_p - Fc_p)^2 / (C h w) [/ mean(Fc^2)]      sum over tiles
    gram_l    = finish(sum_p m_p f_p f_p^T, sum_p m_p)               sum over tiles
    moments_l = finish(sum_p m_p f_p, sum_p m_p f_p^2, sum_p m_p)    sum over tiles

A step is two passes over the tiles. Pass 1 (no autograd) adds up the sums;
the loss and its gradient with respect to the sums, dL/dS, come from a small
graph on the sums alone. Pass 2 runs each tile with autograd and backpropagates
``<dL/dS, S_tile>``: by the chain rule the image's gradient is the sum over
tiles of this surrogate's gradient, scattered into each tile's padded region
(the margins carry the gradient of the features near the tile's edge). The last
tile of pass 1 keeps its graph and goes first in pass 2: one forward pass fewer,
and a single tile costs what an untiled step does. TV and the temporal term
(video frames) are cheap and are computed on the whole image directly.

``swd`` is not a sum, but its statistics are per pixel: each direction's
projections of the whole image's features, (K, h w) values per layer, are
gathered in pass 1 (in the image's raster order, as the untiled loss sorts
them), sorted, and the exact sliced-Wasserstein loss and its gradient per
projected value come from them; pass 2 backpropagates ``<dL/dP, P_tile>``. This is
exact, but holds K x h x w floats per swd layer for the whole image (with the
default K = C, the size of the layer's feature map in float32): at the first
layers of a print that is not bounded by the tile (relu1_1 at 4096x3072:
3.2 GB). Fewer directions there (``StyleTerm.n_directions``) bound it.

The terms and their loss from the sums are in ``tile_losses``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence

import torch

from . import losses
from . import style_losses as sl
from .layers import resolve
from .objective import temporal_term
from .terms import TOTAL
from .tile_losses import ContentTerm, StyleTerm, TiledObjective, WholeLoss
from .tiles import TilePlan

__all__ = ["ContentTerm", "StyleTerm", "TiledObjective", "tiled_features", "tiled_step", "tiled_sums"]


# ------------------------------------------------------------------ one tile's sums


def _own(plan: TilePlan, tile, layer: str, features: torch.Tensor) -> torch.Tensor:
    rows, cols = plan.crop(tile, layer)
    return features[:, :, rows, cols]


class _OwnTap(torch.autograd.Function):
    """The features, passed on, and their tile's own crop: one node for both in the backward.

    Autograd's own slice would give the crop's gradient as a zero-filled copy of
    the whole map in NCHW order, then add it to the channels-last gradient from
    the deeper layers: a slow mixed-layout pass over the layer (at 512x384 in
    four tiles, a third of the step). Here the crop's gradient is added in place
    into the deeper layers' gradient, in its own layout.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, rows: slice, cols: slice):
        ctx.rows, ctx.cols = rows, cols
        ctx.like = torch.empty_like(features, device="meta")
        ctx.set_materialize_grads(False)
        return features.view_as(features), features[:, :, rows, cols]

    @staticmethod
    def backward(ctx, grad_features, grad_own):
        if grad_own is None:
            return grad_features, None, None
        like = ctx.like
        fmt = torch.channels_last if like.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        if grad_features is None:  # the deepest layer: nothing comes from further on
            grad_features = grad_own.new_zeros(like.shape, dtype=like.dtype).contiguous(memory_format=fmt)
        elif not (grad_features._base is None and grad_features.is_contiguous(memory_format=fmt)):
            grad_features = grad_features.clone(memory_format=fmt)
        grad_features[:, :, ctx.rows, ctx.cols] += grad_own
        return grad_features, None, None


class _Crops:
    """A tap for ``VGG19.forward``: takes each wanted layer's own crop as it passes (``_OwnTap``)."""

    def __init__(self, plan: TilePlan, tile, layers):
        self.plan, self.tile, self.layers = plan, tile, frozenset(layers)
        self.own: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, features: torch.Tensor) -> torch.Tensor:
        if name in self.layers:
            rows, cols = self.plan.crop(self.tile, name)
            if features.requires_grad:
                features, self.own[name] = _OwnTap.apply(features, rows, cols)
            else:
                self.own[name] = features[:, :, rows, cols]
        return features


def _own_of_whole(plan: TilePlan, tile, layer: str, whole: torch.Tensor) -> torch.Tensor:
    rows, cols = plan.own(tile, layer)
    return whole[:, :, rows, cols]


def _content_sum(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    f = losses._wide(features)
    return ((f - target.to(f.dtype)) ** 2).sum(dim=(1, 2, 3))


def _projections(features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w): each own pixel's features projected on the swd directions (float32 or wider)."""
    with torch.autocast(features.device.type, enabled=False):
        x = losses._wide(features)
        d = directions.to(device=x.device, dtype=x.dtype).t()
        b, c, h, w = x.shape
        return torch.matmul(d, x.reshape(b, c, h * w)).view(b, d.shape[0], h, w)


def _tile_sums(objective: TiledObjective, plan: TilePlan, tile, own: dict, directions) -> list[tuple]:
    """Per term, the tile's own sums: tensors that add up over tiles (swd: the projections).

    ``own``: each layer's features over the tile's own region (``_Crops``).
    """
    out = []
    for t in objective.content:
        out.append((_content_sum(own[t.layer], _own_of_whole(plan, tile, t.layer, t.target)),))
    for t, d in zip(objective.style, directions):
        f = own[t.layer]
        if t.kind == "swd":
            out.append((_projections(f, d),))
            continue
        mask = None if t.mask is None else _own_of_whole(plan, tile, t.layer, t.mask)
        s = sl.sums(t.kind, f, mask)
        out.append((s.second,) if t.kind == "gram" else (s.first, s.second))
    return out


# ------------------------------------------------------------------ the two passes


def _directions(objective: TiledObjective, generator, directions) -> list:
    """One set of swd directions per style term for this step (None for the other kinds)."""
    out = []
    for i, t in enumerate(objective.style):
        if t.kind != "swd":
            out.append(None)
        elif directions is not None and directions[i] is not None:
            out.append(directions[i])
        elif generator is None:
            raise ValueError("an swd style term needs generator= (new directions each step) or directions=")
        else:
            # The target's channels, not VGG19's: the stand-in network (features.py) has fewer.
            out.append(sl.random_directions(t.target.values.shape[1], t.n_directions, generator))
    return out


def _weights(objective: TiledObjective, plan: TilePlan) -> list:
    """Each style term's pixel weights for the whole image, which do not depend on the image.

    gram, moments: ``Sums.weight``, the pixel count (an int) or the mask's sum (the
    tiles' own mask sums add up to it); swd: the mask as (1, N) in raster order, or None.
    """
    out = []
    for t in objective.style:
        if t.kind == "swd":
            out.append(None if t.mask is None else t.mask.reshape(t.mask.shape[0], -1))
        elif t.mask is None:
            h, w = plan.feature_hw(t.layer)
            out.append(h * w)
        else:
            out.append(t.mask.sum(dim=(1, 2, 3)))
    return out


def _check(objective: TiledObjective, plan: TilePlan) -> None:
    """Content targets and masks must be the whole image's at their layers, and the plan deep enough for them."""
    for name in objective.layers:
        plan.own(plan.tiles[0], name)  # raises for a layer deeper than the plan's
    named = [(f"the content target at {t.layer}", t.layer, t.target) for t in objective.content]
    named += [(f"the mask at {t.layer}", t.layer, t.mask) for t in objective.style if t.mask is not None]
    for what, layer, tensor in named:
        if tensor.dim() != 4 or tensor.shape[0] != 1 or tuple(tensor.shape[2:]) != plan.feature_hw(layer):
            raise ValueError(
                f"{what} is {tuple(tensor.shape)}; the whole {plan.height}x{plan.width} image's at {layer} is "
                f"(1, C, {', '.join(map(str, plan.feature_hw(layer)))})"
            )


def _forward(net, crop: torch.Tensor, layers, autocast, objective, plan, tile, dirs) -> list[tuple]:
    """One padded tile through the network: its own sums (with a graph when autograd is on)."""
    crops = _Crops(plan, tile, layers)
    with autocast():
        net(crop, layers, tap=crops)
    return _tile_sums(objective, plan, tile, crops.own, dirs)


def _share(own: list[tuple], d_sums: list[tuple], objective: TiledObjective, plan: TilePlan, tile) -> torch.Tensor:
    """The surrogate <dL/dS, S_tile>: its gradient is the tile's share of the image's."""
    n = len(objective.content)
    total = None
    for j, (mine, d) in enumerate(zip(own, d_sums)):
        if j >= n and objective.style[j - n].kind == "swd":
            rows, cols = plan.own(tile, objective.style[j - n].layer)
            d = (d[0][:, :, rows, cols],)
        for a, b in zip(mine, d):
            part = (a * b.to(a.dtype)).sum()
            total = part if total is None else total + part
    return total


def tiled_step(
    net,
    x: torch.Tensor,
    plan: TilePlan,
    objective: TiledObjective,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    generator: torch.Generator | None = None,
    directions: Sequence[torch.Tensor | None] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The loss terms and the image's gradient, tile by tile, equal to the untiled step's.

    ``net``: ``vgg.build`` over the objective's layers; ``x``: (1, 3, H, W), the
    plan's size; ``autocast``: the engine's factory, entered around the network's
    forward passes only (sums and losses run in float32 or wider). swd terms
    draw new directions from ``generator`` (in the order of the style terms)
    unless ``directions`` (one per style term, None for the others) are given.

    Returns:
        ({"content", "style", "tv", ["temporal",] "total"}: (1,) each, as ``objective.Objective``'s),
        gradient (1, 3, H, W).
    """
    if x.dim() != 4 or x.shape[0] != 1 or tuple(x.shape[2:]) != (plan.height, plan.width):
        raise ValueError(f"tiled_step takes one image of the plan's size (1, 3, {plan.height}, {plan.width})")
    _check(objective, plan)
    layers = objective.layers
    x = x.detach()
    dirs = _directions(objective, generator, directions)
    tv, temporal, grad = _whole_image_terms(objective, x)
    if not layers:
        zero = x.new_zeros(1)
        terms = {"content": zero, "style": zero, "tv": tv}
        total = objective.tv_weight * tv
        if temporal is not None:
            terms["temporal"], total = temporal, total + objective.temporal_weight * temporal
        return {**terms, TOTAL: total}, grad

    # Pass 1: the whole image's sums (swd: its projections). The last tile keeps its graph for pass 2.
    n = len(objective.content)
    swd = {n + j: t for j, t in enumerate(objective.style) if t.kind == "swd"}
    totals: list = []
    kept = None
    for i, tile in enumerate(plan.tiles):
        last = i == len(plan.tiles) - 1
        rows, cols = plan.padded(tile)
        crop = x[:, :, rows, cols].clone().requires_grad_(last)
        with torch.set_grad_enabled(last):
            own = _forward(net, crop, layers, autocast, objective, plan, tile, dirs)
        if last:
            kept = (crop, own)
        for j, item in enumerate(own):
            item = tuple(s.detach() for s in item)
            if j in swd:
                if i == 0:
                    b, k = item[0].shape[:2]
                    totals.append((item[0].new_zeros(b, k, *plan.feature_hw(swd[j].layer)),))
                r, c = plan.own(tile, swd[j].layer)
                totals[j][0][:, :, r, c] = item[0]
            elif i == 0:
                totals.append(item)
            else:
                totals[j] = tuple(a + b for a, b in zip(totals[j], item))
        own = None

    # The loss on the sums, and what each tile's sums owe it.
    terms, d_sums = WholeLoss(objective, totals, _weights(objective, plan), dirs).terms(tv, temporal)
    del totals

    # Pass 2: each tile's share of the gradient (the last tile's graph first, while it is alive).
    for i in [len(plan.tiles) - 1, *range(len(plan.tiles) - 1)]:
        tile = plan.tiles[i]
        rows, cols = plan.padded(tile)
        with torch.enable_grad():
            if kept is not None:
                (crop, own), kept = kept, None
            else:
                crop = x[:, :, rows, cols].clone().requires_grad_(True)
                own = _forward(net, crop, layers, autocast, objective, plan, tile, dirs)
            surrogate = _share(own, d_sums, objective, plan, tile)
            own = None
            if surrogate is not None and surrogate.requires_grad:
                grad[:, :, rows, cols] += torch.autograd.grad(surrogate, crop)[0]
        surrogate = crop = None
    return terms, grad


def _whole_image_terms(objective: TiledObjective, x: torch.Tensor):
    """TV and the temporal term on the whole image at once, and their gradient (the step's start).

    A few image-sized temporaries, freed before any tile's activations exist.
    Returns (tv (1,), temporal (1,) or None, gradient (1, 3, H, W)).
    """
    temporal = None
    if not objective.tv_weight and objective.temporal is None:
        return x.new_zeros(1), None, torch.zeros_like(x)
    with torch.enable_grad():
        xv = x.clone().requires_grad_(True)
        tv = losses.tv_term(xv, objective.normalization) if objective.tv_weight else xv.new_zeros(1)
        weighted = objective.tv_weight * tv
        if objective.temporal is not None:
            temporal = temporal_term(xv, objective.temporal)
            weighted = weighted + objective.temporal_weight * temporal
        grad = torch.autograd.grad(weighted.sum(), xv, allow_unused=True)[0] if weighted.requires_grad else None
    grad = torch.zeros_like(x) if grad is None else grad
    return tv.detach(), None if temporal is None else temporal.detach(), grad


def tiled_features(net, image: torch.Tensor, plan: TilePlan, layers: Sequence[str], *, autocast=None) -> dict:
    """The whole image's features at ``layers`` (float32), assembled from the tiles' own regions, without autograd.

    For content targets of a print: the same values as ``net(image, layers)``, in a tile's memory.
    """
    autocast = autocast or contextlib.nullcontext
    names = [resolve(n) for n in layers]
    out = {}
    with torch.no_grad():
        for tile in plan.tiles:
            rows, cols = plan.padded(tile)
            with autocast():
                feats = net(image[:, :, rows, cols], names)
            for name in names:
                f = _own(plan, tile, name, feats[name])
                if name not in out:
                    h, w = plan.feature_hw(name)
                    out[name] = torch.zeros(
                        (f.shape[0], f.shape[1], h, w), dtype=losses._wide(f).dtype, device=f.device
                    )
                r, c = plan.own(tile, name)
                out[name][:, :, r, c] = f
    return out


def tiled_sums(
    net,
    image: torch.Tensor,
    plan: TilePlan,
    kind: str,
    layers: Sequence[str],
    masks: Mapping | None = None,
    *,
    autocast=None,
    most: int | None = None,
) -> dict:
    """A large style image's ``style_losses.sums`` per layer, tile by tile (``finish``/``stats`` take them on).

    ``masks``: layer -> the whole image's mask at that layer (``guides.to_layer``), or None.
    swd's ``Samples`` are the pixels themselves: with ``most``, a layer of more
    pixels keeps a random subset of about ``most`` of them (each tile its share,
    seeded: the same image gives the same subset), which bounds the target and
    the sort each step makes of it.
    """
    autocast = autocast or contextlib.nullcontext
    names = [resolve(n) for n in layers]
    out: dict = {}
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for tile in plan.tiles:
            rows, cols = plan.padded(tile)
            with autocast():
                feats = net(image[:, :, rows, cols], names)
            for name in names:
                m = None if masks is None or masks.get(name) is None else _own_of_whole(plan, tile, name, masks[name])
                s = sl.sums(kind, _own(plan, tile, name, feats[name]), m)
                h, w = plan.feature_hw(name)
                if kind == "swd" and most is not None and h * w > most:
                    n = s.values.shape[-1]
                    keep = torch.randperm(n, generator=gen)[: max(1, round(n * most / (h * w)))].sort().values
                    keep = keep.to(s.values.device)
                    s = sl.Samples(s.values[..., keep], None if s.weights is None else s.weights[..., keep])
                out[name] = s if name not in out else out[name] + s
            feats = None
    return out
