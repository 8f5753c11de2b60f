"""stylelab's thread policy: a command opts into a short spin on a quiet machine and sleeping
OpenMP threads on a busy one or in the studio, unless the user chose; the library changes
nothing, and other tools get the user's environment."""

import os
import subprocess
import sys

import pytest

from stylelab import threads

KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
SHOW = f"print(*[os.environ.get(k, 'unset') for k in {KEYS!r}]"


def _clean(**env) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in (*KEYS, threads.OURS)}, **env}


def _cli(args, busy: float | None = 0.0, before: str = "", **env) -> str:
    """What a command's process ends up with: the two variables and whether torch was loaded
    when they were chosen. ``busy``: the cores other programs seem to keep busy."""
    patch = f"t.busy_cores = lambda interval: {busy}; " if busy is not None else ""
    code = (
        f"import os, sys; {before}import stylelab.threads as t; {patch}from stylelab.cli import main; "
        f"loaded = 'torch' in sys.modules; main({args!r}); {SHOW}, loaded, file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean(**env))
    return out.stderr.strip().splitlines()[-1]


def test_importing_the_library_changes_nothing():
    code = f"import os, sys, stylelab; {SHOW}, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=_clean(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "unset unset False"


def test_a_command_on_a_quiet_machine_spins_briefly_before_torch_loads():
    assert _cli(["recipes"], busy=0.1) == f"unset {threads.SHORT_SPIN} False"


def test_a_command_beside_other_work_sleeps():
    assert _cli(["recipes"], busy=1.2) == "PASSIVE unset False"


def test_the_studio_sleeps_even_on_a_quiet_machine():
    assert _cli(["serve", "--help"], busy=0.0) == "PASSIVE unset False"


@pytest.mark.parametrize(("key", "value"), [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "5")])
def test_the_users_choice_wins(key, value):
    expected = " ".join(value if k == key else "unset" for k in KEYS)
    assert _cli(["recipes"], busy=0.0, **{key: value}) == f"{expected} False"
    assert _cli(["serve", "--help"], **{key: value}) == f"{expected} False"


def test_too_late_once_torch_is_loaded():
    assert _cli(["recipes"], busy=0.0, before="import torch; ") == "unset unset True"


def test_the_real_sample_of_the_machine_decides_something():
    assert _cli(["recipes"], busy=None) in (f"unset {threads.SHORT_SPIN} False", "PASSIVE unset False")


def test_help_and_the_version_do_not_sample_the_machine():
    """They load no torch, so how its threads wait does not matter: no 50 ms sample of /proc/stat."""
    never = "(_ for _ in ()).throw(AssertionError('sampled'))"
    for args in (["--version"], ["--help"], ["run", "--help"], []):
        assert _cli(args, busy=never) == "unset unset False", args


def test_a_worker_of_a_quiet_command_still_sleeps():
    """A local Ray instance's workers (and video chunks) inherit the driver's short spin with the
    mark saying stylelab set it: their sleeping threads replace it, as the user's own would not be."""
    code = (
        "import os, sys, stylelab.threads as t; t.busy_cores = lambda interval: 0.0; t.choose_wait_policy(); "
        "import subprocess; child = 'import os, stylelab.threads as t; t.prefer_sleeping_threads(); "
        f"{SHOW.replace(chr(39), chr(34))})'; "
        "subprocess.run([sys.executable, '-c', child], check=True)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=_clean(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE unset"
    user = subprocess.run(  # the user's spin count, inherited the same way, is kept
        [sys.executable, "-c", f"import os, stylelab.threads as t; t.prefer_sleeping_threads(); {SHOW})"],
        env=_clean(GOMP_SPINCOUNT="5"),
        capture_output=True,
        text=True,
        check=True,
    )
    assert user.stdout.strip() == "unset 5"


def test_other_tools_get_the_users_environment(monkeypatch):
    for key in (*KEYS, threads.OURS):
        monkeypatch.setenv(key, "x")  # restored (or removed again) after the test
        monkeypatch.delenv(key)
    monkeypatch.setattr(threads, "busy_cores", lambda interval: 0.0)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not loaded yet
    del sys.modules["torch"]
    assert threads.choose_wait_policy()
    assert os.environ["GOMP_SPINCOUNT"] == threads.SHORT_SPIN
    assert not {*KEYS, threads.OURS} & set(threads.user_environment())
    monkeypatch.delenv(threads.OURS)  # now it is as if the user had set it: passed on
    assert threads.user_environment()["GOMP_SPINCOUNT"] == threads.SHORT_SPIN
