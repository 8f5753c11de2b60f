"""Tiles for prints larger than memory (``--tile auto|N``): where they are, and how large they may be.

An image is cut into tiles whose *own* regions are disjoint and cover it; each
tile runs through VGG19 on its *padded* region, its own region grown by a
margin that covers the receptive field of the deepest layer used, so that every
feature of its own region is exactly the feature of the whole image (the
two-pass step in ``tiled_step`` then makes the whole optimisation exact).

Why this is exact, for VGG19's 3x3 convolutions (zero padding 1) and 2x2 pools
(stride 2, odd sizes floored):

* A feature at a layer of stride ``s`` (``2**pools_before``) and index ``i``
  depends on the input pixels ``[i s - a, i s + s - 1 + a]`` with
  ``a = (receptive_field - s) / 2``; if they all lie in the padded region, so
  does every intermediate feature it depends on, and the crop's own zero padding
  never reaches it. So the margin is ``a`` of the deepest layer, rounded up to a
  multiple of the network's total stride ``S`` (``margin_for``).
* Own boundaries are multiples of ``S`` (the last one is the image's edge), and
  so are the padded regions' starts (``own start - margin``, or 0): every pooling
  window of the crop is a pooling window of the image, and a layer's own region
  is ``[start // s, stop // s)`` in the image's feature coordinates. At the
  image's edge the padded region is the image's edge: the crop's zero padding
  there is the image's own, and its floor drops the same last row or column.
* Each own region is at least ``S`` pixels on each side, so at every layer each
  tile owns at least one feature row and column, and the own regions partition
  every layer's feature map.

Memory (``auto_tile``, ``tiled_bytes``): a step holds the whole image's float32
state (the image, its gradients, the last good copy, the optimiser's vectors, the
content targets) and the activations of one padded tile, at the per-pixel cost
``memory.py`` estimates for an untiled step, plus the allocator's slack
(``TILE_SLACK``). Measured at 4096x3072 (bf16, default layers, 7 L-BFGS pairs,
``auto`` for 0.9 x 6 GiB: 20 tiles of 992 px): 5.5 GiB peak RSS, 58 s a step on
one core.

L-BFGS's history is the part of the whole-image state that grows fastest: 20
pairs (s, y) of float32 3xHxW vectors are 40 x 151 MB = 6.0 GB at 4096x3072,
more than the rest of the step together. ``lbfgs_history`` bounds it to a share
of the budget (within 6 GiB: all 20 pairs up to about 2650x2000, 8 pairs, 2.4 GB,
at 4096x3072), which a tiled run passes to ``optimizers.make(history=)``. Storing
the pairs in bf16 would halve them again but round the curvature pairs' dot
products, which L-BFGS divides by; not done here.

A run's tiling (``Tiling``) is decided before it starts, by ``memory.check_fits``
through ``tiled_need``: the tile side (``--tile N``, or ``auto``'s budget), the
history, and whether the style images' forward passes are tiled too (a style
image at print size returns every style layer's activations: 8 GiB at 4096x4096
in bf16). The engine asks it for each scale's ``TilePlan``: None, the image
whole, where a scale fits (the coarse ones), so that ``auto`` costs nothing when
the image fits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import MemoryLimitError
from .layers import BY_NAME, depth, pools_before, resolve_all

# Whole-image float32 3xHxW tensors a step holds besides the optimiser's: the image, the engine's last good
# copy, the gradient and the next one being built (the caller's is alive until the step returns).
IMAGE_COPIES = 4
OPTIMIZER_VECTORS = {"adam": 5, "sgd": 2}  # state plus the update's temporaries (optimizers.py)
LBFGS_EXTRA = 3  # previous image, previous gradient, the search direction
HISTORY_SHARE = 0.4  # of a budget, the most that L-BFGS's history may take on a large image
# Peak RSS over the live bytes of a tile's activations: glibc keeps freed blocks of differently shaped tiles
# (measured at 4096x3072 in 20 tiles of 992 px, bf16: 1.55 GiB against 1.1 estimated; 2048x1536 in 12 tiles
# of 512: 16% over, and as estimated with a fixed mmap threshold, which doubled the step's time).
TILE_SLACK = 1.4
# The smallest own side ``auto`` picks: below it the margins (80 px at relu5_1) make each tile's step many
# times its own pixels' work, and a run that needs such tiles is refused rather than crawled through.
AUTO_MIN_TILE = 128
SWD_SAMPLES = 2**18  # a tiled style image's pixels kept per layer as an swd target (a seeded random subset)


def layer_stride(layer: str) -> int:
    """Input pixels per feature step at ``layer`` (any naming): 2 ** the pools before it."""
    return 2 ** pools_before(layer)


def layer_reach(layer: str) -> int:
    """How far past its own pixels a feature of ``layer`` sees, on each side: (receptive field - stride) / 2."""
    info = BY_NAME[resolve_all([layer])[0]]
    return (info.receptive_field - layer_stride(info.name)) // 2


def total_stride(layers: Iterable[str]) -> int:
    """The network's stride at the deepest of ``layers``: tile boundaries are multiples of it."""
    return max((layer_stride(n) for n in resolve_all(layers)), default=1)


def margin_for(layers: Iterable[str]) -> int:
    """The margin (pixels, each side) a tile needs for ``layers``: the deepest reach, rounded up to the stride."""
    names = resolve_all(layers)
    stride = total_stride(names)
    reach = max((layer_reach(n) for n in names), default=0)
    return -(-reach // stride) * stride


@dataclass(frozen=True)
class Tile:
    """One tile: its own region and its padded region, (start, stop) rows and columns in image pixels."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    padded_rows: tuple[int, int]
    padded_cols: tuple[int, int]

    @property
    def padded_pixels(self) -> int:
        return (self.padded_rows[1] - self.padded_rows[0]) * (self.padded_cols[1] - self.padded_cols[0])


@dataclass(frozen=True)
class TilePlan:
    """Tiles covering a ``height`` x ``width`` image for a network cut at the deepest of ``layers``."""

    height: int
    width: int
    tile: int  # the own side asked for, after rounding to the stride
    margin: int
    stride: int
    layers: tuple[str, ...]
    tiles: tuple[Tile, ...]

    def padded(self, tile: Tile) -> tuple[slice, slice]:
        """The padded region as (rows, cols) slices of the image."""
        return slice(*tile.padded_rows), slice(*tile.padded_cols)

    def own(self, tile: Tile, layer: str) -> tuple[slice, slice]:
        """The tile's own features at ``layer``, as (rows, cols) slices of the whole image's feature map."""
        s = self._stride(layer)
        return slice(tile.rows[0] // s, tile.rows[1] // s), slice(tile.cols[0] // s, tile.cols[1] // s)

    def crop(self, tile: Tile, layer: str) -> tuple[slice, slice]:
        """The tile's own features at ``layer``, as (rows, cols) slices of the padded tile's feature map."""
        s = self._stride(layer)
        r0, c0 = tile.padded_rows[0] // s, tile.padded_cols[0] // s
        rows, cols = self.own(tile, layer)
        return slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0)

    def feature_hw(self, layer: str) -> tuple[int, int]:
        """(height, width) of the whole image's features at ``layer``."""
        s = self._stride(layer)
        return self.height // s, self.width // s

    @property
    def largest_padded(self) -> int:
        """Pixels of the largest padded tile: what bounds a tiled step's activations."""
        return max(t.padded_pixels for t in self.tiles)

    def _stride(self, layer: str) -> int:
        if BY_NAME[layer].index > depth(self.layers):
            raise ValueError(f"layer {layer} is deeper than the tile plan's layers {', '.join(self.layers)}")
        return layer_stride(layer)


def _cuts(length: int, tile: int, stride: int) -> list[int]:
    """Own-region boundaries along one side: about equal pieces on multiples of ``stride``, each >= stride."""
    n = max(1, math.ceil(length / tile))
    inner = {round(i * length / n / stride) * stride for i in range(1, n)}
    return [0, *sorted(c for c in inner if stride <= c <= length - stride), length]


def plan_tiles(height: int, width: int, tile: int, layers: Iterable[str], *, margin: int | None = None) -> TilePlan:
    """Tiles of about ``tile`` x ``tile`` own pixels (rounded down to the stride) for ``layers``.

    ``margin``: override the exact margin (``margin_for``), for tests that show it is needed.

    Raises:
        ValueError: the image is smaller than the network's stride (``layers.min_side``), or ``tile`` < 1.
    """
    names = resolve_all(layers)
    stride = total_stride(names)
    if height < stride or width < stride:
        raise ValueError(f"a {height}x{width} image is smaller than the network's stride {stride} at {names}")
    if tile < 1:
        raise ValueError(f"tile must be a positive number of pixels, not {tile}")
    margin = margin_for(names) if margin is None else margin
    side = max(stride, tile // stride * stride)
    row_cuts, col_cuts = _cuts(height, side, stride), _cuts(width, side, stride)
    tiles = []
    for r0, r1 in zip(row_cuts, row_cuts[1:]):
        for c0, c1 in zip(col_cuts, col_cuts[1:]):
            padded_rows = (max(0, r0 - margin), min(height, r1 + margin))
            padded_cols = (max(0, c0 - margin), min(width, c1 + margin))
            tiles.append(Tile((r0, r1), (c0, c1), padded_rows, padded_cols))
    return TilePlan(height, width, side, margin, stride, names, tuple(tiles))


# ------------------------------------------------------------------ memory


def lbfgs_history(height: int, width: int, budget_bytes: int, *, most: int = 20, least: int = 3) -> int:
    """How many L-BFGS pairs to keep for a ``height`` x ``width`` image within ``budget_bytes``.

    The pairs may take ``HISTORY_SHARE`` of the budget: 20 (the default) up to
    about 2400x1800 in 6 GiB, 5 at 4096x3072. ``least`` pairs at the very least
    (fewer is barely L-BFGS). Measured (tubingen/starry_night at 256 px, 150
    steps, bf16): final total loss 0.680 with 20 pairs, 0.679 with 8, 0.681 with
    5, 0.702 with 3.
    """
    pair = 2 * 3 * height * width * 4  # s and y, float32
    return max(least, min(most, int(budget_bytes * HISTORY_SHARE // pair)))


def whole_image_bytes(recipe, height: int, width: int, history: int | None = None) -> int:
    """What a tiled step keeps for the whole image: the image's float32 copies, the optimiser's
    vectors (L-BFGS: ``history`` pairs; default ``memory.LBFGS_HISTORY``), the content targets,
    and for swd the whole image's projections and their gradient (``tiled_step``)."""
    from .memory import LBFGS_HISTORY

    if recipe.optimizer == "lbfgs":
        vectors = 2 * (LBFGS_HISTORY if history is None else history) + LBFGS_EXTRA
    else:
        vectors = OPTIMIZER_VECTORS.get(recipe.optimizer, 5)
    image = 3 * height * width * 4
    targets = 0
    for name in recipe.resolved_content_layers:
        s = layer_stride(name)
        targets += BY_NAME[name].channels * (height // s) * (width // s) * 4
    if recipe.style_loss == "swd":
        for name in recipe.resolved_style_layers:
            s = layer_stride(name)
            targets += 2 * (recipe.swd_directions or BY_NAME[name].channels) * (height // s) * (width // s) * 4
    return (IMAGE_COPIES + vectors) * image + targets


def _tile_pixel_bytes(recipe, slack: float = TILE_SLACK) -> float:
    """A padded tile's bytes per pixel: an untiled step's with a one-vector optimiser (the tile holds no state),
    times the allocator's ``slack`` (one tile, one shape: none)."""
    from .memory import image_bytes

    return slack * image_bytes(recipe.replace(optimizer="sgd"), 1024, 1024) / (1024 * 1024)


def tiled_bytes(recipe, height: int, width: int, tile: int, *, history: int | None = None) -> int:
    """The memory a tiled run needs (``memory.Estimate.total``'s counterpart for ``--tile``): the process,
    the whole image's state (``whole_image_bytes``) and the largest padded tile's activations."""
    from .memory import PROCESS_BYTES

    plan = plan_tiles(height, width, tile, recipe.network_layers)
    state = whole_image_bytes(recipe, height, width, history)
    per_pixel = _tile_pixel_bytes(recipe, TILE_SLACK if len(plan.tiles) > 1 else 1.0)
    return PROCESS_BYTES + state + math.ceil(per_pixel * plan.largest_padded)


def auto_tile(recipe, height: int, width: int, budget_bytes: int, *, history: int | None = None) -> int:
    """The own tile side for ``--tile auto``: the largest whose padded tile fits beside the whole image's state.

    ``recipe`` (a ``recipes.Recipe``) gives the layers, the precision (bf16
    activations are half the bytes) and the optimiser; L-BFGS's history is
    ``history`` pairs, by default ``lbfgs_history`` of the budget. A tile's
    activations cost what ``memory.image_bytes`` says an untiled step's do per
    pixel, less the optimiser's state, which a tile does not hold, times
    ``TILE_SLACK``. Returns
    ``max(height, width)`` (one tile: untiled) when the whole image fits; then
    ``tiled_bytes(recipe, height, width, side) <= budget_bytes``.

    Raises:
        MemoryLimitError: not even a tile of the network's stride fits.
    """
    from .memory import PROCESS_BYTES

    if recipe.optimizer == "lbfgs" and history is None:
        history = lbfgs_history(height, width, budget_bytes)
    state = PROCESS_BYTES + whole_image_bytes(recipe, height, width, history)
    if state + _tile_pixel_bytes(recipe, 1.0) * height * width <= budget_bytes:
        return max(height, width)
    padded = max(0, budget_bytes - state) / _tile_pixel_bytes(recipe)
    names = recipe.network_layers
    stride, margin = total_stride(names), margin_for(names)
    # A square padded tile; interior tiles are the largest (own side rounded up to the stride, plus two margins).
    side = (math.isqrt(int(padded)) - 2 * margin - stride) // stride * stride
    if side < stride:
        raise MemoryLimitError(
            f"a {width}x{height} image does not fit in {budget_bytes / 2**30:.1f} GiB even in tiles "
            f"(its own state needs about {state / 2**30:.1f} GiB): lower --size"
        )
    return side


# ------------------------------------------------------------------ a run's tiling


@dataclass(frozen=True)
class Tiling:
    """How a tiled run goes, as ``memory.check_fits`` decided it before the run.

    ``tile``: ``--tile N``'s own side, or None for ``auto``: at each scale, the
    largest tile that fits ``budget`` (``auto_tile``), the whole image where it
    fits, so the coarse scales run whole and the fine ones tiled. ``history``:
    L-BFGS's pairs at every scale (``lbfgs_history``; None for the other
    optimisers). ``style_tile``: the style images' forward passes in tiles of this
    side too (``tiled_step.tiled_sums``), where a whole one would not fit; None: whole.
    """

    tile: int | None
    budget: int
    history: int | None = None
    style_tile: int | None = None

    def plan(self, recipe, height: int, width: int) -> TilePlan | None:
        """The tiles of a scale of ``height`` x ``width``, or None where it runs whole (one tile)."""
        side = self.tile
        if side is None:
            from .memory import PROCESS_BYTES, image_bytes

            if PROCESS_BYTES + image_bytes(recipe, width, height) <= self.budget:
                return None  # what memory.check_fits lets run whole: the untiled step, at no extra cost
            side = auto_tile(recipe, height, width, self.budget, history=self.history)
        plan = plan_tiles(height, width, side, recipe.network_layers)
        return plan if len(plan.tiles) > 1 else None


def tiled_need(recipe, width: int, height: int, style_sizes, budget: int) -> tuple[int, int, Tiling]:
    """A tiled run's (step bytes, style pass bytes, ``Tiling``) at ``width`` x ``height``, the process not counted.

    ``style_sizes``: (width, height) of each style image at the run's style size.
    ``recipe.tile`` is ``auto`` (the largest tile within ``budget``) or a side in pixels.

    Raises:
        MemoryLimitError: ``auto``, and not even a tile of ``AUTO_MIN_TILE`` px fits
        beside the whole image's state (``auto_tile``).
    """
    from .memory import PROCESS_BYTES, activation_bytes, style_pass_bytes

    history = lbfgs_history(height, width, budget) if recipe.optimizer == "lbfgs" else None
    if recipe.tile == "auto":
        side = auto_tile(recipe, height, width, budget, history=history)
        if side < min(AUTO_MIN_TILE, max(height, width)):
            raise MemoryLimitError(
                f"a {width}x{height} image needs tiles of {side} px to fit in {budget / 2**30:.1f} GiB, "
                f"fewer than {AUTO_MIN_TILE} (too slow to be worth it): lower --size"
            )
    else:
        side = int(recipe.tile)
    steps = tiled_bytes(recipe, height, width, side, history=history) - PROCESS_BYTES
    act = activation_bytes(recipe)
    margin = margin_for(recipe.resolved_style_layers)
    padded = min(side + 2 * margin, max((max(s) for s in style_sizes), default=0))
    styles, style_tile = 0, None
    for sw, sh in style_sizes:
        whole = style_pass_bytes(recipe, sw, sh, act)
        if whole <= steps:  # within what the step itself takes: no need to tile it
            styles = max(styles, whole)
            continue
        style_tile = side
        tiled = style_pass_bytes(recipe, min(sw, padded), min(sh, padded), act) + 3 * sw * sh * 4
        if recipe.style_loss == "swd":  # the kept pixels of every layer
            tiled += sum(BY_NAME[n].channels * SWD_SAMPLES * 4 for n in recipe.resolved_style_layers)
        styles = max(styles, tiled)
    return steps, styles, Tiling(None if recipe.tile == "auto" else side, budget, history, style_tile)
