"""From tasks to a plan: inputs decoded and checked, colours handled, items grouped into batches.

``prepare`` is where a run can be refused, and the only place: every image is
decoded (one-line ImageErrors), blend weights and masks are checked against
their style sets, images too small or thin for the network are refused, and
each batch's memory need is estimated against what is free (memory.py). It
writes nothing and emits no event, so a refused run leaves no trace.

Items that share an output size and the shape of their style sets run as one
batch (one pass of the network for all of them); each keeps its own targets,
losses and optimiser state. A batch that does not fit whole under ``--tile
auto|N`` runs one image at a time, each tiled where it does not fit whole
either (``Plan.tilings``, decided by ``memory.check_fits``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from PIL import Image, ImageOps

from . import color, images, memory
from .errors import ImageError
from .layers import BY_NAME, min_side
from .recipes import INITS, MAX_SIZE, Recipe
from .task import BACKGROUND, LabelMask, StyleSet, Task
from .tiles import Tiling

if TYPE_CHECKING:  # pragma: no cover - torch loads with the masks that need it (the fast engine never does)
    import torch


@dataclass
class PreparedSet:
    """One style set, decoded: its images (after colour handling), blend weights, masks."""

    images: list[Image.Image]
    weights: list[float]
    mask: torch.Tensor | None = None  # (1, 1, H, W) at the content's own size; None: everywhere
    image_masks: list[torch.Tensor | None] | None = None  # (1, 1, h, w) per style image at its own size
    key: str = ""  # what its style targets are cached under (pixels, weights, masks)
    background: bool = False  # the set painting what the other sets' masks leave uncovered


@dataclass
class Item:
    """One task's inputs, decoded, at full resolution."""

    task: Task
    content: Image.Image  # what the network sees (greyscale under luminance preservation)
    content_original: Image.Image  # for putting the content's colours back
    alpha: Image.Image | None
    sets: list[PreparedSet]
    init: Image.Image | None  # a start image given as an image or path
    size: tuple[int, int]  # the output's (width, height)


@dataclass
class Plan:
    """What ``Engine.run`` runs: the items and their batches, with the memory they were planned in."""

    recipe: Recipe
    items: list[Item]
    batches: list[list[int]]  # item indices
    estimate: memory.Estimate | None  # None: planned without plan.py's memory check (the engine made its own)
    labels: list[str] = field(default_factory=list)
    tilings: list[Tiling | None] = field(default_factory=list)  # per batch; None (or none given): whole

    def tiling(self, batch: Sequence[int]) -> Tiling | None:
        """How ``batch`` (one of ``batches``) is tiled, or None where it runs whole."""
        for b, tiling in zip(self.batches, self.tilings):
            if list(b) == list(batch):
                return tiling
        return None


def prepare(tasks: Sequence[Task], recipe: Recipe, *, memory_free: int | None = None, network: bool = True) -> Plan:
    """Decode and check ``tasks`` for ``recipe``; raises StylelabError (one line) for anything it cannot paint.

    ``network=False`` leaves out the checks made for VGG19 (the sizes its poolings need, the
    memory an optimisation step takes; the plan's ``estimate`` is then None): an engine with
    another network (fast/engine.py) makes its own.
    """
    if not tasks:
        raise ImageError("nothing to paint: no tasks")
    items = [_item(task, recipe, i, len(tasks), network) for i, task in enumerate(tasks)]
    batches: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        shape = tuple((len(s.images), s.mask is not None) for s in item.sets)
        batches.setdefault((item.size, shape), []).append(i)
    estimate = None
    planned, tilings = [], []
    free = None
    if network:
        free = memory.available_memory(recipe.device) if memory_free is None else memory_free

    def check(batch: list[int]) -> memory.Estimate:
        nonlocal estimate
        flat = [s.size for i in batch for ps in items[i].sets for s in ps.images]
        need = memory.check_fits(recipe, items[batch[0]].content.size, flat, len(batch), available=free)
        estimate = need if estimate is None or need.total > estimate.total else estimate
        return need

    for batch in batches.values():
        if not network:
            planned.append(batch)
            tilings.append(None)
            continue
        need = check(batch)
        # Too large to run together (--tile auto|N): one image at a time, each whole or tiled.
        for part in [batch] if need.batch >= len(batch) else [[i] for i in batch]:
            planned.append(part)
            tilings.append(need.tiling if part is batch else check(part).tiling)
    labels = [t.label for t in tasks]
    return Plan(recipe, items, planned, estimate, labels, tilings)


def _item(task: Task, recipe: Recipe, index: int, count: int, network: bool = True) -> Item:
    where = f" of task {index + 1}" if count > 1 else ""
    content, alpha = images.load_rgb(task.content, what=f"content{where}")
    sets = decode_sets(task, content, where)
    original = content
    if recipe.preserve_color == "histogram":
        for s in sets:
            s.images = [color.match_histogram(img, content) for img in s.images]
    elif recipe.preserve_color == "luminance":
        for s in sets:
            s.images = [color.luminance_image(img, content) for img in s.images]
        content = color.luminance_image(content)
    init = None
    if task.init is not None:
        init = images.load_rgb(task.init, what=f"start image{where}")[0]
    elif recipe.init not in INITS:
        init = images.load_rgb(recipe.init, what="init")[0]
    if network:
        check_network_sizes(content, [img for s in sets for img in s.images], recipe)
    for s in sets:
        s.key = _set_key(s, recipe)
    return Item(task, content, original, alpha, sets, init, images.fitted_size(content.size, recipe.size))


def decode_sets(task: Task, content: Image.Image, where: str = "") -> list[PreparedSet]:
    """A task's style sets decoded: images, blend weights, style-image masks, and region masks at the
    content's size (a label image's colours, the background what the others leave uncovered).
    Colour handling is the recipe's and happens after (``prepare``). ``where`` names the task in errors."""
    sets = [_style_set(s, i, len(task.styles), where, content) for i, s in enumerate(task.styles)]
    _resolve_background(sets)
    return sets


def _style_set(s: StyleSet, i: int, n: int, where: str, content: Image.Image) -> PreparedSet:
    label = "style" if n == 1 else f"style set {i + 1}"
    decoded = [
        images.load_rgb(img, what=f"{label}{where}" if len(s.images) == 1 else f"{label} image {j + 1}{where}")[0]
        for j, img in enumerate(s.images)
    ]
    hw = (content.height, content.width)
    mask = None
    if s.mask is not None or s.image_masks is not None:
        from . import guides  # masks are tensors: torch loads only for a task that has them
    if isinstance(s.mask, LabelMask):
        labels = guides.masks_from_labels(s.mask.source, hw=hw)
        if s.mask.index >= labels.shape[0]:
            raise ImageError(f"the label image has {labels.shape[0]} colours for {s.mask.index + 1} or more styles")
        mask = labels[s.mask.index : s.mask.index + 1]
    elif s.mask is not None and s.mask is not BACKGROUND:
        mask = guides.load_masks([s.mask], hw, what=f"mask of {label}")
    image_masks = None
    if s.image_masks is not None:
        image_masks = [
            None if m is None else guides.load_masks([m], (img.height, img.width), what=f"mask of {label}'s image")
            for m, img in zip(s.image_masks, decoded)
        ]
    return PreparedSet(decoded, s.blend_weights(), mask, image_masks, background=s.mask is BACKGROUND)


def _resolve_background(sets: list[PreparedSet]) -> None:
    """The background set's mask: what the other sets' masks leave uncovered."""
    for s in sets:
        if s.background:
            others = [o.mask for o in sets if o is not s and o.mask is not None]
            if not others:
                raise ImageError("a background style needs region masks for the other styles")
            import torch

            from . import guides

            s.mask = guides.background(torch.cat(others))
            if not s.mask.max() > 0:
                raise ImageError("the region masks cover the whole content: the background style has nowhere to go")


def _set_key(s: PreparedSet, recipe: Recipe) -> str:
    """A style set's identity for its targets: its pixels (after colour handling), weights and style-image masks."""
    h = hashlib.sha1()
    for img in s.images:
        h.update(img.mode.encode() + repr(img.size).encode() + img.tobytes())
    h.update(repr(s.weights).encode())
    for m in s.image_masks or []:
        h.update(b"-" if m is None else m.numpy().tobytes())
    return h.hexdigest()


def check_network_sizes(content: Image.Image, styles: list[Image.Image], recipe: Recipe) -> None:
    """Refuse images that the network's poolings would shrink to nothing at the deepest layer used.

    Each 2x2 pooling halves a side, so an image must keep ``layers.min_side`` pixels
    on its shorter side at every scale the run uses (content) and at the style size.
    """
    used = recipe.network_layers
    need = min_side(used)
    deepest = max(used, key=lambda name: BY_NAME[name].index)
    style_longest = recipe.style_longest()
    checks = [("content", content, longest, "--size") for longest in scale_sizes(recipe.size, recipe.scales)]
    checks += [("a style image", s, style_longest, "--style-scale") for s in styles]
    for what, img, longest, knob in checks:
        w, h = images.fitted_size(img.size, longest)
        if min(w, h) >= need:
            continue
        # The longest side at which the shorter one reaches ``need`` (from the image's own proportions).
        enough = max(math.ceil(need * max(img.size) / min(img.size)), longest + 1)
        if enough > MAX_SIZE:
            fix = "the image is too narrow for the network; crop it"
        elif knob == "--size":
            fix = f"use --size {enough} or more"
        else:
            fix = f"use --style-scale {math.ceil(100 * enough / recipe.size) / 100:g} or more"
        raise ImageError(
            f"{what} ({img.width}x{img.height}) becomes {w}x{h} at {longest} px, but {deepest} needs at least "
            f"{need} px on each side: {fix}"
        )


def scale_sizes(size: int, scales: int, smallest: int = 64) -> list[int]:
    """Longest sides from coarse to fine, each about sqrt(2) larger, ending at ``size``."""
    sizes = [max(min(size, smallest), round(size / math.sqrt(2) ** (scales - 1 - i))) for i in range(scales)]
    return sorted(dict.fromkeys(sizes))


def fit_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` cropped to the aspect ratio of ``size`` (centred) and resized to it: never stretched."""
    return ImageOps.fit(img, size, images.RESAMPLE)
