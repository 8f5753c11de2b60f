"""Loss terms: TV, the seed's two conventions against direct transcriptions, stylelab's normalisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stylelab import losses
from stylelab.losses import content_term, gram_matrix, style_term, tv_term
from stylelab.objective import Objective

# ------------------------------------------------------------------ total variation


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_tv_is_zero_on_a_constant_image(norm):
    img = torch.full((2, 3, 16, 12), 0.37)
    assert torch.allclose(tv_term(img, norm), torch.zeros(2), atol=1e-12)


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_tv_grows_with_noise(norm):
    gen = torch.Generator().manual_seed(0)
    base = torch.full((1, 3, 32, 32), 0.5)
    noise = torch.randn((1, 3, 32, 32), generator=gen)
    values = [float(tv_term(base + sigma * noise, norm)) for sigma in (0.0, 0.01, 0.05, 0.2)]
    assert values == sorted(values) and values[0] < 1e-12 < values[1]
    assert values[3] > 10 * values[1]


def test_tv_compares_neighbouring_pixels_not_channels():
    # Channels differ wildly but every channel is flat: no variation in the image plane.
    img = torch.zeros(1, 3, 8, 8)
    img[:, 0], img[:, 1], img[:, 2] = 0.0, 1.0, 0.5
    for norm in losses.NORMALIZATIONS:
        assert float(tv_term(img, norm)) < 1e-12
    # A single vertical edge: only horizontal neighbours differ.
    img = torch.zeros(1, 3, 8, 8)
    img[..., 4:] = 1.0
    expected = (3 * 8 * 1) / (3 * 8 * 7)  # one differing column pair out of 7, per row and channel
    assert float(tv_term(img)) == pytest.approx(expected)


# ------------------------------------------------------------------ the seed's conventions, transcribed


def family_a_gram(tensor):
    """NOTES.md, Family A, as its notebook wrote it."""
    _, d, h, w = tensor.size()
    tensor = tensor.view(d, h * w)
    gram = torch.mm(tensor, tensor.t())
    return gram


def family_a_loss(target_features, content_features, style_grams, style_weights, content_weight, style_weight):
    content_loss = torch.mean((target_features["conv4_2"] - content_features["conv4_2"]) ** 2)
    style_loss = 0
    for layer in style_weights:
        target_feature = target_features[layer]
        target_gram = family_a_gram(target_feature)
        _, d, h, w = target_feature.shape
        style_gram = style_grams[layer]
        layer_style_loss = style_weights[layer] * torch.mean((target_gram - style_gram) ** 2)
        style_loss += layer_style_loss / (d * h * w)
    total_loss = content_weight * content_loss + style_weight * style_loss
    return content_loss, style_loss, total_loss


def family_b_gram(input):
    """NOTES.md, Family B: the tutorial's gram, divided by sqrt(a*b*c*d)."""
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(math.sqrt(a * b * c * d))


class ContentLoss(torch.nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


class StyleLoss(torch.nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = family_b_gram(target_feature).detach()

    def forward(self, input):
        G = family_b_gram(input)
        self.loss = F.mse_loss(G, self.target)
        return input


def _features(seed: int, shapes: dict[str, tuple[int, int, int]]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {k: torch.relu(torch.randn((1, *s), generator=gen, dtype=torch.float64)) for k, s in shapes.items()}


SHAPES = {"conv1_1": (8, 12, 10), "conv2_1": (16, 6, 5), "conv3_1": (32, 3, 2), "conv4_2": (32, 3, 2)}


def test_family_a_matches_a_direct_transcription():
    style_w = {"conv1_1": 1.0, "conv2_1": 0.75, "conv3_1": 0.2}
    target, content, style = _features(1, SHAPES), _features(2, SHAPES), _features(3, SHAPES)
    style_grams = {k: family_a_gram(style[k]) for k in style_w}
    c_ref, s_ref, t_ref = family_a_loss(target, content, style_grams, style_w, 1.0, 1e6)

    objective = Objective.from_grams(
        {"conv4_2": content["conv4_2"]},
        {k: gram_matrix(style[k], "family-a") for k in style_w},
        content_layer_weights=[1.0],
        style_layer_weights=list(style_w.values()),
        content_weight=1.0,
        style_weight=1e6,
        tv_weight=0.0,
        normalization="family-a",
    )
    terms = objective(target, torch.zeros(1, 3, 4, 4, dtype=torch.float64))
    assert float(terms["content"]) == pytest.approx(float(c_ref), rel=1e-12)
    assert float(terms["style"]) == pytest.approx(float(s_ref), rel=1e-12)
    assert float(terms["total"]) == pytest.approx(float(t_ref), rel=1e-12)


def test_family_b_matches_a_direct_transcription():
    content_layers, style_layers = ["conv1_1", "conv2_1"], ["conv1_1", "conv2_1", "conv3_1"]
    target, content, style = _features(4, SHAPES), _features(5, SHAPES), _features(6, SHAPES)
    content_losses = [ContentLoss(content[k]) for k in content_layers]
    style_losses = [StyleLoss(style[k]) for k in style_layers]
    for module, k in zip(content_losses, content_layers):
        module(target[k])
    for module, k in zip(style_losses, style_layers):
        module(target[k])
    style_score = sum(sl.loss for sl in style_losses) / len(style_losses)
    content_score = sum(cl.loss for cl in content_losses) / len(content_losses)
    CONTENT, STYLE = 0.7, 0.05

    objective = Objective.from_grams(
        {k: content[k] for k in content_layers},
        {k: gram_matrix(style[k], "family-b") for k in style_layers},
        content_layer_weights=[1.0] * 2,
        style_layer_weights=[1.0] * 3,
        content_weight=CONTENT,
        style_weight=STYLE,
        tv_weight=0.0,
        normalization="family-b",
    )
    terms = objective(target, torch.zeros(1, 3, 4, 4, dtype=torch.float64))
    assert float(terms["content"]) == pytest.approx(float(content_score), rel=1e-12)
    assert float(terms["style"]) == pytest.approx(float(style_score), rel=1e-12)
    assert float(terms["total"]) == pytest.approx(float(CONTENT * content_score + STYLE * style_score), rel=1e-12)


def test_family_b_tv_is_the_intended_formula_over_pixels():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand((1, 3, 9, 7), generator=gen, dtype=torch.float64)
    # The neighbour differences the seed meant: (x[i+1,j]-x[i,j])^2 + (x[i,j+1]-x[i,j])^2, to the power 1.25.
    total, n = 0.0, 0
    for c in range(3):
        for i in range(8):
            for j in range(6):
                a = (x[0, c, i + 1, j] - x[0, c, i, j]) ** 2
                b = (x[0, c, i, j + 1] - x[0, c, i, j]) ** 2
                total += float((a + b) ** 1.25)
                n += 1
    assert float(tv_term(x, "family-b")) == pytest.approx(total / n, rel=1e-6)


# ------------------------------------------------------------------ stylelab's normalisation


def test_stylelab_formulas():
    f, fc, fs = (_features(s, {"x": (8, 5, 4)})["x"] for s in (7, 8, 9))
    flat = f.view(8, 20)
    gram = flat @ flat.T / 20
    assert torch.allclose(gram_matrix(f)[0], gram)
    g_s = gram_matrix(fs)
    assert float(style_term(f, g_s)) == pytest.approx(float(((gram - g_s[0]) ** 2).sum() / (g_s**2).sum()))
    assert float(content_term(f, fc)) == pytest.approx(float(((f - fc) ** 2).mean() / (fc**2).mean()))


@pytest.mark.parametrize("k", [1e-3, 7.0, 250.0])
def test_stylelab_terms_are_invariant_to_the_feature_scale(k):
    """Relative errors: a weight source whose activations are 100x larger gives the same loss."""
    f, fc, fs = (_features(s, {"x": (8, 5, 4)})["x"] for s in (10, 11, 12))
    assert float(content_term(k * f, k * fc)) == pytest.approx(float(content_term(f, fc)), rel=1e-9)
    style_k = style_term(k * f, gram_matrix(k * fs))
    assert float(style_k) == pytest.approx(float(style_term(f, gram_matrix(fs))), rel=1e-9)
    # ... which the seed's conventions are not.
    assert float(content_term(k * f, k * fc, "family-a")) == pytest.approx(
        k**2 * float(content_term(f, fc, "family-a")), rel=1e-9
    )


def test_stylelab_terms_are_invariant_to_the_image_size():
    """A texture repeated to twice the size has the same Gram matrix, so the same style loss."""
    gen = torch.Generator().manual_seed(0)
    tile = torch.rand((1, 4, 6, 6), generator=gen, dtype=torch.float64)
    other = torch.rand((1, 4, 6, 6), generator=gen, dtype=torch.float64)
    small = style_term(tile, gram_matrix(other))
    big = style_term(tile.repeat(1, 1, 2, 2), gram_matrix(other))
    assert float(big) == pytest.approx(float(small), rel=1e-9)


def test_stylelab_layer_weights_mean_relative_importance():
    f = _features(1, SHAPES)
    t = _features(2, SHAPES)
    kw = dict(content_weight=1.0, style_weight=1.0, tv_weight=0.0, content_layer_weights=[1.0])
    a = Objective.from_grams({"conv4_2": t["conv4_2"]}, {}, style_layer_weights=[], **kw)
    kw["content_layer_weights"] = [5.0]
    b = Objective.from_grams({"conv4_2": t["conv4_2"]}, {}, style_layer_weights=[], **kw)
    img = torch.zeros(1, 3, 2, 2, dtype=torch.float64)
    # One layer: its weight is normalised away (weights are relative).
    assert float(a(f, img)["content"]) == pytest.approx(float(b(f, img)["content"]))


# ------------------------------------------------------------------ gradients and batches


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_gradcheck_float64(norm):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((1, 3, 5, 4), generator=gen, dtype=torch.float64, requires_grad=True)
    fc = torch.rand((1, 3, 5, 4), generator=gen, dtype=torch.float64)
    g_s = gram_matrix(torch.rand((1, 3, 5, 4), generator=gen, dtype=torch.float64), norm)
    assert torch.autograd.gradcheck(lambda t: content_term(t, fc, norm), (x,))
    assert torch.autograd.gradcheck(lambda t: style_term(t, g_s, norm), (x,))
    assert torch.autograd.gradcheck(lambda t: tv_term(t, norm), (x,))


@pytest.mark.parametrize("norm", losses.NORMALIZATIONS)
def test_batch_items_are_independent(norm):
    feats = _features(1, SHAPES)
    other = _features(2, SHAPES)
    targets = _features(3, SHAPES)
    style_grams = _features(4, SHAPES)
    kw = dict(
        content_layer_weights=[1.0],
        style_layer_weights=[1.0, 0.5],
        content_weight=1.0,
        style_weight=3.0,
        tv_weight=0.5,
        normalization=norm,
    )
    grams_a = {k: gram_matrix(style_grams[k], norm) for k in ("conv1_1", "conv2_1")}
    grams_b = {k: 2 * g for k, g in grams_a.items()}  # a second style for the second item
    imgs = torch.rand(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))

    batched = Objective.from_grams(
        {"conv4_2": targets["conv4_2"]}, {k: torch.cat([grams_a[k], grams_b[k]]) for k in grams_a}, **kw
    )
    both = {k: torch.cat([feats[k], other[k]]) for k in SHAPES}
    terms = batched(both, imgs)
    alone_a = Objective.from_grams({"conv4_2": targets["conv4_2"]}, grams_a, **kw)(feats, imgs[:1])
    alone_b = Objective.from_grams({"conv4_2": targets["conv4_2"]}, grams_b, **kw)(other, imgs[1:])
    for k in ("content", "style", "tv", "total"):
        assert terms[k].shape == (2,)
        assert float(terms[k][0]) == pytest.approx(float(alone_a[k]), rel=1e-12)
        assert float(terms[k][1]) == pytest.approx(float(alone_b[k]), rel=1e-12)
    # And the gradient of item 0 does not depend on item 1.
    x = imgs.clone().requires_grad_(True)
    both_x = {k: v.clone().requires_grad_(True) for k, v in both.items()}
    batched(both_x, x)["total"][0].backward()
    for layer in ("conv1_1", "conv2_1", "conv4_2"):
        assert float(both_x[layer].grad[0].abs().sum()) > 0
        assert float(both_x[layer].grad[1].abs().sum()) == 0
    assert float(x.grad[1].abs().sum()) == 0


def test_blend_grams_is_a_weighted_mean():
    a, b = torch.ones(1, 2, 2), 3 * torch.ones(1, 2, 2)
    assert torch.allclose(losses.blend_grams([a, b], [0.75, 0.25]), 1.5 * torch.ones(1, 2, 2))
    assert torch.allclose(losses.blend_grams([a, b], [3, 1]), 1.5 * torch.ones(1, 2, 2))
    assert torch.equal(losses.blend_grams([a, b], [1.0, 0.0]), a)


def test_unknown_normalization():
    with pytest.raises(ValueError):
        gram_matrix(torch.zeros(1, 2, 2, 2), "family-c")
    with pytest.raises(ValueError):
        Objective.from_grams({}, {}, content_layer_weights=[], style_layer_weights=[], content_weight=1, style_weight=1,
                  tv_weight=0, normalization="nope")  # fmt: skip


def test_bf16_features_are_summed_in_float32():
    f = torch.rand(1, 4, 8, 8).bfloat16()
    assert gram_matrix(f).dtype == torch.float32
    assert content_term(f, torch.rand(1, 4, 8, 8)).dtype == torch.float32


def test_objective_keeps_the_content_power_of_its_current_targets():
    """The stylelab content term divides by mean(Fc^2), kept across steps: it must follow the targets."""
    gen = torch.Generator().manual_seed(7)
    f = torch.rand((2, 4, 6, 6), generator=gen, dtype=torch.float64)
    first = {"relu4_2": torch.rand((1, 4, 6, 6), generator=gen, dtype=torch.float64)}
    obj = Objective.from_grams(
        first,
        {},
        content_layer_weights=[1.0],
        style_layer_weights=[],
        content_weight=1.0,
        style_weight=0.0,
        tv_weight=0.0,
    )
    image = torch.zeros((2, 3, 8, 8), dtype=torch.float64)
    assert torch.allclose(obj({"relu4_2": f}, image)["content"], content_term(f, first["relu4_2"]))
    later = 3.0 * torch.rand((2, 4, 6, 6), generator=gen, dtype=torch.float64)
    obj.take_content_targets({"relu4_2": later})  # each item's own content: a batch may hold several
    expected = content_term(f, later.float().double())
    assert torch.allclose(obj({"relu4_2": f}, image)["content"], expected, rtol=1e-6)
    assert not torch.allclose(expected, content_term(f, first["relu4_2"]))
