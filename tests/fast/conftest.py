"""One fast model for the module's tests (loading takes ~0.1 s, but there is no need to repeat it)."""

from __future__ import annotations

import pytest
from PIL import Image

from stylelab import images
from stylelab.fast.model import FastModel
from tests.conftest import SHARED_IMAGES


@pytest.fixture(scope="session")
def fast_model() -> FastModel:
    return FastModel(threads=1)


@pytest.fixture(scope="session")
def small_tubingen(tubingen) -> Image.Image:
    """The classic content photo at 160 px: the tests' sizes stay at or under that."""
    return images.fit(images.load_rgb(tubingen)[0], 160)


@pytest.fixture(scope="session")
def small_starry(starry_night) -> Image.Image:
    return images.fit(images.load_rgb(starry_night)[0], 256)


@pytest.fixture(scope="session")
def small_scream() -> Image.Image:
    path = SHARED_IMAGES / "style" / "the_scream.jpg"
    if not path.is_file():
        pytest.fail(f"test image missing: {path}")
    return images.fit(images.load_rgb(path)[0], 256)
