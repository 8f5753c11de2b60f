"""The feature network a run reads its losses from: VGG19, or a stand-in for tests.

The engine asks a ``FeatureNetwork`` for named activations (VGG19's layer names,
layers.py) of an RGB 0..1 batch, optionally through a ``tap`` that sees each
requested activation as it is made (losses.GramTap). ``VGG19`` (vgg.py) is the
real one. ``StandIn`` has the same layer names, the same poolings in the same
places (so shapes, strides and masks behave alike) and a few channels of fixed
random 1x1 convolutions: it runs in microseconds, so the engine, API, CLI,
sweeps and the studio are tested without loading the real weights. A recipe
asks for it with ``weights = "standin"``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .layers import LAYERS, depth

STANDIN = "standin"


class FeatureNetwork(Protocol):
    """What the engine needs of a network (VGG19 and StandIn both are one)."""

    def __call__(
        self, image: torch.Tensor, layers: Iterable[str] | None = None, tap: Callable | None = None
    ) -> dict[str, torch.Tensor]: ...

    def to(self, *args, **kwargs): ...


class StandIn(nn.Module):
    """VGG19's layer names and poolings with ``channels`` channels of fixed random 1x1 convolutions."""

    def __init__(self, layers, pooling: str = "max", channels: int = 8, seed: int = 0):
        super().__init__()
        self.pooling = pooling
        self.stages = [layer for layer in LAYERS if layer.index <= depth(set(layers))]
        gen = torch.Generator().manual_seed(seed)
        self.weights = nn.ParameterDict()
        c_in = 3
        for layer in self.stages:
            if layer.kind == "conv":
                w = torch.randn((channels, c_in, 1, 1), generator=gen) / c_in**0.5
                self.weights[layer.name] = nn.Parameter(w, requires_grad=False)
                c_in = channels

    def forward(self, image: torch.Tensor, layers=None, tap=None) -> dict[str, torch.Tensor]:
        wanted = frozenset(layers) if layers is not None else frozenset(s.name for s in self.stages)
        last = depth(wanted)
        x = image - 0.5
        out = {}
        for layer in self.stages:
            if layer.index > last:
                break
            if layer.kind == "conv":
                x = F.conv2d(x.to(self.weights[layer.name].dtype), self.weights[layer.name])
            elif layer.kind == "relu":
                x = F.relu(x)
            else:
                x = F.max_pool2d(x, 2, 2) if self.pooling == "max" else F.avg_pool2d(x, 2, 2)
            if layer.name in wanted:
                if tap is not None:
                    x = tap(layer.name, x)
                out[layer.name] = x
        return out


def build(layers, weights: str, pooling: str, device: torch.device) -> nn.Module:
    """The network for ``weights`` (caffe, torchvision, a file, or the stand-in), cut after the deepest layer."""
    if str(weights).lower() == STANDIN:
        return StandIn(layers, pooling).to(device).eval()
    from .vgg import build as build_vgg

    return build_vgg(layers, weights, pooling, device)
