"""How stylelab's CPU threads wait for work.

PyTorch's OpenMP threads (GNU libgomp in the CPU wheels) spin while they wait
at the end of each parallel region. On a machine where other programs also
want the cores, a spinning thread holds a core its partner needs, and every
operation waits for the slower one: on this project's shared 2-core machine a
256 px step took 2.3-4.8 s spinning and 0.5-0.9 s with threads that sleep while
they wait (``OMP_WAIT_POLICY=PASSIVE``; one thread took 1.2 s, a short spin of
``GOMP_SPINCOUNT=10000`` 1.1 s). On a quiet machine it is the other way round:
a step is a few hundred operations of a millisecond or less, and waking a
sleeping thread for each costs 8-25% of a bf16 step (256 px Adam 0.082-0.109 s
passive, 0.075-0.080 s with the short spin, on 2 quiet Sapphire Rapids cores;
benchmarks/README.md). So a command that starts on a quiet machine spins
briefly, and one that starts beside other work, or serves for hours (the
studio, Ray workers), sleeps.

The setting is read when the OpenMP runtime starts, i.e. when torch is first
imported, so it is applied only if torch is not loaded yet, and never over a
value the user set. ``import stylelab`` applies nothing.
"""

from __future__ import annotations

import os
import sys

from .load import busy_cores

WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
SHORT_SPIN = "10000"  # libgomp's busy-wait iterations before sleeping: tens of microseconds
QUIET = 0.5  # cores other programs keep busy, at most, for a quiet machine
SAMPLE = 0.05  # seconds of /proc/stat the choice looks at
_set_here: dict[str, str] = {}


def prefer_sleeping_threads() -> bool:
    """Threads that sleep while they wait (long-lived processes); True if set here."""
    return _choose({WAIT_POLICY: "PASSIVE"})


def choose_wait_policy() -> bool:
    """A short spin on a quiet machine, sleeping threads on a busy one (one command's process);
    True if set here."""
    if _user_chose() or "torch" in sys.modules:
        return bool(_set_here)
    quiet = busy_cores(SAMPLE) <= QUIET
    return _choose({SPIN_COUNT: SHORT_SPIN} if quiet else {WAIT_POLICY: "PASSIVE"})


def _user_chose() -> bool:
    return any(k in os.environ and k not in _set_here for k in (WAIT_POLICY, SPIN_COUNT))


def _choose(values: dict[str, str]) -> bool:
    if _user_chose() or "torch" in sys.modules:
        return bool(_set_here)
    for key in (WAIT_POLICY, SPIN_COUNT):
        if key in _set_here:
            del os.environ[key]
            del _set_here[key]
    os.environ.update(values)
    _set_here.update(values)
    return True


def user_environment() -> dict[str, str]:
    """This process's environment without what stylelab added: for running other tools as a user would."""
    return {k: v for k, v in os.environ.items() if k not in _set_here}
