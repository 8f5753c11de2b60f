"""How busy the machine is, from /proc (torch-free: read before torch loads, see threads.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def load1() -> float:
    """The 1-minute load average (0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def _cpu_times() -> tuple[int, int] | None:
    """(all, idle) clock ticks of every CPU since boot; None where /proc/stat is missing."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]), idle


def busy_cores(interval: float = 1.0) -> float:
    """Cores kept busy over ``interval`` seconds while this process sleeps (load average where unknown)."""
    a = _cpu_times()
    time.sleep(interval)
    b = _cpu_times()
    if a is None or b is None or b[0] == a[0]:
        return load1()
    return (1 - (b[1] - a[1]) / (b[0] - a[0])) * (os.cpu_count() or 1)
