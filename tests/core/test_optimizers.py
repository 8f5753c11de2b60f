"""The batched optimisers: L-BFGS against torch's, batch independence, frozen items."""

from __future__ import annotations

import pytest
import torch

from stylelab import optimizers
from stylelab.optimizers import LBFGS, SGD, Adam
from stylelab.recipes import OPTIMIZERS

SHAPE = (3, 4, 5)  # one "image": 60 values
N = 3 * 4 * 5


def quadratic(seed: int, dtype=torch.float64):
    """f(x) = 0.5 |A x - c|^2 with an ill-conditioned A: a problem where curvature matters."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn((N, N), generator=gen, dtype=dtype) / N**0.5
    a = a + torch.diag(torch.logspace(-1, 1, N, dtype=dtype))
    c = torch.randn((N,), generator=gen, dtype=dtype)

    def f(x: torch.Tensor) -> torch.Tensor:  # x: (B, *SHAPE) -> (B,)
        r = x.reshape(x.shape[0], N) @ a.T - c
        return 0.5 * (r**2).sum(1)

    return f


def grad_of(f, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(f(x).sum(), x)[0]


def run(opt, f, x0: torch.Tensor, steps: int, active=None) -> list[torch.Tensor]:
    x = x0.clone()
    active = torch.ones(x.shape[0], dtype=torch.bool) if active is None else active
    path = []
    for _ in range(steps):
        opt.step(x, grad_of(f, x), active)
        path.append(x.clone())
    return path


def torch_lbfgs_path(f, x0: torch.Tensor, steps: int, lr: float, history: int) -> list[torch.Tensor]:
    p = torch.nn.Parameter(x0.clone())
    opt = torch.optim.LBFGS([p], lr=lr, max_iter=1, history_size=history)

    def closure():
        opt.zero_grad()
        loss = f(p).sum()
        loss.backward()
        return loss

    path = []
    for _ in range(steps):
        opt.step(closure)
        path.append(p.detach().clone())
    return path


@pytest.mark.parametrize("lr, history", [(1.0, 100), (0.5, 5), (1.0, 2)])
def test_lbfgs_follows_torch_lbfgs_with_one_evaluation_per_step(lr, history):
    f = quadratic(0)
    x0 = torch.zeros((1, *SHAPE), dtype=torch.float64)
    ours = run(LBFGS(lr, history=history), f, x0, 25)
    theirs = torch_lbfgs_path(f, x0, 25, lr, history)
    for step, (a, b) in enumerate(zip(ours, theirs), start=1):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10), f"step {step}"
    assert float(f(ours[-1])) < 0.2 * float(f(x0))  # and it does optimise


def test_lbfgs_in_float32_agrees_closely_too():
    f = quadratic(1, torch.float32)
    x0 = torch.zeros((1, *SHAPE))
    ours = run(LBFGS(1.0), f, x0, 15)
    theirs = torch_lbfgs_path(f, x0, 15, 1.0, 100)
    assert torch.allclose(ours[-1], theirs[-1], rtol=1e-3, atol=1e-4)


def _batched_equals_alone(make, problems, steps: int, x0s: list[torch.Tensor]) -> None:
    def f_batch(x):
        return torch.cat([p(x[i : i + 1]) for i, p in enumerate(problems)])

    batched = run(make(), f_batch, torch.cat(x0s), steps)
    for i, (p, x0) in enumerate(zip(problems, x0s)):
        alone = run(make(), p, x0, steps)
        for step, (b, a) in enumerate(zip(batched, alone), start=1):
            assert torch.allclose(b[i : i + 1], a, rtol=1e-12, atol=1e-12), f"item {i}, step {step}"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_batch_of_two_follows_two_single_runs(name):
    gen = torch.Generator().manual_seed(3)
    x0s = [torch.rand((1, *SHAPE), generator=gen, dtype=torch.float64) for _ in range(2)]
    _batched_equals_alone(lambda: optimizers.make(name, None), [quadratic(1), quadratic(2)], 20, x0s)


class Curvature:
    """A gradient oracle for one image: a quadratic whose curvature turns negative at chosen steps.

    g_k = g_{k-1} + sign_k * C (x_k - x_{k-1}): with sign_k = -1 the pair (s, y) fails the
    curvature condition y.s > 0 and L-BFGS must drop it, for this image only.
    """

    def __init__(self, seed: int, negative_at: set[int]):
        gen = torch.Generator().manual_seed(seed)
        self.c = torch.logspace(-1, 1, N, dtype=torch.float64)[torch.randperm(N, generator=gen)].view(1, *SHAPE)
        self.b = torch.randn((1, *SHAPE), generator=gen, dtype=torch.float64)
        self.negative_at = negative_at
        self.k = 0
        self.x = self.g = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.g is None:
            self.g = self.c * x - self.b
        else:
            sign = -1.0 if self.k in self.negative_at else 1.0
            self.g = self.g + sign * self.c * (x - self.x)
        self.k += 1
        self.x = x.clone()
        return self.g.clone()


def run_oracles(opt, oracles, x0: torch.Tensor, steps: int) -> list[torch.Tensor]:
    x, path = x0.clone(), []
    active = torch.ones(x.shape[0], dtype=torch.bool)
    for _ in range(steps):
        g = torch.cat([o(x[i : i + 1]) for i, o in enumerate(oracles)])
        opt.step(x, g, active)
        path.append(x.clone())
    return path


def test_lbfgs_batch_with_rejected_curvature_pairs_follows_single_runs():
    """Item 0 rejects pairs mid-run while item 1 accepts: each keeps its own newest `history` pairs."""
    negative = {4, 9, 10}
    x0 = torch.zeros((2, *SHAPE), dtype=torch.float64)
    opt = LBFGS(1.0, history=3)
    accepted = []
    trim = opt._trim_history

    def spy():
        accepted.append(tuple((opt.rho[-1] != 0).tolist()))
        trim()

    opt._trim_history = spy
    batched = run_oracles(opt, [Curvature(0, negative), Curvature(1, set())], x0, 16)
    # Pairs are formed from step 2 on: the pair at oracle step k is the (k-1)-th.
    assert [i + 1 for i, (a, b) in enumerate(accepted) if not a and b] == sorted(negative)
    for i, oracle in enumerate([Curvature(0, negative), Curvature(1, set())]):
        alone = run_oracles(LBFGS(1.0, history=3), [oracle], x0[i : i + 1], 16)
        for step, (b, a) in enumerate(zip(batched, alone), start=1):
            assert torch.allclose(b[i : i + 1], a, rtol=1e-12, atol=1e-12), f"item {i}, step {step}"


def test_lbfgs_keeps_at_most_history_pairs_per_image():
    opt = LBFGS(1.0, history=4)
    f = quadratic(0)
    run(opt, lambda x: torch.cat([f(x[:1]), f(x[1:])]), torch.zeros((2, *SHAPE), dtype=torch.float64), 12)
    valid = torch.stack(opt.rho) != 0
    assert valid.sum(0).tolist() == [4, 4]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_inactive_items_do_not_move(name):
    f = quadratic(0)
    x0 = torch.rand((2, *SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    opt = optimizers.make(name, None)
    active = torch.tensor([True, False])
    path = run(opt, lambda x: torch.cat([f(x[:1]), f(x[1:])]), x0, 6, active)
    assert torch.equal(path[-1][1], x0[1])
    assert not torch.equal(path[-1][0], x0[0])


def test_adam_matches_torch_adam():
    f = quadratic(2)
    x0 = torch.rand((1, *SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ours = run(Adam(0.05), f, x0, 30)
    p = torch.nn.Parameter(x0.clone())
    opt = torch.optim.Adam([p], lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        f(p).sum().backward()
        opt.step()
    assert torch.allclose(ours[-1], p.detach(), rtol=1e-9, atol=1e-12)


def test_sgd_step_is_in_pixel_units_whatever_the_gradient_scale():
    """The seed's SGD went black because lr * g exploded with the weights; ours moves by ~lr RMS."""
    x0 = torch.full((1, *SHAPE), 0.5, dtype=torch.float64)
    for gscale in (1e-6, 1.0, 1e8):
        x = x0.clone()
        g = torch.randn((1, *SHAPE), dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * gscale
        SGD(0.01).step(x, g, torch.tensor([True]))
        rms = float((x - x0).pow(2).mean().sqrt())
        assert rms == pytest.approx(0.01, rel=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_each_optimiser_reduces_a_quadratic(name):
    f = quadratic(3)
    x0 = torch.zeros((1, *SHAPE), dtype=torch.float64)
    path = run(optimizers.make(name, None), f, x0, 100)
    assert float(f(path[-1])) < 0.5 * float(f(x0))


def test_default_learning_rates_exist_for_every_optimiser():
    assert set(optimizers.DEFAULT_LR) == set(OPTIMIZERS)
    for name in OPTIMIZERS:
        assert optimizers.make(name, None).lr == optimizers.DEFAULT_LR[name]
        assert optimizers.make(name, 0.123).lr == 0.123
    with pytest.raises(ValueError):
        optimizers.make("rmsprop", None)


def test_lbfgs_takes_a_channels_last_gradient():
    """The engine's gradients come back channels-last from the network; the step must not care."""
    f = quadratic(0)
    x0 = torch.rand((1, 3, 4, 5), dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    plain, strided = LBFGS(1.0), LBFGS(1.0)
    xa, xb = x0.clone(), x0.clone()
    active = torch.tensor([True])
    for _ in range(6):
        plain.step(xa, grad_of(f, xa), active)
        strided.step(xb, grad_of(f, xb).contiguous(memory_format=torch.channels_last), active)
    assert torch.equal(xa, xb)
    assert float(f(xa)) < float(f(x0))


def test_flat_dot_is_the_per_image_dot_product():
    gen = torch.Generator().manual_seed(5)
    a, b = (
        torch.randn((3, 1000), generator=gen, dtype=torch.float64),
        torch.randn((3, 1000), generator=gen, dtype=torch.float64),
    )
    expected = (a * b).sum(1)
    assert torch.allclose(optimizers._flat_dot(a, b), expected, rtol=1e-12)
    assert torch.allclose(optimizers._flat_dot(a[1:2], b[1:2]), expected[1:2], rtol=1e-12)
