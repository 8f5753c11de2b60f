"""Style losses (gram, moments, swd) on random feature maps: no network needed."""

from __future__ import annotations

import pytest
import torch

from stylelab import losses
from stylelab import style_losses as sl
from stylelab.errors import RecipeError

KINDS = sl.STYLE_LOSSES


def rand(*shape, seed=0, dtype=torch.float32):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def soft_mask(b, h, w, seed=0, dtype=torch.float32):
    """Soft weights in 0..1 with a band of exact zeros (pixels outside the region)."""
    m = torch.rand((b, 1, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    m[..., : h // 3, :] = 0
    return m.to(dtype)


def fixed(c, k=16, seed=3):
    return sl.random_directions(c, k, torch.Generator().manual_seed(seed))


def run(kind, features, target, mask=None, directions=None):
    if kind == "swd" and directions is None:
        directions = fixed(features.shape[1])
    return sl.loss(kind, features, target, mask, directions=directions)


# ------------------------------------------------------------------ the four properties the issue asks for


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_zero_for_identical_feature_sets_and_positive_otherwise(kind, masked):
    f = rand(2, 5, 6, 7)
    mask = soft_mask(2, 6, 7) if masked else None
    same = run(kind, f, sl.stats(kind, f, mask), mask)
    assert same.shape == (2,) and torch.all(same.abs() < 1e-6), same
    other = run(kind, rand(2, 5, 6, 7, seed=1) * 2 + 1, sl.stats(kind, f, mask), mask)
    assert torch.all(other > 1e-2), other


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_invariant_to_permuting_pixels(kind, masked):
    f, s = rand(2, 4, 5, 6), rand(1, 4, 7, 3, seed=1)
    mask, smask = (soft_mask(2, 5, 6), soft_mask(1, 7, 3, seed=2)) if masked else (None, None)
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(4))
    sperm = torch.randperm(21, generator=torch.Generator().manual_seed(5))

    def shuffle(x, p, h, w):
        return None if x is None else x.flatten(2)[..., p].reshape(*x.shape[:2], h, w)

    base = run(kind, f, sl.stats(kind, s, smask), mask)
    moved = run(kind, shuffle(f, perm, 5, 6), sl.stats(kind, shuffle(s, sperm, 7, 3), shuffle(smask, sperm, 7, 3)),
                shuffle(mask, perm, 5, 6))  # fmt: skip
    assert torch.allclose(base, moved, rtol=1e-5, atol=1e-7)
    assert torch.all(base > 1e-3)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("masked", [False, True])
def test_float64_gradcheck(kind, masked):
    f = rand(2, 3, 4, 5, dtype=torch.float64).requires_grad_()
    s = rand(1, 3, 3, 4, seed=1, dtype=torch.float64)  # fewer pixels than the image: interpolated quantiles
    mask = soft_mask(2, 4, 5, dtype=torch.float64) if masked else None
    smask = soft_mask(1, 3, 4, seed=2, dtype=torch.float64) if masked else None
    target = sl.stats(kind, s, smask)
    d = fixed(3, 5).double()
    assert torch.autograd.gradcheck(lambda x: run(kind, x, target, mask, d), (f,))


def gaussian_like(x, mean, mix):
    """``x`` (N, C) moved to exactly this mean and covariance mix mix^T (biased), as (1, C, side, side)."""
    x = x - x.mean(0)
    chol = torch.linalg.cholesky(x.T @ x / x.shape[0])
    x = torch.linalg.solve_triangular(chol, x.T, upper=False).T @ mix.T + mean
    side = int(x.shape[0] ** 0.5)
    return x.T.reshape(1, x.shape[1], side, side)


def test_swd_tells_apart_distributions_with_equal_mean_and_covariance():
    gen = torch.Generator().manual_seed(0)
    n, c = 48 * 48, 3
    mean = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    mix = torch.tensor([[1.0, 0, 0], [0.3, 0.8, 0], [0.1, -0.2, 0.6]], dtype=torch.float64)
    normal_1 = gaussian_like(torch.randn(n, c, generator=gen, dtype=torch.float64), mean, mix)
    normal_2 = gaussian_like(torch.randn(n, c, generator=gen, dtype=torch.float64), mean, mix)
    signs = torch.randint(0, 2, (n, c), generator=gen).double() * 2 - 1
    bimodal = gaussian_like(signs + 0.2 * torch.randn(n, c, generator=gen, dtype=torch.float64), mean, mix)
    d = fixed(c, 64).double()
    same = float(run("swd", normal_2, sl.stats("swd", normal_1), directions=d))
    different = float(run("swd", bimodal, sl.stats("swd", normal_1), directions=d))
    assert different > 10 * same, (same, different)
    # Second moments cannot see the difference: both pairs are equally (exactly) matched.
    for kind in ("gram", "moments"):
        assert float(run(kind, normal_2, sl.stats(kind, normal_1))) < 1e-20
        assert float(run(kind, bimodal, sl.stats(kind, normal_1))) < 1e-20


# ------------------------------------------------------------------ batches, precisions, calibration


@pytest.mark.parametrize("kind", KINDS)
def test_batch_items_are_independent_and_targets_broadcast(kind):
    f, mask = rand(3, 4, 6, 5), soft_mask(3, 6, 5)
    styles = [rand(1, 4, 6, 5, seed=1), rand(1, 4, 4, 3, seed=2), rand(1, 4, 7, 6, seed=3)]
    targets = [sl.stats(kind, s) for s in styles]
    together = run(kind, f, sl.cat(kind, targets), mask)  # swd: the smaller styles padded with zero weights
    shared = run(kind, f, targets[0], mask)
    for i in range(3):
        alone = run(kind, f[i : i + 1], targets[i], mask[i : i + 1])
        assert torch.allclose(together[i], alone[0], rtol=1e-5, atol=1e-7)
        assert torch.allclose(shared[i], run(kind, f[i : i + 1], targets[0], mask[i : i + 1])[0], rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_bfloat16_features_are_summed_in_float32(kind):
    f, s = rand(2, 8, 6, 6), rand(1, 8, 5, 7, seed=1).abs()
    target = sl.stats(kind, s.bfloat16())
    low = run(kind, f.bfloat16(), target)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert torch.allclose(low, run(kind, f.bfloat16().float(), sl.stats(kind, s.bfloat16().float())), rtol=0.02)


@pytest.mark.parametrize("kind", KINDS)
def test_float64_stays_float64(kind):
    f = rand(1, 3, 4, 4, dtype=torch.float64)
    assert run(kind, f * 2, sl.stats(kind, f)).dtype == torch.float64


@pytest.mark.parametrize("kind", KINDS)
def test_all_zero_features_score_about_one(kind):
    """Each kind is relative to the style's own scale, as the stylelab Gram term is."""
    s = rand(1, 6, 8, 8).abs() + 0.5
    d = fixed(6, 4000) if kind == "swd" else None  # the denominator is the mean over all directions
    assert float(run(kind, torch.zeros(1, 6, 8, 8), sl.stats(kind, s), directions=d)) == pytest.approx(1, abs=0.03)


# ------------------------------------------------------------------ masks


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_guided_gram_without_mask_is_gram_matrix(norm):
    f = rand(2, 5, 6, 7)
    assert torch.equal(sl.guided_gram(f, None, norm), losses.gram_matrix(f, norm))
    cl = f.contiguous(memory_format=torch.channels_last).bfloat16()
    assert torch.equal(sl.guided_gram(cl, None, norm), losses.gram_matrix(cl, norm))
    target = sl.stats("gram", rand(1, 5, 4, 4, seed=1), normalization=norm)
    assert torch.equal(sl.loss("gram", f, target), losses.style_term(f, target.gram, norm))


@pytest.mark.parametrize("kind", KINDS)
def test_a_mask_of_ones_is_no_mask(kind):
    f, s = rand(2, 4, 6, 5), rand(1, 4, 5, 5, seed=1)
    ones_f, ones_s = torch.ones(1, 1, 6, 5), torch.ones(1, 1, 5, 5)
    for norm in losses.NORMALIZATIONS if kind == "gram" else ("stylelab",):
        plain = run(kind, f, sl.stats(kind, s, normalization=norm))
        masked = run(kind, f, sl.stats(kind, s, ones_s, normalization=norm), ones_f)
        assert torch.allclose(plain, masked, rtol=1e-5), norm


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_a_binary_region_is_the_picture_of_its_pixels(norm):
    """A region's area replaces H W in every normalisation: masking = cropping to the region."""
    f, s = rand(2, 4, 6, 9), rand(1, 4, 5, 5, seed=1)
    left = torch.zeros(1, 1, 6, 9)
    left[..., :4] = 1
    crop = f[..., :4].contiguous()
    assert torch.allclose(sl.guided_gram(f, left, norm), losses.gram_matrix(crop, norm), rtol=1e-5)
    target = sl.stats("gram", s, normalization=norm)
    assert torch.allclose(sl.loss("gram", f, target, left), losses.style_term(crop, target.gram, norm), rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_a_region_replicated_over_more_pixels_keeps_its_statistics(kind):
    f = rand(1, 4, 5, 6)
    region = torch.zeros(1, 1, 5, 6)
    region[..., 1:4, 2:5] = 1
    # The same region's pixels three times over (and other pixels outside it): its area triples.
    bigger = torch.cat([f, f, f], -1)
    big_region = torch.cat([region, region, region], -1)
    s = rand(1, 4, 6, 6, seed=1)
    assert torch.allclose(run(kind, f, sl.stats(kind, s), region), run(kind, bigger, sl.stats(kind, s), big_region))
    if kind == "gram":  # area-normalised in stylelab and jcjohnson; family-b by sqrt(area), family-a not at all
        for norm, grows in (("stylelab", 1), ("jcjohnson", 1), ("family-b", 3**0.5), ("family-a", 3)):
            small, big = sl.guided_gram(f, region, norm), sl.guided_gram(bigger, big_region, norm)
            assert torch.allclose(small * grows, big, rtol=1e-5), norm


@pytest.mark.parametrize("kind", KINDS)
def test_a_style_mask_takes_the_style_from_its_region_only(kind):
    s = rand(1, 4, 6, 8)
    s[..., 4:] = 10 + 5 * rand(1, 4, 6, 4, seed=9)  # the right half is something else entirely
    left = torch.zeros(1, 1, 6, 8)
    left[..., :4] = 1
    from_left = sl.stats(kind, s, left)
    assert float(run(kind, s[..., :4].contiguous(), from_left)) < 1e-6
    assert float(run(kind, s[..., :4].contiguous(), sl.stats(kind, s))) > 0.1


@pytest.mark.parametrize("kind", KINDS)
def test_a_region_with_no_pixels_contributes_nothing(kind):
    f = rand(2, 3, 4, 4).requires_grad_()
    mask = torch.ones(2, 1, 4, 4)
    mask[1] = 0
    out = run(kind, f, sl.stats(kind, rand(1, 3, 4, 4, seed=1)), mask)
    assert out[0] > 0 and out[1] == 0
    out.sum().backward()
    assert torch.isfinite(f.grad).all() and f.grad[1].abs().max() == 0


# ------------------------------------------------------------------ sums that add up, blends that are mixtures


@pytest.mark.parametrize("kind", KINDS)
def test_tiles_sums_add_up_to_the_whole(kind):
    f, mask = rand(2, 4, 6, 8), soft_mask(2, 6, 8)
    for m in (None, mask):
        halves = [(f[..., :5], None if m is None else m[..., :5]), (f[..., 5:], None if m is None else m[..., 5:])]
        total = sl.sums(kind, *halves[0]) + sl.sums(kind, *halves[1])
        image = rand(2, 4, 5, 5, seed=2)
        assert torch.allclose(run(kind, image, sl.finish(kind, total)), run(kind, image, sl.stats(kind, f, m)))


@pytest.mark.parametrize("kind", ("gram", "moments"))
def test_regions_of_a_partition_add_up_to_the_image(kind):
    f, m = rand(1, 4, 6, 8), soft_mask(1, 6, 8)
    whole = sl.sums(kind, f)
    parts = sl.sums(kind, f, m) + sl.sums(kind, f, 1 - m)
    assert torch.allclose(parts.second, whole.second, rtol=1e-5) and float(parts.weight) == pytest.approx(48)


@pytest.mark.parametrize("kind", KINDS)
def test_a_blend_is_the_mixture_of_the_styles(kind):
    a, b = rand(1, 4, 5, 6, seed=1), rand(1, 4, 3, 4, seed=2) + 1
    union = torch.cat([a.flatten(2), b.flatten(2)], -1).reshape(1, 4, 6, 7)  # 30 + 12 = 42 pixels
    blended = sl.blend(kind, [sl.stats(kind, a), sl.stats(kind, b)], [30, 12])
    image = rand(2, 4, 6, 6, seed=3)
    assert torch.allclose(run(kind, image, blended), run(kind, image, sl.stats(kind, union)), rtol=1e-5)
    if kind == "gram":
        g = losses.blend_grams([losses.gram_matrix(a), losses.gram_matrix(b)], [30, 12])
        assert torch.allclose(blended.gram, g)


# ------------------------------------------------------------------ swd's directions, the yardstick, errors


def test_swd_draws_new_directions_each_step_reproducibly():
    f, target = rand(1, 4, 5, 5), sl.stats("swd", rand(1, 4, 5, 5, seed=1))
    first, second = sl.StyleLoss("swd", seed=7), sl.StyleLoss("swd", seed=7)
    a = [float(first(f, target)) for _ in range(3)]
    assert a == [float(second(f, target)) for _ in range(3)]
    assert len(set(a)) == 3
    assert float(sl.StyleLoss("swd", n_directions=3, seed=1)(f, target)) > 0


@pytest.mark.parametrize("kind", KINDS)
def test_distance_is_deterministic_and_the_root_of_the_loss(kind):
    f, target = rand(2, 4, 6, 6), sl.stats(kind, rand(1, 4, 5, 5, seed=1))
    d = sl.distance(kind, f, target)
    assert torch.equal(d, sl.distance(kind, f, target)) and torch.all(d > 0)
    if kind == "gram":  # metrics' per-layer style distance
        expected = (losses.gram_matrix(f) - target.gram).flatten(1).norm(dim=1) / target.gram.norm()
        assert torch.allclose(d, expected, rtol=1e-5)


def test_module_matches_the_function():
    f, target = rand(2, 4, 5, 5), sl.stats("moments", rand(1, 4, 5, 5, seed=1))
    assert torch.equal(sl.StyleLoss("moments")(f, target), sl.loss("moments", f, target))


def test_errors():
    f = rand(1, 3, 4, 4)
    with pytest.raises(RecipeError, match="unknown style loss 'wasserstein'.*gram, moments, swd"):
        sl.check_kind("wasserstein")
    with pytest.raises(RecipeError, match="unknown normalization"):
        sl.stats("gram", f, normalization="gatys")
    with pytest.raises(ValueError, match="needs a MomentStats target"):
        sl.loss("moments", f, sl.stats("gram", f))
    with pytest.raises(ValueError, match="guides.to_layer"):
        sl.loss("gram", f, sl.stats("gram", f), torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="generator="):
        sl.loss("swd", f, sl.stats("swd", f))
    with pytest.raises(RecipeError, match="at least 1"):
        sl.random_directions(3, 0, torch.Generator())
