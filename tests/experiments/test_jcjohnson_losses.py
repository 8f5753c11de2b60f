"""The ``jcjohnson`` normalisation, transcribed from neural_style.lua by hand and compared."""

import torch

from stylelab.losses import content_term, gram_matrix, style_term, tv_term
from stylelab.objective import Objective


def test_gram_divides_by_number_of_elements():
    f = torch.randn(2, 4, 3, 5)
    g = gram_matrix(f, "jcjohnson")
    for b in range(2):
        flat = f[b].reshape(4, 15)
        expected = flat @ flat.T / f[b].numel()
        assert torch.allclose(g[b], expected, atol=1e-6)


def test_style_and_content_are_plain_mse():
    f = torch.randn(1, 4, 3, 5)
    target = torch.randn(1, 4, 3, 5)
    assert torch.allclose(content_term(f, target, "jcjohnson"), ((f - target) ** 2).mean().view(1))
    gs = gram_matrix(torch.randn(1, 4, 6, 6), "jcjohnson")
    g = gram_matrix(f, "jcjohnson")
    assert torch.allclose(style_term(f, gs, "jcjohnson"), ((g - gs) ** 2).mean().view(1))


def test_tv_gradient_is_neural_style_tvloss_gradient():
    # TVLoss:updateGradInput, written out with loops on a tiny image in the 0..255 scale.
    torch.manual_seed(0)
    x = torch.rand(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    tv_term(x, "jcjohnson").sum().backward()
    img = x.detach()[0] * 255.0
    _, h, w = img.shape
    grad = torch.zeros_like(img)
    for i in range(h - 1):
        for j in range(w - 1):
            xd = img[:, i, j] - img[:, i, j + 1]
            yd = img[:, i, j] - img[:, i + 1, j]
            grad[:, i, j] += xd + yd
            grad[:, i, j + 1] -= xd
            grad[:, i + 1, j] -= yd
    # d tv / d x(0..1) = 255 * d tv / d x(0..255)
    assert torch.allclose(x.grad[0], grad * 255.0)


def test_layers_are_summed_not_averaged():
    feats = {"a": torch.randn(1, 2, 3, 3), "b": torch.randn(1, 2, 3, 3)}
    targets = {k: torch.zeros_like(v) for k, v in feats.items()}
    obj = Objective.from_grams(
        targets,
        {},
        content_layer_weights=[1.0, 1.0],
        style_layer_weights=[],
        content_weight=5.0,
        style_weight=100.0,
        tv_weight=0.0,
        normalization="jcjohnson",
    )
    terms = obj(feats, torch.zeros(1, 3, 4, 4))
    expected = (feats["a"] ** 2).mean() + (feats["b"] ** 2).mean()
    assert torch.allclose(terms["content"], expected.view(1))
    assert torch.allclose(terms["total"], 5 * expected.view(1))
