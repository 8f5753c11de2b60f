"""Region masks ("guides") for spatially controlled style transfer.

Gatys et al., "Controlling Perceptual Factors in Neural Style Transfer" (CVPR 2017):
each style set can come with a mask on the content (greyscale, white where that
style applies, soft edges allowed) or all of them with one colour-label image,
and a style image can have a mask of its own (take the style from part of a
painting). A mask is carried down to each layer's resolution by the pooling the
network does (``to_layer``); ``style_losses`` then treats it as pixel weights, so
each region's statistics are normalised by its own area. What no mask covers is
``background``: it keeps the content, or takes a background style.

Masks are float tensors (K, 1, H, W) in 0..1, one per style set, at the image's
size ``hw`` = (height, width), as a content tensor's ``shape[-2:]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import images
from .errors import ImageError, RecipeError
from .layers import BY_NAME, LAYERS, feature_shape, resolve

MAX_LABELS = 64  # more distinct colours than this is a photo or a JPEG, not a label image
LABEL_SHARE = 0.001  # colours covering less of a label image are edge or compression pixels
LABEL_TOLERANCE = 48.0  # RGB distance (0..255) within which a pixel takes a label colour


def _resize(mask: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear with antialiasing: a shrunk mask keeps each region's share of every pixel."""
    if tuple(mask.shape[-2:]) == tuple(hw):
        return mask
    return F.interpolate(mask, size=tuple(hw), mode="bilinear", antialias=True, align_corners=False).clamp_(0, 1)


def _check_hw(hw) -> tuple[int, int]:
    h, w = (int(v) for v in hw)
    if h < 1 or w < 1:
        raise ValueError(f"hw must be a positive (height, width), not {tuple(hw)}")
    return h, w


def _one_mask(src, label: str) -> torch.Tensor:
    """One mask as a (1, 1, h, w) float tensor in 0..1, at its own size."""
    if isinstance(src, torch.Tensor):
        m = src.detach().cpu()
        while m.dim() > 2 and m.shape[0] == 1:
            m = m[0]
        if m.dim() != 2:
            raise ImageError(f"{label}: a mask tensor must be HxW, 1xHxW or 1x1xHxW, not {tuple(src.shape)}")
        m = m.float() / 255.0 if m.dtype == torch.uint8 else m.float()
        if not torch.isfinite(m).all() or m.min() < 0 or m.max() > 1:
            raise ImageError(f"{label}: a mask tensor's values must be finite and in 0..1")
        return m[None, None]
    # Transparent pixels count as black (not covered): a region painted on a
    # transparent layer is the region, whatever colour its strokes are drawn in.
    rgb, _ = images.to_rgb(images.open_image(src), background=(0, 0, 0))
    a = np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(a.copy())[None, None]


def _label(src, i: int, what: str) -> str:
    name = f" ({src})" if isinstance(src, (str, Path)) else ""
    return f"{what} {i + 1}{name}"


def _as_list(sources) -> list:
    if isinstance(sources, (str, Path, bytes, bytearray, Image.Image, np.ndarray)):
        return [sources]
    if isinstance(sources, torch.Tensor):
        return list(sources.unbind(0)) if sources.dim() == 4 else [sources]
    return list(sources)


def load_masks(sources, hw: tuple[int, int], *, count: int | None = None, what: str = "mask") -> torch.Tensor:
    """Greyscale masks (paths, bytes, PIL images, arrays or tensors) at the size ``hw``.

    White (1) where the mask's style applies, black (0) where it does not, grey
    between (soft edges). Colour images are read as their luminance; a mask of
    another size is resized (bilinear, antialiased). ``count``: the number of
    style sets, which the masks must match. ``what`` names the masks in errors
    (e.g. the option they came from).

    Returns:
        (K, 1, H, W) float32 in 0..1.

    Raises:
        RecipeError: not one mask per style set.
        ImageError: a mask cannot be decoded, is not a single-channel array, or is black everywhere.
    """
    h, w = _check_hw(hw)
    items = _as_list(sources)
    if not items:
        raise RecipeError(f"no {what}s given; give one {what} per style (white where that style applies)")
    if count is not None and len(items) != count:
        raise RecipeError(
            f"{len(items)} {what}s for {count} styles; give one {what} per style (white where that style applies)"
        )
    masks = []
    for i, src in enumerate(items):
        label = _label(src, i, what)
        m = _resize(_one_mask(src, label), (h, w))
        if not m.max() > 0:
            raise ImageError(f"{label} is black everywhere; paint white where its style applies")
        masks.append(m)
    return torch.cat(masks)


def parse_colour(colour) -> tuple[int, int, int]:
    """``"#rgb"``, ``"#rrggbb"`` or an (r, g, b) of 0..255 ints as an (r, g, b) tuple.

    Raises:
        RecipeError: anything else.
    """
    if isinstance(colour, str):
        text = colour.strip().lstrip("#")
        if re.fullmatch(r"[0-9a-fA-F]{3}", text):
            text = "".join(ch * 2 for ch in text)
        if re.fullmatch(r"[0-9a-fA-F]{6}", text):
            return tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
    elif isinstance(colour, Sequence) and len(colour) == 3:
        if all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in colour):
            return tuple(int(v) for v in colour)
    raise RecipeError(f"label colour {colour!r}: write it as #rrggbb or (r, g, b) with 0..255 values")


def _flat(a: np.ndarray) -> np.ndarray:
    """Pixels whose 3x3 neighbourhood is one colour (within half ``LABEL_TOLERANCE``): inside a region.

    Anti-aliased and JPEG edges blend two labels into colours of their own, along
    every boundary; only the colours of flat pixels are labels.
    """
    f = a.astype(np.float32)
    h, w = a.shape[:2]
    p = np.pad(f, ((1, 1), (1, 1), (0, 0)), mode="edge")
    flat = np.ones((h, w), bool)
    for dy in range(3):
        for dx in range(3):
            flat &= ((p[dy : dy + h, dx : dx + w] - f) ** 2).sum(-1) <= (LABEL_TOLERANCE / 2) ** 2
    return flat


def _dominant_colours(a: np.ndarray, codes: np.ndarray, name: str) -> np.ndarray:
    """The label colours of an image (H, W, 3), in order of first appearance (raster order).

    Counted over flat pixels (``_flat``); colours covering under ``LABEL_SHARE``
    of them are noise, and a colour within ``LABEL_TOLERANCE`` of a more common
    one is that one, shifted by JPEG.
    """
    flat = _flat(a)
    if flat.mean() < 0.5:
        raise ImageError(f"{name} is not a label image: it has no flat colours (one colour per style)")
    values, first, counts = np.unique(codes[flat], return_index=True, return_counts=True)
    keep = counts >= max(1, math.ceil(LABEL_SHARE * flat.sum()))
    centres: list[tuple[np.ndarray, int]] = []
    for code, where, _ in sorted(zip(values[keep], first[keep], counts[keep]), key=lambda t: -t[2]):
        rgb = _rgb(np.array([code]))[0]
        near = [j for j, (c, _) in enumerate(centres) if np.linalg.norm(c - rgb) <= LABEL_TOLERANCE]
        if near:
            centres[near[0]] = (centres[near[0]][0], min(centres[near[0]][1], where))
        else:
            centres.append((rgb, where))
        if len(centres) > MAX_LABELS:
            raise ImageError(
                f"{name} has more than {MAX_LABELS} distinct colours: a label image has one flat colour per "
                "style (save it as PNG, not JPEG)"
            )
    return np.stack([c for c, _ in sorted(centres, key=lambda t: t[1])])


def _rgb(codes: np.ndarray) -> np.ndarray:
    return np.stack([(codes >> 16) & 255, (codes >> 8) & 255, codes & 255], -1).astype(np.float64)


def masks_from_labels(
    label_image, colours: Sequence | None = None, hw: tuple[int, int] | None = None, *, count: int | None = None
) -> torch.Tensor:
    """One mask per colour of a colour-label image: mask k is 1 where the image has colour k.

    ``colours`` (``"#rrggbb"`` or (r, g, b)): which colours, in the order of the
    style sets; pixels of other colours (farther than ``LABEL_TOLERANCE``) belong
    to no style and keep the content. Without it, every colour of the image is a
    style's, in order of first appearance (left to right, top to bottom), and each
    pixel goes to the nearest one, so anti-aliased or JPEG edges stay covered.
    ``hw``: the size of the masks (default: the label image's); resizing softens
    the edges. ``count``: the number of style sets, which the colours must match.

    Returns:
        (K, 1, H, W) float32 in 0..1.

    Raises:
        ImageError: not an image, or too many colours for a label image.
        RecipeError: a given colour is malformed or absent from the image, or the count does not match.
    """
    name = str(label_image) if isinstance(label_image, (str, Path)) else "the label image"
    rgb, _ = images.load_rgb(label_image)
    a = np.asarray(rgb, dtype=np.int64)
    packed = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    codes, inverse = np.unique(packed, return_inverse=True)
    if colours is None:
        centres, tolerance = _dominant_colours(a, packed, name), math.inf
    else:
        centres, tolerance = np.array([parse_colour(c) for c in colours], dtype=np.float64), LABEL_TOLERANCE
    if count is not None and len(centres) != count:
        given = "colours given" if colours is not None else f"colours in {name}"
        raise RecipeError(f"{len(centres)} {given} for {count} styles; give one label colour per style")
    # Nearest centre per distinct colour, then per pixel: a few thousand distances, not one per pixel.
    dist = np.linalg.norm(_rgb(codes)[:, None, :] - centres[None], axis=-1)
    nearest = np.where(dist.min(1) <= tolerance, dist.argmin(1), -1)[inverse.reshape(a.shape[:2])]
    onehot = nearest[None] == np.arange(len(centres))[:, None, None]
    if colours is not None:
        for k, present in enumerate(onehot.any(axis=(1, 2))):
            if not present:
                raise RecipeError(f"label colour {colours[k]!r} does not appear in {name}")
    masks = torch.from_numpy(onehot.astype(np.float32))[:, None]
    return masks if hw is None else _resize(masks, _check_hw(hw))


def to_layer(mask: torch.Tensor, layer: str, hw: tuple[int, int] | None = None) -> torch.Tensor:
    """A mask at a layer's resolution: 2x2 average pooling for every pool before the layer.

    The network's pools floor odd sizes (``layers.feature_shape``), and so does
    this. Each value is the share of the feature's input window the region covers.
    ``hw``: the size of the network's input, when it is not the mask's (a coarser
    scale): the mask is resized to it first. ``layer``: any naming convention.

    Shape:
        mask: (N, 1, H, W); returns (N, 1, h, w) with (h, w) = ``feature_shape(layer, H, W)[1:]``.
    """
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(f"a mask batch is (N, 1, H, W), not {tuple(mask.shape)}")
    if hw is not None:
        mask = _resize(mask, _check_hw(hw))
    target = BY_NAME[resolve(layer)]
    for stage in LAYERS:
        if stage.index > target.index:
            break
        if stage.kind == "pool":
            mask = F.avg_pool2d(mask, 2, 2)
    return mask


def to_layers(mask: torch.Tensor, layers: Sequence[str], hw: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """``to_layer`` for several layers, by canonical name."""
    return {resolve(name): to_layer(mask, name, hw) for name in layers}


def background(masks: torch.Tensor) -> torch.Tensor:
    """What no mask covers: 1 - the masks' sum, clamped to 0..1.

    Shape:
        masks: (K, 1, H, W); returns (1, 1, H, W).
    """
    return 1 - masks.sum(0, keepdim=True).clamp(0, 1)


def layer_hw(layer: str, hw: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of a layer's features for an input of size ``hw``."""
    return feature_shape(layer, *hw)[1:]
