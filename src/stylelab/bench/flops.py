"""The analytic work of one optimisation step, and the machine's convolution speed.

What is counted (``step_flops``): the 3x3 convolutions of VGG19 up to the
deepest layer the losses read, each as ``2 * C_in * C_out * 9 * H * W``
floating-point operations (a multiply and an add per weight per output pixel),
once for the forward pass and once more for the backward pass to the *input*
(the gradient with respect to the input of a convolution is a transposed
convolution with the same multiply-adds). Weight gradients are not counted
because none are computed. Not counted: biases, ReLUs, pooling, preprocessing,
Gram matrices and the losses (together about 5% of the convolution work at
the default layers); they are overhead a step pays, so they lower the
efficiency ratio rather than raise it.

``conv_throughput`` times exactly the work counted: each of those convolutions
forward, and its backward pass to the input alone (``convolution_backward``
with only the input gradient asked for), at batch 1, outside autograd, each
the best of ``repeats`` runs in both memory layouts (NCHW and channels-last),
and returns the FLOPs over the total of the best times: the fastest this
machine and this PyTorch build run that work. (oneDNN's backward-to-input runs
5-9% slower than its forward here, so a forward-only benchmark would count
that as the step's overhead.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..layers import stages_through


@dataclass(frozen=True)
class ConvShape:
    """One 3x3 convolution (stride 1, padding 1) at a given input size."""

    name: str
    c_in: int
    c_out: int
    height: int
    width: int

    @property
    def flops(self) -> int:
        """Forward multiply-adds counted as two operations, batch 1, bias excluded."""
        return 2 * self.c_in * self.c_out * 9 * self.height * self.width


def conv_shapes(layers, height: int, width: int) -> list[ConvShape]:
    """The convolutions a network cut after the deepest of ``layers`` runs, in order."""
    shapes = []
    c_in = 3
    for layer, c_out, h, w in stages_through(layers, height, width):
        if layer.kind == "conv":
            shapes.append(ConvShape(layer.name, c_in, c_out, h, w))
            c_in = c_out
    return shapes


def forward_flops(layers, height: int, width: int, batch: int = 1) -> int:
    """Convolution FLOPs of one forward pass of ``batch`` images."""
    return batch * sum(s.flops for s in conv_shapes(layers, height, width))


def step_flops(layers, height: int, width: int, batch: int = 1) -> int:
    """Convolution FLOPs of one step: the forward pass plus the backward pass to the input."""
    return 2 * forward_flops(layers, height, width, batch)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best(fn, x: torch.Tensor, repeats: int) -> float:
    fn()  # primitive creation and first-touch memory, not timed
    best = float("inf")
    for _ in range(repeats):
        _sync(x.device)
        t = time.perf_counter()
        fn()
        _sync(x.device)
        best = min(best, time.perf_counter() - t)
    return best


def _time_conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Best forward and best backward-to-input seconds of one 3x3 convolution."""
    forward = _best(lambda: F.conv2d(x, w, b, padding=1), x, repeats)
    grad = F.conv2d(x, w, b, padding=1).normal_()
    args = (grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
    backward = _best(lambda: torch.ops.aten.convolution_backward(*args), x, repeats)
    return forward, backward


@torch.no_grad()
def conv_throughput(shapes: list[ConvShape], device="cpu", repeats: int = 5, dtype=torch.float32) -> dict:
    """FLOP/s of ``shapes`` run forward and backward to the input, best of ``repeats`` per shape and layout.

    Returns ``{"flops_per_s", "seconds", "flops", "per_conv": [{name, forward, backward, layout}]}``,
    ``flops`` counting both directions. Random data: a convolution's speed does not depend on
    the values (denormals aside, which random normal data does not produce).
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    per_conv = []
    for s in shapes:
        x = torch.randn((1, s.c_in, s.height, s.width), generator=gen).to(device, dtype)
        w = (torch.randn((s.c_out, s.c_in, 3, 3), generator=gen) * 0.05).to(device, dtype)
        b = torch.zeros(s.c_out, device=device, dtype=dtype)
        best = {}
        for layout in ("nchw", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            best[layout] = _time_conv(x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt), b, repeats)
        layout = min(best, key=lambda k: sum(best[k]))
        forward, backward = best[layout]
        per_conv.append({"name": s.name, "forward": forward, "backward": backward, "layout": layout})
    seconds = sum(p["forward"] + p["backward"] for p in per_conv)
    flops = 2 * sum(s.flops for s in shapes)
    return {"flops_per_s": flops / seconds, "seconds": seconds, "flops": flops, "per_conv": per_conv}
