"""The objective a run minimises: its terms, declared once, and their weighted sum.

The terms are declared once, in terms.py (each with the Recipe field holding
its weight); everything that shows or stores losses reads their names from the
run's events (``Started.terms``, ``Step.losses``). ``total`` is the weighted
sum, always last.

The style term is per region: one ``StyleRegion`` per style set, with its
targets (statistics of the style images, style_losses.py), its guide (the
set's mask carried down to each layer, guides.py; None for the whole image)
and its share of the image (the mask's area), so that a run with regions has a
style term on the same scale as a run without. Areas no region covers get no
style term and keep the content.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from . import style_losses
from .losses import GramTap, _weighted, content_power, content_term, style_term, tv_term
from .recipes import NORMALIZATIONS
from .terms import TOTAL


@dataclass
class StyleRegion:
    """One style set's targets in a batch: per layer, its statistics (batch 1 or B), its guide
    at that layer's resolution (None: everywhere) and its share of the image per item."""

    targets: dict[str, object]
    guides: dict[str, torch.Tensor] | None = None
    share: torch.Tensor | float = 1.0


@dataclass
class TemporalTarget:
    """The previous frame's result warped to this one (B, 3, H, W) and the flow's reliability (B, 1, H, W)."""

    image: torch.Tensor
    weights: torch.Tensor


@dataclass
class Weights:
    """The weights of the terms and of the layers within them."""

    content: float
    style: float
    tv: float
    temporal: float = 0.0
    content_layers: Sequence[float] = ()
    style_layers: Sequence[float] = ()


@dataclass
class Objective:
    """Content, style (per region), TV and temporal terms against fixed targets, per image.

    Calling it on the network's activations and the image returns each term per
    image (shape (B,)) under its name, and ``total``. ``content_targets`` may be
    filled after construction, from the first forward pass of a run that starts
    at the content (``take_content_targets``).
    """

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    regions: list[StyleRegion]
    weights: Weights
    kind: str = "gram"
    normalization: str = "stylelab"
    content_targets: dict[str, torch.Tensor] = field(default_factory=dict)
    temporal: TemporalTarget | None = None
    generator: torch.Generator | None = None  # swd: new random directions at every call
    swd_directions: int | None = None

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {self.normalization!r}")
        style_losses.check_kind(self.kind)
        self._set_content_targets(self.content_targets)

    @classmethod
    def from_grams(
        cls,
        content_targets: Mapping[str, torch.Tensor],
        style_grams: Mapping[str, torch.Tensor],
        *,
        content_layer_weights: Sequence[float],
        style_layer_weights: Sequence[float],
        content_weight: float,
        style_weight: float,
        tv_weight: float,
        normalization: str = "stylelab",
        content_layers: Sequence[str] | None = None,
    ) -> Objective:
        """The classic objective: content targets and one Gram target per style layer (normalised
        under ``normalization``), over the whole image."""
        grams = {k: style_losses.GramStats(g, normalization) for k, g in style_grams.items()}
        return cls(
            tuple(content_targets if content_layers is None else content_layers),
            tuple(style_grams),
            [StyleRegion(grams)] if grams else [],
            Weights(content_weight, style_weight, tv_weight, 0.0, content_layer_weights, style_layer_weights),
            normalization=normalization,
            content_targets=dict(content_targets),
        )

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.content_layers, *self.style_layers]))

    @property
    def _fast_gram(self) -> bool:
        """One unguided Gram region: the Grams come off the network's pass (``GramTap``)."""
        return self.kind == "gram" and len(self.regions) == 1 and self.regions[0].guides is None

    def tap(self) -> GramTap | None:
        """A tap for the network's forward pass that takes the style Grams on the way, where they serve."""
        return GramTap(self.style_layers) if self._fast_gram and self.style_layers else None

    def take_content_targets(self, features: Mapping[str, torch.Tensor]) -> None:
        """Content targets from a forward pass of the content images themselves (the first step's)."""
        self._set_content_targets({k: features[k].detach().float() for k in self.content_layers})

    def _set_content_targets(self, targets: Mapping[str, torch.Tensor]) -> None:
        self.content_targets = dict(targets)
        self._content_powers = {k: content_power(t) for k, t in self.content_targets.items()}

    def __call__(
        self, features: Mapping[str, torch.Tensor], image: torch.Tensor, grams: Mapping[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """The terms; ``grams``: raw Grams already taken by ``tap()``, the rest computed here."""
        norm, w = self.normalization, self.weights
        zero = image.new_zeros(image.shape[0], dtype=torch.float32)
        terms: dict[str, torch.Tensor] = {}
        if self.content_layers:
            per_layer = [
                content_term(features[k], self.content_targets[k], norm, self._content_powers[k])
                for k in self.content_layers
            ]
            terms["content"] = _weighted(per_layer, w.content_layers, norm)
        else:
            terms["content"] = zero
        terms["style"] = self._style(features, grams or {}) if self.style_layers and self.regions else zero
        terms["tv"] = tv_term(image, norm) if w.tv else zero
        if self.temporal is not None:
            terms["temporal"] = temporal_term(image, self.temporal)
        total = w.content * terms["content"] + w.style * terms["style"] + w.tv * terms["tv"]
        if self.temporal is not None:
            total = total + w.temporal * terms["temporal"]
        terms[TOTAL] = total
        return terms

    def _style(self, features: Mapping[str, torch.Tensor], grams: Mapping[str, torch.Tensor]) -> torch.Tensor:
        norm, layer_weights = self.normalization, self.weights.style_layers
        total = None
        for region in self.regions:
            if self._fast_gram:
                per_layer = [
                    style_term(features[k], region.targets[k].gram, norm, grams.get(k)) for k in self.style_layers
                ]
            else:
                per_layer = [
                    style_losses.loss(
                        self.kind,
                        features[k],
                        region.targets[k],
                        None if region.guides is None else region.guides[k],
                        generator=self.generator,
                        n_directions=self.swd_directions,
                    )
                    for k in self.style_layers
                ]
            term = _weighted(per_layer, layer_weights, norm) * region.share
            total = term if total is None else total + term
        return total


def temporal_term(image: torch.Tensor, target: TemporalTarget) -> torch.Tensor:
    """Ruder et al.'s short-term temporal loss, per image: the mean over pixels and channels of
    c * (x - w)^2, x the frame, w the previous result warped to it, c the flow's reliability
    (0 at occlusions and motion boundaries). RGB in 0..1.

    Shape:
        image: (B, 3, H, W); target.image (1 or B, 3, H, W); target.weights (1 or B, 1, H, W); returns (B,).
    """
    x = image.float()
    diff = (x - target.image.to(x.dtype)) ** 2 * target.weights.to(x.dtype)
    return diff.mean(dim=(1, 2, 3))
