"""``stylelab demo`` with tiny settings: every output is there and makes sense."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from stylelab import demo
from stylelab.cli import main
from stylelab.runs import find_runs

pytestmark = pytest.mark.slow


def test_builtin_images_need_no_files():
    content, styles = demo.builtin_images()
    assert content.mode == "RGB" and min(content.size) >= 256
    assert len(styles) >= 3
    for name, img in styles.items():
        a = np.asarray(img, dtype=np.float64)
        assert img.mode == "RGB" and min(img.size) >= 128, name
        assert a.std() > 20, f"style {name} has too little texture to show anything"


def test_generated_styles_are_deterministic():
    assert np.array_equal(np.asarray(demo.mosaic()), np.asarray(demo.mosaic()))
    assert not np.array_equal(np.asarray(demo.mosaic(seed=1)), np.asarray(demo.mosaic(seed=2)))


def test_run_demo_writes_results_and_process_pictures(tmp_path):
    folders = demo.run_demo(tmp_path / "out", quiet=True, size=48, steps=3)
    out = tmp_path / "out"
    _, styles = demo.builtin_images()
    assert [f.name for f in folders] == list(styles)
    assert (out / "inputs" / "content-coffee.png").is_file()
    for name in styles:
        folder = out / name
        assert (out / "inputs" / f"style-{name}.png").is_file()
        for file in ("result.png", "process.png", "recipe.toml", "metrics.csv", "run.json"):
            assert (folder / file).is_file(), f"{name}/{file}"
        result = Image.open(folder / "result.png")
        assert max(result.size) == 48
        assert np.asarray(result, dtype=np.float64).std() > 10  # not blank
        with open(folder / "metrics.csv", newline="") as fh:
            assert [row["step"] for row in csv.DictReader(fh)] == ["1", "2", "3"]
    overview = Image.open(out / "overview.png")
    assert overview.size[0] > 300 and overview.size[1] > 300
    runs = find_runs(out)
    assert sorted(r.name for r in runs) == sorted(styles) and all(r.status == "done" for r in runs)
    # The results differ by style: the batch kept each item on its own path.
    results = [np.asarray(Image.open(out / n / "result.png"), dtype=np.int16) for n in styles]
    assert not np.array_equal(results[0], results[1])


def test_demo_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "DEMO_SETTINGS", {**demo.DEMO_SETTINGS, "size": 32, "steps": 2})
    assert main(["demo", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    assert (tmp_path / "d" / "overview.png").is_file()
    assert capsys.readouterr().err == ""


def test_demo_in_a_log_prints_plain_lines(tmp_path, monkeypatch, capsys):
    """stderr is not a terminal (a log, `| cat`, CI): step lines per style and one closing line,
    not the last frame of a progress bar cut to the console's width."""
    monkeypatch.setattr(demo, "DEMO_SETTINGS", {**demo.DEMO_SETTINGS, "size": 32, "steps": 5})
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    lines = capsys.readouterr().err.splitlines()
    for name in demo.STYLE_NAMES:
        assert any(line.startswith(f"{name}: step 5/5  content ") for line in lines), lines
        assert any(line.startswith(f"{name}: done: 5 steps in ") for line in lines), lines
    assert lines[-1].startswith("demo done in ") and lines[-1].endswith("and one run folder per style")
    assert not any("…" in line for line in lines)
