"""stylelab: neural style transfer for people who explore it.

>>> import stylelab
>>> result = stylelab.stylize("photo.jpg", "painting.jpg", steps=200)  # doctest: +SKIP

Importing the package is cheap and changes nothing process-wide: torch and the
network load when a run needs them, and thread or allocator tuning is for the
command line and the studio to opt into (``stylelab.tuning``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_LAZY = {
    "stylize": "api",
    "Interrupted": "api",
    "Result": "engines",
    "StylelabError": "errors",
    "Recipe": "recipes",
    "load_recipe": "recipes",
}

__all__ = ["Interrupted", "Recipe", "Result", "StylelabError", "__version__", "load_recipe", "stylize"]

if TYPE_CHECKING:  # pragma: no cover
    from .api import Interrupted, stylize
    from .engines import Result
    from .errors import StylelabError
    from .recipes import Recipe, load_recipe


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stylelab' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
