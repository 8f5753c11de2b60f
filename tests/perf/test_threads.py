"""stylelab's thread policy: sleeping OpenMP threads unless the user chose, never imposed on other tools."""

import os
import subprocess
import sys

from stylelab import threads


def _python(code: str, **env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_sets_passive_waiting_before_torch_loads():
    code = "import stylelab, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"
    assert _python(code) == "PASSIVE True"


def test_the_users_choice_wins():
    assert _python("import stylelab, os; print(os.environ['OMP_WAIT_POLICY'])", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"


def test_too_late_once_torch_is_loaded():
    code = "import torch, os; import stylelab; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"
    assert _python(code) == "unset"


def test_other_tools_get_the_users_environment(monkeypatch):
    monkeypatch.setattr(threads, "_set_here", True)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    assert "OMP_WAIT_POLICY" not in threads.user_environment()
    monkeypatch.setattr(threads, "_set_here", False)  # the user's own value is passed on
    assert threads.user_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
