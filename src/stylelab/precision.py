"""Which precision the convolutions run in, per device.

Convolutions may run in bfloat16 under autocast; Gram matrices and losses are
always float32 (``losses.gram_matrix`` turns autocast off and upcasts), since
bf16 and fp16 Grams lose the sums or overflow.

``auto`` picks bf16 only where it was measured to pay *and* to give the same
quality (benchmarks/README.md):

* CPUs with bf16 instructions (AVX512-BF16 or AMX): 1.8x faster per step, the
  same content and style distances after 100 and 300 steps within 0.3%;
* CUDA: not measured yet, so float32 (``bf16`` asks for it explicitly);
* elsewhere (CPUs without bf16 instructions, where it is emulated and slower;
  MPS): float32.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path

import torch

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def has_bf16_flags(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists bf16 instructions."""
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in BF16_CPU_FLAGS)


@functools.lru_cache(maxsize=1)
def native_bf16_cpu() -> bool:
    """Whether this CPU has bf16 instructions (Linux: from /proc/cpuinfo; elsewhere: assume not)."""
    try:
        return has_bf16_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return False


def conv_dtype(precision: str, device: torch.device, native_bf16: bool | None = None) -> torch.dtype | None:
    """The dtype convolutions run in for ``precision`` (auto, fp32, bf16) on ``device``; None is float32.

    ``native_bf16`` overrides the CPU check (for tests).
    """
    device = torch.device(device)
    if precision == "fp32" or device.type not in ("cpu", "cuda"):
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    if device.type == "cpu" and (native_bf16_cpu() if native_bf16 is None else native_bf16):
        return torch.bfloat16
    return None


def autocast_factory(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A function returning a fresh autocast context (or a null one for float32)."""
    device = torch.device(device)
    dtype = conv_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=dtype)
