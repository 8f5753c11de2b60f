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
with only the input gradient asked for), at batch 1, outside autograd, in both
memory layouts (NCHW and channels-last), the faster counting. One call of a
small convolution lasts 1-5 ms, so each is timed in a warmed-up busy loop
(``time_batches``: the best of short batches, ``MIN_TIME`` in all) and a round
begins with ``WARMUP_TIME`` of convolutions: a core that idled a moment ago runs
its first milliseconds of bf16 convolutions 1.5-2x slower. (oneDNN's
backward-to-input runs 5-9% slower than its forward here, so a forward-only
benchmark would count that as the step's overhead.)

On a shared machine another program taking a core for a few seconds slows
whatever is measured then, so the benchmark runs several rounds, interleaved
with the step timings, and ``best_of_rounds`` takes each convolution at its
fastest round: the fastest this machine and this PyTorch build ran that work.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..layers import stages_through

MIN_TIME = 0.05  # seconds each convolution, direction and layout is timed for per round, all batches together
BATCH_TIME = 0.005  # seconds of back-to-back calls per timed batch; the best batch counts
MIN_BATCHES = 3
WARMUP_TIME = 0.2  # seconds of convolutions before a round (see warm_up)


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


def time_batches(
    fn, device, min_time: float = MIN_TIME, batch_time: float = BATCH_TIME, min_batches: int = MIN_BATCHES
) -> list[float]:
    """Seconds per call of ``fn`` in each timed batch: at least ``min_batches`` batches and ``min_time`` in all.

    Untimed first: one call (oneDNN creates its primitive, memory is first touched),
    one more to size the batches (unless the first took ``min_time`` already), and,
    for calls shorter than ``batch_time``, one batch that warms up. A batch is as many
    back-to-back calls as fill ``batch_time`` (at least one): the optimisation step
    calls its convolutions back to back too, and short batches let the best one fall
    between the time slices of other programs on a shared machine.
    """
    device = torch.device(device)
    t = time.perf_counter()
    fn()
    _sync(device)
    one = time.perf_counter() - t
    if one < min_time:  # else one more call would cost a lot and size the batches no better
        t = time.perf_counter()
        fn()
        _sync(device)
        one = time.perf_counter() - t
    calls = max(1, round(batch_time / max(one, 1e-9)))
    if one < batch_time:
        for _ in range(calls):
            fn()
        _sync(device)
    per_call: list[float] = []
    while len(per_call) < min_batches or sum(per_call) * calls < min_time:
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        _sync(device)
        per_call.append((time.perf_counter() - t) / calls)
    return per_call


def warm_up(fn, device, seconds: float = WARMUP_TIME) -> None:
    """Run ``fn`` for ``seconds``: a core idle a moment ago runs the first milliseconds of
    convolutions 1.5-2x slower (clock and AMX power state, sleeping OpenMP threads)."""
    device = torch.device(device)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        fn()
        _sync(device)


def _spread(values: list[float]) -> float:
    return (max(values) - min(values)) / min(values)


def _time_conv(x, w, b, min_time: float, batch_time: float) -> tuple[list[float], list[float]]:
    """Per-call seconds of each timed batch, forward and backward to the input, of one 3x3 convolution."""
    forward = time_batches(lambda: F.conv2d(x, w, b, padding=1), x.device, min_time, batch_time)
    grad = F.conv2d(x, w, b, padding=1).normal_()
    args = (grad, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
    backward = time_batches(lambda: torch.ops.aten.convolution_backward(*args), x.device, min_time, batch_time)
    return forward, backward


@torch.no_grad()
def conv_throughput(
    shapes: list[ConvShape],
    device="cpu",
    dtype=torch.float32,
    min_time: float = MIN_TIME,
    batch_time: float = BATCH_TIME,
    warmup: float = WARMUP_TIME,
) -> dict:
    """One round of the microbenchmark: FLOP/s of ``shapes`` run forward and backward to the input.

    Each convolution, direction and layout is timed as the best of batches of
    ``batch_time`` seconds (``time_batches``, ``min_time`` in all); per convolution the
    faster layout counts. The round starts with ``warmup`` seconds of the first shape.
    Returns ``{"flops_per_s", "seconds", "flops", "wall", "cores_used", "per_conv"}``:
    ``flops`` counts both directions, ``seconds`` is the sum of the best times, ``wall``
    how long the round took and ``cores_used`` the CPU time this process used over
    it (below the thread count when others took cores). ``per_conv`` holds
    ``{name, layout, forward, backward, forward_spread, backward_spread}``, a spread being
    (slowest - best) / best of the batches. Random data: a convolution's speed does not
    depend on the values (denormals aside, which random normal data does not produce).
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    wall, cpu = time.perf_counter(), time.process_time()
    per_conv = []
    for i, s in enumerate(shapes):
        x = torch.randn((1, s.c_in, s.height, s.width), generator=gen).to(device, dtype)
        w = (torch.randn((s.c_out, s.c_in, 3, 3), generator=gen) * 0.05).to(device, dtype)
        b = torch.zeros(s.c_out, device=device, dtype=dtype)
        if i == 0 and warmup > 0:
            warm_up(functools.partial(F.conv2d, x, w, b, padding=1), device, warmup)
        timed = {}
        for layout, fmt in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
            timed[layout] = _time_conv(
                x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt), b, min_time, batch_time
            )
        layout = min(timed, key=lambda k: min(timed[k][0]) + min(timed[k][1]))
        forward, backward = timed[layout]
        per_conv.append(
            {
                "name": s.name,
                "layout": layout,
                "forward": min(forward),
                "backward": min(backward),
                "forward_spread": _spread(forward),
                "backward_spread": _spread(backward),
            }
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    seconds = sum(p["forward"] + p["backward"] for p in per_conv)
    flops = 2 * sum(s.flops for s in shapes)
    return {
        "flops_per_s": flops / seconds,
        "seconds": seconds,
        "flops": flops,
        "wall": wall,
        "cores_used": cpu / wall if wall > 0 else 0.0,
        "per_conv": per_conv,
    }


def best_of_rounds(rounds: list[dict]) -> dict:
    """The throughput of each convolution at its best round: ``{"flops_per_s", "seconds", "per_conv"}``.

    Another program taking a core for a few seconds slows the convolutions measured
    then, never speeds them up, so each convolution's fastest round is the one least
    disturbed. ``per_conv`` gives ``{name, layout, seconds, round}`` (forward plus backward).
    """
    if not rounds:
        raise ValueError("no throughput rounds to combine")
    per_conv = []
    for i, name in enumerate(p["name"] for p in rounds[0]["per_conv"]):
        times = [(r["per_conv"][i]["forward"] + r["per_conv"][i]["backward"], k) for k, r in enumerate(rounds)]
        seconds, k = min(times)
        per_conv.append({"name": name, "layout": rounds[k]["per_conv"][i]["layout"], "seconds": seconds, "round": k})
    seconds = sum(p["seconds"] for p in per_conv)
    return {"flops_per_s": rounds[0]["flops"] / seconds, "seconds": seconds, "per_conv": per_conv}
