"""How stylelab's CPU threads wait for work.

PyTorch's OpenMP threads spin while they wait at the end of each parallel
region. On a machine where other programs also want the cores, a spinning
thread holds a core its partner needs, and every operation waits for the
slower one: on this project's shared 2-core machine a 256 px step took 2.3-4.8 s
spinning and 0.5-0.9 s with threads that sleep while they wait
(``OMP_WAIT_POLICY=PASSIVE``; one thread took 1.2 s). Our operations are
milliseconds long, so the microseconds a sleeping thread takes to wake cost
little on an idle machine (benchmarks/README.md).

The setting is read when the OpenMP runtime starts, i.e. when torch is first
imported, so ``import stylelab`` applies it only if torch is not loaded yet,
and never over a value the user set.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "OMP_WAIT_POLICY"
_set_here = False


def prefer_sleeping_threads() -> bool:
    """Set OMP_WAIT_POLICY=PASSIVE if nobody chose and torch is not loaded yet; True if set here."""
    global _set_here
    if WAIT_POLICY in os.environ or "torch" in sys.modules:
        return _set_here
    os.environ[WAIT_POLICY] = "PASSIVE"
    _set_here = True
    return True


def user_environment() -> dict[str, str]:
    """This process's environment without what stylelab added: for running other tools as a user would."""
    env = dict(os.environ)
    if _set_here:
        env.pop(WAIT_POLICY, None)
    return env
