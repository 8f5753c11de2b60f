"""Temporal stability of a painted video: the warping error of Lai et al. (ECCV 2018).

Lai, Huang, Wang, Shechtman, Yumer and Yang, "Learning Blind Video Temporal Consistency", eq. 9:

    E_warp = 1/(T-1) * sum_{t=2..T}  sum_x M_t(x) ||O_t(x) - W(O_{t-1})(x)||^2  /  (C * sum_x M_t(x))

where O_t are the output frames (RGB in 0..1, C = 3 channels), W(O_{t-1}) is the previous output
warped to frame t along the INPUT video's optical flow from t to t-1 (``flow.warp``, backward
warping), and M_t is 1 on pixels visible in both input frames (the forward-backward consistency of
the input's flow, ``flow.consistency``; Lai et al. use the occlusion test of Ruder et al. too) and
inside the picture. The flow comes from the input, not the output, so an output that moves with
the scene scores 0 however it is painted, and flicker or texture that swims raises the score.

Lai et al.'s code warps O_t back to t-1 with the flow t-1 -> t; this is the same measure mirrored
in time. A pair of frames with no visible pixel is left out of the mean (their code counts it as 0).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from .flow import consistency, inside, optical_flow, warp_numpy


def _as_float(frame: Any) -> np.ndarray:
    """An output frame as (H, W, C) float32 in 0..1."""
    if hasattr(frame, "detach"):
        frame = frame.detach().cpu().float().numpy()
        if frame.ndim == 4:
            frame = frame[0]
        return np.moveaxis(frame, 0, -1).astype(np.float32)
    if hasattr(frame, "getbands"):
        frame = frame.convert("RGB")
    a = np.asarray(frame)
    a = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return a[..., None] if a.ndim == 2 else a


def _is_flow(item: Any) -> bool:
    return isinstance(item, np.ndarray) and item.ndim == 3 and item.shape[-1] == 2 and item.dtype.kind == "f"


def pair_error(current: Any, previous: Any, flow: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Masked mean squared difference between ``current`` and ``previous`` warped along ``flow`` (current -> previous).

    Returns None when no pixel is both in the mask and carried from inside the picture.
    """
    cur, prev = _as_float(current), _as_float(previous)
    if cur.shape != prev.shape:
        raise ValueError(f"output frames differ in shape: {cur.shape} and {prev.shape}")
    m = inside(flow).astype(np.float32)
    if mask is not None:
        m = m * np.asarray(mask, dtype=np.float32)
    total = float(m.sum())
    if total <= 0:
        return None
    diff = cur - warp_numpy(prev, flow)
    return float((m[..., None] * diff**2).sum() / (total * cur.shape[-1]))


def _strict_zip(a, b, what: str):
    """zip that raises when one side runs out before the other."""
    end = object()
    while True:
        x, y = next(a, end), next(b, end)
        if x is end and y is end:
            return
        if x is end or y is end:
            raise ValueError(f"outputs and {what} differ in length")
        yield x, y


def warping_error(
    outputs: Iterable[Any],
    flows_or_inputs: Iterable[Any],
    masks: Iterable[np.ndarray] | None = None,
    *,
    method: str = "dis",
) -> float:
    """Lai et al.'s temporal warping error of ``outputs`` (the formula in the module docstring).

    Args:
        outputs: the T painted frames (PIL images, HxWx3 arrays, uint8 or 0..1 floats, or tensors).
        flows_or_inputs: either the T input frames, from which the flow t -> t-1 and its
            consistency mask are computed with ``method``, or T-1 flows, ``flows[t-1]`` going from
            frame t to frame t-1 ((H, W, 2) float arrays).
        masks: with flows, T-1 masks of the pixels to count (default: all that stay in the picture).

    Everything is consumed one pair at a time, so a long video need not be held in memory.
    """
    outs, items = iter(outputs), iter(flows_or_inputs)
    prev_out, first = next(outs, None), next(items, None)
    if prev_out is None or first is None:
        raise ValueError("warping_error needs at least two frames")
    errors: list[float] = []
    pairs = 0
    if _is_flow(first):
        mask_iter = iter(masks) if masks is not None else None
        for out, flow in _strict_zip(outs, itertools.chain([first], items), "flows (one fewer than outputs)"):
            mask = None
            if mask_iter is not None:
                mask = next(mask_iter, None)
                if mask is None:
                    raise ValueError("give one mask per flow")
            e = pair_error(out, prev_out, flow, mask)
            errors += [] if e is None else [e]
            pairs += 1
            prev_out = out
    else:
        if masks is not None:
            raise ValueError("masks go with flows; from input frames they are computed")
        prev_in = first
        for out, inp in _strict_zip(outs, items, "inputs"):
            back = optical_flow(inp, prev_in, method)  # t -> t-1: carries frame t-1 to t
            fwd = optical_flow(prev_in, inp, method)  # t-1 -> t: only for the consistency check
            e = pair_error(out, prev_out, back, consistency(back, fwd))
            errors += [] if e is None else [e]
            pairs += 1
            prev_out, prev_in = out, inp
    if pairs == 0:
        raise ValueError("warping_error needs at least two frames")
    if not errors:
        raise ValueError("no pixel is visible in two consecutive frames; the warping error is undefined")
    return float(np.mean(errors))
