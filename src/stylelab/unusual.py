"""Values a sweep gives recipes of different conventions far from each recipe's own.

A weight means something only in its recipe's loss convention (``normalization``):
``style_weight = 2`` is balanced for ``default`` (stylelab units, its own 5) and fifty
times too weak for ``gatys`` (jcjohnson units, its own 100), whose column then shows
little but its start image. A step size likewise belongs to its optimiser. Converting
between conventions is not a fixed factor (it depends on the images and layers), so the
sweep says which runs got such a value instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from .experiments import Experiment, format_value
from .recipes import DEFAULT_LR, Recipe

# Settings whose meaning depends on the recipe's loss convention and optimiser.
SCALE_DEPENDENT = ("content_weight", "style_weight", "tv_weight", "temporal_weight", "lr")
FACTOR = 10.0  # a value more than this factor away from the recipe's own is worth a word


@dataclass(frozen=True)
class Unusual:
    """A value ``[set]`` or the grid gives a recipe that is far from the recipe's own."""

    recipe: str  # the recipe's label
    key: str
    value: float
    own: float
    normalization: str  # the recipe's loss convention, which gives its weights their units
    runs: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.key} {format_value(self.value)} for {self.recipe} (its own: {format_value(self.own)}, "
            f"{self.normalization} units; {len(self.runs)} run{'s' if len(self.runs) != 1 else ''})"
        )


def unusual_values(exp: Experiment, factor: float = FACTOR) -> list[Unusual]:
    """The weights and step sizes set or varied for every recipe alike that land more than
    ``factor`` times above or below a recipe's own value (its units differ with its loss
    convention and optimiser), by recipe and value, in plan order."""
    given = [k for k in SCALE_DEPENDENT if k in exp.settings or k in exp.grid]
    found: dict[tuple[str, str, float], list[str]] = {}
    for spec in exp.plan():
        label = spec.point["recipe"]
        own = exp.own.get(label)
        if own is None:
            continue
        for key in given:
            value, base = _effective(spec.recipe, key), _effective(own, key)
            if value > 0 and base > 0 and max(value / base, base / value) > factor:
                found.setdefault((label, key, value), []).append(spec.name)
    return [
        Unusual(lab, key, value, _effective(exp.own[lab], key), exp.own[lab].normalization, tuple(runs))
        for (lab, key, value), runs in found.items()
    ]


def _effective(recipe: Recipe, key: str) -> float:
    if key == "lr" and recipe.lr is None:
        return DEFAULT_LR[recipe.optimizer]  # the optimiser's own step size
    return float(getattr(recipe, key))
