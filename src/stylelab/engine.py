"""The one optimisation loop behind every recipe.

``stylize_batch`` optimises one or more images that share a content image and a
recipe and differ in their styles; ``stylize_one`` is the batch of one. The
loop is split the way the work is: ``prepare`` (images in), ``build_targets``
(features of content and styles, once, without autograd), ``init_image``,
``run_scale`` (the steps), with events going out to callbacks throughout.
"""

from __future__ import annotations

import math
import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import color, images, memory, optimizers, precision
from .errors import ImageError, MemoryLimitError, RecipeError
from .events import Callback, Done, Failed, Snapshot, Started, Step
from .layers import BY_NAME, min_side
from .losses import Objective, blend_grams, gram_matrix
from .recipes import DEVICE, INITS, MAX_SIZE, Recipe
from .vgg import VGG19, build

NOISE_AMPLITUDE = 0.05  # of the noise start image, in pixel units (0..1)


@dataclass
class Result:
    """What a run produced. In a notebook it displays as its image."""

    image: Image.Image | None
    recipe: Recipe
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "done"  # done | diverged | cancelled
    message: str = ""
    elapsed: float = 0.0
    steps: int = 0
    device: str = "cpu"
    peak_memory: int = 0  # bytes: CUDA peak on GPU, process peak RSS on CPU
    label: str = ""

    @property
    def losses(self) -> dict[str, float]:
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "elapsed")} if self.history else {}

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def _repr_png_(self):
        return images.png_bytes(self.image) if self.image is not None else None


@dataclass
class Prepared:
    """Inputs after decoding and colour handling, at full resolution."""

    content: Image.Image
    content_original: Image.Image  # before luminance conversion, for recombination
    alpha: Image.Image | None
    styles: list[list[Image.Image]]  # per batch item
    init: Image.Image | None  # an init image given as a path or image


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not DEVICE.fullmatch(name):  # meta, xpu and the like: devices torch knows and stylelab does not run on
        raise RecipeError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"device {name!r} asked for, but this machine has no usable CUDA GPU")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RecipeError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RecipeError(f"device {name!r} asked for, but MPS is not available here")
    return dev


def scale_sizes(size: int, scales: int, smallest: int = 64) -> list[int]:
    """Longest sides from coarse to fine, each about sqrt(2) larger, ending at ``size``."""
    sizes = [max(min(size, smallest), round(size / math.sqrt(2) ** (scales - 1 - i))) for i in range(scales)]
    return sorted(dict.fromkeys(sizes))


def _style_label(item: int, index: int, batch: int, count: int) -> str:
    if batch == 1:
        return "style" if count == 1 else f"style {index + 1}"
    return f"style {index + 1} of run {item + 1}"


def prepare(content, styles: Sequence[Sequence[Any]], recipe: Recipe, init=None) -> Prepared:
    """Decode the inputs, check them against the recipe and apply colour preservation.

    Everything that can refuse a run happens here, before any event is emitted
    or any file is written: unreadable or unusable images, blend weights that do
    not match the styles, images too small or thin for the network, a run that
    would not fit in memory.
    """
    content_img, alpha = images.load_rgb(content, what="content")
    if any(isinstance(item, (str, bytes)) or not isinstance(item, Sequence) for item in styles):
        raise ImageError("styles must be one list of style images per run")
    loaded = [
        [images.load_rgb(s, what=_style_label(i, j, len(styles), len(item)))[0] for j, s in enumerate(item)]
        for i, item in enumerate(styles)
    ]
    check_inputs(content_img, loaded, recipe)
    original = content_img
    if recipe.preserve_color == "histogram":
        loaded = [[color.match_histogram(s, content_img) for s in item] for item in loaded]
    elif recipe.preserve_color == "luminance":
        loaded = [[color.luminance_image(s, content_img) for s in item] for item in loaded]
        content_img = color.luminance_image(content_img)
    init_img = None
    if init is not None:
        init_img = images.load_rgb(init, what="init")[0]
    elif recipe.init not in INITS:
        init_img = images.load_rgb(recipe.init, what="init")[0]
    return Prepared(content_img, original, alpha, loaded, init_img)


def check_inputs(
    content: Image.Image, styles: Sequence[Sequence[Image.Image]], recipe: Recipe, memory_free=None
) -> None:
    """Refuse a batch (one list of style images per run) that the recipe cannot paint: no styles,
    blend weights that do not match them, images too small for the network, not enough memory
    (``memory_free`` bytes; default: what the machine has free now)."""
    if not styles or any(not item for item in styles):
        raise ImageError("each run needs at least one style image")
    for item in styles:
        _blend_weights(recipe, len(item))
    flat = [s for item in styles for s in item]
    _check_network_sizes(content, flat, recipe)
    memory.check_fits(recipe, content.size, [s.size for s in flat], batch=len(styles), available=memory_free)


def _check_network_sizes(content: Image.Image, styles: list[Image.Image], recipe: Recipe) -> None:
    """Refuse images that the network's poolings would shrink to nothing at the deepest layer used.

    Each 2x2 pooling halves a side, so an image must keep ``layers.min_side`` pixels
    on its shorter side at every scale the run uses (content) and at the style size.
    """
    used = (*recipe.resolved_content_layers, *recipe.resolved_style_layers)
    need = min_side(used)
    deepest = max(used, key=lambda name: BY_NAME[name].index)
    style_longest = max(16, round(recipe.size * recipe.style_scale))
    checks = [("content", content, longest, "--size") for longest in scale_sizes(recipe.size, recipe.scales)]
    checks += [("a style image", s, style_longest, "--style-scale") for s in styles]
    for what, img, longest, knob in checks:
        w, h = images.fitted_size(img.size, longest)
        if min(w, h) >= need:
            continue
        # The longest side at which the shorter one reaches ``need`` (from the image's own proportions).
        enough = max(math.ceil(need * max(img.size) / min(img.size)), longest + 1)
        if enough > MAX_SIZE:
            fix = "the image is too narrow for the network; crop it"
        elif knob == "--size":
            fix = f"use --size {enough} or more"
        else:
            fix = f"use --style-scale {math.ceil(100 * enough / recipe.size) / 100:g} or more"
        raise ImageError(
            f"{what} ({img.width}x{img.height}) becomes {w}x{h} at {longest} px, but {deepest} needs at least "
            f"{need} px on each side: {fix}"
        )


def _blend_weights(recipe: Recipe, n: int) -> list[float]:
    if recipe.style_weights is None:
        return [1.0] * n
    if len(recipe.style_weights) != n:
        raise RecipeError(f"style_weights has {len(recipe.style_weights)} values for {n} style images")
    return list(recipe.style_weights)


def build_targets(
    net: VGG19, prep: Prepared, recipe: Recipe, longest: int, device, autocast, content: bool = True
) -> Objective:
    """Content activations and blended style Grams for one scale, computed once.

    ``content=False`` leaves the content targets empty, for ``run_scale`` to take
    from the first step's forward pass when the start image is the content image
    (the same activations: one forward pass less before the first step).
    """
    content_layers = recipe.resolved_content_layers
    style_layers = recipe.resolved_style_layers
    style_longest = max(16, round(longest * recipe.style_scale))
    with torch.no_grad(), autocast():
        content_targets = {}
        if content:
            content_targets = net(images.to_tensor(images.fit(prep.content, longest)).to(device), content_layers)
        per_item = []
        for item in prep.styles:
            grams = {layer: [] for layer in style_layers}
            for style in item:
                feats = net(images.to_tensor(images.fit(style, style_longest)).to(device), style_layers)
                for layer in style_layers:
                    grams[layer].append(gram_matrix(feats[layer], recipe.normalization))
            weights = _blend_weights(recipe, len(item))
            per_item.append({layer: blend_grams(g, weights) for layer, g in grams.items()})
    style_targets = {layer: torch.cat([item[layer] for item in per_item]) for layer in style_layers}
    return Objective(
        {k: v.float() for k, v in content_targets.items()},
        style_targets,
        content_layer_weights=recipe.content_layer_weights or [1.0] * len(content_layers),
        style_layer_weights=recipe.style_layer_weights or [1.0] * len(style_layers),
        content_weight=recipe.content_weight,
        style_weight=recipe.style_weight,
        tv_weight=recipe.tv_weight,
        normalization=recipe.normalization,
        content_layers=content_layers,
    )


def init_image(prep: Prepared, recipe: Recipe, size: tuple[int, int], batch: int, device) -> torch.Tensor:
    """The start image for every item of the batch at the coarsest scale, (B, 3, H, W)."""
    w, h = size
    if prep.init is not None:
        x = images.to_tensor(prep.init.resize((w, h), images.RESAMPLE)).repeat(batch, 1, 1, 1)
    elif recipe.init == "content":
        x = images.to_tensor(prep.content.resize((w, h), images.RESAMPLE)).repeat(batch, 1, 1, 1)
    elif recipe.init == "style":
        x = torch.cat([images.to_tensor(item[0].resize((w, h), images.RESAMPLE)) for item in prep.styles])
    else:
        # Mid-grey with faint noise (uniform, +-NOISE_AMPLITUDE), as Gatys-style code starts from
        # near-zero noise: full-range noise leaves a grain that a default-length run never removes.
        gen = torch.Generator().manual_seed(recipe.seed)
        noise = torch.rand((1, 3, h, w), generator=gen)
        x = (0.5 + NOISE_AMPLITUDE * (2 * noise - 1)).repeat(batch, 1, 1, 1)
    return x.to(device)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def _divergence_message(recipe: Recipe, step: int, what: str) -> str:
    lr = recipe.lr if recipe.lr is not None else optimizers.DEFAULT_LR[recipe.optimizer]
    return (
        f"diverged at step {step}: the {what} became NaN/inf, most likely a step too large for "
        f"these weights; lower --lr (now {lr:g}) or --style-weight (now {recipe.style_weight:g}), "
        f"or try --optimizer lbfgs. The last good image was kept."
    )


class _Run:
    """State shared across the scales of one (batched) run."""

    def __init__(self, recipe, batch, total, callbacks, stop, device):
        self.recipe = recipe
        self.total = total
        self.batch = batch
        self.callbacks = list(callbacks)
        self.stop = stop
        self.device = device
        self.histories: list[list[dict]] = [[] for _ in range(batch)]
        self.status = ["done"] * batch
        self.messages = [""] * batch
        self.active = torch.ones(batch, dtype=torch.bool, device=device)
        self.diverged = torch.zeros(batch, dtype=torch.bool, device=device)
        self.step = 0
        self.t0 = time.perf_counter()

    def emit(self, event) -> None:
        for cb in self.callbacks:
            if cb(event) is True:
                self.cancel("stopped by a callback")

    def emit_ending(self, event) -> None:
        """An ending goes to every callback even when one of them raises."""
        for cb in self.callbacks:
            try:
                cb(event)
            except Exception:  # noqa: BLE001 - the run is already failing; the first error is the one to report
                pass

    def cancel(self, why: str) -> None:
        for i in range(self.batch):
            if self.status[i] == "done":
                self.status[i], self.messages[i] = "cancelled", why
        self.active[:] = False

    def stopped(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.cancel("cancelled")
        return not bool(self.active.any())


def run_scale(
    run: _Run, net: VGG19, objective: Objective, x: torch.Tensor, steps: int, scale: int, autocast, finish
) -> torch.Tensor:
    """``steps`` optimisation steps on ``x``; returns the last good image of every item.

    An objective without content targets takes them from the first forward pass:
    only valid when ``x`` is the content image (see ``build_targets``).
    """
    recipe = run.recipe
    opt = optimizers.make(recipe.optimizer, recipe.lr)
    last_good = x.detach().clone()
    x = x.detach().clone().requires_grad_(True)
    for _ in range(steps):
        if run.stopped():
            break
        tap = objective.tap()
        with autocast():
            feats = net(x, objective.layers, tap=tap)
        if objective.content_layers and not objective.content_targets:
            objective.take_content_targets(feats)
        terms = objective(feats, x, tap.grams)
        grad = torch.autograd.grad(terms["total"].sum(), x)[0]
        run.step += 1
        values = torch.stack([terms[k].detach().float() for k in ("content", "style", "tv", "total")], 1).cpu()
        finite_grad = torch.isfinite(grad).flatten(1).all(1)
        finite_loss = torch.isfinite(values).all(1).to(run.device) & finite_grad
        for i in torch.nonzero(run.active & ~finite_loss).flatten().tolist():
            _fail(run, i, _divergence_message(recipe, run.step, "loss"))
        # The common case (every item active, every gradient finite) skips the masking
        # copies: each is a pass over the batch of images, a few ms a step at 512 px.
        with torch.no_grad():
            if bool(run.active.all()):
                last_good.copy_(x)
            else:
                last_good = torch.where(run.active.view(-1, 1, 1, 1), x, last_good)
            opt.step(x, grad if bool(finite_grad.all()) else torch.nan_to_num(grad, 0.0, 0.0, 0.0), run.active)
            x.clamp_(0.0, 1.0)  # projection onto the pixel range
            finite_img = torch.isfinite(x).flatten(1).all(1)
            for i in torch.nonzero(run.active & ~finite_img).flatten().tolist():
                _fail(run, i, _divergence_message(recipe, run.step, "image"))
            if bool(run.diverged.any()):
                x.copy_(torch.where(run.diverged.view(-1, 1, 1, 1), last_good, x))
        elapsed = time.perf_counter() - run.t0
        for i in range(run.batch):
            if run.status[i] == "done":
                row = dict(zip(("content", "style", "tv", "total"), values[i].tolist()))
                run.histories[i].append({"step": run.step, "elapsed": elapsed, **row})
                run.emit(Step(i, run.step, run.total, row, elapsed, scale))
        if recipe.save_every and run.step % recipe.save_every == 0 and run.step < run.total:
            _snapshots(run, x, finish)
    # Diverged items go back to their last good image; cancelled ones keep where they got to.
    return torch.where(run.diverged.view(-1, 1, 1, 1), last_good, x.detach())


def _as_stylelab_error(exc: BaseException) -> MemoryLimitError | None:
    """Running out of memory, said as a StylelabError (one line, exit 2); None for anything else."""
    out_of_memory = isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )
    if out_of_memory:
        return MemoryLimitError("out of memory during the run: lower --size (or --style-scale, --batch)")
    return None


def _fail(run: _Run, i: int, message: str) -> None:
    run.status[i], run.messages[i] = "diverged", message
    run.active[i] = False
    run.diverged[i] = True


def _snapshots(run: _Run, x: torch.Tensor, finish) -> None:
    for i in range(run.batch):
        if run.status[i] == "done":
            losses = (
                {k: v for k, v in run.histories[i][-1].items() if k not in ("step", "elapsed")}
                if run.histories[i]
                else {}
            )
            run.emit(Snapshot(i, run.step, finish(x[i : i + 1]), losses))


def stylize_batch(
    content,
    styles: Sequence[Sequence[Any]],
    recipe: Recipe,
    *,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    labels: Sequence[str] | None = None,
    init=None,
) -> list[Result]:
    """Optimise one image per entry of ``styles`` (each a list of style images).

    Images in one batch go through VGG19 together, but each follows the path it
    would follow alone: the losses are per image and the optimisers keep
    per-image state.
    """
    device = resolve_device(recipe.device)
    prep = prepare(content, styles, recipe, init)
    batch = len(prep.styles)
    labels = list(labels) if labels is not None else [""] * batch
    torch.manual_seed(recipe.seed)
    autocast = precision.autocast_factory(recipe.precision, device)
    layers = set(recipe.resolved_content_layers) | set(recipe.resolved_style_layers)
    net = build(layers, recipe.weights, recipe.pooling, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def finish(x: torch.Tensor) -> Image.Image:
        img = images.to_pil(x)
        if recipe.preserve_color == "luminance":
            img = color.recombine(img, prep.content_original)
        return img

    sizes = scale_sizes(recipe.size, recipe.scales)
    final = images.fit(prep.content, recipe.size).size
    run = _Run(recipe, batch, recipe.steps * len(sizes), callbacks, stop, device)
    for i in range(batch):
        run.emit(Started(i, recipe, run.total, final, str(device), labels[i]))
    x = None
    try:
        for scale, longest in enumerate(sizes):
            size = images.fit(prep.content, longest).size
            if x is None:
                x = init_image(prep, recipe, size, batch, device)
            else:
                x = F.interpolate(x, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
            # The first scale starting from the content image reads the content
            # targets off its first step (x == content there): one forward pass saved.
            starts_at_content = scale == 0 and prep.init is None and recipe.init == "content"
            objective = build_targets(net, prep, recipe, longest, device, autocast, content=not starts_at_content)
            if scale == 0 and recipe.save_every:
                _snapshots(run, x, finish)  # the start image, just before step 1 starts
            x = run_scale(run, net, objective, x, recipe.steps, scale, autocast, finish)
            if run.stopped():
                break
    except KeyboardInterrupt:
        run.cancel("interrupted")
    except BaseException as exc:
        # Every item still gets its ending, so sinks close their files and remove what they
        # began (a run folder's .partial); then the caller learns what went wrong.
        error = _as_stylelab_error(exc)
        for i in range(batch):
            run.emit_ending(Failed(i, len(run.histories[i]), str(error or exc).splitlines()[0], "error"))
        if error is not None:
            raise error from exc
        raise
    elapsed = time.perf_counter() - run.t0
    peak = _peak_memory(device)
    results = []
    for i in range(batch):
        img = images.with_alpha(finish(x[i : i + 1]), prep.alpha) if x is not None else None
        res = Result(
            img,
            recipe,
            run.histories[i],
            run.status[i],
            run.messages[i],
            elapsed,
            len(run.histories[i]),
            str(device),
            peak,
            labels[i],
        )
        results.append(res)
        if res.status == "done":
            if recipe.save_every:
                run.emit(Snapshot(i, run.step, img.convert("RGB"), res.losses))
            run.emit(Done(i, res))
        else:
            run.emit(Failed(i, res.steps, res.message, res.status, res))
    return results


def stylize_one(content, styles: Sequence[Any], recipe: Recipe, **kwargs) -> Result:
    """One content image, one or more (blended) style images, one result."""
    return stylize_batch(content, [list(styles)], recipe, **kwargs)[0]
