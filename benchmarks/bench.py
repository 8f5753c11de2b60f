"""stylelab beside pastiche: ``python benchmarks/bench.py [stylelab bench options]``.

The same as ``stylelab bench``, with ``--images`` defaulting to the project's
``../shared/images`` (found beside the repository or a folder above it).
See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stylelab.cli import main


def shared_images() -> Path | None:
    """``shared/images`` beside the repository root or beside a folder above it."""
    root = Path(__file__).resolve().parents[1]
    for parent in (root, *root.parents):
        candidate = parent / "shared" / "images"
        if candidate.is_dir():
            return candidate
    return None


if __name__ == "__main__":
    args = sys.argv[1:]
    images = shared_images()
    if images is not None and not any(a in ("--images", "--content", "-h", "--help") for a in args):
        args = ["--images", str(images), *args]
    sys.exit(main(["bench", *args]))
