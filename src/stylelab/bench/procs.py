"""Running stylelab and pastiche as fresh processes: step stamps and peak memory.

Both tools are started the way a user starts them (``python -m stylelab run``,
``python -m pastiche``), and their output lines are time-stamped on arrival
by this process, so the two are clocked the same way. Step lines:

* stylelab: ``run --step-stamps`` (a hidden option) writes ``stylelab-step N``
  to stderr as each step's event arrives, i.e. when step N has finished, and
  ``stylelab-step 0`` at the step-0 snapshot, just before step 1 starts (a
  ``--save-every`` beyond the last step asks for that snapshot and no other);
* pastiche: ``--info-step 1`` prints ``N elapsed loss`` after step N, and
  ``0 ...`` just before its first step starts.

Peak resident memory comes from the kernel's accounting for the child
(``os.wait4``'s ``ru_maxrss``), so it covers everything the process touched.
Each stamp also records the CPU time the process had used by then.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import threads

STYLELAB_STEP = re.compile(r"^stylelab-step (\d+)\b")
PASTICHE_STEP = re.compile(r"^(\d+)\s+[\d.]+\s+\S+\s*$")


@dataclass
class ProcessRun:
    """What one process did: when its step lines arrived, how long it ran, its peak RSS."""

    command: list[str]
    stamps: dict[int, float] = field(default_factory=dict)  # step -> seconds after launch
    cpu_stamps: dict[int, float] = field(default_factory=dict)  # step -> CPU seconds the process had used
    wall: float = 0.0
    returncode: int | None = None
    peak_rss: int = 0  # bytes
    tail: list[str] = field(default_factory=list)
    killed: bool = False

    def check(self) -> None:
        """Raise RuntimeError with the output's tail when the process failed."""
        if self.returncode not in (0, None) and not self.killed:
            tail = "\n".join(self.tail[-8:])
            raise RuntimeError(
                f"{Path(self.command[2]).name if len(self.command) > 2 else self.command[0]} "
                f"exited with {self.returncode}: {' '.join(self.command)}\n{tail}"
            )


def stylelab_command(content, style, output, size: int, steps: int, device: str = "cpu", extra=()) -> list[str]:
    """The CLI run a user would type, plus the hidden ``--step-stamps``."""
    return [
        sys.executable, "-m", "stylelab", "run", str(content), "--style", str(style), "--output", str(output),
        "--size", str(size), "--steps", str(steps), "--device", device, "--quiet", "--step-stamps",
        "--save-every", str(100 * steps + 1000), *extra,
    ]  # fmt: skip


def pastiche_command(content, style, output, size: int, steps: int, device: str = "cpu", extra=()) -> list[str]:
    """pastiche with its defaults, a fixed seed and a line after every step."""
    return [
        sys.executable, "-m", "pastiche", "--content", str(content), "--styles", str(style), "--output", str(output),
        "--size", str(size), "--num-steps", str(steps), "--device", device, "--seed", "0", "--info-step", "1", *extra,
    ]  # fmt: skip


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a running process has used, all threads (Linux; None elsewhere).

    On a shared machine this is the steadier measure of work: waiting for a core
    does not count.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _reader(stream, pattern: re.Pattern, t0: float, run: ProcessRun, lock, stop_after, proc) -> None:
    for raw in stream:
        now = time.perf_counter() - t0
        line = raw.rstrip("\n")
        with lock:
            run.tail = (run.tail + [line])[-40:]
            m = pattern.match(line)
            if m and int(m.group(1)) not in run.stamps:
                run.stamps[int(m.group(1))] = now
                cpu = process_cpu_seconds(proc.pid)
                if cpu is not None:
                    run.cpu_stamps[int(m.group(1))] = cpu
                if stop_after is not None and int(m.group(1)) >= stop_after and proc.poll() is None:
                    run.killed = True
                    proc.send_signal(signal.SIGTERM)


def run_process(
    command: list[str], pattern: re.Pattern, *, stop_after: int | None = None, timeout: float = 1800, cwd=None
) -> ProcessRun:
    """Run ``command``, stamping lines that match ``pattern`` (group 1: the step number).

    ``stop_after``: terminate the process once that step's line arrived (the
    start-up figure needs only the first steps).
    """
    # Each tool starts with the user's environment: stylelab sets its own thread
    # settings on import (threads.py), pastiche gets none of them.
    env = dict(threads.user_environment(), PYTHONUNBUFFERED="1")
    run = ProcessRun(command)
    lock = threading.Lock()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, bufsize=1
    )
    readers = [
        threading.Thread(target=_reader, args=(s, pattern, t0, run, lock, stop_after, proc), daemon=True)
        for s in (proc.stdout, proc.stderr)
    ]
    for r in readers:
        r.start()
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    run.wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    run.returncode = proc.returncode
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    run.peak_rss = int(usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024))
    for r in readers:
        r.join(timeout=5)
    return run
