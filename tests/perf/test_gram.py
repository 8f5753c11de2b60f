"""The Gram matrix's one-product backward, its layouts, and float32 under autocast."""

import pytest
import torch

from stylelab.losses import gram_matrix, style_term


def _reference(f: torch.Tensor) -> torch.Tensor:
    b, c, h, w = f.shape
    m = f.reshape(b, c, h * w)
    return torch.bmm(m, m.transpose(1, 2)) / (h * w)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(2, 5, 3, 4), (1, 4, 2, 2)], ids=["hw!=c", "hw==c"])
def test_gram_and_its_gradient_match_autograd_of_the_plain_product(layout, dtype, shape):
    # hw == c: a (C, HW) and an (HW, C) matrix have the same shape; only the layout says which it is
    # (a 16x16 map of 256 channels, conv3_x of a 64 px style image, once got the pixels' Gram).
    gen = torch.Generator().manual_seed(0)
    f = torch.randn(*shape, generator=gen, dtype=torch.float64).contiguous(memory_format=layout)
    if dtype == torch.bfloat16:
        f = f.to(dtype).contiguous(memory_format=layout)
        mine = gram_matrix(f)
        # One bf16 product summed in float32: only the result's rounding to bf16 (2^-8) remains.
        assert mine.dtype == torch.float32
        assert torch.allclose(mine, _reference(f.double()).float(), rtol=2**-8, atol=1e-6)
        return
    f.requires_grad_(True)
    target = torch.randn(2, shape[1], shape[1], generator=gen, dtype=torch.float64)[: shape[0]]
    mine = gram_matrix(f)
    assert torch.allclose(mine, _reference(f))
    (g_mine,) = torch.autograd.grad(((mine - target) ** 2).sum(), f)
    (g_ref,) = torch.autograd.grad(((_reference(f) - target) ** 2).sum(), f)
    assert torch.allclose(g_mine, g_ref)
    assert torch.autograd.gradcheck(lambda t: gram_matrix(t, "family-b"), (f,))


def test_gradient_keeps_the_features_layout():
    f = torch.randn(1, 4, 6, 6).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    (g,) = torch.autograd.grad(style_term(f, torch.eye(4)[None]), f)
    assert g.is_contiguous(memory_format=torch.channels_last)
    f2 = torch.randn(1, 4, 6, 6, requires_grad=True)
    (g2,) = torch.autograd.grad(style_term(f2, torch.eye(4)[None]), f2)
    assert g2.is_contiguous()


def test_gram_stays_float32_under_autocast_and_for_bf16_features():
    # CPU autocast casts bmm to bf16 the way CUDA autocast does: the same code path.
    f = torch.randn(1, 8, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        g = gram_matrix(f)
        g_bf16_in = gram_matrix(f.to(torch.bfloat16))
    assert g.dtype == torch.float32 and g_bf16_in.dtype == torch.float32
    assert torch.allclose(g, _reference(f), rtol=1e-5)


def test_bf16_features_with_large_values_do_not_overflow():
    # Sums of squares of 1e3-sized activations over many pixels exceed fp16's range.
    f = torch.full((1, 2, 64, 64), 1e3, dtype=torch.bfloat16)
    g = gram_matrix(f, "family-a")
    assert torch.isfinite(g).all() and g.dtype == torch.float32
    assert g[0, 0, 0].item() == pytest.approx(1e6 * 64 * 64, rel=1e-3)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_bf16_features_get_a_bf16_gradient_close_to_float32(layout):
    gen = torch.Generator().manual_seed(3)
    f32 = torch.rand(1, 16, 12, 10, generator=gen).contiguous(memory_format=layout)
    target = gram_matrix(torch.rand(1, 16, 12, 10, generator=gen))
    f16 = f32.to(torch.bfloat16).requires_grad_(True)
    ref = f16.detach().float().requires_grad_(True)  # the same values, in float32
    (g16,) = torch.autograd.grad(style_term(f16, target), f16)
    (g32,) = torch.autograd.grad(style_term(ref, target), ref)
    assert g16.dtype == torch.bfloat16 and g16.is_contiguous(memory_format=layout)
    assert torch.allclose(g16.float(), g32, rtol=2e-2, atol=2e-2 * g32.abs().max().item())
    # The loss is float32, off only by the Gram's rounding to bf16.
    loss16, loss32 = style_term(f16, target), style_term(ref, target)
    assert loss16.dtype == torch.float32 and torch.allclose(loss16, loss32, rtol=1e-2)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fp16_gram_accumulated_in_slices_equals_the_whole_product(monkeypatch, layout):
    from stylelab import losses

    f = torch.rand(2, 16, 9, 13).to(torch.float16).contiguous(memory_format=layout)
    whole = _reference(f.float())
    monkeypatch.setattr(losses, "GRAM_SLICE", 16 * 10)  # 10 pixels a slice: 12 slices, the last short
    assert torch.allclose(gram_matrix(f), whole, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ the Gram tap


def _tapped_and_plain(dtype, layout, names=("relu1_1", "relu2_1", "relu3_1"), content=("relu2_1",)):
    """Objective terms and image gradient through the network, with the Grams tapped and without."""
    from stylelab import vgg
    from stylelab.objective import Objective

    net = vgg.build({*names, *content}, channels_last=layout == torch.channels_last).to(dtype)
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 24, 32, generator=gen, dtype=dtype)
    with torch.no_grad():
        feats = net(torch.rand(1, 3, 24, 32, generator=gen, dtype=dtype))
    obj = Objective.from_grams(
        {k: feats[k] for k in content},
        {k: gram_matrix(feats[k]) for k in names},
        content_layer_weights=[1.0] * len(content),
        style_layer_weights=[1.0] * len(names),
        content_weight=1.0,
        style_weight=10.0,
        tv_weight=0.0,
    )
    out = []
    for tapped in (True, False):
        x = image.clone().requires_grad_(True)
        tap = obj.tap() if tapped else None
        f = net(x, obj.layers, tap=tap)
        terms = obj(f, x, tap.grams if tapped else None)
        out.append((terms, torch.autograd.grad(terms["total"].sum(), x)[0], tap))
    return out


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_tapped_grams_give_the_same_loss_and_gradient(layout):
    (t_tap, g_tap, tap), (t_plain, g_plain, _) = _tapped_and_plain(torch.float64, layout)
    assert set(tap.grams) == {"relu1_1", "relu2_1", "relu3_1"}
    for k in ("content", "style", "total"):
        assert torch.allclose(t_tap[k], t_plain[k], rtol=1e-12), k
    assert torch.allclose(g_tap, g_plain, rtol=1e-9, atol=1e-12 * g_plain.abs().max().item())


def test_gram_gradient_adds_into_the_other_gradient_in_place_or_after_a_copy():
    from stylelab.losses import _gram_gradient

    gen = torch.Generator().manual_seed(3)
    f = torch.randn(1, 4, 3, 5, generator=gen, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    dg = torch.randn(1, 4, 4, generator=gen, dtype=torch.float64)
    alone = _gram_gradient(f, dg)
    other = torch.randn(1, 4, 3, 5, generator=gen, dtype=torch.float64)
    with torch.no_grad():  # as in a backward pass
        # Same layout as the features: the product goes into it.
        into = other.contiguous(memory_format=torch.channels_last)
        assert _gram_gradient(f, dg, into) is into and torch.allclose(into, other + alone)
        # Another layout: a copy in the features' layout takes it; the original is untouched.
        nchw = other.clone()
        got = _gram_gradient(f, dg, nchw)
        assert got is not nchw and torch.equal(nchw, other) and torch.allclose(got, other + alone)
        assert got.stride() == f.stride()
        # A broadcast view is never written to.
        one = torch.ones(1, 1, 1, 1, dtype=torch.float64)
        got = _gram_gradient(f, dg, one.expand_as(f))
        assert torch.equal(one, torch.ones_like(one)) and torch.allclose(got, 1 + alone)
    # In a double backward (grad mode on) nothing is written in place.
    keep = other.contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():
        got = _gram_gradient(f, dg, keep)
    assert got is not keep and torch.equal(keep, other) and torch.allclose(got, other + alone)
