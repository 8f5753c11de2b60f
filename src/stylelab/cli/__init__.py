"""The ``stylelab`` command (``stylelab.cli:main``).

``app`` holds the Typer app and the entry point; importing the command modules
registers their commands on it.
"""

from . import run, sheet, sweeps, tools, video  # noqa: F401 - registers the commands
from .app import _default_text, app, expand_multi_values, main

__all__ = ["_default_text", "app", "expand_multi_values", "main"]
