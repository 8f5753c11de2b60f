"""What a batch is measured against at one scale: the content's features and each style set's statistics.

Computed once per scale without autograd. A style set's statistics depend only
on its images, weights and masks, the style size and the loss settings, so
they are cached by the engine (``StyleCache``): the frames of a video, the
items of a batch and the jobs of a studio that share a style build them once.

A tiled scale (a print, ``--tile``) takes its content targets tile by tile
(``tiled_step.tiled_features``), and style images too large for one forward
pass their sums tile by tile (``tiled_step.tiled_sums``): the same statistics,
in a tile's memory (swd keeps a seeded subset of a large style image's pixels,
``tiles.SWD_SAMPLES`` per layer).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch

from . import guides, images, style_losses
from .objective import Objective, StyleRegion, TemporalTarget, Weights
from .plan import Item, PreparedSet
from .recipes import Recipe
from .tiles import TilePlan, plan_tiles

CACHE_ENTRIES = 32  # style sets kept; swd keeps whole feature maps, so this is bounded


class StyleCache:
    """Style statistics by (set, size, layers, loss settings), least recently used dropped first."""

    def __init__(self, entries: int = CACHE_ENTRIES):
        self.entries = entries
        self._data: OrderedDict[tuple, dict] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: tuple, make: Callable[[], dict]) -> dict:
        if key in self._data:
            self._data.move_to_end(key)
            self.hits += 1
            return self._data[key]
        self.misses += 1
        value = make()
        self._data[key] = value
        while len(self._data) > self.entries:
            self._data.popitem(last=False)
        return value


def set_statistics(net, s: PreparedSet, recipe: Recipe, longest: int, device, autocast, tile=None) -> dict:
    """A style set's statistics per style layer: each image's, blended with the set's weights.

    ``tile``: a style image larger than this (pixels, a side) runs through the
    network in tiles of it (``tiled_step.tiled_sums``); None: whole.
    """
    layers = recipe.resolved_style_layers
    per_image = []
    with torch.no_grad(), autocast():
        for j, img in enumerate(s.images):
            fitted = images.fit(img, longest)
            mask = None if s.image_masks is None else s.image_masks[j]
            hw = (fitted.height, fitted.width)
            plan = None if tile is None else plan_tiles(fitted.height, fitted.width, tile, layers)
            if plan is not None and len(plan.tiles) > 1:
                per_image.append(_tiled_statistics(net, fitted, mask, plan, recipe, device, autocast))
                continue
            feats = net(images.to_tensor(fitted).to(device), layers)
            per_image.append(
                {
                    layer: style_losses.stats(
                        recipe.style_loss,
                        feats[layer],
                        None if mask is None else guides.to_layer(mask, layer, hw).to(device),
                        normalization=recipe.normalization,
                    )
                    for layer in layers
                }
            )
    return {
        layer: style_losses.blend(recipe.style_loss, [p[layer] for p in per_image], s.weights)
        if len(per_image) > 1
        else per_image[0][layer]
        for layer in layers
    }


def _tiled_statistics(net, fitted, mask, plan: TilePlan, recipe: Recipe, device, autocast) -> dict:
    """One large style image's statistics per layer from its tiles' sums (``style_losses.finish``)."""
    from . import tiled_step
    from .tiles import SWD_SAMPLES

    layers = recipe.resolved_style_layers
    hw = (fitted.height, fitted.width)
    masks = None if mask is None else {k: m.to(device) for k, m in guides.to_layers(mask, layers, hw).items()}
    image = images.to_tensor(fitted).to(device)
    sums = tiled_step.tiled_sums(
        net, image, plan, recipe.style_loss, layers, masks, autocast=autocast, most=SWD_SAMPLES
    )
    return {k: style_losses.finish(recipe.style_loss, sums[k], recipe.normalization) for k in layers}


def build_objective(
    net,
    items: list[Item],
    recipe: Recipe,
    longest: int,
    device,
    autocast,
    cache: StyleCache,
    cache_key: tuple,
    *,
    content: bool = True,
    generator: torch.Generator | None = None,
    tiles: TilePlan | None = None,
    style_tile: int | None = None,
) -> Objective:
    """The objective of a batch of ``items`` at the scale whose longest side is ``longest``.

    ``content=False`` leaves the content targets empty, for the first step to take
    them from its own forward pass when the start image is the content image (the
    same activations: one forward pass less). ``tiles``: the scale's tiles (one
    item), over which the content targets are taken; ``style_tile``: the side of
    the tiles of style images too large to run whole (``set_statistics``).
    """
    content_layers = recipe.resolved_content_layers
    style_layers = recipe.resolved_style_layers
    size = images.fitted_size(items[0].content.size, longest)
    hw = (size[1], size[0])
    content_targets = {}
    if content and content_layers:
        batch = torch.cat([images.to_tensor(it.content.resize(size, images.RESAMPLE)) for it in items]).to(device)
        if tiles is not None:
            from .tiled_step import tiled_features

            content_targets = tiled_features(net, batch, tiles, content_layers, autocast=autocast)
        else:
            with torch.no_grad(), autocast():
                feats = net(batch, content_layers)
            content_targets = {k: v.float() for k, v in feats.items()}
        del batch
    s_longest = recipe.style_longest(longest)
    # Tiled style passes give the same gram/moments statistics; swd's keep a subset: cached apart.
    key = (*cache_key, "tiled", style_tile) if style_tile is not None else tuple(cache_key)
    regions = []
    for r in range(len(items[0].sets)):
        stats = [
            cache.get(
                (*key, it.sets[r].key, s_longest),
                lambda s=it.sets[r]: set_statistics(net, s, recipe, s_longest, device, autocast, style_tile),
            )
            for it in items
        ]
        targets = {layer: style_losses.cat(recipe.style_loss, [st[layer] for st in stats]) for layer in style_layers}
        masks = [it.sets[r].mask for it in items]
        if masks[0] is None:
            regions.append(StyleRegion(targets))
            continue
        # The masks at this scale's input size (conv1_1 is before any pooling), then at each layer's.
        at_size = torch.cat([guides.to_layer(m, "conv1_1", hw) for m in masks]).to(device)
        layer_guides = guides.to_layers(at_size, style_layers)
        regions.append(StyleRegion(targets, layer_guides, at_size.mean(dim=(1, 2, 3))))
    weights = Weights(
        recipe.content_weight,
        recipe.style_weight,
        recipe.tv_weight,
        recipe.temporal_weight,
        recipe.content_layer_weights or [1.0] * len(content_layers),
        recipe.style_layer_weights or [1.0] * len(style_layers),
    )
    return Objective(
        content_layers,
        style_layers,
        regions,
        weights,
        kind=recipe.style_loss,
        normalization=recipe.normalization,
        content_targets=content_targets,
        temporal=temporal_target(items, hw, device),
        generator=generator,
        swd_directions=recipe.swd_directions or None,
    )


def temporal_target(items: list[Item], hw: tuple[int, int], device) -> TemporalTarget | None:
    """The items' temporal targets at the scale's size (video frames), or None."""
    found = [it.task.temporal for it in items]
    if all(t is None for t in found):
        return None
    if any(t is None for t in found):
        raise ValueError("a batch mixes video frames with a temporal target and without")
    return TemporalTarget(
        torch.cat([_at(t.image, hw, 3) for t in found]).to(device),
        torch.cat([_at(t.weights, hw, 1) for t in found]).to(device),
    )


def _at(value, hw: tuple[int, int], channels: int) -> torch.Tensor:
    """An image or weight map as a (1, C, H, W) float tensor at ``hw``."""
    import numpy as np
    import torch.nn.functional as F

    if not isinstance(value, torch.Tensor):
        if hasattr(value, "mode"):  # PIL
            value = images.to_tensor(value) if channels == 3 else torch.from_numpy(np.asarray(value, np.float32) / 255)
        else:
            value = torch.as_tensor(np.asarray(value, dtype=np.float32))
    t = value.float()
    while t.dim() < 4:
        t = t.unsqueeze(0)
    if tuple(t.shape[-2:]) != tuple(hw):
        t = F.interpolate(t, size=hw, mode="bilinear", align_corners=False)
    return t
