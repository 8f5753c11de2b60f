"""The Engine: one feature network, made once and reused, running plans of tasks.

An Engine is made for a device, a weight source, a pooling and a precision
(the recipe fields that decide the network), with the network itself
injectable (features.py; the real VGG19 by default, built on first use and
rebuilt only when a recipe reads deeper layers). ``prepare(tasks, recipe)``
decodes and checks the inputs into a Plan (plan.py) and ``run(plan, sinks)``
optimises it batch by batch, sending events to the sinks and returning one
Result per task. The studio's jobs, a sweep worker's batches, a video's frames
and a print's tiles all go through one Engine, so the network and the style
targets (targets.StyleCache) are built once.

Every item gets exactly one ending, ``Done`` or ``Failed`` (diverged,
cancelled, interrupted, error), whatever happens: an exception in a sink, out
of memory, Ctrl-C. ``stylize_batch`` and ``stylize_one`` are the conveniences
that make an engine and tasks for one call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from . import color, features, images, precision
from .engines import NETWORK_FIELDS, EngineCache, Result, make_engine
from .errors import MemoryLimitError, RecipeError
from .events import Callback, Done, Failed, Snapshot, Started, deliver
from .layers import depth
from .memory import PeakMeter
from .plan import Item, Plan, fit_to, prepare, scale_sizes
from .recipes import DEVICE, Recipe
from .steps import BatchRun, run_scale
from .targets import StyleCache, build_objective
from .task import Task

NOISE_AMPLITUDE = 0.05  # of the noise start image, in pixel units (0..1)
SNAPSHOT_SIDE = 1024  # a print's snapshots (tiled runs): the whole image, its longest side this many pixels

__all__ = [
    "Engine",
    "EngineCache",
    "Result",
    "make_engine",
    "resolve_device",
    "scale_sizes",
    "stylize_batch",
    "stylize_one",
]


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


class Engine:
    """A feature network on a device, reused by every run it is given (see the module's docstring)."""

    def __init__(
        self,
        device: str = "auto",
        weights: str = "caffe",
        pooling: str = "max",
        precision: str = "auto",
        features: features.FeatureNetwork | None = None,
    ):
        self.device = resolve_device(device)
        self.config = {"device": device, "weights": weights, "pooling": pooling, "precision": precision}
        self.autocast = _autocast(precision, self.device)
        self.precision = _precision_name(precision, self.device)
        self._given = features
        self._net = None
        self._depth = -1
        self.builds = 0  # how many times the network was built (measured: once per engine)
        self.build_seconds = 0.0
        self.styles = StyleCache()
        self._lock = threading.Lock()
        self.fast = None  # the FastEngine painting init="fast" start images (fast/engine.py), made on first use

    @classmethod
    def for_recipe(cls, recipe: Recipe, **kwargs) -> Engine:
        return cls(**{name: getattr(recipe, name) for name in NETWORK_FIELDS}, **kwargs)

    def accepts(self, recipe: Recipe) -> bool:
        """Whether ``recipe`` runs on this engine's network (device, weights, pooling, precision)."""
        return all(getattr(recipe, name) == self.config[name] for name in NETWORK_FIELDS)

    def network(self, layers) -> Any:
        """The feature network, cut after the deepest of ``layers``: built on first use, and again
        only for a deeper cut."""
        if self._given is not None:
            return self._given
        need = depth(set(layers))
        if self._net is None or need > self._depth:
            t0 = time.perf_counter()
            deepest = max(need, self._depth)
            from .layers import LAYERS

            cut = {layer.name for layer in LAYERS if layer.index == deepest}
            self._net = features.build(cut, self.config["weights"], self.config["pooling"], self.device)
            self._depth = deepest
            self.builds += 1
            self.build_seconds += time.perf_counter() - t0
        return self._net

    def fast_engine(self):
        """The fast engine that paints ``init = "fast"`` start images: made on first use, then kept."""
        if self.fast is None:
            from .fast.engine import FastEngine

            self.fast = FastEngine()
        return self.fast

    def prepare(self, tasks: Sequence[Task], recipe: Recipe, *, memory_free: int | None = None) -> Plan:
        """Decode and check ``tasks`` for ``recipe`` (see plan.py); nothing is written, no event sent."""
        if not self.accepts(recipe):
            wanted = {name: getattr(recipe, name) for name in NETWORK_FIELDS}
            raise RecipeError(f"this engine runs {self.config}, the recipe asks for {wanted}")
        plan = prepare(tasks, recipe, memory_free=memory_free)
        if recipe.init == "fast":  # the model is loaded and the start size checked now, like the network
            self.fast_engine().check(plan, scale_sizes(recipe.size, recipe.scales)[0], memory_free)
        # The network is built (and its weights checked) now, before any event: a bad weights
        # file is refused like a bad image.
        self.network(set(recipe.network_layers))
        return plan

    def run(
        self,
        plan: Plan,
        sinks: Sequence[Callback] = (),
        stop: threading.Event | None = None,
        preview: float | None = None,
    ) -> list[Result]:
        """Optimise every item of ``plan``; events carry the item's place in the plan.

        ``preview``: also send a Preview event (the image so far) every this many seconds,
        for a live view when the recipe saves no snapshots.
        """
        results: list[Result | None] = [None] * len(plan.items)
        with self._lock:  # one run at a time on one network (the studio's jobs, a sweep's batches)
            for batch in plan.batches:
                for i, res in zip(batch, self._run_batch(plan, batch, sinks, stop, preview)):
                    results[i] = res
                if stop is not None and stop.is_set():
                    stop_rest = [i for b in plan.batches for i in b if results[i] is None]
                    for i in stop_rest:
                        results[i] = self._never_started(plan, i, sinks)
                    break
        return results

    def _never_started(self, plan: Plan, i: int, sinks) -> Result:
        """An item whose batch never started (the run was stopped before it): cancelled, and said so."""
        why = "cancelled before it started"
        res = Result(None, plan.recipe, status="cancelled", message=why, task=plan.items[i].task)
        deliver(sinks, Failed(i, 0, why, "cancelled", res))  # to every sink; what one raises changes nothing now
        return res

    def _run_batch(self, plan: Plan, batch: list[int], sinks, stop, preview) -> list[Result]:
        recipe = plan.recipe
        items = [plan.items[i] for i in batch]
        net = self.network(set(recipe.network_layers))
        torch.manual_seed(recipe.seed)
        generator = torch.Generator().manual_seed(recipe.seed) if recipe.style_loss == "swd" else None
        sizes = scale_sizes(recipe.size, recipe.scales)
        tiling = plan.tiling(batch)  # a print: its scales tiled where they do not fit whole
        terms = _terms(items)
        steps = recipe.steps_per_scale()  # one count per size, coarse to fine
        run = BatchRun(recipe, batch, sum(steps), sinks, stop, self.device, terms, preview)
        meter = PeakMeter(self.device)
        meter.start()

        def finish(x: torch.Tensor, i: int) -> Image.Image:
            img = images.to_pil(x)
            if recipe.preserve_color == "luminance":
                img = color.recombine(img, items[i].content_original)
            return img

        shown = finish if tiling is None else lambda x, i: _thumbnail(finish(x, i))  # a print's snapshots
        for i, it in enumerate(items):
            run.emit(Started(batch[i], recipe, run.total, it.size, str(self.device), plan.labels[batch[i]], terms))
        x = opt = None
        try:
            for scale, longest in enumerate(sizes):
                if run.stopped():
                    break
                size = images.fitted_size(items[0].content.size, longest)
                if x is None:
                    x = init_image(
                        items, recipe, size, self.device, self.fast_engine() if recipe.init == "fast" else None
                    )
                else:
                    x = F.interpolate(x, size=(size[1], size[0]), mode="bicubic", align_corners=False).clamp(0, 1)
                # The coarse scales of a print run whole where they fit, the fine ones tiled.
                tiles = None if tiling is None else tiling.plan(recipe, size[1], size[0])
                # The first scale starting from the content images reads the content targets
                # off its first step (x == content there): one forward pass saved. Not tiled:
                # no tile's pass sees the whole image.
                at_content = scale == 0 and recipe.init == "content" and all(it.init is None for it in items)
                at_content = at_content and tiles is None
                objective = build_objective(
                    net,
                    items,
                    recipe,
                    longest,
                    self.device,
                    self.autocast,
                    self.styles,
                    (recipe.style_loss, recipe.normalization, recipe.resolved_style_layers, self.precision),
                    content=not at_content,
                    generator=generator,
                    tiles=tiles,
                    style_tile=None if tiling is None else tiling.style_tile,
                )
                if scale == 0 and recipe.save_every:
                    run.snapshots(x, shown)  # the start image, just before step 1 starts
                # Each scale takes over the optimiser's state from the one before (optimizers.carried),
                # made here so that the old scale's vectors go before this one's exist (a print's memory).
                opt = None if opt is None else opt.carried(tuple(x.shape))
                history = None if tiling is None else tiling.history
                x, opt = run_scale(
                    run, net, objective, x, steps[scale], scale, self.autocast, shown, opt, tiles=tiles, history=history
                )
                objective = None
        except KeyboardInterrupt:
            run.end_all("interrupted", "interrupted")
        except BaseException as exc:
            error = _as_stylelab_error(exc)
            run.end_all("error", str(error or exc).splitlines()[0] if str(error or exc) else type(exc).__name__)
            for i in range(len(items)):
                run.emit_ending(Failed(batch[i], len(run.histories[i]), run.messages[i], "error"))
            if error is not None:
                raise error from exc
            raise
        results = self._endings(run, items, x, finish, meter.stop(), recipe, plan, tiling)
        if run.sink_error is not None:
            raise run.sink_error
        return results

    def _endings(self, run: BatchRun, items: list[Item], x, finish, peak: int, recipe: Recipe, plan: Plan, tiling):
        elapsed = time.perf_counter() - run.t0
        results = []
        for i, it in enumerate(items):
            rgb = finish(x[i : i + 1], i) if x is not None else None
            img = images.with_alpha(rgb, it.alpha) if rgb is not None else None
            res = Result(
                img,
                recipe,
                run.histories[i],
                run.status[i],
                run.messages[i],
                elapsed,
                len(run.histories[i]),
                str(self.device),
                peak,
                plan.labels[run.items[i]],
                it.task,
                self.precision,
                run.terms,
            )
            results.append(res)
            if res.status == "done":
                if recipe.save_every and run.sink_error is None:
                    shot = rgb if tiling is None else _thumbnail(rgb)  # the picture without its alpha
                    run.emit(Snapshot(run.items[i], run.step, shot, res.losses))
                if run.status[i] == "done":
                    run.emit_ending(Done(run.items[i], res))
                    continue
                res.status, res.message = run.status[i], run.messages[i]
            run.emit_ending(Failed(run.items[i], res.steps, res.message, res.status, res))
        return results


def _terms(items: list[Item]) -> tuple[str, ...]:
    from .terms import term_names

    return term_names(any(it.task.temporal is not None for it in items))


def _thumbnail(img: Image.Image) -> Image.Image:
    """A print's snapshot: the whole image, its longest side at most ``SNAPSHOT_SIDE`` (the result stays full size)."""
    fits = max(img.size) <= SNAPSHOT_SIDE
    return img if fits else img.resize(images.fitted_size(img.size, SNAPSHOT_SIDE), images.RESAMPLE)


def _autocast(precision_name: str, device: torch.device):
    return precision.autocast_factory(precision_name, device)


def _precision_name(precision_name: str, device: torch.device) -> str:
    dtype = precision.conv_dtype(precision_name, device) if device.type in ("cpu", "cuda") else None
    return "bf16" if dtype == torch.bfloat16 else "fp16" if dtype == torch.float16 else "fp32"


def init_image(items: list[Item], recipe: Recipe, size: tuple[int, int], device, fast=None) -> torch.Tensor:
    """The start image of every item at the coarsest scale, (B, 3, H, W).

    A start image or a style image of another shape is cropped to the output's
    proportions (centred) before it is resized, never stretched. ``init = "fast"``:
    the fast engine ``fast`` paints the item at this size (fast/engine.py: start_image).
    """
    w, h = size
    parts = []
    for it in items:
        if it.init is not None:
            parts.append(images.to_tensor(fit_to(it.init, (w, h))))
        elif recipe.init == "content":
            parts.append(images.to_tensor(it.content.resize((w, h), images.RESAMPLE)))
        elif recipe.init == "fast":
            parts.append(images.to_tensor(fast.start_image(it, recipe, (w, h))))
        elif recipe.init == "style":
            parts.append(images.to_tensor(fit_to(it.sets[0].images[0], (w, h))))
        else:
            # Mid-grey with faint noise (uniform, +-NOISE_AMPLITUDE), as Gatys-style code starts from
            # near-zero noise: full-range noise leaves a grain that a default-length run never removes.
            gen = torch.Generator().manual_seed(recipe.seed)
            noise = torch.rand((1, 3, h, w), generator=gen)
            parts.append(0.5 + NOISE_AMPLITUDE * (2 * noise - 1))
    return torch.cat(parts).to(device)


def _as_stylelab_error(exc: BaseException) -> MemoryLimitError | None:
    """Running out of memory, said as a StylelabError (one line, exit 2); None for anything else."""
    out_of_memory = isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )
    if out_of_memory:
        return MemoryLimitError("out of memory during the run: lower --size (or --style-scale, --batch)")
    return None


# ---------------------------------------------------------------- conveniences


def stylize_batch(
    content,
    styles: Sequence[Sequence[Any]],
    recipe: Recipe,
    *,
    callbacks: Sequence[Callback] = (),
    stop: threading.Event | None = None,
    labels: Sequence[str] | None = None,
    init=None,
    weights: Sequence[float] | None = None,
    engine: Engine | None = None,
) -> list[Result]:
    """Optimise one image per entry of ``styles`` (each a list of style images, blended with ``weights``).

    Images in one batch go through the network together, but each follows the
    path it would follow alone: the losses are per image and the optimisers keep
    per-image state.
    """
    labels = list(labels) if labels is not None else [""] * len(styles)
    tasks = [
        Task.of(content, list(item), weights=weights, init=init, label=label) for item, label in zip(styles, labels)
    ]
    engine = engine or make_engine(recipe)
    return engine.run(engine.prepare(tasks, recipe), callbacks, stop)


def stylize_one(content, styles: Sequence[Any], recipe: Recipe, **kwargs) -> Result:
    """One content image, one or more (blended) style images, one result."""
    return stylize_batch(content, [list(styles)], recipe, **kwargs)[0]
