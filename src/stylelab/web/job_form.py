"""A job request from the studio's form, checked whole: every mistake at once, each tied to its field.

``check_job`` checks each setting on its own (the studio's bounds, then the
Recipe's rules, against the chosen preset), then the settings together, then
the images: the content, each style with its blend weight and optional mask,
the start image. What it finds is a ``FormErrors``: ``errors`` maps the form's
field keys to one line each, in the form's words ("style weight", "start
from"), and its message joins them on one line for any other client.

``init = "image"`` is the form's "an image (upload)": start from ``start``; ``init = "fast"``
starts from the fast engine's picture (the preview's Refine).

Keys: a setting's name (``size``, ``style_weight``), ``recipe``, ``content``,
``styles``, ``style.N``, ``blend.N`` (the blend weight of style N), ``mask.N``,
``part.N`` (the style-image mask of style N: the part of the painting to take the style
from), ``labels`` (a colour-label image: a flat colour per style, marking the regions),
``start``, and ``form`` for what concerns no one field. A video job (its content a video
upload) adds ``frame_steps``, ``clip_start``, ``clip_end`` and ``max_frames`` (video_form.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from ..engine import resolve_device
from ..errors import StylelabError
from ..recipes import FIELDS, INITS, Recipe, load_recipe, preset_names
from ..task import TaskError
from .job import job_task
from .labels import human
from .limits import Limits
from .uploads import UploadStore
from .video_form import VideoIn, check_video

MAX_STYLES = 8
NAMES = re.compile(r"\b(" + "|".join(sorted(FIELDS, key=len, reverse=True)) + r")\b")
NOT_WITH_MASKS = (
    "blend weights and masks do not go together: each masked style paints its own region"
    " (set this weight back to 1, or remove the masks)"
)


class StyleIn(BaseModel):
    upload: str = ""
    weight: float | None = Field(1.0, allow_inf_nan=False)  # JSON parsing accepts Infinity; the losses do not
    mask: str | None = None  # an upload: white where this style paints
    image_mask: str | None = None  # an upload: white on the part of this style's painting to use


class JobIn(BaseModel):
    recipe: str = "default"
    settings: dict[str, Any] = Field(default_factory=dict)
    content: str = ""
    styles: list[StyleIn] = Field(default_factory=list, max_length=64)
    start: str | None = None
    labels: str | None = None  # an upload: a colour-label image, a flat colour per style (instead of masks)
    video: VideoIn | None = None  # a video job's clip settings (its content is a video upload)


class FormErrors(StylelabError):
    """A job request with mistakes; ``errors`` ties each to its field (see the module's docstring)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(dict.fromkeys(self.errors.values())))


@dataclass
class CheckedJob:
    """A request that passed: what ``JobQueue.submit`` takes."""

    recipe: Recipe
    names: dict
    weights: list[float] | None
    masks: list[str | None] | None
    kind: str = "image"  # or "video": the content is a video upload
    video: dict | None = None  # a video job's clip settings (VideoIn's fields)
    labels: str | None = None  # a colour-label image's upload id
    image_masks: list[str | None] | None = None  # per style, its style-image mask's upload id


NOT_VALID = re.compile(r"(\w+) = (.+) is not a valid (int|float)")
KINDS = {"int": "a whole number", "float": "a number"}


def in_form_words(message: str) -> str:
    """A Recipe's message with settings named as the form labels them (``style_weight`` -> "style weight")."""
    message = NOT_VALID.sub(lambda m: f"{m.group(1)} must be {KINDS[m.group(3)]}, not {m.group(2)}", message)
    return NAMES.sub(lambda m: human(m.group(1)), message)


def _mentioned(message: str) -> list[str]:
    """The settings a message names, by either spelling, in the order it names them."""
    found = {}
    for name in FIELDS:
        if name in ("name", "description"):
            continue
        for spelling in {name, human(name)}:
            if (m := re.search(rf"\b{re.escape(spelling)}\b", message)) is not None:
                found[name] = min(found.get(name, m.start()), m.start())
    return sorted(found, key=found.get)


def check_settings(
    preset: str, settings: dict[str, Any], limits: Limits, weight_sources: tuple[str, ...]
) -> tuple[Recipe | None, dict[str, str]]:
    """The Recipe the form asks for, or None and the mistakes by setting."""
    if preset not in preset_names():
        return None, {"recipe": f"unknown recipe {preset!r}; presets: {', '.join(preset_names())}"}
    base = load_recipe(preset)
    errors: dict[str, str] = {}
    changes = {}
    for name, value in settings.items():
        if name in ("name", "description", "style_weights") or value is None or value == "":
            continue  # an empty field keeps the preset's value
        if name not in FIELDS or not FIELDS[name].metadata.get("cli", True):
            errors[name] = f"unknown setting {name!r}{_closest(name)}"
        elif name == "init" and value not in INITS:
            errors[name] = (
                f"start from must be {', '.join(INITS[:-1])} or {INITS[-1]}; upload a start image instead of a path"
            )
        elif name == "weights" and value not in weight_sources:
            errors[name] = f"weights must be one of {', '.join(weight_sources)} in the studio"
        else:
            try:
                limits.check_settings({name: value})  # in the studio's words, before the Recipe's wider limits
                base.replace(**{name: value})
            except StylelabError as exc:
                errors[name] = in_form_words(str(exc))
            else:
                changes[name] = value
    if errors:
        return None, errors
    try:
        recipe = base.replace(**changes)
        limits.check(recipe)
        resolve_device(recipe.device)
    except StylelabError as exc:
        # Settings that are fine one by one and not together (steps × scales, style scale × size):
        # the message goes to the first setting it names.
        named = _mentioned(str(exc))
        return None, {named[0] if named else "form": in_form_words(str(exc))}
    return recipe, {}


def _closest(name: str) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(FIELDS), n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _upload(uploads: UploadStore, upload_id: str | None, key: str, errors: dict[str, str]) -> dict | None:
    try:
        return uploads.meta(upload_id or "")
    except StylelabError as exc:
        errors[key] = str(exc)
        return None


def check_job(body: JobIn, limits: Limits, uploads: UploadStore, weight_sources: tuple[str, ...]) -> CheckedJob:
    """Everything a job request asks for, checked at once; raises FormErrors with every mistake."""
    settings = dict(body.settings)
    from_image = settings.get("init") == "image"  # the form's "an image (upload)": the start image
    if from_image:
        settings.pop("init")
    recipe, errors = check_settings(body.recipe, settings, limits, weight_sources)
    names: dict[str, Any] = {}
    clip = None
    if not body.content:
        errors["content"] = "add a content image (or a video)"
    elif (meta := _upload(uploads, body.content, "content", errors)) is not None:
        names["content"] = meta["name"]
        clip = meta if meta.get("kind") == "video" else None
    if not body.styles:
        errors["styles"] = "add at least one style image"
    elif len(body.styles) > MAX_STYLES:
        errors["styles"] = f"at most {MAX_STYLES} style images, not {len(body.styles)}"
    styles, masks, parts = [], [], []
    for i, style in enumerate(body.styles[:MAX_STYLES]):
        meta = _image(uploads, style.upload, f"style.{i}", "a style", errors)
        styles.append(meta["name"] if meta else "")
        if style.weight is None:
            errors[f"blend.{i}"] = "the weight must be a number"
        elif style.weight < 0:
            errors[f"blend.{i}"] = f"the weight must be 0 or more, not {style.weight:g}"
        mask = _image(uploads, style.mask, f"mask.{i}", "a mask", errors) if style.mask else None
        masks.append(mask["name"] if mask else None)
        part = style.image_mask and _image(uploads, style.image_mask, f"part.{i}", "a style-image mask", errors)
        parts.append(part["name"] if part else None)
    names["styles"] = styles
    if any(masks):
        names["masks"] = masks
    if any(parts):
        names["image_masks"] = parts
    if body.labels and (meta := _image(uploads, body.labels, "labels", "a label image", errors)) is not None:
        names["labels"] = meta["name"]
    if from_image and not body.start:
        errors["start"] = "upload a start image, or choose another start"
    if body.start and (meta := _image(uploads, body.start, "start", "a start image", errors)) is not None:
        names["start"] = meta["name"]
    video = None
    if clip is not None:
        if from_image or body.start:
            errors["start"] = "a video's frames start from the frame before, carried along: no start image"
        recipe, video = check_video(body.video, clip, recipe, settings, limits, uploads.max_video_frames, errors)
    weights = _weights(body, errors)
    if body.labels:
        _check_labels(body, weights, uploads, errors)
        weights = None
    elif any(s.mask for s in body.styles) and not any(k.startswith(("style", "mask")) for k in errors):
        _check_regions(body, weights, errors)
        weights = None
    _check_parts(body, clip is not None, settings.get("init"), errors)
    if errors:
        raise FormErrors(errors)
    masked = [s.mask or None for s in body.styles] if "masks" in names else None
    own = [s.image_mask or None for s in body.styles[:MAX_STYLES]] if "image_masks" in names else None
    kind = "video" if clip is not None else "image"
    return CheckedJob(recipe, names, weights, masked, kind, video, body.labels or None, own)


def _image(uploads: UploadStore, upload_id: str | None, key: str, what: str, errors: dict[str, str]) -> dict | None:
    """``_upload`` for an input that must be an image (a style, a mask, a start image)."""
    meta = _upload(uploads, upload_id, key, errors)
    if meta is not None and meta.get("kind") == "video":
        errors[key] = f"{meta['name']} is a video; {what} is an image"
        return None
    return meta


def _weights(body: JobIn, errors: dict[str, str]) -> list[float] | None:
    """The blend weights, where there is anything to blend; the weights' own mistakes go to ``errors``."""
    if len(body.styles) < 2 or any(k.startswith("blend.") for k in errors):
        return None
    weights = [float(s.weight) for s in body.styles[:MAX_STYLES]]
    if not sum(weights) > 0:
        errors["blend.0"] = "the blend weights cannot all be 0"
    return weights


def _check_regions(body: JobIn, weights: list[float] | None, errors: dict[str, str]) -> None:
    """Masks with the task's rules (``job.job_task``, ``Task.of``): its refusals, tied to the fields concerned."""
    masks = [s.mask or None for s in body.styles]
    unmasked = [i for i, m in enumerate(masks) if m is None]
    blended = weights if weights and any(w != 1 for w in weights) else None
    try:
        job_task("content", [s.upload for s in body.styles], blended, masks)
    except TaskError as exc:
        if blended:
            for i, w in enumerate(blended):
                if w != 1:
                    errors[f"blend.{i}"] = NOT_WITH_MASKS
        elif len(unmasked) > 1:
            for i in unmasked:
                errors[f"mask.{i}"] = (
                    "add a mask here too: with masks, only one style may go without (it paints the rest)"
                )
        else:
            errors["styles"] = str(exc)


def _check_labels(body: JobIn, weights: list[float] | None, uploads: UploadStore, errors: dict[str, str]) -> None:
    """A colour-label image: instead of masks, for two styles or more, a colour for each (``regions``)."""
    from .regions import label_colours, too_few_colours

    if any(s.mask for s in body.styles):
        errors["labels"] = "a label image or masks, not both: the label image's colours are the regions (remove one)"
    elif len(body.styles) < 2:
        errors["labels"] = "a label image gives each style a colour: add a style per colour (or give the style a mask)"
    for i, w in enumerate(weights or []):
        if w != 1:
            errors[f"blend.{i}"] = NOT_WITH_MASKS.replace("remove the masks", "remove the label image")
    if "labels" in errors or any(k.startswith("style") for k in errors):
        return
    try:
        why = too_few_colours(label_colours(uploads.path(body.labels)), len(body.styles))
    except StylelabError as exc:
        why = str(exc)
    if why:
        errors["labels"] = why


def _check_parts(body: JobIn, video: bool, init: Any, errors: dict[str, str]) -> None:
    """Style-image masks: for a still (the video pipeline takes each painting whole), and not with
    a start from the fast engine's picture (the fast model reads the whole painting)."""
    parts = [i for i, s in enumerate(body.styles[:MAX_STYLES]) if s.image_mask]
    if not parts:
        return
    for i in parts:
        if video:
            errors.setdefault(f"part.{i}", "a video's frames take each style from its whole painting: remove this mask")
    if init == "fast" and "init" not in errors:
        errors["init"] = (
            "start from fast takes each style from its whole painting: no style-image masks with it"
            " (start from content, or remove the style-image masks)"
        )
