"""stylelab: neural style transfer for people who explore it.

>>> import stylelab
>>> result = stylelab.stylize("photo.jpg", "painting.jpg", steps=200)  # doctest: +SKIP
"""

__version__ = "0.1.0"

from .threads import prefer_sleeping_threads  # noqa: E402 - before anything imports torch

prefer_sleeping_threads()

from .api import stylize  # noqa: E402
from .engine import Result  # noqa: E402
from .errors import StylelabError  # noqa: E402
from .recipes import Recipe, load_recipe  # noqa: E402

__all__ = ["Recipe", "Result", "StylelabError", "__version__", "load_recipe", "stylize"]
