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
value the user set (``OURS`` tells stylelab's own, inherited ones too). ``import
stylelab`` applies nothing; nor do ``--help`` and ``--version`` (cli/app.py).
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
# Names the variables above that stylelab set, not the user. Child processes inherit it with
# them (a local Ray instance's workers, video chunks), so a worker that wants sleeping threads
# can replace its driver's short spin instead of taking it for the user's own choice.
OURS = "STYLELAB_THREAD_SETTINGS"


def prefer_sleeping_threads() -> bool:
    """Threads that sleep while they wait (long-lived processes); True if stylelab's choice holds."""
    return _choose({WAIT_POLICY: "PASSIVE"})


def choose_wait_policy() -> bool:
    """A short spin on a quiet machine, sleeping threads on a busy one (one command's process);
    True if stylelab's choice holds."""
    if _user_chose() or "torch" in sys.modules:
        return bool(_ours())
    quiet = busy_cores(SAMPLE) <= QUIET
    return _choose({SPIN_COUNT: SHORT_SPIN} if quiet else {WAIT_POLICY: "PASSIVE"})


def _ours() -> set[str]:
    return {k for k in os.environ.get(OURS, "").split(",") if k in (WAIT_POLICY, SPIN_COUNT)}


def _user_chose() -> bool:
    ours = _ours()
    return any(k in os.environ and k not in ours for k in (WAIT_POLICY, SPIN_COUNT))


def _choose(values: dict[str, str]) -> bool:
    if _user_chose() or "torch" in sys.modules:
        return bool(_ours())
    for key in _ours():
        os.environ.pop(key, None)
    os.environ.update(values)
    os.environ[OURS] = ",".join(values)
    return True


def user_environment() -> dict[str, str]:
    """This process's environment without what stylelab added: for running other tools as a user would."""
    drop = _ours() | {OURS}
    return {k: v for k, v in os.environ.items() if k not in drop}
