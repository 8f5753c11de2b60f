"""stylelab's thread policy: the command line opts into sleeping OpenMP threads unless the user chose;
the library changes nothing, and other tools get the user's environment."""

import os
import subprocess
import sys

from stylelab import threads


def _clean(**env) -> dict:
    return {**{k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}, **env}


def _python(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=_clean(**env), capture_output=True, text=True, check=True)
    return out.stdout.strip()


CLI = "import os, sys; from stylelab.cli import main; main(['--version']); "


def test_importing_the_library_changes_nothing():
    code = "import os, sys, stylelab; print(os.environ.get('OMP_WAIT_POLICY', 'unset'), 'torch' in sys.modules)"
    assert _python(code) == "unset False"


def test_the_command_line_sets_passive_waiting_before_torch_loads():
    code = CLI + "print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules, file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean())
    assert out.stderr.strip() == "PASSIVE False", out.stderr


def test_the_users_choice_wins():
    code = CLI + "print(os.environ['OMP_WAIT_POLICY'], file=sys.stderr)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_clean(OMP_WAIT_POLICY="ACTIVE")
    )
    assert out.stderr.strip() == "ACTIVE"


def test_too_late_once_torch_is_loaded():
    code = "import torch; " + CLI + "print(os.environ.get('OMP_WAIT_POLICY', 'unset'), file=sys.stderr)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_clean())
    assert out.stderr.strip() == "unset"


def test_other_tools_get_the_users_environment(monkeypatch):
    monkeypatch.setattr(threads, "_set_here", True)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert "OMP_WAIT_POLICY" not in threads.user_environment()
    monkeypatch.setattr(threads, "_set_here", False)  # the user's own value is passed on
    assert threads.user_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
