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
than memory) picks its tile size with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import MemoryLimitError
from .layers import stages_through
from .recipes import MAX_SIZE, Recipe

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
    used = {*recipe.resolved_content_layers, *recipe.resolved_style_layers}
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
    """The forward pass over one style image without autograd: two stages alive at a time."""
    _, largest = _stage_floats(recipe, width, height)
    return 2 * largest * act_bytes + 3 * width * height * 4


@dataclass(frozen=True)
class Estimate:
    """What a run needs, in bytes, and its parts."""

    steps: int  # the batch's step, at the final size
    styles: int  # the largest style image's forward pass
    process: int = PROCESS_BYTES

    @property
    def total(self) -> int:
        return self.process + max(self.steps, self.styles)


def estimate(recipe: Recipe, content_size: tuple[int, int], style_sizes: list[tuple[int, int]], batch: int = 1):
    """The memory a run of ``batch`` images needs: content of ``content_size`` (width, height)
    at the run's size, styles of ``style_sizes`` (their own sizes; scaled as the run scales them)."""
    from .images import fitted_size

    act = activation_bytes(recipe)
    w, h = fitted_size(content_size, recipe.size)
    style_longest = max(16, round(recipe.size * recipe.style_scale))
    styles = [style_pass_bytes(recipe, *fitted_size(s, style_longest), act) for s in style_sizes]
    return Estimate(batch * image_bytes(recipe, w, h, act), max(styles, default=0))


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
    ``--size`` that would; returns the estimate otherwise."""
    need = estimate(recipe, content_size, style_sizes, batch)
    free = available_memory(recipe.device) if available is None else available
    budget = int(free * USABLE_SHARE)
    if need.total <= budget:
        return need
    fits = largest_size(recipe, content_size, style_sizes, batch, budget)
    hint = f"--size {fits} fits" if fits else "no size fits"
    what = "the style images" if need.styles > need.steps else f"{batch} image(s) at --size {recipe.size}"
    raise MemoryLimitError(
        f"this run needs about {_gib(need.total)} for {what}, and {_gib(free)} is free: {hint}"
        + (" (or lower --style-scale)" if need.styles > need.steps else "")
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


def pixels_that_fit(recipe: Recipe, budget: int, act_bytes: int | None = None) -> int:
    """Roughly the most pixels one image of a step may have within ``budget`` bytes (for tiling)."""
    per_pixel = image_bytes(recipe, 1024, 1024, act_bytes) / (1024 * 1024)
    return max(1, math.floor(budget / per_pixel))


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
