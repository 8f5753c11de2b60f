"""The fast engine: the feed-forward model (model.py) behind the optimiser's Engine protocol.

``make_engine(recipe)`` returns a ``FastEngine`` when ``recipe.engine == "fast"``;
it is used exactly as ``engine.Engine`` is: ``prepare(tasks, recipe)`` decodes and
checks everything (the only place a run is refused), ``run(plan, sinks)`` paints
each item and sends ``Started`` and exactly one ending (``Done`` or ``Failed``) per
item. So the CLI's ``-o`` PNG and ``--from``, run folders, sweeps, Ray workers and
the studio all work unchanged.

What a fast run is:

* one pass of the networks, no steps: ``Started.terms`` is empty, no ``Step`` is
  sent, the Result has ``steps = 0`` and an empty history (metrics.csv holds only
  its header). A sweep still measures the result with the yardstick (metrics.py).
* the recipe's ``size``, ``strength`` and ``preserve_color`` apply, with a task's
  style sets and blend weights (a set's style vectors are blended with its
  weights). Everything that steers the optimiser (steps, optimizer, weights of the
  terms, layers, init, seed, scales, save_every, precision, device) is ignored:
  the model runs in float32 on the CPU (onnxruntime) whatever ``device`` says.
* regions (several style sets with masks): each set's style is painted over the
  whole content and the pictures are composited by the masks, resized to the
  output (soft edges stay soft; where masks overlap they are normalised; what no
  mask covers keeps the content, as an optimiser run keeps it close to the
  content). An approximation: the optimiser matches each region's statistics
  inside the region, the model paints the whole picture in each style first.
* style-image masks (the part of a painting to take the style from) are refused
  with one line: the style predictor reads the whole (centre-cropped) image.

``start_image`` is the picture an optimiser run with ``init = "fast"`` starts
from (engine.init_image); ``preview`` is the one-call form for the studio.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .. import color, images, memory
from ..engines import Result
from ..errors import ImageError, MemoryLimitError, RecipeError, StylelabError
from ..events import Callback, Done, Failed, Started, deliver, said_in_one_line
from ..memory import CPU
from ..plan import Item, Plan, PreparedSet, prepare
from ..recipes import Recipe
from ..task import Task
from . import files
from . import model as fast_model

# Peak memory of one picture, measured on this project's CPU (onnxruntime 1.x, the
# transformer at 512x384, 1024x768 and 2048x1536): the process's resident set grew by
# 51, 186 and 753 MiB over the loaded model, 248-262 bytes per output pixel (about two
# of the 32-channel float32 activations at full resolution alive at once).
BYTES_PER_PIXEL = 270
PROCESS_BYTES = 150 * 2**20  # onnxruntime, both sessions, Python and the decoded inputs
VECTOR_CACHE = 64  # blended style vectors kept per engine (the studio repaints with one style often)
PRECISION = "fp32"  # onnxruntime's CPU provider runs the model in float32

__all__ = ["FastEngine", "preview"]


class FastEngine:
    """The fast model on the CPU, loaded once (on first ``prepare``) and reused by every run it is given.

    Args:
        threads: onnxruntime intra-op threads (None: its default, one per physical core).
        model: a loaded ``FastModel`` to use (tests, or one shared with other code).
        folder, package, runtime: where the model comes from (see ``FastModel``).

    Attributes the callers read, as on ``engine.Engine``: ``device`` (the CPU), ``precision``
    (fp32), ``config``, ``builds`` (how many times the model was loaded: once) and
    ``build_seconds``.
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        model: fast_model.FastModel | None = None,
        folder: str | Path | None = None,
        package: str = files.PACKAGE,
        runtime: str = files.RUNTIME,
    ):
        self.device = CPU
        self.precision = PRECISION
        self.config = {"engine": "fast", "threads": threads}
        self._model = model
        self._model_kwargs = {"threads": threads, "folder": folder, "package": package, "runtime": runtime}
        self.builds = 0 if model is None else 1
        self.build_seconds = 0.0
        self._vectors: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_recipe(cls, recipe: Recipe, **kwargs) -> FastEngine:
        """The engine for a fast recipe. Keyword arguments meant for the optimiser's Engine
        (``features``: its network) are dropped, so one EngineCache can make both kinds."""
        kwargs.pop("features", None)
        return cls(**kwargs)

    def accepts(self, recipe: Recipe) -> bool:
        """Whether ``recipe`` runs on this engine: any fast recipe (the model has no settings)."""
        return recipe.engine == "fast"

    def model(self) -> fast_model.FastModel:
        """The loaded model, loaded on first use. Raises WeightsError with the install hint."""
        if self._model is None:
            t0 = time.perf_counter()
            self._model = fast_model.FastModel(**self._model_kwargs)
            self.builds += 1
            self.build_seconds += time.perf_counter() - t0
        return self._model

    # ------------------------------------------------------------ planning

    def prepare(self, tasks: Sequence[Task], recipe: Recipe, *, memory_free: int | None = None) -> Plan:
        """Decode and check ``tasks`` for the fast model; nothing is written, no event sent.

        Every input is decoded as for any run (plan.py, one-line errors), then checked for
        this model instead of VGG19: the output size, the shorter side, style-image masks,
        and the memory one picture takes against what is free.
        """
        if not self.accepts(recipe):
            raise RecipeError(f"this engine runs the fast model; the recipe asks for engine {recipe.engine!r}")
        self.model()  # loaded (and its files checked) now: a missing extra is refused like a bad image
        plan = prepare(tasks, recipe, memory_free=memory_free, network=False)
        plan.estimate = self.check(plan, recipe.size, memory_free)
        return plan

    def check(self, plan: Plan, longest: int, memory_free: int | None = None) -> memory.Estimate:
        """Refuse (one line) what the model cannot paint at ``longest`` px; the memory the largest
        picture needs otherwise. Also used by ``Engine.prepare`` for ``init = "fast"``."""
        if longest > fast_model.MAX_SIZE:
            raise RecipeError(
                f"the fast engine paints at most {fast_model.MAX_SIZE} px (--size {longest}): lower --size"
            )
        for n, it in enumerate(plan.items):
            where = f" of task {n + 1}" if len(plan.items) > 1 else ""
            if any(s.image_masks is not None for s in it.sets):
                raise ImageError(
                    f"style-image masks{where}: the fast model reads the whole style image; crop the style "
                    "image instead, or leave the model out (--engine optimise without --init fast)"
                )
            w, h = images.fitted_size(it.content.size, longest)
            if min(w, h) < fast_model.MIN_SIDE:
                c = it.content
                enough = math.ceil(fast_model.MIN_SIDE * max(c.size) / min(c.size))
                fix = f"use --size {enough} or more" if enough <= fast_model.MAX_SIZE else "crop it"
                raise ImageError(
                    f"the content{where} ({c.width}x{c.height}) becomes {w}x{h} at {longest} px, but the fast "
                    f"model needs {fast_model.MIN_SIDE} px on each side: {fix}"
                )
        need = _estimate(plan, longest)
        free = memory.available_memory("cpu") if memory_free is None else memory_free
        budget = int(free * memory.USABLE_SHARE)
        if need.total > budget:
            lo, hi = fast_model.MIN_SIDE, longest  # the estimate grows with the size: bisect
            if _estimate(plan, lo).total > budget:
                hi = lo
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _estimate(plan, mid).total <= budget else (lo, mid)
            hint = f"--size {lo} fits" if lo < hi else "no size fits"
            raise MemoryLimitError(
                f"this fast run needs about {need.total / 2**30:.1f} GiB at --size {longest}, and "
                f"{free / 2**30:.1f} GiB is free: {hint}"
            )
        return need

    # ------------------------------------------------------------ painting

    def _vector(self, s: PreparedSet, model: fast_model.FastModel) -> np.ndarray:
        """A style set's blended vector, cached by the set's pixels and weights (``PreparedSet.key``)."""
        key = (s.key, tuple(s.weights))
        if key in self._vectors:
            self._vectors.move_to_end(key)
            return self._vectors[key]
        vector = model.blend([model.style_vector(img) for img in s.images], s.weights)
        self._vectors[key] = vector
        while len(self._vectors) > VECTOR_CACHE:
            self._vectors.popitem(last=False)
        return vector

    def start_image(self, item: Item, recipe: Recipe, size: tuple[int, int] | None = None) -> Image.Image:
        """``item`` painted as the networks see it (grey under luminance preservation; no colour put
        back, no alpha), ``size`` (width, height; default: the item's output size).

        This is the fast run's picture before ``finish``, and the optimiser's start image for
        ``init = "fast"``: that run's colour handling and alpha come after its steps.
        """
        model = self.model()
        size = tuple(size) if size is not None else item.size
        longest = max(size)
        pictures = [model.stylize(item.content, self._vector(s, model), longest, recipe.strength) for s in item.sets]
        pictures = [p if p.size == size else p.resize(size, images.RESAMPLE) for p in pictures]
        if not any(s.mask is not None for s in item.sets):
            return pictures[0]
        return _composite(pictures, [s.mask for s in item.sets], item.content, size)

    def finish(self, item: Item, picture: Image.Image, recipe: Recipe) -> Image.Image:
        """The painted picture as the run's result: the content's colours back (luminance), its alpha."""
        if recipe.preserve_color == "luminance":
            picture = color.recombine(picture, item.content_original)
        return images.with_alpha(picture, item.alpha)

    def run(
        self,
        plan: Plan,
        sinks: Sequence[Callback] = (),
        stop: threading.Event | None = None,
        preview: float | None = None,
    ) -> list[Result]:
        """Paint every item of ``plan``; events carry the item's place in the plan.

        ``preview`` is accepted for the protocol and unused: there is nothing between the
        start and the picture to show. ``stop`` set before an item starts cancels it and
        those after it; a callback returning True on ``Started`` cancels that item.
        """
        results: list[Result | None] = [None] * len(plan.items)
        with self._lock:  # one run at a time (the vector cache is shared)
            for i in range(len(plan.items)):
                if stop is not None and stop.is_set():
                    results[i] = self._never_started(plan, i, sinks, "cancelled", "cancelled before it started")
                    continue
                results[i] = self._run_item(plan, i, sinks, stop)
                if results[i].status == "interrupted":  # Ctrl-C ends the whole run
                    for j in range(i + 1, len(plan.items)):
                        results[j] = self._never_started(plan, j, sinks, "interrupted", "interrupted before it started")
                    break
        return results

    def _never_started(self, plan: Plan, i: int, sinks, kind: str, why: str) -> Result:
        res = Result(None, plan.recipe, status=kind, message=why, task=plan.items[i].task, precision=PRECISION)
        deliver(sinks, Failed(i, 0, why, kind, res))  # to every sink; what one raises changes nothing now
        return res

    def _run_item(self, plan: Plan, i: int, sinks, stop) -> Result:
        recipe, item = plan.recipe, plan.items[i]
        label = plan.labels[i] if i < len(plan.labels) else ""
        out = _Emitter(sinks)
        meter = memory.PeakMeter(self.device)
        meter.start()
        t0 = time.perf_counter()
        out.emit(Started(i, recipe, 0, item.size, str(self.device), label, ()))
        image = None
        if out.status == "done" and stop is not None and stop.is_set():
            out.end("cancelled", "cancelled")
        if out.status == "done":
            try:
                image = self.finish(item, self.start_image(item, recipe), recipe)
            except KeyboardInterrupt:
                out.end("interrupted", "interrupted")
            except BaseException as exc:
                error = _as_stylelab_error(exc)
                why = str(error or exc).splitlines()[0] if str(error or exc) else type(exc).__name__
                out.end("error", why)
                out.ending(Failed(i, 0, why, "error"))
                if error is not None and error is not exc:
                    raise error from exc
                raise
        res = Result(
            image,
            recipe,
            [],
            out.status,
            out.message,
            time.perf_counter() - t0,
            0,
            str(self.device),
            meter.stop(),
            label,
            item.task,
            PRECISION,
            (),
        )
        if res.status == "done":
            out.ending(Done(i, res))
        else:
            out.ending(Failed(i, 0, res.message, res.status, res))
        if out.sink_error is not None:
            raise out.sink_error
        return res


def _estimate(plan: Plan, longest: int) -> memory.Estimate:
    """The memory the plan's largest picture takes at ``longest`` px (regions: one picture per set)."""
    pixels = [math.prod(images.fitted_size(it.content.size, longest)) * len(it.sets) for it in plan.items]
    return memory.Estimate(steps=max(pixels) * BYTES_PER_PIXEL, styles=0, process=PROCESS_BYTES)


class _Emitter:
    """Events to the sinks, as steps.BatchRun sends them for one item: a sink that raises ends the
    item as an error (its exception kept for the caller), one returning True cancels it, and an
    ending reaches every sink whatever the others do."""

    def __init__(self, sinks: Sequence[Callback]):
        self.sinks = list(sinks)
        self.status, self.message = "done", ""
        self.sink_error: BaseException | None = None

    def end(self, status: str, why: str) -> None:
        if self.status == "done":
            self.status, self.message = status, why

    def emit(self, event) -> None:
        stop, error = deliver(self.sinks, event)
        if error is not None and self.sink_error is None:
            self.sink_error = error
            self.end("error", said_in_one_line(error))
        if stop:
            self.end("cancelled", "stopped by a callback")

    def ending(self, event) -> None:
        _, error = deliver(self.sinks, event)
        self.sink_error = self.sink_error or error


def _composite(pictures: list[Image.Image], masks: list, content: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Each region's picture where its mask is white; the content where no mask is (see the module's docstring)."""
    w, h = size
    acc = np.zeros((h, w, 3))
    cover = np.zeros((h, w, 1))
    for picture, mask in zip(pictures, masks):
        m = mask[0, 0].detach().cpu().numpy().astype(np.float32)
        m = np.asarray(Image.fromarray(m, "F").resize((w, h), Image.Resampling.BILINEAR), dtype=np.float64)
        m = np.clip(m, 0.0, 1.0)[..., None]
        acc += m * np.asarray(picture.convert("RGB"), dtype=np.float64)
        cover += m
    over = np.maximum(cover, 1.0)
    base = np.asarray(content.convert("RGB").resize((w, h), images.RESAMPLE), dtype=np.float64)
    out = acc / over + (1.0 - cover / over) * base
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8), "RGB")


def _as_stylelab_error(exc: BaseException) -> StylelabError | None:
    """What to raise for ``exc``: itself if it is a StylelabError, running out of memory as a
    MemoryLimitError (onnxruntime says it as a RuntimeException), None for anything else."""
    if isinstance(exc, StylelabError):
        return exc
    text = str(exc)
    if isinstance(exc, MemoryError) or "Failed to allocate memory" in text or "bad_alloc" in text:
        return MemoryLimitError("out of memory during the fast run: lower --size")
    return None


def preview(
    content,
    styles,
    *,
    weights: Sequence[float] | None = None,
    recipe: Recipe | str = "default",
    engine: FastEngine | None = None,
    **overrides,
):
    """One fast picture in one call: what the studio's instant preview needs.

    ``content``, ``styles`` (one image or a list, blended with ``weights``): paths, bytes, PIL
    images or arrays. ``recipe`` (a Recipe or preset name) with ``overrides`` (size,
    strength, preserve_color, ...) gives the settings; its ``engine`` is set to fast.
    ``engine``: a FastEngine to reuse (its model and style vectors stay loaded).
    Returns the Result (``.image``, ``.elapsed``, ``.recipe``: ``RunRecord.from_result`` makes
    its record, as for any run). Raises StylelabError (one line) for anything it cannot paint.
    """
    from ..recipes import load_recipe

    resolved = load_recipe(recipe, **overrides).replace(engine="fast")
    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    engine = engine or FastEngine()
    plan = engine.prepare([Task.of(content, styles, weights=weights)], resolved)
    return engine.run(plan)[0]
