"""The Task: what to paint. The Recipe says how.

A Task is the content image, one or more style sets and an optional start
image. A style set is one or more style images blended with weights (their
statistics are mixed), and optionally a mask on the content saying where that
set applies (regions, Gatys et al. 2017) and masks on its style images saying
which part of each painting to take the style from. A video frame's task also
carries its temporal target: the previous result warped along the optical flow,
with the weights of the pixels the flow could follow.

Inputs stay as the caller gave them (paths, PIL images, arrays, tensors) until
``plan.prepare`` decodes them; ``Task.to_dict`` is the one serialised form, the
same in run folders, PNG settings and studio jobs: file names (absolute paths
for files, so ``--from`` works from anywhere), content hashes, blend weights.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RecipeError, StylelabError


class TaskError(StylelabError, ValueError):
    """A task that cannot be painted as given: style sets, weights or masks that do not fit together."""


@dataclass(frozen=True)
class StyleSet:
    """Style images blended with ``weights`` (None: equal), applied where ``mask`` is white (None: everywhere)."""

    images: tuple[Any, ...]
    weights: tuple[float, ...] | None = None
    mask: Any = None
    image_masks: tuple[Any, ...] | None = None  # per style image, the part of the painting to use

    def __post_init__(self):
        images = tuple(self.images) if _is_sequence(self.images) else (self.images,)
        object.__setattr__(self, "images", images)
        if not images:
            raise TaskError("a style set needs at least one style image")
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if self.image_masks is not None:
            object.__setattr__(self, "image_masks", tuple(self.image_masks))
            if len(self.image_masks) != len(images):
                raise TaskError(f"{len(self.image_masks)} style-image masks for {len(images)} style images")

    def blend_weights(self) -> list[float]:
        """The blend weights, checked: one per image, finite, >= 0, with a positive sum."""
        if self.weights is None:
            return [1.0] * len(self.images)
        if len(self.images) == 1:
            raise RecipeError(
                "blend weights mix several style images; with one style there is nothing to blend "
                "(--style-weight sets the weight of the style term)"
            )
        if len(self.weights) != len(self.images):
            raise RecipeError(
                f"{len(self.weights)} blend weights for {len(self.images)} style images (--style-blend-weights): "
                "give one per style image"
            )
        if any(not (0 <= w < math.inf) for w in self.weights) or not sum(self.weights) > 0:
            raise RecipeError("blend weights must be finite, >= 0 and not all 0")
        return list(self.weights)


@dataclass(frozen=True)
class LabelMask:
    """Region ``index`` of a colour-label image: one colour per style set, in order of first appearance."""

    source: Any
    index: int


@dataclass(frozen=True)
class Temporal:
    """A video frame's temporal target: the previous result warped to this frame, and per-pixel
    weights (1 where the flow is reliable, 0 at occlusions and motion boundaries)."""

    image: Any  # (1, 3, H, W) tensor or an image, RGB 0..1
    weights: Any  # (1, 1, H, W) tensor or an (H, W) array in 0..1


@dataclass(frozen=True)
class Task:
    """What to paint: ``content`` in the manner of ``styles`` (one set, or one per region)."""

    content: Any
    styles: tuple[StyleSet, ...]
    init: Any = None  # a start image; None: the recipe's init (content, style or noise)
    label: str = ""
    temporal: Temporal | None = field(default=None, compare=False)

    def __post_init__(self):
        styles = tuple(self.styles) if _is_sequence(self.styles) else (self.styles,)
        styles = tuple(s if isinstance(s, StyleSet) else StyleSet(s) for s in styles)
        object.__setattr__(self, "styles", styles)
        if not styles:
            raise TaskError("a task needs at least one style set")
        masked = [s.mask is not None for s in styles]
        if len(styles) > 1 and not all(masked):
            raise TaskError("several style sets paint regions: give each one a mask (or blend them in one set)")

    @classmethod
    def of(
        cls,
        content,
        styles,
        *,
        weights=None,
        masks=None,
        init=None,
        label: str = "",
        background=None,
        image_masks=None,
    ) -> Task:
        """The common shapes: ``styles`` blended with ``weights``; or, with ``masks`` (one per style),
        each style in its own region, plus an optional ``background`` style where no mask is white.
        ``image_masks``: one per style image (None for a whole image), the part of it to take the style from."""
        images = list(styles) if _is_sequence(styles) else [styles]
        if image_masks is not None:
            image_masks = list(image_masks) if _is_sequence(image_masks) else [image_masks]
            if len(image_masks) != len(images):
                raise TaskError(
                    f"{len(image_masks)} style-image masks for {len(images)} style images (--style-masks): "
                    "give one per style image (none for a whole one)"
                )
        if masks is None:
            if background is not None:
                raise TaskError("a background style goes with region masks (--masks)")
            return cls(content, (StyleSet(tuple(images), weights, image_masks=image_masks),), init, label)
        masks = list(masks) if _is_sequence(masks) else [masks]
        if weights is not None:
            raise TaskError("blend weights and region masks do not go together: each region has its own style")
        if len(masks) == 1 and len(images) > 1:  # one colour-label image: a colour per style
            masks = [LabelMask(masks[0], i) for i in range(len(images))]
        if len(masks) != len(images):
            raise TaskError(f"{len(masks)} masks for {len(images)} style images: give one mask per style")
        own = image_masks or [None] * len(images)
        sets = [
            StyleSet((img,), mask=mask, image_masks=None if m is None else (m,))
            for img, mask, m in zip(images, masks, own)
        ]
        if background is not None:
            sets.append(StyleSet((background,), mask=BACKGROUND))
        return cls(content, tuple(sets), init, label)

    @property
    def style_images(self) -> list[Any]:
        return [img for s in self.styles for img in s.images]

    def to_dict(self, recorded: Any = None) -> dict[str, Any]:
        """The serialised task: names, content hashes and weights (see the module's docstring).
        ``recorded``: how an input is recorded (default: ``describe``, by its file and hash)."""
        describe_input = recorded or describe
        out: dict[str, Any] = {"content": describe_input(self.content)}
        out["styles"] = []
        for s in self.styles:
            entry: dict[str, Any] = {"images": [describe_input(img) for img in s.images]}
            if s.weights is not None:
                entry["weights"] = list(s.weights)
            if isinstance(s.mask, LabelMask):
                entry["mask"] = {"labels": describe_input(s.mask.source), "index": s.mask.index}
            elif s.mask is not None:
                entry["mask"] = "background" if s.mask is BACKGROUND else describe_input(s.mask)
            if s.image_masks is not None:
                entry["image_masks"] = [describe_input(m) if m is not None else None for m in s.image_masks]
            out["styles"].append(entry)
        if self.init is not None:
            out["init"] = describe_input(self.init)
        if self.label:
            out["label"] = self.label
        return out

    @classmethod
    def from_dict(cls, data: Any, origin: str = "task") -> Task:
        """A task read back from ``to_dict``'s form (inputs by their file names); TaskError if damaged."""

        def damaged(why: str) -> TaskError:
            return TaskError(f"{origin}: the task is damaged ({why})")

        def name(entry) -> str:
            value = entry.get("name") if isinstance(entry, dict) else entry
            if not isinstance(value, str) or not value:
                raise damaged("an input without a file name")
            return value

        if not isinstance(data, dict) or not isinstance(data.get("styles"), list) or not data["styles"]:
            raise damaged("no style sets")
        sets = []
        for s in data["styles"]:
            if not isinstance(s, dict) or not isinstance(s.get("images"), list) or not s["images"]:
                raise damaged("a style set without images")
            weights = s.get("weights")
            if weights is not None and not (isinstance(weights, list) and all(_is_number(w) for w in weights)):
                raise damaged("blend weights must be numbers")
            mask = s.get("mask")
            if isinstance(mask, dict) and "labels" in mask:
                if not isinstance(mask.get("index"), int):
                    raise damaged("a label mask without its index")
                mask = LabelMask(name(mask["labels"]), mask["index"])
            else:
                mask = BACKGROUND if mask == "background" else (name(mask) if mask is not None else None)
            image_masks = s.get("image_masks")
            if image_masks is not None:
                image_masks = tuple(name(m) if m is not None else None for m in image_masks)
            sets.append(StyleSet(tuple(name(i) for i in s["images"]), weights, mask, image_masks))
        init = name(data["init"]) if data.get("init") is not None else None
        label = data.get("label", "")
        return cls(name(data.get("content")), tuple(sets), init, label if isinstance(label, str) else "")


class _Background:
    """The mask of the area no other style set's mask covers (``guides.background``)."""

    def __repr__(self) -> str:
        return "BACKGROUND"


BACKGROUND = _Background()


def _is_sequence(value) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def describe(src: Any) -> dict[str, str] | str:
    """An input as it is recorded: a file by its absolute path and content hash; an image in
    memory by its kind and hash (so two runs of the same picture can be told to be the same)."""
    if isinstance(src, (str, os.PathLike)):
        path = Path(src).expanduser()
        return {"name": str(path.resolve()), "sha256": file_hash(path)}
    return {"name": f"<{type(src).__name__}>", "sha256": memory_hash(src)}


def input_name(entry: Any) -> str:
    """The file name of a recorded input (``describe``'s form, or a plain name from older runs)."""
    return entry.get("name", "") if isinstance(entry, dict) else str(entry)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except OSError:
        return ""
    return h.hexdigest()


def memory_hash(src: Any) -> str:
    """A hash of an in-memory image's pixels (PIL image, array or tensor)."""
    import numpy as np

    try:
        if hasattr(src, "tobytes") and hasattr(src, "mode"):  # PIL
            data = src.mode.encode() + repr(src.size).encode() + src.tobytes()
        else:
            a = np.ascontiguousarray(src.detach().cpu().numpy() if hasattr(src, "detach") else np.asarray(src))
            data = str(a.dtype).encode() + repr(a.shape).encode() + a.tobytes()
    except (TypeError, ValueError, AttributeError):
        return ""
    return hashlib.sha256(data).hexdigest()
