"""Tiles: the geometry covers every feature once, and a tiled step is the untiled step (loss and gradient).

Exactness runs the real VGG19 in float64, with tiles much smaller than the
image, on shallow layers (relu1_1..relu3_1, content conv3_1) so that the margins
leave room for several tiles; the default layers get one larger test in float32.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from stylelab import guides, losses, tiles, vgg
from stylelab import style_losses as sl
from stylelab import tiled_step as ts
from stylelab.errors import MemoryLimitError
from stylelab.layers import LAYERS, feature_shape
from stylelab.objective import Objective, StyleRegion, TemporalTarget, Weights
from stylelab.recipes import Recipe

STYLE = ("relu1_1", "relu2_1", "relu3_1")
CONTENT = ("conv3_1",)
DEFAULT_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT = ("relu4_2",)


def rand(*shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.fixture(scope="module")
def net64():
    return vgg.build((*STYLE, *CONTENT), "caffe").double()


@pytest.fixture(scope="module")
def images64():
    """A start image, a content image and a style image: float64, with some structure beyond noise."""
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, 100, dtype=torch.float64), torch.linspace(0, 1, 96, dtype=torch.float64), indexing="ij"
    )
    smooth = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(9 * xx + 5 * yy)])[None]
    return 0.6 * smooth + 0.4 * rand(1, 3, 100, 96, seed=1), smooth, rand(1, 3, 64, 56, seed=2)


def objective(net, content, style, norm="stylelab", tv=0.3):
    with torch.no_grad():
        ct, st = net(content, CONTENT), net(style, STYLE)
    return Objective.from_grams(
        {k: ct[k] for k in CONTENT},
        {k: losses.gram_matrix(st[k], norm) for k in STYLE},
        content_layer_weights=[1.0],
        style_layer_weights=[1.0, 2.0, 0.5],
        content_weight=1.0,
        style_weight=5.0,
        tv_weight=tv,
        normalization=norm,
    )


def untiled(net, obj: Objective, x):
    xv = x.clone().requires_grad_(True)
    tap = obj.tap()  # the engine's own path: Grams taken off the forward pass where they serve
    feats = net(xv, obj.layers, tap=tap)
    terms = obj(feats, xv, tap.grams if tap is not None else None)
    return {k: v.detach() for k, v in terms.items()}, torch.autograd.grad(terms["total"].sum(), xv)[0]


def assert_same(terms, grad, want_terms, want_grad, rel=1e-9):
    for k, want in want_terms.items():
        assert torch.allclose(terms[k], want.to(terms[k].dtype), rtol=rel, atol=0), (k, terms[k], want)
    scale = want_grad.abs().max()
    assert scale > 0
    assert (grad - want_grad).abs().max() <= rel * scale, float((grad - want_grad).abs().max() / scale)


# ------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    ("hw", "tile", "layers"),
    [
        ((96, 80), 32, (*STYLE, *CONTENT)),
        ((100, 75), 40, (*STYLE, *CONTENT)),
        ((37, 53), 8, ("relu1_1", "pool1", "relu2_2")),
        ((301, 217), 64, (*DEFAULT_STYLE, *DEFAULT_CONTENT)),
        ((4096, 3072), 1024, (*DEFAULT_STYLE, *DEFAULT_CONTENT)),
    ],
)
def test_own_regions_cover_every_feature_of_every_layer_exactly_once(hw, tile, layers):
    h, w = hw
    plan = tiles.plan_tiles(h, w, tile, layers)
    assert len(plan.tiles) > 1
    deepest = max(layers, key=lambda n: next(la.index for la in LAYERS if la.name == n))
    for name in [la.name for la in LAYERS if la.index <= next(la.index for la in LAYERS if la.name == deepest)]:
        fh, fw = plan.feature_hw(name)
        assert (fh, fw) == feature_shape(name, h, w)[1:]
        count = torch.zeros(fh, fw, dtype=torch.int32)
        for t in plan.tiles:
            rows, cols = plan.own(t, name)
            assert rows.stop > rows.start and cols.stop > cols.start, (name, t)  # every tile owns something
            count[rows, cols] += 1
            # The crop is inside the padded tile's own feature map and maps back onto the own region.
            ph, pw = feature_shape(name, t.padded_rows[1] - t.padded_rows[0], t.padded_cols[1] - t.padded_cols[0])[1:]
            crows, ccols = plan.crop(t, name)
            s = tiles.layer_stride(name)
            assert 0 <= crows.start < crows.stop <= ph and 0 <= ccols.start < ccols.stop <= pw
            assert crows.start + t.padded_rows[0] // s == rows.start and ccols.stop + t.padded_cols[0] // s == cols.stop
        assert bool((count == 1).all()), name
    for t in plan.tiles:
        for (own0, own1), (pad0, pad1), size in ((t.rows, t.padded_rows, h), (t.cols, t.padded_cols, w)):
            assert own0 % plan.stride == 0 and pad0 % plan.stride == 0
            assert own1 % plan.stride == 0 or own1 == size
            assert pad0 == max(0, own0 - plan.margin) and pad1 == min(size, own1 + plan.margin)


def test_margin_covers_the_deepest_receptive_field():
    # relu5_1 sees 156 px at stride 16: 70 px past its own 16 on each side, rounded up to the stride.
    assert tiles.layer_reach("relu5_1") == 70 and tiles.margin_for(DEFAULT_STYLE) == 80
    assert tiles.layer_reach("conv3_1") == 10 and tiles.margin_for((*STYLE, *CONTENT)) == 12
    assert tiles.margin_for(["relu1_1"]) == 1 and tiles.total_stride(["relu1_1"]) == 1


def test_a_plan_refuses_layers_deeper_than_its_own():
    plan = tiles.plan_tiles(64, 64, 16, ["relu2_1"])
    with pytest.raises(ValueError, match="deeper"):
        plan.own(plan.tiles[0], "relu3_1")


def test_one_tile_when_the_tile_is_the_image():
    plan = tiles.plan_tiles(100, 75, 512, (*STYLE, *CONTENT))
    (t,) = plan.tiles
    assert t.rows == t.padded_rows == (0, 100) and t.cols == t.padded_cols == (0, 75)


# ------------------------------------------------------------------ exactness


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
@pytest.mark.parametrize(("hw", "tile"), [((96, 80), 32), ((100, 75), 48)])
def test_tiled_step_is_the_untiled_step(net64, images64, norm, hw, tile):
    h, w = hw
    x, content, style = (t[..., :h, :w] for t in images64)
    obj = objective(net64, content, style, norm)
    plan = tiles.plan_tiles(h, w, tile, obj.layers)
    assert len(plan.tiles) >= 4 and plan.largest_padded < h * w / 2
    terms, grad = ts.tiled_step(net64, x, plan, ts.TiledObjective.from_objective(obj))
    assert_same(terms, grad, *untiled(net64, obj, x))


def test_a_margin_one_stride_short_is_not_exact(net64, images64):
    # Shows that the margin is needed (and that the exactness test can fail).
    x, content, style = (t[..., :96, :80] for t in images64)
    obj = objective(net64, content, style)
    short = tiles.plan_tiles(96, 80, 32, obj.layers, margin=tiles.margin_for(obj.layers) - 4)
    terms, grad = ts.tiled_step(net64, x, short, ts.TiledObjective.from_objective(obj))
    want_terms, want_grad = untiled(net64, obj, x)
    assert (grad - want_grad).abs().max() > 1e-6 * want_grad.abs().max()
    assert not torch.allclose(terms["style"], want_terms["style"], rtol=1e-9, atol=0)


@pytest.mark.parametrize("kind", sl.STYLE_LOSSES)
@pytest.mark.parametrize("masked", [False, True])
def test_regions_and_every_style_loss_are_exact(net64, images64, kind, masked):
    """``objective.Objective`` with regions (masks cropped with the tiles, each region's share), moments summed,
    swd's projections gathered, and its directions drawn from the same generator in the same order."""
    h, w = 100, 75
    x, content, style = (t[..., :h, :w] for t in images64)
    mask = torch.zeros(1, 1, h, w, dtype=torch.float64)
    mask[..., 20:70, 9:61] = 1.0
    mask[..., 30:41, :] = 0.5  # soft, and crossing tile borders
    with torch.no_grad():
        ct, st = net64(content, CONTENT), net64(style, STYLE)
        st2 = net64(style.flip(-1)[..., :48, :40], STYLE)
    targets = {k: sl.stats(kind, st[k]) for k in STYLE}
    if masked:  # two regions: the mask, and the background against another target
        back = guides.background(mask)
        regions = [
            StyleRegion(targets, guides.to_layers(mask, STYLE), mask.mean(dim=(1, 2, 3))),
            StyleRegion({k: sl.stats(kind, st2[k]) for k in STYLE}, guides.to_layers(back, STYLE), back.mean()),
        ]
    else:
        regions = [StyleRegion(targets)]
    weights = Weights(1.0, 5.0, 0.3, 0.0, [1.0], [1.0, 2.0, 0.5])

    def make(seed):
        gen = torch.Generator().manual_seed(seed) if kind == "swd" else None
        return Objective(
            CONTENT, STYLE, regions, weights, kind=kind, content_targets=dict(ct), generator=gen, swd_directions=7
        )

    want_terms, want_grad = untiled(net64, make(1), x)
    obj = make(1)
    plan = tiles.plan_tiles(h, w, 32, obj.layers)
    assert len(plan.tiles) >= 6
    got, grad = ts.tiled_step(net64, x, plan, ts.TiledObjective.from_objective(obj), generator=obj.generator)
    assert list(got) == list(want_terms) == ["content", "style", "tv", "total"]
    assert_same(got, grad, want_terms, want_grad)


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_the_temporal_term_is_exact(net64, images64, norm):
    """A video frame's temporal term (whole image, like TV) beside content and style, under each normalisation."""
    h, w = 96, 80
    x, content, style = (t[..., :h, :w] for t in images64)
    obj = objective(net64, content, style, norm)
    obj.weights.temporal = 2.5
    obj.temporal = TemporalTarget(content.flip(-1), rand(1, 1, h, w, seed=7))
    want_terms, want_grad = untiled(net64, obj, x)
    plan = tiles.plan_tiles(h, w, 32, obj.layers)
    got, grad = ts.tiled_step(net64, x, plan, ts.TiledObjective.from_objective(obj))
    assert list(got) == list(want_terms) == ["content", "style", "tv", "temporal", "total"]
    assert want_terms["temporal"] > 0
    assert_same(got, grad, want_terms, want_grad)


def test_an_objective_without_content_targets_is_refused(net64, images64):
    obj = objective(net64, *images64[1:])
    obj.content_targets = {}
    with pytest.raises(ValueError, match="content targets at conv3_1"):
        ts.TiledObjective.from_objective(obj)


def test_swd_draws_its_directions_from_the_generator(net64, images64):
    x, content, style = (t[..., :48, :40] for t in images64)
    with torch.no_grad():
        st = net64(style, ["relu1_1"])
    obj = ts.TiledObjective([], [ts.StyleTerm("relu1_1", sl.stats("swd", st["relu1_1"]), "swd")])
    plan = tiles.plan_tiles(48, 40, 16, obj.layers)
    a = ts.tiled_step(net64, x, plan, obj, generator=torch.Generator().manual_seed(5))[0]["style"]
    b = ts.tiled_step(net64, x, plan, obj, generator=torch.Generator().manual_seed(5))[0]["style"]
    c = ts.tiled_step(net64, x, plan, obj, generator=torch.Generator().manual_seed(6))[0]["style"]
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="generator"):
        ts.tiled_step(net64, x, plan, obj)


def test_tiled_features_and_sums_are_the_whole_images(net64, images64):
    x = images64[0][..., :100, :75]
    plan = tiles.plan_tiles(100, 75, 32, (*STYLE, *CONTENT))
    with torch.no_grad():
        whole = net64(x, (*STYLE, *CONTENT))
    feats = ts.tiled_features(net64, x, plan, (*STYLE, *CONTENT))
    for k, f in feats.items():
        assert f.shape == whole[k].shape and torch.allclose(f, whole[k], rtol=1e-10, atol=1e-10), k
    mask = rand(1, 1, 100, 75, seed=4)
    masks = guides.to_layers(mask, STYLE)
    for kind in ("gram", "moments"):
        got = ts.tiled_sums(net64, x, plan, kind, STYLE, masks)
        for k in STYLE:
            want = sl.sums(kind, whole[k], masks[k])
            assert torch.allclose(got[k].second, want.second, rtol=1e-10) and torch.allclose(got[k].weight, want.weight)


def test_default_layers_are_exact_in_float32():
    """relu1_1..relu5_1 and relu4_2 (margin 80 px) on 288x256 in 3x2 tiles, float32 as the CPU runs it."""
    net = vgg.build((*DEFAULT_STYLE, *DEFAULT_CONTENT), "caffe")
    x, content, style = rand(1, 3, 288, 256, dtype=torch.float32), rand(1, 3, 288, 256, seed=1), rand(1, 3, 96, 96)
    with torch.no_grad():
        ct, st = net(content.float(), DEFAULT_CONTENT), net(style.float(), DEFAULT_STYLE)
    obj = Objective.from_grams(
        dict(ct),
        {k: losses.gram_matrix(st[k]) for k in DEFAULT_STYLE},
        content_layer_weights=[1.0],
        style_layer_weights=[1.0] * 5,
        content_weight=1.0,
        style_weight=5.0,
        tv_weight=0.1,
    )
    plan = tiles.plan_tiles(288, 256, 128, obj.layers)
    assert len(plan.tiles) == 6 and plan.margin == 80
    terms, grad = ts.tiled_step(net, x, plan, ts.TiledObjective.from_objective(obj))
    want_terms, want_grad = untiled(net, obj, x)
    assert_same(terms, grad, want_terms, want_grad, rel=1e-5)  # float32 itself is 6e-4 off float64 here


def test_wrong_sizes_are_refused(net64, images64):
    x, content, style = (t[..., :48, :40] for t in images64)
    obj = ts.TiledObjective.from_objective(objective(net64, content, style))
    plan = tiles.plan_tiles(48, 40, 16, obj.layers)
    with pytest.raises(ValueError, match="one image"):
        ts.tiled_step(net64, x.repeat(2, 1, 1, 1), plan, obj)
    smaller = ts.TiledObjective.from_objective(objective(net64, content[..., :40, :32], style))
    with pytest.raises(ValueError, match="content target at conv3_1"):
        ts.tiled_step(net64, x, plan, smaller)
    with pytest.raises(ValueError, match="deeper"):
        ts.tiled_step(net64, x, tiles.plan_tiles(48, 40, 16, ["relu2_1"]), obj)


# ------------------------------------------------------------------ optimisation: every optimiser, no seams


@pytest.mark.parametrize("name", ["lbfgs", "adam", "sgd"])
def test_every_optimiser_follows_the_untiled_path(net64, images64, name):
    from stylelab import optimizers

    x, content, style = (t[..., :96, :80] for t in images64)
    obj = objective(net64, content, style)
    tobj = ts.TiledObjective.from_objective(obj)
    plan = tiles.plan_tiles(96, 80, 32, obj.layers)
    paths = []
    for tiled in (True, False):
        # L-BFGS with a short history, so that its trimming is on the path too.
        opt = optimizers.LBFGS(1.0, history=2) if name == "lbfgs" else optimizers.make(name, None)
        y = x.clone()
        for _ in range(4):
            _, grad = ts.tiled_step(net64, y, plan, tobj) if tiled else untiled(net64, obj, y)
            opt.step(y, grad, torch.ones(1, dtype=torch.bool))
            y.clamp_(0, 1)
        paths.append(y)
    assert (paths[0] - x).abs().max() > 1e-3  # it moved
    assert (paths[0] - paths[1]).abs().max() < 1e-9


def _seam_ratios(change: torch.Tensor, plan: tiles.TilePlan) -> list[float]:
    """Mean |neighbour difference| of ``change`` across tile borders over that at the same stride phase elsewhere.

    VGG's pooling leaves a stylised image periodic with the network's stride, so a
    border column is compared with the columns of its own phase.
    """
    out = []
    for dim, cuts in ((3, {t.cols[0] for t in plan.tiles}), (2, {t.rows[0] for t in plan.tiles})):
        n = change.shape[dim]
        step = (change.narrow(dim, 1, n - 1) - change.narrow(dim, 0, n - 1)).abs()
        per = step.mean(dim=tuple(i for i in range(4) if i != dim))
        border = torch.zeros(n - 1, dtype=torch.bool)
        border[[c - 1 for c in cuts - {0}]] = True
        phase = (torch.arange(n - 1) % plan.stride == plan.stride - 1) & ~border
        out.append(float(per[border].mean() / per[phase].mean()))
    return out


def test_no_seams_along_tile_borders():
    """Ten Adam steps on 128x128 in 4x4 tiles: across borders the image changes as it does elsewhere.

    Separately stylised tiles (a mosaic, each with its own statistics and its own
    zero padding) show the seams this measures.
    """
    net = vgg.build((*STYLE, *CONTENT), "caffe")
    h = w = 128
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    smooth = torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(9 * xx + 5 * yy)])[None]
    content = 0.5 * smooth + 0.5 * rand(1, 3, h, w, seed=3, dtype=torch.float32)
    with torch.no_grad():
        st = net(rand(1, 3, 64, 64, seed=2, dtype=torch.float32), STYLE)
    grams = {k: losses.gram_matrix(st[k]) for k in STYLE}

    def objective_for(c):
        with torch.no_grad():
            ct = net(c, CONTENT)
        obj = Objective.from_grams(
            dict(ct), grams, content_layer_weights=[1.0], style_layer_weights=[1.0] * 3,
            content_weight=1.0, style_weight=20.0, tv_weight=0.0,
        )  # fmt: skip
        return ts.TiledObjective.from_objective(obj)

    def optimise(start, plan):
        obj = objective_for(start)
        x = start.clone().requires_grad_(True)
        opt = torch.optim.Adam([x], lr=0.02)
        for _ in range(10):
            x.grad = ts.tiled_step(net, x.detach(), plan, obj)[1]
            opt.step()
            with torch.no_grad():
                x.clamp_(0, 1)
        return x.detach()

    layers = (*STYLE, *CONTENT)
    plan = tiles.plan_tiles(h, w, 32, layers)
    tiled = optimise(content, plan)
    whole = optimise(content, tiles.plan_tiles(h, w, h, layers))
    mosaic = content.clone()
    for t in plan.tiles:
        rows, cols = slice(*t.rows), slice(*t.cols)
        crop = content[:, :, rows, cols]
        mosaic[:, :, rows, cols] = optimise(crop, tiles.plan_tiles(*crop.shape[2:], 512, layers))
    assert (tiled - content).abs().mean() > 0.01 and (tiled - whole).abs().max() < 1e-3
    ours, untiled_ratios, naive = (_seam_ratios(img - content, plan) for img in (tiled, whole, mosaic))
    assert all(abs(r - 1) < 0.15 for r in ours), ours
    assert all(abs(a - b) < 0.01 for a, b in zip(ours, untiled_ratios))
    assert max(naive) > 1.3, naive


# ------------------------------------------------------------------ memory


def test_auto_tile_fits_the_budget_and_shrinks_with_it():
    recipe = Recipe(precision="bf16")
    assert tiles.auto_tile(recipe, 384, 512, 24 << 30) == 512  # fits whole: one tile
    layers = (*recipe.resolved_style_layers, *recipe.resolved_content_layers)
    sides = []
    for gib in (6, 4, 3):
        budget = gib << 30
        side = tiles.auto_tile(recipe, 3072, 4096, budget)
        history = tiles.lbfgs_history(3072, 4096, budget)
        need = tiles.tiled_bytes(recipe, 3072, 4096, side, history=history)
        assert len(tiles.plan_tiles(3072, 4096, side, layers).tiles) > 1 and need <= budget, (gib, side, need)
        # Nearly the largest: two strides more would take 90% of the budget or more.
        assert tiles.tiled_bytes(recipe, 3072, 4096, side + 2 * 16, history=history) > 0.9 * budget
        sides.append(side)
    assert sides == sorted(sides, reverse=True) and sides[0] > sides[-1]
    with pytest.raises(MemoryLimitError, match="even in tiles"):
        tiles.auto_tile(recipe, 3072, 4096, 1 << 30)


def test_lbfgs_history_is_bounded_on_large_images():
    assert tiles.lbfgs_history(512, 512, 6 << 30) == 20
    big = tiles.lbfgs_history(3072, 4096, 6 << 30)
    assert 3 <= big < 20 and 2 * big * 3 * 3072 * 4096 * 4 <= tiles.HISTORY_SHARE * (6 << 30)
    assert tiles.lbfgs_history(8192, 8192, 1 << 30) == 3


MEMORY_SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from stylelab import losses, tiles, vgg
from stylelab import tiled_step as ts
from stylelab.objective import Objective
style, content = {style!r}, {content!r}
net = vgg.build(style + content, "caffe")
g = torch.Generator().manual_seed(0)
x = torch.rand(1, 3, 512, 512, generator=g)
with torch.no_grad():
    st = net(torch.rand(1, 3, 64, 64, generator=g), style)
plan = tiles.plan_tiles(512, 512, 128, style + content)
ct = ts.tiled_features(net, x, plan, content)
obj = Objective.from_grams(ct, {{k: losses.gram_matrix(st[k]) for k in style}}, content_layer_weights=[1.0],
                           style_layer_weights=[1.0] * len(style), content_weight=1.0, style_weight=1.0, tv_weight=1.0)
tobj = ts.TiledObjective.from_objective(obj)
tobj_small = ts.TiledObjective([], tobj.style, tv_weight=1.0)
def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith(key))
def peak_of(step):
    # Linux resets the peak (VmHWM) to the current RSS on "5": each step's own peak, not the loading's.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = status("VmRSS:")
    step()
    return status("VmHWM:") - base
def untiled():
    xv = x.clone().requires_grad_(True)
    terms = obj(net(xv, obj.layers), xv)
    torch.autograd.grad(terms["total"].sum(), xv)
small = x[:, :, :64, :64]
ts.tiled_step(net, small, tiles.plan_tiles(64, 64, 32, style + content), tobj_small)  # the libraries' first use
tiled = peak_of(lambda: ts.tiled_step(net, x, plan, tobj))
whole = peak_of(untiled)
print(json.dumps({{"tiled": tiled, "untiled": whole}}))
"""


def test_a_tiled_step_peaks_far_below_the_untiled_one():
    """Peak RSS growth of one step at 512x512 (float32): 4x4 tiles of 128 px against the whole image (Linux)."""
    script = MEMORY_SCRIPT.format(style=list(STYLE), content=list(CONTENT))
    src = str(Path(__file__).resolve().parents[2] / "src")
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, check=True,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, timeout=300,
    )  # fmt: skip
    peaks = json.loads(out.stdout.strip().splitlines()[-1])
    from stylelab.memory import image_bytes

    estimate = image_bytes(Recipe(content_layers=CONTENT, style_layers=STYLE, optimizer="sgd"), 512, 512, 4)
    assert peaks["untiled"] > 0.5 * estimate, (peaks, estimate)  # the measurement sees a step's activations
    assert peaks["tiled"] < 0.25 * peaks["untiled"], peaks
