"""The Python API: ``stylelab.stylize``."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .engines import Result, make_engine
from .errors import InputTypeError
from .events import Event
from .recipes import Recipe, load_recipe
from .runs import RunWriter
from .task import Task

if TYPE_CHECKING:  # pragma: no cover
    from .engine import Engine


def _as_list(style) -> list[Any]:
    if isinstance(style, (str, Path, Image.Image, np.ndarray, bytes)):
        return [style]
    if isinstance(style, Sequence):
        return list(style)
    return [style]  # a tensor or anything open_image understands


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``stylize``: raised after the run has ended, with the image so far in ``result``."""

    def __init__(self, result: Result):
        super().__init__("interrupted")
        self.result = result


def stylize(
    content: str | Path | Image.Image | np.ndarray,
    style: Any,
    recipe: str | Path | Recipe = "default",
    *,
    callback: Callable[[Event], Any] | Sequence[Callable[[Event], Any]] | None = None,
    progress: bool | None = None,
    run_dir: str | Path | None = None,
    stop: threading.Event | None = None,
    style_blend_weights: Sequence[float] | None = None,
    masks: Any = None,
    engine: Engine | str | None = None,
    **overrides,
) -> Result:
    """Paint ``content`` in the manner of ``style`` (one image or a list to blend).

    Args:
        content: a path, PIL image, array or tensor (HxW, HxWx3, HxWx4 or CxHxW; uint8, uint16, or
            float in 0..1, or in 0..255 when its values go past 1.5).
        style: one such image or a list of them (blended with ``style_blend_weights``).
        recipe: a preset name (``stylelab recipes``), a recipe TOML file, or a Recipe.
        callback: called with every event (Started, Step, Snapshot, Done, Failed);
            returning True stops the run, keeping the last image.
        progress: show progress (a bar in a terminal, a live cell in Jupyter);
            default: only in notebooks.
        run_dir: also write a run folder (recipe, metrics, snapshots, process picture).
        stop: a threading.Event that cancels the run when set.
        style_blend_weights: one weight per style image (default: equal).
        masks: one region mask per style image (white where that style goes), or one colour-label image.
        engine: an ``Engine`` to reuse (its network and style targets stay loaded between calls),
            or the name of the engine kind (``"fast"``, ``"optimise"``), as the recipe's ``engine``.
        **overrides: any Recipe field, e.g. ``steps=200, style_weight=10``.

    Returns:
        Result with ``image`` (PIL), ``history`` (losses per step), ``recipe``
        (fully resolved) and ``status``. In a notebook it displays as its image.

    Raises:
        StylelabError: an input or setting that cannot be used (nothing was written).
        Interrupted: Ctrl-C (a KeyboardInterrupt) outside a notebook, after the run ended;
            its ``result`` holds the image so far. In a notebook the result is returned.

    >>> result = stylize("photo.jpg", ["a.jpg", "b.jpg"], style_blend_weights=[0.7, 0.3])  # doctest: +SKIP
    >>> result.image.save("out.png")  # doctest: +SKIP
    """
    if "style_weights" in overrides:  # the old name of the blend weights
        warnings.warn("style_weights= is now style_blend_weights=", DeprecationWarning, stacklevel=2)
        style_blend_weights = overrides.pop("style_weights")
    if isinstance(engine, str):  # the kind of engine, a recipe setting
        overrides["engine"], engine = engine, None
    resolved = load_recipe(recipe, **overrides)
    task = Task.of(content, _as_list(style), weights=style_blend_weights, masks=masks)
    callbacks: list[Callable] = []
    if callback is not None:
        callbacks.extend(callback if isinstance(callback, Sequence) else [callback])
    if not all(callable(cb) for cb in callbacks):
        raise InputTypeError("callback must be a function (or a list of functions) taking an event")
    if run_dir is not None and not isinstance(run_dir, (str, os.PathLike)):
        raise InputTypeError(f"run_dir must be a folder path, not {type(run_dir).__name__}")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise InputTypeError("stop must be a threading.Event")
    if engine is None:
        engine = make_engine(resolved)
    plan = engine.prepare([task], resolved)  # everything checked before anything is written
    if run_dir is not None:
        callbacks.append(RunWriter(Path(run_dir)))
    from .progress import NOTEBOOK_PREVIEW, NotebookDisplay, ProgressBar, in_notebook

    notebook = in_notebook()
    if progress is None:
        progress = notebook
    if progress and notebook:
        callbacks.append(NotebookDisplay())
        return engine.run(plan, callbacks, stop, preview=NOTEBOOK_PREVIEW)[0]
    if progress:
        with ProgressBar() as bar:
            result = engine.run(plan, [*callbacks, bar], stop)[0]
    else:
        result = engine.run(plan, callbacks, stop)[0]
    if result.status == "interrupted" and not notebook:
        raise Interrupted(result)
    return result
