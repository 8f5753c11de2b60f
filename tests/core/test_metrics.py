"""stylelab's yardstick at a bounded size: never by an input's raw size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylelab.errors import ImageError
from stylelab.metrics import distances, measured_image

from ..conftest import gradient_image


def test_the_image_is_measured_at_the_size_asked_for():
    big = gradient_image(1200, 900)
    assert measured_image(big, 256).size == (256, 192)
    assert measured_image(big).size == (512, 384)  # the default run's size
    with pytest.raises(ImageError, match="needs 16 px on each side"):
        measured_image(Image.new("RGB", (3, 10000)))
    with pytest.raises(ImageError, match="--size must be between"):
        measured_image(big, 0)


# The command in a process of its own, printing its peak resident memory (KiB) last.
MEASURED = (
    "import resource, sys; from stylelab.cli import main; code = main(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
)


@pytest.mark.slow
def test_a_thin_or_huge_image_costs_bounded_memory(tmp_path):
    """A 3x10000 PNG of a few hundred bytes grew the process to 22 GB; a 4000x3000 photo past 6 GB."""
    thin = tmp_path / "thin.png"
    Image.new("RGB", (3, 10000), (120, 80, 40)).save(thin, optimize=True)
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(photo, quality=80)
    style = tmp_path / "style.png"
    gradient_image(300, 300).save(style)
    for image, code in ((thin, 2), (photo, 0)):
        argv = [sys.executable, "-c", MEASURED, "metrics", str(image), "-c", str(photo), "-s", str(style)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        *lines, peak = done.stderr.strip().splitlines()
        assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
        assert int(peak) < 2 * 2**20, f"{int(peak) / 2**20:.1f} GiB peak for {image.name}"


def test_distances_of_the_same_image_at_two_sizes_are_close(tubingen, starry_night):
    a = distances(tubingen, tubingen, [starry_night], size=64)
    b = distances(tubingen, tubingen, [starry_night], size=96)
    assert a.content < 1e-3 and b.content < 1e-3 and abs(a.style - b.style) < 0.5
