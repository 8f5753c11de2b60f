"""Prints (``--tile auto|N``) in the engine: a tiled run is the untiled run, within memory, scales and snapshots.

The engine runs use the stand-in network (features.py) in float32, where a tiled
step equals the untiled one to rounding (tests/core/test_tiles.py holds the step
itself to 1e-9 on the real VGG19); one small real-network run is marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylelab import engine, memory, steps, tiles
from stylelab.cli import main
from stylelab.engine import Engine
from stylelab.errors import MemoryLimitError, RecipeError
from stylelab.events import Snapshot, Step
from stylelab.recipes import Recipe, recipe_from_toml
from stylelab.task import Task
from tests.conftest import gradient_image

SHALLOW = dict(style_layers=("relu1_1", "relu2_1", "relu3_1"), content_layers=("relu3_1",))  # margin 12 px
DEFAULT_LAYERS = dict(style_layers=Recipe().style_layers, content_layers=Recipe().content_layers)  # margin 80 px


def recipe(**changes) -> Recipe:
    base = dict(weights="standin", size=96, steps=4, device="cpu", precision="fp32", tv_weight=0.1, style_weight=20.0)
    base.update(SHALLOW)
    return Recipe(**{**base, **changes})


def run(r: Recipe, task: Task, sinks=(), memory_free=None):
    e = Engine.for_recipe(r)
    plan = e.prepare([task], r, memory_free=memory_free)
    return plan, e.run(plan, sinks)[0]


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


def assert_same_image(a: Image.Image, b: Image.Image) -> None:
    """Within 1 level of 255, but for a rare value a level or two further: float32 rounding (a tile's sums
    add up in another order) that Adam's per-pixel normalisation can turn into a step the other way."""
    d = np.abs(pixels(a) - pixels(b))
    assert d.max() <= 3 and (d > 1).mean() < 1e-3, (d.max(), int((d > 1).sum()))


class TiledSpy:
    """Records the tile plan of every tiled step the engine takes (steps.py calls ``tiled_step`` through it)."""

    def __init__(self, monkeypatch):
        self.plans: list[tiles.TilePlan] = []
        real = steps.tiled.tiled_step

        def spy(net, x, plan, *args, **kwargs):
            self.plans.append(plan)
            return real(net, x, plan, *args, **kwargs)

        monkeypatch.setattr(steps.tiled, "tiled_step", spy)


@pytest.fixture
def content():
    return gradient_image(96, 72, seed=0)


@pytest.fixture
def style():
    return gradient_image(60, 50, seed=3)


# ------------------------------------------------------------------ the recipe's field


def test_tile_takes_none_auto_or_a_side_in_pixels():
    assert Recipe().tile == "none"
    assert Recipe(tile="auto").tile == "auto" and Recipe(tile="512").tile == "512"
    assert Recipe(tile=1024).tile == "1024"  # a TOML number
    assert recipe_from_toml("tile = 640\n").tile == "640"
    for bad, words in (("big", "tile must be none, auto or"), ("8", "from 16 to 8192"), ("9000", "from 16"),
                       ("-32", "tile must be"), ("aotu", "did you mean 'auto'"), ("", "tile must be")):  # fmt: skip
        with pytest.raises(RecipeError, match=words):
            Recipe(tile=bad)
    with pytest.raises(RecipeError):
        Recipe(tile=True)


def test_the_cli_refuses_a_bad_tile_in_one_line(capsys, tmp_path):
    c, s = tmp_path / "c.png", tmp_path / "s.png"
    gradient_image().save(c)
    gradient_image(seed=2).save(s)
    code = main(["run", str(c), "-s", str(s), "-o", str(tmp_path / "o.png"), "--tile", "huge", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "tile must be none, auto or" in err
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ memory: refused whole, accepted tiled


def test_a_print_that_does_not_fit_whole_is_refused_with_a_hint_and_runs_tiled_under_auto(monkeypatch, content):
    monkeypatch.setattr(memory, "available_memory", lambda device="auto": 5 << 30)
    big = recipe(size=4096, precision="bf16", **DEFAULT_LAYERS)
    task = Task.of(content, [gradient_image(60, 50, seed=3)])
    e = Engine.for_recipe(big)
    with pytest.raises(MemoryLimitError, match="use --tile auto") as info:
        e.prepare([task], big)
    assert "--size" in str(info.value) and len(str(info.value).splitlines()) == 1
    plan = e.prepare([task], big.replace(tile="auto"))
    (tiling,) = plan.tilings
    budget = int((5 << 30) * memory.USABLE_SHARE)
    assert tiling is not None and tiling.tile is None and tiling.budget == budget
    assert plan.estimate.total <= budget and plan.estimate.tiling is tiling
    final = tiling.plan(big, 3072, 4096)
    assert final is not None and len(final.tiles) > 1  # tiled at the final size
    assert 3 <= tiling.history < memory.LBFGS_HISTORY  # L-BFGS's pairs bounded for the print
    # The style image at 4096 px would take more in one pass than the tiled step: its pass is tiled too.
    assert tiling.style_tile == final.tile
    small_style = e.prepare([task], big.replace(tile="auto", style_scale=0.25)).tilings[0]
    assert small_style is not None and small_style.style_tile is None
    # Not even tiles fit: refused, still in one line.
    monkeypatch.setattr(memory, "available_memory", lambda device="auto": 2 << 30)
    with pytest.raises(MemoryLimitError, match="even in tiles"):
        e.prepare([task], big.replace(tile="auto"))


def test_auto_leaves_a_run_that_fits_whole_and_splits_a_batch_that_does_not(monkeypatch, content, style):
    small = recipe(tile="auto")
    plan = Engine.for_recipe(small).prepare([Task.of(content, [style])] * 2, small)
    assert plan.batches == [[0, 1]] and plan.tilings == [None]  # auto costs nothing when the image fits
    # Two images at 1536 px fit in 6 GiB one at a time, not together: one by one, each whole.
    r = recipe(tile="auto", size=1536, **DEFAULT_LAYERS)
    one = memory.estimate(r, content.size, [style.size]).total
    free = int(1.5 * one / memory.USABLE_SHARE)
    plan = Engine.for_recipe(r).prepare([Task.of(content, [style])] * 2, r, memory_free=free)
    assert plan.batches == [[0], [1]] and plan.tilings == [None, None]
    # Tiles as large as the image are the image: the batch runs together, whole.
    plan = Engine.for_recipe(small).prepare([Task.of(content, [style])] * 2, small.replace(tile="96"))
    assert plan.batches == [[0, 1]] and plan.tilings == [None]
    with pytest.raises(MemoryLimitError, match="2 image"):
        Engine.for_recipe(r).prepare([Task.of(content, [style])] * 2, r.replace(tile="none"), memory_free=free)


# ------------------------------------------------------------------ a tiled run is the untiled run


@pytest.mark.parametrize(
    "changes",
    [
        dict(optimizer="lbfgs"),
        dict(optimizer="adam", style_loss="moments"),
        dict(optimizer="sgd", style_loss="swd"),
        dict(optimizer="lbfgs", init="noise", normalization="jcjohnson"),
        dict(optimizer="lbfgs", **DEFAULT_LAYERS),
    ],
)
def test_a_tiled_run_is_the_untiled_run(monkeypatch, content, style, changes):
    spy = TiledSpy(monkeypatch)
    _, whole = run(recipe(**changes), Task.of(content, [style]))
    assert not spy.plans
    _, tiled = run(recipe(tile="32", **changes), Task.of(content, [style]))
    assert len(spy.plans) == 4 and len(spy.plans[0].tiles) == 9  # every step tiled, 3 x 3 tiles
    assert tiled.ok and whole.ok and tiled.image.size == whole.image.size == (96, 72)
    assert_same_image(tiled.image, whole.image)
    for a, b in zip(tiled.history, whole.history):
        for k in ("content", "style", "tv", "total"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-9), (a["step"], k)
    assert tiled.history[-1]["total"] < 0.95 * tiled.history[0]["total"]  # the runs did something


def test_regions_and_colour_preservation_run_tiled_as_whole(monkeypatch, content, style):
    spy = TiledSpy(monkeypatch)
    mask = Image.new("L", content.size, 0)
    mask.paste(255, (20, 10, 70, 60))  # crossing tile borders
    task = Task.of(content, [style], masks=[mask], background=gradient_image(50, 40, seed=5))
    for extra in (dict(preserve_color="luminance"), dict(preserve_color="histogram", optimizer="adam")):
        _, whole = run(recipe(**extra), task)
        _, tiled = run(recipe(tile="32", **extra), task)
        assert tiled.ok and spy.plans and all(len(p.tiles) == 9 for p in spy.plans)
        assert_same_image(tiled.image, whole.image)
        assert tiled.losses["style"] == pytest.approx(whole.losses["style"], rel=1e-4)


@pytest.mark.parametrize("kind", ["gram", "swd"])
def test_a_style_image_too_large_for_one_pass_is_summed_in_tiles(content, style, kind):
    """Style at 4x the output: its forward pass would take more than the tiled step, so it runs in tiles too."""
    big_style = gradient_image(200, 160, seed=4)
    r = recipe(style_scale=4.0, style_loss=kind, optimizer="adam")
    _, whole = run(r, Task.of(content, [big_style]))
    plan, tiled = run(r.replace(tile="32"), Task.of(content, [big_style]))
    assert plan.tilings[0].style_tile == 32
    assert_same_image(tiled.image, whole.image)
    assert tiled.losses["style"] == pytest.approx(whole.losses["style"], rel=1e-4)


def test_swd_keeps_a_seeded_subset_of_a_large_style_images_pixels():
    from stylelab import tiled_step
    from stylelab.features import StandIn

    net = StandIn(["relu2_1"])
    image = gradient_image(64, 48, seed=2)
    x = torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]
    plan = tiles.plan_tiles(48, 64, 16, ["relu1_1", "relu2_1"])
    every = tiled_step.tiled_sums(net, x, plan, "swd", ["relu1_1", "relu2_1"])
    some = tiled_step.tiled_sums(net, x, plan, "swd", ["relu1_1", "relu2_1"], most=500)
    again = tiled_step.tiled_sums(net, x, plan, "swd", ["relu1_1", "relu2_1"], most=500)
    assert every["relu1_1"].values.shape[-1] == 48 * 64 and every["relu2_1"].values.shape[-1] == 24 * 32
    for layer in ("relu1_1", "relu2_1"):  # each tile keeps its share, rounded
        assert abs(some[layer].values.shape[-1] - 500) <= len(plan.tiles), layer
    assert torch.equal(some["relu1_1"].values, again["relu1_1"].values)
    # A subset of the pixels themselves: every kept column is one of the whole image's.
    kept, full = some["relu1_1"].values[0].T, every["relu1_1"].values[0].T
    assert all(bool((full == v).all(1).any()) for v in kept[:50])


# ------------------------------------------------------------------ scales: coarse whole, fine tiled


def test_with_scales_the_coarse_scales_run_whole_and_the_fine_ones_tiled(monkeypatch, content, style):
    spy = TiledSpy(monkeypatch)
    events = []
    plan, res = run(recipe(size=128, scales=3, steps=2, tile="64"), Task.of(content, [style]), [events.append])
    assert engine.scale_sizes(128, 3) == [64, 91, 128] and res.ok
    tiled_scales = [e.scale for e in events if isinstance(e, Step)]
    assert tiled_scales == [0, 0, 1, 1, 2, 2]
    # Scale 0 (64 px) is one tile: whole; 91x68 and 128x96 are tiled, two steps each.
    assert [(p.height, p.width) for p in spy.plans] == [(68, 91)] * 2 + [(96, 128)] * 2
    assert all(len(p.tiles) > 1 for p in spy.plans)


def test_auto_picks_whole_coarse_scales_and_tiles_the_fine_one_from_the_memory_free(monkeypatch, content, style):
    """With ``auto``, which scales are tiled follows the memory: a budget between the two scales' needs."""
    spy = TiledSpy(monkeypatch)
    r = recipe(size=512, scales=2, steps=1, tile="auto")
    coarse = memory.estimate(r.replace(size=362), content.size, [style.size]).total
    fine = memory.estimate(r, content.size, [style.size]).total
    free = int((coarse + fine) / 2 / memory.USABLE_SHARE)
    plan, res = run(r, Task.of(content, [style]), memory_free=free)
    assert res.ok and plan.tilings[0] is not None
    assert [(p.height, p.width) for p in spy.plans] == [(384, 512)]  # the 362 px scale ran whole
    assert len(spy.plans[0].tiles) > 1 and spy.plans[0].largest_padded < 384 * 512


# ------------------------------------------------------------------ snapshots of a print


def test_a_prints_snapshots_are_the_whole_image_downscaled(monkeypatch, content, style):
    monkeypatch.setattr(engine, "SNAPSHOT_SIDE", 48)
    events = []
    _, res = run(recipe(size=128, steps=4, save_every=2, tile="48"), Task.of(content, [style]), [events.append])
    shots = [e for e in events if isinstance(e, Snapshot)]
    assert [s.step for s in shots] == [0, 2, 4]
    assert all(s.image.size == (48, 36) for s in shots)
    assert res.image.size == (128, 96)  # the result is full size
    final = np.asarray(res.image.convert("RGB").resize((48, 36), Image.Resampling.LANCZOS), dtype=np.int16)
    assert np.abs(pixels(shots[-1].image) - final).max() <= 1
    events.clear()
    run(recipe(size=128, steps=2, save_every=2), Task.of(content, [style]), [events.append])
    assert all(e.image.size == (128, 96) for e in events if isinstance(e, Snapshot))  # untiled: as before


# ------------------------------------------------------------------ the real network


@pytest.mark.slow
def test_a_tiled_run_on_vgg19_is_the_untiled_run(content, style):
    r = Recipe(size=64, steps=3, device="cpu", precision="fp32", style_layers=("relu1_1", "relu2_1"),
               content_layers=("relu2_2",), tv_weight=0.1)  # fmt: skip
    _, whole = run(r, Task.of(content, [style]))
    plan, tiled = run(r.replace(tile="16"), Task.of(content, [style]))
    assert len(plan.tilings[0].plan(r, 48, 64).tiles) == 12
    assert_same_image(tiled.image, whole.image)
    assert tiled.losses["total"] == pytest.approx(whole.losses["total"], rel=1e-4)
