"""Coarse-to-fine: per-scale step counts (``coarse_steps``), and the optimiser state carried
from one scale to the next (``Optimizer.carried``). The engine tests run on the stand-in network."""

from __future__ import annotations

import json

import pytest
import torch

from stylelab import optimizers
from stylelab.engine import Engine, scale_sizes
from stylelab.errors import RecipeError
from stylelab.events import Snapshot, Started, Step
from stylelab.optimizers import LBFGS, SGD, Adam
from stylelab.recipes import Recipe, load_recipe, recipe_from_dict, recipe_from_toml
from stylelab.task import Task

from ..conftest import gradient_image

STANDIN = dict(size=96, steps=2, device="cpu", weights="standin")


def recipe(**changes) -> Recipe:
    return Recipe(**{**STANDIN, **changes})


def run(r: Recipe):
    events = []
    engine = Engine.for_recipe(r)
    task = Task.of(gradient_image(40, 30), [gradient_image(32, 32, seed=3)])
    result = engine.run(engine.prepare([task], r), [events.append])[0]
    return result, events


# ------------------------------------------------------------------ the recipe field


@pytest.mark.parametrize(
    ("value", "scales", "message"),
    [
        ("-1", 2, "coarse_steps must be >= 0, not -1"),
        ("10 -3", 3, "coarse_steps must be >= 0, not 10 -3"),
        ("1.5", 2, "coarse_steps = '1.5' is not a valid tuple[int,...]"),
        ("ten", 2, "coarse_steps = 'ten' is not a valid tuple[int,...]"),
        ([True], 2, "coarse_steps = [True] is not a valid tuple[int,...]"),
        ("100 50", 2, "coarse_steps has 2 values for the 1 scale(s) before the last (scales = 2)"),
        ("100 50 20", 3, "coarse_steps has 3 values for the 2 scale(s) before the last (scales = 3)"),
    ],
)
def test_bad_coarse_steps_are_one_line_recipe_errors(value, scales, message):
    with pytest.raises(RecipeError) as err:
        Recipe(scales=scales, coarse_steps=value)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("150 60", (150, 60)), ("150,60", (150, 60)), ([150, 60], (150, 60)), (80, (80,)), ("", None), ([], None)],
)
def test_coarse_steps_read_from_text_lists_and_numbers(value, expected):
    assert Recipe(scales=3, coarse_steps=value).coarse_steps == expected


def test_coarse_steps_in_a_recipe_file(tmp_path):
    path = tmp_path / "fast.toml"
    path.write_text('base = "default"\nscales = 3\ncoarse_steps = [150, 60]\nsteps = 30\n')
    r = load_recipe(path)
    assert r.steps_per_scale() == (150, 60, 30) and r.total_steps == 240
    assert load_recipe(path, steps=50).steps_per_scale() == (150, 60, 50)  # --steps: the last scale's


def test_coarse_steps_survive_recipe_toml_and_run_json():
    r = Recipe(scales=3, coarse_steps=(5, 3))
    assert recipe_from_toml(r.to_toml()) == r
    assert recipe_from_dict(json.loads(json.dumps(r.to_dict()))) == r
    assert recipe_from_toml(Recipe().to_toml()).coarse_steps is None  # unset: left out of the TOML


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, (200,)),  # single scale: steps
        ({"scales": 3}, (200, 200, 200)),  # no coarse_steps: steps at every scale, as before
        ({"scales": 3, "coarse_steps": 100, "steps": 30}, (100, 100, 30)),  # one number for every coarser scale
        ({"scales": 3, "coarse_steps": "150 60", "steps": 30}, (150, 60, 30)),
        ({"scales": 1, "coarse_steps": 100, "steps": 30}, (30,)),  # nothing before the last scale
        # 80 px over 3 scales is [64, 80] (never below 64): the coarsest count goes with the size that is dropped
        ({"size": 80, "scales": 3, "coarse_steps": "150 60", "steps": 30}, (60, 30)),
        ({"size": 48, "scales": 3, "coarse_steps": "150 60", "steps": 30}, (30,)),  # one size only
    ],
)
def test_steps_per_scale(changes, expected):
    r = Recipe(**changes)
    assert len(r.steps_per_scale()) == len(scale_sizes(r.size, r.scales))
    assert r.steps_per_scale() == expected and r.total_steps == sum(expected)


# ------------------------------------------------------------------ the engine follows them


def test_each_scale_runs_its_own_steps_and_progress_counts_them_all():
    result, events = run(recipe(scales=3, coarse_steps=(3, 2), steps=1, save_every=2))
    steps = [e for e in events if isinstance(e, Step)]
    assert [(e.step, e.scale) for e in steps] == [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 2)]
    assert {e.total_steps for e in steps} == {6}
    assert [e.total_steps for e in events if isinstance(e, Started)] == [6]
    assert result.steps == 6 and [h["step"] for h in result.history] == [1, 2, 3, 4, 5, 6]
    # save_every counts steps over all scales; each snapshot has the size of the scale it was taken at
    shots = {e.step: e.image.size for e in events if isinstance(e, Snapshot)}
    assert shots == {0: (64, 48), 2: (64, 48), 4: (68, 51), 6: (96, 72)}


def test_a_coarse_scale_of_zero_steps_only_passes_the_image_on():
    _, events = run(recipe(scales=2, coarse_steps=0, steps=2))
    assert [(e.step, e.scale) for e in events if isinstance(e, Step)] == [(1, 1), (2, 1)]


def test_the_engine_hands_the_lbfgs_state_to_the_next_scale(monkeypatch):
    handed = []
    original = LBFGS.carried

    def spy(self, shape):
        new = original(self, shape)
        handed.append((self.shape, tuple(shape), self.h_diag.clone(), new.h_diag.clone()))
        return new

    monkeypatch.setattr(LBFGS, "carried", spy)
    run(recipe(scales=3, coarse_steps=3, steps=2))
    assert [(old[2:], new[2:]) for old, new, _, _ in handed] == [((48, 64), (51, 68)), ((51, 68), (72, 96))]
    for old, new, h_old, h_new in handed:
        torch.testing.assert_close(h_new, h_old * (new[2] * new[3]) / (old[2] * old[3]))


# ------------------------------------------------------------------ what is carried


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """A per-pixel mean, like stylelab's losses: mean over pixels of w * (x - 0.3)^2, w in [1, 2]."""
    w = 1 + torch.linspace(0, 1, x[0].numel(), dtype=x.dtype).view(x.shape[1:])
    return (w * (x - 0.3) ** 2).flatten(1).mean(1)


def grad(x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    return torch.autograd.grad(quadratic(x).sum(), x)[0]


def lbfgs_after(steps: int, shape=(2, 3, 4, 5), active=None) -> LBFGS:
    opt = LBFGS(1.0)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    active = torch.ones(shape[0], dtype=torch.bool) if active is None else active
    for _ in range(steps):
        opt.step(x, grad(x), active)
    return opt


def test_lbfgs_carries_its_curvature_estimate_rescaled_to_the_new_pixel_count():
    old = lbfgs_after(4)
    new = old.carried((2, 3, 8, 10))  # 4 times the pixels
    assert new.s == [] and new.y == [] and new.prev_x is None  # pairs of the old size cannot be used
    torch.testing.assert_close(new.h_diag, old.h_diag * 4)
    assert new.h_diag.shape == (2,) and not bool(new.probe.any())


def test_a_carried_lbfgs_takes_a_full_scaled_gradient_step_first():
    new = lbfgs_after(4).carried((2, 3, 8, 10))
    x = torch.rand((2, 3, 8, 10), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    g, before = grad(x), x.clone()
    new.step(x, g, torch.ones(2, dtype=torch.bool))
    torch.testing.assert_close(x - before, -new.h_diag.view(2, 1, 1, 1) * g)  # lr 1, no pairs: -h_diag * g
    cold = LBFGS(1.0)
    y = before.clone()
    cold.step(y, g, torch.ones(2, dtype=torch.bool))  # a cold start only probes: min(1, 1/|g|_1) * g
    torch.testing.assert_close(y - before, -g / g.abs().flatten(1).sum(1).clamp(min=1.0).view(2, 1, 1, 1))
    assert (y - before).abs().max() < (x - before).abs().max() / 10


def test_an_image_that_never_measured_its_curvature_probes_again_at_the_next_scale():
    frozen_second = torch.tensor([True, False])
    new = lbfgs_after(4, active=frozen_second).carried((2, 3, 8, 10))
    assert new.probe.tolist() == [False, True] and new.h_diag[1] == 1.0
    assert LBFGS(1.0).carried((1, 3, 8, 10)).h_diag is None  # nothing stepped: a cold start
    assert lbfgs_after(1).carried((2, 3, 8, 10)).h_diag is None  # one probe, no curvature pair yet


@pytest.mark.parametrize("cls", [Adam, SGD])
def test_adam_and_sgd_start_each_scale_afresh(cls):
    opt = optimizers.make(cls.__name__.lower(), 0.01)
    x = torch.rand((1, 3, 4, 5), dtype=torch.float64)
    for _ in range(3):
        opt.step(x, grad(x), torch.ones(1, dtype=torch.bool))
    new = opt.carried((1, 3, 8, 10))
    assert type(new) is cls and new.lr == 0.01 and new.t == 0
    assert (new.m if cls is Adam else new.buf) is None
