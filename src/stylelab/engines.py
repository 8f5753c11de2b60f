"""Which engine a recipe runs on, and the Result every engine returns.

Two engines follow one protocol (``prepare(tasks, recipe) -> Plan``,
``run(plan, sinks, stop, preview) -> [Result]``): the optimiser's ``Engine``
(engine.py) and the feed-forward model's ``FastEngine`` (fast/engine.py).
This module imports neither until one is asked for, so a fast run never loads
torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image

from . import images
from .recipes import Recipe

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine
    from .task import Task

NETWORK_FIELDS = ("device", "weights", "pooling", "precision")  # the recipe fields an Engine is made for


@dataclass
class Result:
    """What a run produced. In a notebook it displays as its image."""

    image: Image.Image | None
    recipe: Recipe
    history: list[dict[str, float]] = field(default_factory=list)
    status: str = "done"  # done | diverged | cancelled | interrupted | error
    message: str = ""
    elapsed: float = 0.0
    steps: int = 0
    device: str = "cpu"
    peak_memory: int = 0  # bytes: this run's own peak (CUDA allocator, or resident memory on CPU)
    label: str = ""
    task: Task | None = None
    precision: str = "fp32"  # what the convolutions ran in
    terms: tuple[str, ...] = ()

    @property
    def losses(self) -> dict[str, float]:
        return {k: v for k, v in self.history[-1].items() if k not in ("step", "elapsed")} if self.history else {}

    @property
    def ok(self) -> bool:
        return self.status == "done"

    def _repr_png_(self):
        return images.png_bytes(self.image) if self.image is not None else None


def make_engine(recipe: Recipe, **kwargs):
    """The engine a recipe runs on: the optimiser's (``Engine``), or the feed-forward model's
    (``recipe.engine == "fast"``: fast/engine.py), both with ``prepare`` and ``run``."""
    if recipe.engine == "fast":
        from .fast.engine import FastEngine

        return FastEngine.for_recipe(recipe, **kwargs)
    from .engine import Engine

    return Engine.for_recipe(recipe, **kwargs)


class EngineCache:
    """Engines by the recipe fields that decide the network: what a worker keeps across runs."""

    def __init__(self, **engine_kwargs):
        self._engines: dict[tuple, Engine] = {}
        self._kwargs = engine_kwargs

    def get(self, recipe: Recipe) -> Engine:
        # The fast engine has one model whatever the network settings say (they are the optimiser's).
        key = ("fast",) if recipe.engine == "fast" else (recipe.engine, *(getattr(recipe, n) for n in NETWORK_FIELDS))
        if key not in self._engines:
            self._engines[key] = make_engine(recipe, **self._kwargs)
        return self._engines[key]

    @property
    def builds(self) -> int:
        return sum(e.builds for e in self._engines.values())

    @property
    def build_seconds(self) -> float:
        return sum(getattr(e, "build_seconds", 0.0) for e in self._engines.values())
