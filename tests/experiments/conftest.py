"""Small inputs made on the fly: a content photo and three styles, 48-96 px."""

from __future__ import annotations

import pytest

from stylelab.demo import builtin_images


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """Paths: content.png (96x64) and styles/{hubble,mosaic,waves}.png (64x64)."""
    root = tmp_path_factory.mktemp("inputs")
    content, styles = builtin_images()
    content.resize((96, 64)).save(root / "content.png")
    (root / "styles").mkdir()
    for name, img in styles.items():
        img.resize((64, 64)).save(root / "styles" / f"{name}.png")
    return root
