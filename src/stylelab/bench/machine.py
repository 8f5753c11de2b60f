"""The machine a benchmark ran on, and how busy others kept it.

On a shared machine the 1-minute load average lags and includes our own
work, so before each measurement the benchmark also samples how many cores
*other* processes keep busy right now (from ``/proc/stat`` while it is
itself idle) and waits, up to a limit, for a quiet moment. Both numbers go
with every figure.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..load import busy_cores, load1
from ..records import machine


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


# The instruction sets that decide convolution speed: a virtual machine's model name is
# often just "Intel(R) Xeon(R) Processor", and bf16 runs 4-5x faster with AMX than without.
FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_fp16")


def cpu_features(flags_line: str | None = None) -> list[str]:
    """Which of ``FEATURES`` the CPU has (from /proc/cpuinfo's flags, or the line given)."""
    if flags_line is None:
        flags_line = next((x for x in _cpuinfo() if x.lower().startswith(("flags", "features"))), "")
    flags = set(flags_line.split(":", 1)[-1].split())
    return [f for f in FEATURES if f in flags]


def describe(device: torch.device) -> dict:
    """Machine, software and device facts recorded with every result."""
    info = {
        "cpu": machine(),  # the model name, as every run records it
        "cpu_features": cpu_features(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        # Read by the OpenMP runtime at start-up (threads.py): PASSIVE wakes sleeping threads
        # for every operation, a short spin count does not; the microbenchmark pays as the steps do.
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", "default"),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def wait_quiet(max_busy: float, max_wait: float, log: Callable[[str], None] | None = None) -> dict:
    """Wait until others keep at most ``max_busy`` cores busy, or ``max_wait`` seconds passed.

    Returns ``{"load1", "busy_cores", "waited"}`` as they were when the wait ended.
    """
    t0 = time.perf_counter()
    told = False
    while True:
        busy = busy_cores()
        waited = time.perf_counter() - t0
        if busy <= max_busy or waited >= max_wait:
            return {"load1": round(load1(), 2), "busy_cores": round(busy, 2), "waited": round(waited, 1)}
        if log and not told:
            log(f"  waiting for a quieter moment: others keep {busy:.1f} cores busy (up to {max_wait:.0f}s)")
            told = True
        time.sleep(2.0)
