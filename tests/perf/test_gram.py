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
