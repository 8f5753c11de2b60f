"""Optimisers over a batch of images, each image with its own state.

Written here rather than taken from ``torch.optim`` for two reasons: images
optimised together in one batch must follow exactly the path they would follow
alone (``torch.optim.LBFGS`` would mix their curvature into one history), and
each image can be frozen on its own when it diverges or is cancelled.

All three take one gradient evaluation per step, so a step costs the same for
every optimiser and ``steps`` means forward/backward passes everywhere.

Coarse-to-fine runs hand an optimiser's state to the next scale with
``carried(shape)``: what is meaningful at another image size is rescaled (the
losses are means over pixels, so gradients shrink and the inverse curvature
grows with the pixel count), what is not is dropped.
"""

from __future__ import annotations

import torch

from .recipes import DEFAULT_LR


def _flat_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image dot product of contiguous (B, N) tensors: (B,), one matrix product per image.

    No (B, N) temporary, one pass over each: 2-3x faster than ``(a * b).sum(1)``
    at 512 px, which counts in L-BFGS's two loops over 20 pairs at every step
    (the L-BFGS update went from 24 to 15 ms at 512 px, 13 to 7 ms at 256). One product
    per image (a batched product of B > 1 takes a slow path), so an image's
    dot is computed the same way alone and in a batch.
    """
    dots = [torch.bmm(a[i : i + 1].unsqueeze(1), b[i : i + 1].unsqueeze(2)).view(1) for i in range(a.shape[0])]
    return dots[0] if len(dots) == 1 else torch.cat(dots)


def _per_image(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def _wide(t: torch.Tensor) -> torch.Tensor:
    """The optimiser's working precision: float32, or float64 when the image is float64."""
    return t if t.dtype == torch.float64 else t.float()


def _pixels(shape) -> int:
    return int(shape[-2]) * int(shape[-1])


class Optimizer:
    """Update ``x`` in place from its gradient; images where ``active`` is False stay put."""

    def __init__(self, lr: float):
        self.lr = lr

    def step(self, x: torch.Tensor, grad: torch.Tensor, active: torch.Tensor) -> None:
        raise NotImplementedError

    def carried(self, shape) -> Optimizer:
        """The optimiser for the next scale, images of ``shape`` (B, C, H, W): a fresh one unless
        the subclass knows how to carry its state over."""
        return type(self)(self.lr)


class LBFGS(Optimizer):
    """Limited-memory BFGS with one evaluation per step and no line search.

    For one image this follows ``torch.optim.LBFGS(max_iter=1, history_size=m)``
    (the first step is scaled to ``min(1, 1/|g|_1) * lr``), with two differences
    that make it safe with projection onto the pixel range: the curvature pair is
    taken from the points actually visited, and a pair failing the curvature
    condition is dropped for that image only.

    The pairs are stored batched, one ``rho`` per image; a zero ``rho`` makes a
    pair a no-op for that image. Each image keeps its own ``history`` newest
    valid pairs (older ones are zeroed for it alone), so an image in a batch
    follows exactly the path it follows alone.

    At a new scale (``carried``) the pairs, vectors of the old size, are dropped;
    the scalar inverse-curvature estimate ``h_diag`` is kept, multiplied by the
    ratio of pixel counts, so the first step there is a scaled gradient step of
    ``lr``: a cold start's tiny ``1/|g|_1`` probe leaves a curvature estimate
    taken over a tiny step, and the steps after it can overshoot (measured at a
    new scale: the style distance went from 0.40 to 5.3 two steps later; with the
    estimate carried it fell steadily, benchmarks/README.md). An image that never
    measured its curvature probes again.
    """

    def __init__(self, lr: float = 1.0, history: int = 20):
        super().__init__(lr)
        self.history = history
        self.s: list[torch.Tensor] = []
        self.y: list[torch.Tensor] = []
        self.rho: list[torch.Tensor] = []
        self.h_diag: torch.Tensor | None = None  # per image; given before the first step when carried
        self.probe: torch.Tensor | None = None  # per image: the first step is a probe (no estimate yet)
        self.measured: torch.Tensor | None = None  # per image: h_diag comes from a curvature pair
        self.prev_x: torch.Tensor | None = None
        self.prev_g: torch.Tensor | None = None
        self.shape: tuple[int, ...] | None = None  # of the images last stepped

    def carried(self, shape) -> LBFGS:
        new = LBFGS(self.lr, self.history)
        if self.measured is not None and bool(self.measured.any()):
            ratio = _pixels(shape) / _pixels(self.shape)  # h_diag ~ 1/curvature, which falls as pixels multiply
            new.h_diag = torch.where(self.measured, self.h_diag * ratio, torch.ones_like(self.h_diag))
            new.probe = ~self.measured
            new.measured = self.measured.clone()
        return new

    @torch.no_grad()
    def step(self, x, grad, active):
        # Flat (B, N) float32 vectors: the history and the recursion work on them in place.
        g = _wide(grad).reshape(x.shape[0], -1)
        self.shape = tuple(x.shape)
        probe = None
        if self.prev_x is None:
            if self.h_diag is None:  # a cold start: every image probes
                self.h_diag = torch.ones(x.shape[0], device=x.device, dtype=g.dtype)
                self.probe = torch.ones(x.shape[0], device=x.device, dtype=torch.bool)
                self.measured = torch.zeros_like(self.probe)
            probe = self.probe
        else:
            s = x.to(g.dtype).reshape(g.shape) - self.prev_x
            y = g - self.prev_g
            ys = _flat_dot(y, s)
            ok = (ys > 1e-10) & active
            if bool(ok.any()):
                rho = torch.where(ok, 1.0 / ys.clamp_min(1e-10), torch.zeros_like(ys))
                self.s.append(s)
                self.y.append(y)
                self.rho.append(rho)
                self._trim_history()
                yy = _flat_dot(y, y).clamp_min(1e-20)
                self.h_diag = torch.where(ok, ys / yy, self.h_diag)
                self.measured |= ok
        # Two-loop recursion, per image, updating one vector in place.
        q = -g
        alphas = []
        for s, y, rho in zip(reversed(self.s), reversed(self.y), reversed(self.rho)):
            a = rho * _flat_dot(s, q)
            alphas.append(a)
            q.addcmul_(y, a.unsqueeze(1), value=-1)
        d = q.mul_(self.h_diag.unsqueeze(1))
        for (s, y, rho), a in zip(zip(self.s, self.y, self.rho), reversed(alphas)):
            b = rho * _flat_dot(y, d)
            d.addcmul_(s, (a - b).unsqueeze(1))
        t = torch.full((x.shape[0],), self.lr, device=x.device, dtype=g.dtype)
        if probe is not None and bool(probe.any()):
            t = torch.where(probe, torch.clamp(1.0 / g.abs().sum(1).clamp_min(1e-20), max=1.0) * self.lr, t)
        # A direction that does not descend (numerical trouble) falls back to the gradient.
        bad = _flat_dot(g, d) >= 0
        if bool(bad.any()):
            d = torch.where(bad.unsqueeze(1), -g * self.h_diag.unsqueeze(1), d)
        t = torch.where(active, t, torch.zeros_like(t))
        self.prev_x = x.to(g.dtype).reshape(g.shape).clone()
        self.prev_g = g.clone()
        x.add_((d.mul_(t.unsqueeze(1))).view(x.shape).to(x.dtype))

    def _trim_history(self) -> None:
        rho = torch.stack(self.rho)  # (pairs, B)
        valid = rho != 0
        over = valid.sum(0) > self.history
        if not bool(over.any()):
            return
        # Each step adds at most one pair per image, so one pair too many: retire the oldest.
        oldest = valid.to(torch.uint8).argmax(0)
        cols = torch.nonzero(over).flatten()
        rho[oldest[cols], cols] = 0
        keep = (rho != 0).any(1).tolist()
        self.s = [v for v, k in zip(self.s, keep) if k]
        self.y = [v for v, k in zip(self.y, keep) if k]
        self.rho = [r for r, k in zip(rho.unbind(0), keep) if k]


class Adam(Optimizer):
    """Adam (Kingma & Ba), elementwise, so batched images are independent by construction.

    Each scale starts afresh: carrying the moments over, resized as
    crowsonkb/style-transfer-pytorch does (bicubic, bilinear and clipped at 0), with or
    without rescaling them by the pixel-count ratio, measured worse than a fresh start
    (benchmarks/README.md, *Coarse-to-fine*).
    """

    def __init__(self, lr: float = 0.02, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(lr)
        self.b1, self.b2 = betas
        self.eps = eps
        self.t = 0
        self.m: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    @torch.no_grad()
    def step(self, x, grad, active):
        g = _wide(grad)
        if self.m is None:
            self.m = torch.zeros_like(g)
            self.v = torch.zeros_like(g)
        self.t += 1
        self.m.mul_(self.b1).add_(g, alpha=1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        update = m_hat / (v_hat.sqrt() + self.eps) * self.lr
        x.sub_((update * _per_image(active.float(), update)).to(x.dtype))


class SGD(Optimizer):
    """SGD with momentum on the gradient scaled to unit RMS per image.

    Plain SGD moves by ``lr * g``, and ``g`` spans orders of magnitude with the
    loss weights and the image size: that is how the seed's SGD produced black
    images. Scaling each image's gradient to unit RMS makes ``lr`` a step in
    pixel units (0..1), whatever the weights.
    """

    def __init__(self, lr: float = 0.005, momentum: float = 0.9, decay: float = 0.99):
        super().__init__(lr)
        self.momentum = momentum
        self.decay = decay  # per-step learning-rate decay: lets the image settle
        self.buf: torch.Tensor | None = None
        self.t = 0

    @torch.no_grad()
    def step(self, x, grad, active):
        g = _wide(grad)
        rms = g.pow(2).flatten(1).mean(1).sqrt().clamp_min(1e-20)
        g = g / _per_image(rms, g)
        self.buf = g if self.buf is None else self.buf.mul_(self.momentum).add_(g)
        lr = self.lr * self.decay**self.t
        self.t += 1
        x.sub_((self.buf * (lr * _per_image(active.float(), g))).to(x.dtype))


def make(name: str, lr: float | None, history: int | None = None) -> Optimizer:
    """A fresh optimiser by name; ``lr=None`` means its default (``DEFAULT_LR``).

    ``history``: L-BFGS's pairs (None: its default, 20), which a print bounds
    (``tiles.lbfgs_history``: each pair is two float32 copies of the image); the
    other optimisers keep no history and ignore it.
    """
    if name not in DEFAULT_LR:
        raise ValueError(f"unknown optimizer {name!r}")
    if history is not None and history < 1:
        raise ValueError(f"L-BFGS needs a history of at least 1 pair, not {history}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "lbfgs":
        return LBFGS(lr) if history is None else LBFGS(lr, history)
    if name == "adam":
        return Adam(lr)
    if name == "sgd":
        return SGD(lr)
    raise ValueError(f"unknown optimizer {name!r}")
