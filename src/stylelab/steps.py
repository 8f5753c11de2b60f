"""The optimisation steps of one batch: the state shared across scales, and the loop of one scale.

Each image of the batch follows the path it would follow alone (per-image
losses, per-image optimiser state) and can end on its own: diverged (its loss
or image went NaN/inf; it goes back to its last good image), cancelled (a
callback returned True, or the stop event), interrupted (Ctrl-C), or failed
with an error. ``BatchRun.emit`` is the one way events leave: a callback that
raises stops the run (its error is kept for the caller), and endings reach
every callback whatever the others do.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from . import optimizers
from . import tiled_step as tiled
from .events import Preview, Snapshot, Step, deliver, said_in_one_line
from .recipes import DEFAULT_LR, Recipe


class BatchRun:
    """State shared across the scales of one batch: statuses, histories, the step count, events."""

    def __init__(self, recipe: Recipe, items: Sequence[int], total: int, callbacks, stop, device, terms, preview=None):
        self.recipe = recipe
        self.items = list(items)  # the plan's item numbers, which events carry
        self.total = total
        self.batch = len(self.items)
        self.callbacks = list(callbacks)
        self.stop = stop
        self.device = device
        self.terms = tuple(terms)
        self.histories: list[list[dict]] = [[] for _ in range(self.batch)]
        self.status = ["done"] * self.batch
        self.messages = [""] * self.batch
        self.active = torch.ones(self.batch, dtype=torch.bool, device=device)
        self.diverged = torch.zeros(self.batch, dtype=torch.bool, device=device)
        self.step = 0
        self.sink_error: BaseException | None = None
        self.t0 = time.perf_counter()
        self.preview = preview  # seconds between Preview events; None: none
        self._previewed = self.t0

    def emit(self, event) -> None:
        stop, error = deliver(self.callbacks, event)
        if error is not None and self.sink_error is None:
            self.sink_error = error
            self.end_all("error", said_in_one_line(error))
        if stop:
            self.end_all("cancelled", "stopped by a callback")

    def emit_ending(self, event) -> None:
        """An ending goes to every callback even when one of them raises (the first error is kept)."""
        _, error = deliver(self.callbacks, event)
        self.sink_error = self.sink_error or error

    def end_all(self, status: str, why: str) -> None:
        """Every item still running ends with ``status`` (cancelled, interrupted, error)."""
        for i in range(self.batch):
            if self.status[i] == "done":
                self.status[i], self.messages[i] = status, why
        self.active[:] = False

    def stopped(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.end_all("cancelled", "cancelled")
        return not bool(self.active.any())

    def fail(self, i: int, message: str) -> None:
        self.status[i], self.messages[i] = "diverged", message
        self.active[i] = False
        self.diverged[i] = True

    def losses(self, i: int) -> dict[str, float]:
        last = self.histories[i][-1] if self.histories[i] else {}
        return {k: v for k, v in last.items() if k not in ("step", "elapsed")}

    def snapshots(self, x: torch.Tensor, finish) -> None:
        for i in range(self.batch):
            if self.status[i] == "done":
                self.emit(Snapshot(self.items[i], self.step, finish(x[i : i + 1], i), self.losses(i)))
        self._previewed = time.perf_counter()

    def maybe_preview(self, x: torch.Tensor, finish) -> None:
        """A Preview of every running item, if ``preview`` seconds have passed since the last picture."""
        if self.preview is None or time.perf_counter() - self._previewed < self.preview:
            return
        for i in range(self.batch):
            if self.status[i] == "done":
                self.emit(Preview(self.items[i], self.step, finish(x[i : i + 1].detach(), i)))
        self._previewed = time.perf_counter()


def divergence_message(recipe: Recipe, step: int, what: str) -> str:
    lr = recipe.lr if recipe.lr is not None else DEFAULT_LR[recipe.optimizer]
    other = "--optimizer lbfgs" if recipe.optimizer != "lbfgs" else "--optimizer adam with a small --lr"
    return (
        f"diverged at step {step}: the {what} became NaN/inf, most likely a step too large for "
        f"these weights; lower --lr (now {lr:g}) or --style-weight (now {recipe.style_weight:g}), "
        f"or try {other}. The last good image was kept."
    )


def run_scale(
    run: BatchRun,
    net,
    objective,
    x: torch.Tensor,
    steps: int,
    scale: int,
    autocast,
    finish,
    opt: optimizers.Optimizer | None = None,
    *,
    tiles=None,
    history: int | None = None,
) -> tuple[torch.Tensor, optimizers.Optimizer]:
    """``steps`` optimisation steps on ``x``; returns the last good image of every item and the
    optimiser, whose state the next scale takes over (``opt``: the optimiser to step with, the
    previous scale's as ``Optimizer.carried`` made it for this one; None: a fresh one).

    An objective without content targets takes them from the first forward pass:
    only valid when ``x`` is the content image (see ``targets.build_objective``).
    ``tiles``: a ``tiles.TilePlan`` for a print (one item): each step is
    ``tiled_step.tiled_step``, the same loss and gradient in a tile's memory.
    ``history``: L-BFGS's pairs (``optimizers.make``).
    """
    recipe = run.recipe
    if opt is None:
        # history: a print's bounded L-BFGS pairs (tiles.lbfgs_history); a carried optimiser keeps its own.
        opt = optimizers.make(recipe.optimizer, recipe.lr, history)
    last_good = x.detach().clone()
    x = x.detach().clone().requires_grad_(tiles is None)
    terms = run.terms
    whole = None if tiles is None else tiled.TiledObjective.from_objective(objective)
    grad = None
    for _ in range(steps):
        if run.stopped():
            break
        grad = None  # the last step's gradient goes before the next is built (a whole image, for a print)
        if whole is not None:
            values_t, grad = tiled.tiled_step(net, x, tiles, whole, autocast=autocast, generator=objective.generator)
        else:
            tap = objective.tap()
            with autocast():
                feats = net(x, objective.layers, tap=tap)
            if objective.content_layers and not objective.content_targets:
                objective.take_content_targets(feats)
            values_t = objective(feats, x, tap.grams if tap is not None else None)
            grad = torch.autograd.grad(values_t["total"].sum(), x)[0]
            feats = tap = None
        run.step += 1
        values = torch.stack([values_t[k].detach().float() for k in terms], 1).cpu()
        finite_grad = torch.isfinite(grad).flatten(1).all(1)
        finite_loss = torch.isfinite(values).all(1).to(run.device) & finite_grad
        for i in torch.nonzero(run.active & ~finite_loss).flatten().tolist():
            run.fail(i, divergence_message(recipe, run.step, "loss"))
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
                run.fail(i, divergence_message(recipe, run.step, "image"))
            if bool(run.diverged.any()):
                x.copy_(torch.where(run.diverged.view(-1, 1, 1, 1), last_good, x))
        elapsed = time.perf_counter() - run.t0
        for i in range(run.batch):
            if run.status[i] == "done":
                row = dict(zip(terms, values[i].tolist()))
                run.histories[i].append({"step": run.step, "elapsed": elapsed, **row})
                run.emit(Step(run.items[i], run.step, run.total, row, elapsed, scale))
        if recipe.save_every and run.step % recipe.save_every == 0 and run.step < run.total:
            run.snapshots(x, finish)
        else:
            run.maybe_preview(x, finish)
    # Diverged items go back to their last good image; cancelled ones keep where they got to.
    return torch.where(run.diverged.view(-1, 1, 1, 1), last_good, x.detach()), opt
