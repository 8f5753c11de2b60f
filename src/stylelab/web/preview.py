"""The studio's instant preview: the fast engine's picture of the form's inputs, before any optimisation.

``POST /api/preview`` takes ``{content, styles: [upload ids], weights?, masks?, labels?,
image_masks?, settings: {size, strength, preserve_color}, client?}`` and answers the
picture as image/png, with ``X-Elapsed`` (the engine's seconds) and, where the preview
leaves something of the run out, ``X-Preview-Note`` (one line, in sentences). It runs in the request's
thread on the app's one ``FastEngine`` (its model loaded once, its style vectors cached),
never through the job queue: a preview does not wait behind an optimiser job.

Regions are the run's: per-style masks, or one colour-label image, composited by the fast
engine (fast/engine.py). Style-image masks are left out of the preview (the fast model reads
the whole painting) and the note says so; the run uses them.

Only the latest request of a page counts: a request names its page (``client``), and one
that is still waiting its turn when a newer one of the same page arrives is answered 409
unpainted (the page drops older answers anyway). At most ``MAX_WAITING`` previews wait at
once (429 beyond). Mistakes are 400 with one line; a missing fast extra is 503 with the
install hint, as ``stylelab.fast.model.unavailable_reason`` gives it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import StylelabError, WeightsError
from ..recipes import Recipe, load_recipe
from .job import job_task
from .uploads import UploadStore

PREVIEW_SIZE = 512  # the longest side of a preview when the request names none
PREVIEW_MAX = 1024  # a preview is a look, not the result: larger sizes are painted at this
MAX_WAITING = 8  # previews painting or waiting their turn, all pages together
CLIENTS = 256  # pages whose latest request is remembered
SETTINGS = ("size", "strength", "preserve_color")
KEYS = {"content", "styles", "weights", "masks", "labels", "image_masks", "settings", "client"}
NO_PARTS = (
    "The preview takes each style from its whole painting (the fast model reads the whole image); the run uses"
    " the style-image masks."
)


class PreviewError(StylelabError):
    """A preview request the studio cannot paint (HTTP 400)."""


class FastUnavailable(StylelabError):
    """The fast extra is not installed, or its model files do not match (HTTP 503)."""


class Superseded(StylelabError):
    """A newer preview of the same page arrived while this one waited (HTTP 409)."""


class PreviewBusy(StylelabError):
    """Too many previews waiting already (HTTP 429)."""


@dataclass
class PreviewAsk:
    """A checked preview request: the inputs as stored files, the recipe, what it leaves out."""

    content: Path
    styles: list[Path]
    weights: list[float] | None
    masks: list[Path | None] | None
    labels: Path | None
    recipe: Recipe
    client: str | None = None
    notes: tuple[str, ...] = ()


@dataclass
class Picture:
    """A painted preview: PNG bytes, its size, the engine's seconds, and what it leaves out."""

    png: bytes
    size: tuple[int, int]
    elapsed: float
    note: str = ""


def _list(data: dict, key: str, n: int | None = None) -> list | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise PreviewError(f"{key} must be a list")
    if n is not None and len(value) != n:
        raise PreviewError(f"{len(value)} {key.replace('_', ' ')} for {n} styles: give one per style (null for none)")
    return value


def _image(uploads: UploadStore, upload_id: Any, what: str) -> Path:
    if not isinstance(upload_id, str) or not upload_id:
        raise PreviewError(f"{what} must be an upload id")
    try:
        meta = uploads.meta(upload_id)
        path = uploads.path(upload_id)
    except StylelabError as exc:  # no such upload, or no upload id at all: a mistake of the request (400)
        raise PreviewError(f"{what}: {exc}") from None
    if meta.get("kind") == "video":
        raise PreviewError(f"{meta['name']} is a video; the preview paints a still image ({what})")
    return path


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PreviewError(f"{what} must be a number, not {value!r}")
    return float(value)


def check_preview(data: Any, uploads: UploadStore, most: int) -> PreviewAsk:
    """The request's inputs and settings, checked; raises PreviewError (or UploadError) with one line.

    ``most``: the largest preview (``PREVIEW_MAX``, or the studio's --max-size where smaller);
    a larger ``size`` is painted at ``most`` and said so in the notes."""
    if not isinstance(data, dict):
        raise PreviewError("send the preview request as a JSON object")
    if unknown := sorted(set(data) - KEYS):
        raise PreviewError(f"unknown preview field {unknown[0]!r}; fields: {', '.join(sorted(KEYS))}")
    content = _image(uploads, data.get("content"), "content")
    ids = _list(data, "styles")
    if not ids:
        raise PreviewError("add at least one style image")
    styles = [_image(uploads, s, f"style {i}") for i, s in enumerate(ids, 1)]
    weights = _list(data, "weights", len(styles))
    weights = [_number(w, "a blend weight") for w in weights] if weights is not None else None
    masks = _list(data, "masks", len(styles))
    masks = [None if m is None else _image(uploads, m, f"mask {i}") for i, m in enumerate(masks, 1)] if masks else None
    masks = masks if masks and any(m is not None for m in masks) else None
    labels = _image(uploads, data["labels"], "the label image") if data.get("labels") is not None else None
    parts = _list(data, "image_masks", len(styles)) or []
    notes = [NO_PARTS] if any(p is not None for p in parts) else []
    if labels is not None and masks is not None:
        raise PreviewError("a label image or masks, not both: the label image's colours are the regions")
    if (labels is not None or masks is not None) and weights is not None:
        if any(w != 1 for w in weights):
            raise PreviewError("blend weights and masks do not go together: each masked style paints its own region")
        weights = None
    if weights is not None and len(styles) < 2:
        weights = None  # one style: nothing to blend
    settings = data.get("settings") or {}
    if not isinstance(settings, dict):
        raise PreviewError("settings must be an object: size, strength, preserve_color")
    if unknown := sorted(set(settings) - set(SETTINGS)):
        raise PreviewError(f"unknown preview setting {unknown[0]!r}; settings: {', '.join(SETTINGS)}")
    size = settings.get("size", min(PREVIEW_SIZE, most))
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise PreviewError(f"size must be a whole number of pixels from 16 up, not {size!r}")
    if size > most:
        notes.append(f"Previewed at {most} px (the preview's largest size); the run paints at {size} px.")
        size = most
    overrides: dict[str, Any] = {"size": size, "engine": "fast"}
    if settings.get("strength") is not None:
        overrides["strength"] = _number(settings["strength"], "strength")
    if settings.get("preserve_color") is not None:
        overrides["preserve_color"] = settings["preserve_color"]
    recipe = load_recipe("default", **overrides)  # RecipeError (one line) for a strength or colour out of range
    client = data.get("client")
    if client is not None and (not isinstance(client, str) or not 0 < len(client) <= 64):
        raise PreviewError("client must be a short string naming the page")
    return PreviewAsk(content, styles, weights, masks, labels, recipe, client, tuple(notes))


class Previewer:
    """The app's one fast engine, painting one preview at a time, the latest of each page.

    ``engine``: the FastEngine to paint with (default: a new one, its model loaded on first use).
    """

    def __init__(self, engine=None, max_waiting: int = MAX_WAITING):
        from ..fast.engine import FastEngine

        self.engine = engine or FastEngine()
        self.max_waiting = max_waiting
        self._turn = threading.Lock()  # one preview paints at a time (FastEngine.run would serialise them anyway)
        self._state = threading.Lock()
        self._tickets = itertools.count(1)
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._waiting = 0
        self._reason: str | None | bool = False  # False: not looked at yet

    def reason(self) -> str | None:
        """Why the fast model cannot load (the install hint), or None; looked at once, then kept up to date."""
        if self._reason is False:
            from ..fast.model import unavailable_reason

            self._reason = unavailable_reason()
        return self._reason

    def paint(self, ask: PreviewAsk) -> Picture:
        """The preview ``ask`` asks for. Raises FastUnavailable, Superseded, PreviewBusy or a StylelabError."""
        with self._state:
            if self._waiting >= self.max_waiting:
                raise PreviewBusy(f"{self._waiting} previews are being painted already; try again in a moment")
            self._waiting += 1
            ticket = next(self._tickets)
            if ask.client:
                self._latest[ask.client] = ticket
                self._latest.move_to_end(ask.client)
                while len(self._latest) > CLIENTS:
                    self._latest.popitem(last=False)
        try:
            with self._turn:
                if ask.client and self._latest.get(ask.client, ticket) != ticket:
                    raise Superseded("a newer preview of this page was asked for")
                return self._paint(ask)
        finally:
            with self._state:
                self._waiting -= 1

    def _paint(self, ask: PreviewAsk) -> Picture:
        from .. import images

        masks = [str(m) if m is not None else None for m in ask.masks] if ask.masks else None
        task = job_task(
            str(ask.content), [str(s) for s in ask.styles], ask.weights, masks, labels=ask.labels and str(ask.labels)
        )
        try:
            plan = self.engine.prepare([task], ask.recipe)
        except WeightsError as exc:  # the extra is missing, or its files are not the expected ones
            self._reason = str(exc)
            raise FastUnavailable(str(exc)) from None
        self._reason = None
        result = self.engine.run(plan)[0]
        if result.status != "done" or result.image is None:
            raise PreviewError(f"the preview was not painted: {result.message or result.status}")
        return Picture(images.png_bytes(result.image), result.image.size, result.elapsed, " ".join(ask.notes))


def preview_routes(previewer: Previewer, uploads: UploadStore, most: int):
    """``POST /api/preview`` (see the module's docstring) as a router for the studio's app."""
    router = APIRouter()

    @router.post("/api/preview")
    async def preview(request: Request):
        """The fast engine's picture of the inputs: image/png, X-Elapsed, X-Preview-Note."""
        try:
            data = await request.json()
        except ValueError:
            raise PreviewError("send the preview request as JSON") from None
        picture = await asyncio.to_thread(lambda: previewer.paint(check_preview(data, uploads, most)))
        headers = {"Cache-Control": "no-store", "X-Elapsed": f"{picture.elapsed:.4f}"}
        if picture.note:
            headers["X-Preview-Note"] = picture.note.encode("ascii", "replace").decode()
        return Response(picture.png, media_type="image/png", headers=headers)

    return router
