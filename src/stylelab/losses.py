"""Content, style and total-variation losses under three normalisations.

Every function works on a batch and returns one value per image, shape (B,),
so that images optimised together stay independent.

Normalisations (``Recipe.normalization``):

``stylelab`` (default): each term is a *relative* error, so weights mean
relative importance whatever the image size or the weight source::

    gram(F)     = F F^T / (H W)                      F: (C, H W)
    content_l   = mean((F - Fc)^2) / mean(Fc^2)
    style_l     = sum((G - Gs)^2) / sum(Gs^2)
    tv          = mean((x[i+1,j] - x[i,j])^2) + mean((x[i,j+1] - x[i,j])^2)   x: RGB in 0..1
    content     = sum_l w_l content_l / sum_l w_l     (same for style)

``family-a`` (the seed's Gatys notebook)::

    gram(F)     = F F^T                              (not normalised)
    content     = sum_l w_l mean((F - Fc)^2)
    style       = sum_l w_l mean((G - Gs)^2) / (C H W)

``family-b`` (the seed's L-BFGS notebook)::

    gram(F)     = F F^T / sqrt(B C H W)              (B = 1: images are independent)
    content     = sum_l w_l mse(F, Fc) / n_layers
    style       = sum_l w_l mse(G, Gs) / n_layers
    tv          = mean(((x[i+1,j]-x[i,j])^2 + (x[i,j+1]-x[i,j])^2) ** 1.25)

``jcjohnson`` (jcjohnson/neural-style, ``neural_style.lua``: GramMatrix, StyleLoss,
ContentLoss, TVLoss), so that its classic weights (content 5, style 100, TV 1e-3)
can be written as they are::

    gram(F)     = F F^T / (C H W)                    (StyleLoss divides by input:nElement())
    content_l   = mean((F - Fc)^2)                   (nn.MSECriterion, size-averaged)
    style_l     = mean((G - Gs)^2)                   (mean over the C x C entries)
    content     = sum_l w_l content_l                (each loss module adds its own; same for style)
    tv          = 0.5 * sum_{c, i<H-1, j<W-1} ((x[i,j+1]-x[i,j])^2 + (x[i+1,j]-x[i,j])^2)
                                                     x: RGB in 0..255

neural-style's TVLoss only defines a gradient, ``x_diff + y_diff`` over the
(H-1)x(W-1) corner, which is the gradient of the ``tv`` above; it acts on the
Caffe-preprocessed image, whose pixel scale is 0..256 there and 0..255 here
(stylelab's Caffe preprocessing, vgg.py), a 0.8% difference in that term.

The seed's own TV compared neighbouring *channels* (NCHW indexed as NHWC);
``family-b`` uses the formula it meant, over neighbouring pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .recipes import NORMALIZATIONS  # noqa: F401 - the conventions this module holds the formulas of


def _wide(x: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 up to float32 for the sums; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _as_matrix(features: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(B, C, H, W) as (B, C, HW) when NCHW-contiguous (True), else as (B, HW, C) (False).

    The flag, not the matrix's shape, says which: when HW == C (a 16x16 map of
    256 channels) both shapes are the same and only the layout tells them apart.
    """
    b, c, h, w = features.shape
    if features.is_contiguous():
        return features.reshape(b, c, h * w), True
    return features.permute(0, 2, 3, 1).reshape(b, h * w, c), False  # channels-last: a view, no copy


GRAM_SLICE = 2**20  # elements of an fp16 feature map upcast at a time (4 MB in float32)


def _gram_product(features: torch.Tensor) -> torch.Tensor:
    """F F^T per image, float32 or wider (see ``_Gram``)."""
    m, channels_first = _as_matrix(features)
    if m.dtype != torch.float16:
        g = torch.bmm(m, m.transpose(1, 2)) if channels_first else torch.bmm(m.transpose(1, 2), m)
        return g.float() if g.dtype == torch.bfloat16 else g
    # Upcast and accumulate a slice of pixels at a time: a float32 copy of a whole
    # early layer is a fresh 50 MB block each step (page faults); slices stay in cache.
    c = features.shape[1]
    g = m.new_zeros((m.shape[0], c, c), dtype=torch.float32)
    n = m.shape[2] if channels_first else m.shape[1]
    rows = max(1, GRAM_SLICE // c)
    for start in range(0, n, rows):
        if channels_first:
            part = m[:, :, start : start + rows].float()
            g.baddbmm_(part, part.transpose(1, 2))
        else:
            part = m[:, start : start + rows].float()
            g.baddbmm_(part.transpose(1, 2), part)
    return g


def _gram_gradient(features: torch.Tensor, grad: torch.Tensor, into: torch.Tensor | None = None) -> torch.Tensor:
    """dF = (dG + dG^T) F in the features' precision and layout, plus ``into`` when given.

    ``into`` (the gradient the features get from elsewhere) takes the product
    in place (``baddbmm_``), after a copy into the features' own layout when it
    is in another or is a view of something else, so the sum is rounded the same
    way whichever layout it came in. A double backward gets a new tensor.
    """
    m, channels_first = _as_matrix(features)
    sym = (grad + grad.transpose(1, 2)).to(features.dtype)
    if into is not None and not torch.is_grad_enabled():
        if not _writable_like(into, features):
            into = torch.empty_like(features).copy_(into)
        target, _ = _as_matrix(into)
        if channels_first:
            target.baddbmm_(sym, m)
        else:
            target.baddbmm_(m, sym)
        return into
    b, c, h, w = features.shape
    if channels_first:
        out = torch.bmm(sym, m).view(b, c, h, w)
    else:
        out = torch.bmm(m, sym).view(b, h, w, c).permute(0, 3, 1, 2)
    return out if into is None else into + out


def _writable_like(t: torch.Tensor, like: torch.Tensor) -> bool:
    """Whether ``t`` is its own memory, laid out like ``like`` (not a view, not broadcast)."""
    return t._base is None and t.dtype == like.dtype and t.shape == like.shape and t.stride() == like.stride()


class _Gram(torch.autograd.Function):
    """F F^T in float32, with a one-product backward in the features' precision.

    Autograd's own backward of ``bmm(f, f.T)`` computes two products and adds
    them; since G is symmetric, ``dF = (dG + dG^T) F`` is one. The features stay
    in their memory layout (NCHW or channels-last) both ways.

    bf16 features: one bf16 product (oneDNN sums in float32 inside and rounds
    only the result), returned as float32. Rounding the Gram to bf16's 8 bits
    moves its entries by at most 0.4%, far below the differences the style
    loss measures: at 256 px after 100 steps content/style distance 0.6337/0.1978
    with a float32 product, 0.6339/0.1980 with this, and the step 6% faster at
    512 px (benchmarks/README.md). fp16 features (CUDA autocast) would overflow
    there, so they are upcast and summed in float32, a slice at a time.
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(features)
        return _gram_product(features)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (features,) = ctx.saved_tensors
        return _gram_gradient(features, grad)


class _GramTap(torch.autograd.Function):
    """The features, passed on, and their Gram: one node for both in the backward.

    Autograd would sum the gradient from the deeper layers and the Gram's in a
    separate pass over the activation; here the Gram's share is added into the
    other in place by the product itself (``baddbmm_``).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor):
        ctx.save_for_backward(features)
        ctx.set_materialize_grads(False)
        return features.view_as(features), _gram_product(features)

    @staticmethod
    def backward(ctx, grad_features, grad_gram):
        (features,) = ctx.saved_tensors
        if grad_gram is None:
            return grad_features
        return _gram_gradient(features, grad_gram, into=grad_features)


class GramTap:
    """Takes the Gram matrices of ``layers`` off the network's activations as they pass.

    Given to ``VGG19.forward(tap=...)``: each tapped activation goes on through
    the network from the tap, so its backward gets the deeper layers' gradient
    and adds the Gram's into it (``_GramTap``); ``grams`` holds the raw
    (unnormalised) Grams for ``Objective``. The values are those of ``gram_matrix``.
    """

    def __init__(self, layers):
        self.layers = frozenset(layers)
        self.grams: dict[str, torch.Tensor] = {}

    def __call__(self, name: str, features: torch.Tensor) -> torch.Tensor:
        if name not in self.layers:
            return features
        with torch.autocast(features.device.type, enabled=False):
            features, self.grams[name] = _GramTap.apply(features)
        return features


def gram_matrix(features: torch.Tensor, normalization: str = "stylelab") -> torch.Tensor:
    """Gram matrices of a batch of feature maps.

    Shape:
        features: (B, C, H, W), NCHW or channels-last; returns (B, C, C), always
        float32 or wider so that bf16 features do not overflow or lose the sums
        (also under autocast, which would otherwise run the product in bf16).
    """
    with torch.autocast(features.device.type, enabled=False):
        g = _Gram.apply(features)
    return _normalized(g, features.shape, normalization)


def _normalized(g: torch.Tensor, shape, normalization: str) -> torch.Tensor:
    b, c, h, w = shape
    if normalization == "stylelab":
        return g / (h * w)
    if normalization == "family-a":
        return g
    if normalization == "family-b":
        return g / math.sqrt(c * h * w)
    if normalization == "jcjohnson":
        return g / (c * h * w)
    raise ValueError(f"unknown normalization {normalization!r}")


def _per_image_mean(x: torch.Tensor) -> torch.Tensor:
    # A reduction over the non-batch dims, not over x.reshape(B, -1): the reshape of a
    # channels-last map is a copy (5 of them per step at relu4_2, 8 ms at 512 px).
    return x.mean(dim=tuple(range(1, x.dim())))


class _SquaredError(torch.autograd.Function):
    """mean((f - t)^2) over (C, H, W) per image, summed in float32 or wider whatever f's
    precision, with a backward that keeps f's memory layout.

    Autograd's backward of the same expression multiplies the gradient broadcast from the
    mean (every stride 0) with the channels-last difference, twice, on TensorIterator's
    slow strided path: forward and backward at relu4_2 of a 512 px image in bf16 took
    11.7 ms, this takes 2.9 ms (benchmarks/README.md, Levers).
    """

    @staticmethod
    def forward(ctx, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        wide = _wide(features)
        diff = wide - _wide(target).to(wide.dtype)
        ctx.save_for_backward(diff)
        ctx.dtypes = features.dtype, target.dtype
        ctx.target_shape = target.shape
        return _per_image_mean(diff.square())

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (diff,) = ctx.saved_tensors
        scale = grad.to(diff.dtype).view(-1, *[1] * (diff.dim() - 1)) * (2.0 / diff[0].numel())
        d = diff * scale  # (B, 1, 1, 1) broadcast: the fast path, in diff's layout
        f_dtype, t_dtype = ctx.dtypes
        grad_f = d.to(f_dtype) if ctx.needs_input_grad[0] else None
        grad_t = (-d).sum_to_size(ctx.target_shape).to(t_dtype) if ctx.needs_input_grad[1] else None
        return grad_f, grad_t


def content_term(
    features: torch.Tensor, target: torch.Tensor, normalization: str = "stylelab", target_power=None
) -> torch.Tensor:
    """Content loss of one layer, per image. ``target`` broadcasts over the batch.

    ``target_power``: ``content_power(target)``, when the caller keeps it across steps.

    Shape:
        features: (B, C, H, W); target: (1 or B, C, H, W); returns (B,).
    """
    err = _SquaredError.apply(features, target)
    if normalization == "stylelab":
        power = content_power(target) if target_power is None else target_power
        return err / power.clamp_min(1e-12)
    return err


def content_power(target: torch.Tensor) -> torch.Tensor:
    """mean(Fc^2) per image: what the ``stylelab`` content term divides by."""
    return _per_image_mean(_wide(target) ** 2)


def style_term(
    features: torch.Tensor, target_gram: torch.Tensor, normalization: str = "stylelab", raw_gram=None
) -> torch.Tensor:
    """Style loss of one layer, per image, against a target Gram matrix.

    ``raw_gram``: the features' unnormalised Gram when already taken (``GramTap``).

    Shape:
        features: (B, C, H, W); target_gram: (1 or B, C, C); returns (B,).
    """
    if raw_gram is None:
        g = gram_matrix(features, normalization)
    else:
        g = _normalized(raw_gram, features.shape, normalization)
    diff = (g - target_gram) ** 2
    if normalization == "stylelab":
        denom = (target_gram**2).sum(dim=(1, 2)).clamp_min(1e-12)
        return diff.sum(dim=(1, 2)) / denom
    err = diff.mean(dim=(1, 2))
    if normalization == "family-a":
        _, c, h, w = features.shape
        return err / (c * h * w)
    return err


def tv_term(image: torch.Tensor, normalization: str = "stylelab") -> torch.Tensor:
    """Total variation over neighbouring pixels in both directions, per image.

    Zero for a constant image; grows with noise.

    Shape:
        image: (B, 3, H, W) RGB in 0..1; returns (B,).
    """
    image = _wide(image)
    dy = image[:, :, 1:, :] - image[:, :, :-1, :]
    dx = image[:, :, :, 1:] - image[:, :, :, :-1]
    if normalization == "family-b":
        a = dy[:, :, :, :-1] ** 2
        b = dx[:, :, :-1, :] ** 2
        return _per_image_mean((a + b + 1e-12) ** 1.25)
    if normalization == "jcjohnson":
        a = dx[:, :, :-1, :] * 255.0
        b = dy[:, :, :, :-1] * 255.0
        return 0.5 * (a**2 + b**2).flatten(1).sum(1)
    return _per_image_mean(dy**2) + _per_image_mean(dx**2)


def _weighted(terms: Sequence[torch.Tensor], weights: Sequence[float], normalization: str) -> torch.Tensor:
    total = sum(w * t for w, t in zip(weights, terms))
    if normalization == "stylelab":
        return total / sum(weights)
    if normalization == "family-b":
        return total / len(terms)
    return total


def blend_grams(grams: Sequence[torch.Tensor], weights: Sequence[float]) -> torch.Tensor:
    """Weighted mean of several style images' Gram matrices (weights sum to 1)."""
    total = sum(weights)
    return sum(w / total * g for w, g in zip(weights, grams))
