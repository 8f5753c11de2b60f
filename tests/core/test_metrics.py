"""stylelab's yardstick at a bounded size: never by an input's raw size."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from stylelab.demo import mosaic, waves
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


# ------------------------------------------------------------------ every style loss, and regions


def side_by_side(left: Image.Image, right: Image.Image, size=(96, 64)) -> Image.Image:
    """``left`` on the left half, ``right`` on the right half."""
    w, h = size
    out = Image.new("RGB", size)
    out.paste(left.resize((w // 2, h)), (0, 0))
    out.paste(right.resize((w - w // 2, h)), (w // 2, 0))
    return out


def test_the_style_distance_under_every_style_loss():
    import torch

    from stylelab import images, style_losses
    from stylelab.losses import gram_matrix
    from stylelab.metrics import STYLE_LAYERS, _layer_distance, _net, reference
    from stylelab.recipes import STYLE_LOSSES

    content, style = gradient_image(96, 64, seed=1), mosaic(64)
    d = distances(content, content, [style], size=96)
    assert set(d.by_loss) == set(STYLE_LOSSES) and d.by_loss["gram"] == d.style
    assert all(v > 0 for v in d.by_loss.values()) and d.content < 1e-6
    # gram is the yardstick as it always was: ||G - G_s|| / ||G_s||, G = F F^T / (H W), averaged over the layers.
    net = _net("cpu")
    fx, fs = net(images.to_tensor(content)), net(images.to_tensor(images.fit(style, 96)))
    by_hand = torch.stack(
        [(gram_matrix(fx[k]) - gram_matrix(fs[k])).norm() / gram_matrix(fs[k]).norm() for k in STYLE_LAYERS]
    ).mean()
    assert d.style == pytest.approx(float(by_hand), rel=1e-5)
    # swd on fixed directions: the same image measures the same; a few directions at a time changes nothing.
    assert distances(content, content, [style], size=96).by_loss["swd"] == d.by_loss["swd"]
    target = reference(content, [style], content.size).regions[0].stats["swd"]["relu1_1"]
    whole = style_losses.distance("swd", fx["relu1_1"], target)[0]
    assert float(_layer_distance("swd", fx["relu1_1"], target, None)) == pytest.approx(float(whole), rel=1e-5)
    # The style itself is nearer its own style than the photo is, under every loss.
    itself = distances(style.resize((96, 96)), content, [style], size=96)
    assert all(itself.by_loss[k] < d.by_loss[k] for k in STYLE_LOSSES)
    assert set(d.record()) == {"content", "style", *STYLE_LOSSES}
    assert d.as_dict()["style_distances"] == d.by_loss


def test_regions_are_measured_each_by_its_own_style():
    """A picture of mosaic beside waves: measured with the matching masks it is near; with them swapped, far."""
    from stylelab.metrics import task_distances
    from stylelab.recipes import STYLE_LOSSES
    from stylelab.task import Task

    picture = side_by_side(mosaic(64), waves(64))
    left = np.zeros((64, 96), np.float32)
    left[:, :48] = 1
    masks = [left, 1 - left]
    content = gradient_image(96, 64)
    matched = task_distances(picture, Task.of(content, [mosaic(64), waves(64)], masks=masks), size=96)
    swapped = task_distances(picture, Task.of(content, [waves(64), mosaic(64)], masks=masks), size=96)
    whole = task_distances(picture, Task.of(content, [mosaic(64)]), size=96)
    for kind in STYLE_LOSSES:
        assert matched.by_loss[kind] < 0.7 * swapped.by_loss[kind], kind
    assert matched.style < whole.style  # half of the picture is not mosaic at all


def test_metrics_command_shows_every_loss_and_reads_a_runs_regions(tmp_path, capsys):
    import json

    from stylelab.cli import main
    from stylelab.metrics import task_distances
    from stylelab.records import read_provenance

    content, a, b = tmp_path / "content.png", tmp_path / "a.png", tmp_path / "b.png"
    gradient_image(96, 64).save(content)
    mosaic(64).save(a)
    waves(64).save(b)
    mask = tmp_path / "left.png"
    left = np.zeros((64, 96), np.uint8)
    left[:, :48] = 255
    Image.fromarray(left).save(mask)
    out = tmp_path / "out.png"
    argv = ["run", str(content), "-s", str(a), "--masks", str(mask), "--background", str(b)]
    argv += ["-o", str(out), "--size", "96", "--steps", "2", "--weights", "standin", "-q"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["metrics", str(out), "--json"]) == 0  # a stylelab PNG names its own content, styles and regions
    shown = json.loads(capsys.readouterr().out)
    expected = task_distances(out, read_provenance(out)["resolved_task"], size=96)
    assert shown["style_distances"] == pytest.approx(expected.by_loss) and set(shown["style_distances"]) == {
        "gram",
        "moments",
        "swd",
    }
    assert main(["metrics", str(out), "-c", str(content), "-s", str(a), "--masks", str(mask), str(mask)]) == 2
    assert "2 masks for 1 style images" in capsys.readouterr().err
    assert main(["metrics", str(out), "-c", str(content), "-s", str(a)]) == 0
    line = capsys.readouterr().out
    assert "style distance" in line and "moments" in line and "swd" in line
    assert main(["metrics", str(content)]) == 2
    assert "give --content and --style" in capsys.readouterr().err


def test_the_report_shows_the_distance_under_each_loss(tmp_path):
    from stylelab.recipes import Recipe
    from stylelab.records import RunRecord
    from stylelab.report import COLUMNS, table_rows
    from stylelab.runs import find_runs, write_run

    for name, d in (
        ("new", {"content": 0.1, "style": 0.5, "moments": 0.25, "swd": 0.125}),
        ("old", {"content": 0.2, "style": 0.4}),
    ):
        record = RunRecord(
            Recipe(size=32), "c.png", ["s.png"], "done", steps=1, image=None, extra={"distances": d, "run": name}
        )
        write_run(tmp_path / name, record, process_picture=False)
    runs = sorted(find_runs(tmp_path), key=lambda r: r.name)
    rows = {row[0]: dict(zip(COLUMNS, row)) for row in table_rows(runs)}
    assert [rows["new"][c] for c in ("content d", "style d", "moments d", "swd d")] == [
        "0.100",
        "0.500",
        "0.250",
        "0.125",
    ]
    assert [rows["old"][c] for c in ("moments d", "swd d")] == ["-", "-"]  # runs measured before
