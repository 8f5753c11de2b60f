"""One local Ray instance of 2 CPUs for the whole test session (starting one takes ~10 s here)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from PIL import Image
from tests.conftest import _shared


@pytest.fixture(scope="session")
def ray_cluster():
    """The address of a running local Ray instance this test process is connected to."""
    import ray  # the ray extra is part of the test install (make test): no skip without it

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> dict[str, Path]:
    """A 48 px content image and three 40 px style images, from the shared test pictures."""
    folder = tmp_path_factory.mktemp("ray-images")
    out = {}
    for name, src, size in [
        ("content", _shared("content", "tubingen.jpg"), 48),
        ("starry", _shared("style", "starry_night.jpg"), 40),
        ("scream", _shared("style", "the_scream.jpg"), 40),
        ("hat", _shared("style", "woman-with-hat-matisse.jpg"), 40),
    ]:
        img = Image.open(src).convert("RGB")
        img.thumbnail((size, size))
        out[name] = folder / f"{name}.png"
        img.save(out[name])
    return out
