"""How much memory a run needs, how much there is, and refusing a run that would not fit.

The estimate is what a step keeps alive: VGG19's activations up to the deepest
layer used (saved for the backward pass, in the convolutions' precision), the
image, its gradient and the optimiser's state (float32), plus the forward pass
over the style images and the process itself. Measured on this project's CPU
(torch 2.13, L-BFGS, the default layers), the growth in peak RSS over the
process after loading the network was, against this estimate:

    ====================  =========  =========
    content, precision    measured   estimate
    ====================  =========  =========
    512x384 float32       0.50 GiB   0.51 GiB
    1024x768 float32      1.81 GiB   2.04 GiB
    1024x768 bfloat16     1.19 GiB   1.21 GiB
    ====================  =========  =========

It is used three ways: a run is refused before it starts when it would not fit
(``check_fits``), a sweep sizes its batches with it, and tiling (prints larger
than memory, ``--tile``) picks its tile size with it: a run that does not fit
whole runs tiled under ``--tile auto|N`` (one image at a time, its peak bounded by
the tile and the whole image's state, tiles.py) and is refused only when even
that does not fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MemoryLimitError
from .layers import stages_through
from .recipes import MAX_SIZE, Recipe

if TYPE_CHECKING:  # pragma: no cover
    from .tiles import Tiling

PROCESS_BYTES = 400 * 2**20  # torch, the network's weights and their bf16 copies, Python
USABLE_SHARE = 0.9  # of the memory available, the most one run may plan to use
LBFGS_HISTORY = 20  # (s, y) pairs of the image kept by L-BFGS (optimizers.py)


def activation_bytes(recipe: Recipe) -> int:
    """Bytes per activation value: 2 where the convolutions run in bf16, else 4."""
    from .precision import conv_dtype

    try:
        import torch

        device = "cpu" if recipe.device in ("auto", "cpu") else recipe.device.split(":")[0]
        return 2 if conv_dtype(recipe.precision, torch.device(device)) is not None else 4
    except (RuntimeError, ValueError):
        return 4


def _stage_floats(recipe: Recipe, width: int, height: int) -> tuple[int, int]:
    """(all stages' values, the largest stage's values) of the network a recipe cuts, for one image."""
    used = set(recipe.network_layers)
    sizes = [c * h * w for _, c, h, w in stages_through(used, height, width)]
    return sum(sizes), max(sizes, default=0)


def image_bytes(recipe: Recipe, width: int, height: int, act_bytes: int | None = None) -> int:
    """Memory one image of a batch needs during a step: activations kept for the backward
    pass, and the image, its gradient and the optimiser's state."""
    act_bytes = activation_bytes(recipe) if act_bytes is None else act_bytes
    floats, _ = _stage_floats(recipe, width, height)
    state = 2 * LBFGS_HISTORY if recipe.optimizer == "lbfgs" else 2
    return floats * act_bytes + (state + 4) * 3 * width * height * 4


def style_pass_bytes(recipe: Recipe, width: int, height: int, act_bytes: int) -> int:
    """The forward pass over one style image without autograd: two stages alive at a time, and the
    style layers' activations, which the pass returns and which live until their statistics are
    taken (swd keeps them, in float32, as its targets)."""
    _, largest = _stage_floats(recipe, width, height)
    layers = set(recipe.resolved_style_layers)
    kept = sum(c * h * w for layer, c, h, w in stages_through(layers, height, width) if layer.name in layers)
    targets = kept * 4 if recipe.style_loss == "swd" else 0
    return (2 * largest + kept) * act_bytes + targets + 3 * width * height * 4


@dataclass(frozen=True)
class Estimate:
    """What a run needs, in bytes, and its parts."""

    steps: int  # the batch's step, at the final size
    styles: int  # the largest style image's forward pass
    process: int = PROCESS_BYTES
    batch: int = 1  # images at once: 1 for a tiled run, whatever the batch asked for
    tiling: Tiling | None = None  # how the run is tiled (``--tile``); None: it runs whole

    @property
    def total(self) -> int:
        return self.process + max(self.steps, self.styles)


def estimate(recipe: Recipe, content_size: tuple[int, int], style_sizes: list[tuple[int, int]], batch: int = 1):
    """The memory a run of ``batch`` images needs: content of ``content_size`` (width, height)
    at the run's size, styles of ``style_sizes`` (their own sizes; scaled as the run scales them)."""
    from .images import fitted_size

    act = activation_bytes(recipe)
    w, h = fitted_size(content_size, recipe.size)
    styles = [style_pass_bytes(recipe, *size, act) for size in _style_sizes(recipe, style_sizes)]
    return Estimate(batch * image_bytes(recipe, w, h, act), max(styles, default=0), batch=batch)


def available_memory(device: str = "auto") -> int:
    """Bytes free now: on the GPU for CUDA, else MemAvailable of the machine (4 GiB if unknown)."""
    if device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                free, _ = torch.cuda.mem_get_info()
                return int(free)
        except Exception:  # noqa: BLE001 - no CUDA driver is a normal case
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def check_fits(
    recipe: Recipe,
    content_size: tuple[int, int],
    style_sizes: list[tuple[int, int]],
    batch: int = 1,
    available: int | None = None,
) -> Estimate:
    """Refuse (MemoryLimitError) a run that would not fit in the memory available, naming the
    ``--size`` that would (or ``--tile auto``); returns the estimate otherwise.

    A run is tiled under ``--tile N`` always (its scales larger than N), and under
    ``--tile auto`` when it does not fit whole: the estimate is then for one image
    at a time (``Estimate.batch`` 1: the plan runs the batch's images one by one,
    whole where one fits under ``auto``) and carries its ``Tiling``; such a run is
    refused only when even the smallest sensible tile, or the whole image's
    state, does not fit.
    """
    from .images import fitted_size
    from .recipes import tile_side

    need = estimate(recipe, content_size, style_sizes, batch)
    free = available_memory(recipe.device) if available is None else available
    budget = int(free * USABLE_SHARE)
    side = tile_side(recipe)
    if need.total <= budget and (side is None or side >= max(fitted_size(content_size, recipe.size))):
        return need  # whole: it fits, and no tile smaller than the image was asked for
    if recipe.tile != "none":
        if batch > 1:
            return check_fits(recipe, content_size, style_sizes, 1, free)
        return _check_tiled(recipe, content_size, style_sizes, budget, free)
    fits = largest_size(recipe, content_size, style_sizes, batch, budget)
    hint = f"--size {fits} fits" if fits else "no size fits"
    if need.steps >= need.styles and _tiled_fits(recipe.replace(tile="auto"), content_size, style_sizes, budget):
        hint += f", or use --tile auto to run --size {recipe.size} in tiles"
    what = "the style images" if need.styles > need.steps else f"{batch} image(s) at --size {recipe.size}"
    raise MemoryLimitError(
        f"this run needs about {_gib(need.total)} for {what}, and {_gib(free)} is free: {hint}"
        + (" (or lower --style-scale)" if need.styles > need.steps else "")
    )


def _style_sizes(recipe: Recipe, style_sizes: list[tuple[int, int]]) -> list[tuple[int, int]]:
    from .images import fitted_size

    return [fitted_size(s, recipe.style_longest()) for s in style_sizes]


def _tiled_fits(recipe: Recipe, content_size, style_sizes, budget: int) -> bool:
    try:
        _check_tiled(recipe, content_size, style_sizes, budget, budget)
    except MemoryLimitError:
        return False
    return True


def _check_tiled(recipe: Recipe, content_size, style_sizes, budget: int, free: int) -> Estimate:
    """One image of a tiled run (``tiles.tiled_need``) against ``budget``."""
    from .images import fitted_size
    from .tiles import tiled_need

    w, h = fitted_size(content_size, recipe.size)
    steps, styles, tiling = tiled_need(recipe, w, h, _style_sizes(recipe, style_sizes), budget)
    need = Estimate(steps, styles, batch=1, tiling=tiling)
    if need.total <= budget:
        return need
    if recipe.tile != "auto" and _tiled_fits(recipe.replace(tile="auto"), content_size, style_sizes, budget):
        hint = "--tile auto fits"
    else:
        fits = largest_size(recipe.replace(tile="none"), content_size, style_sizes, 1, budget)
        hint = f"--size {fits} fits untiled" if fits else "no size fits"
    raise MemoryLimitError(
        f"this run needs about {_gib(need.total)} even in tiles (--tile {recipe.tile}) at --size {recipe.size}, "
        f"and {_gib(free)} is free: {hint}"
    )


def largest_size(
    recipe: Recipe, content_size: tuple[int, int], style_sizes: list[tuple[int, int]], batch: int, budget: int
) -> int | None:
    """The largest ``size`` (longest side, pixels) whose estimate stays within ``budget``; None if none."""
    lo, hi = 16, min(recipe.size, MAX_SIZE)
    if estimate(recipe.replace(size=lo), content_size, style_sizes, batch).total > budget:
        return None
    while hi - lo > 1:  # the estimate grows with the size: bisect
        mid = (lo + hi) // 2
        if estimate(recipe.replace(size=mid), content_size, style_sizes, batch).total <= budget:
            lo = mid
        else:
            hi = mid
    return lo


def batch_that_fits(recipe: Recipe, width: int, height: int, free: int, share: float) -> int:
    """How many images of (width, height) at once fit in ``share`` of ``free`` bytes (at least 1)."""
    return max(1, int(free * share // max(1, image_bytes(recipe, width, height))))


@dataclass(frozen=True)
class Device:
    """A device as the engines' protocol reads it (``.type``), for engines that run without torch."""

    type: str
    index: int | None = None

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


CPU = Device("cpu")


class PeakMeter:
    """The peak memory of one run, not of the process's whole life.

    On CUDA, the allocator's peak since ``start``. On Linux, the resident-set
    high-water mark reset at ``start`` (writing 5 to /proc/self/clear_refs) and
    read at ``stop`` (VmHWM); where that reset is not allowed, the process's
    peak (ru_maxrss), which then covers earlier runs too (``own`` says which).
    """

    def __init__(self, device):
        self.device = device
        self.own = False

    def start(self) -> None:
        if self.device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)
            self.own = True
            return
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
            self.own = True
        except OSError:
            self.own = False

    def stop(self) -> int:
        """Bytes: the peak since ``start`` (or of the process, where that could not be reset)."""
        if self.device.type == "cuda":
            import torch

            return int(torch.cuda.max_memory_allocated(self.device))
        if self.own:
            try:
                with open("/proc/self/status", encoding="ascii") as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            return int(line.split()[1]) * 1024
            except OSError:
                pass
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)
