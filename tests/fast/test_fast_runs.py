"""Fast runs where every run goes: the CLI (PNG settings, --from, run folders), --init fast, sweeps and reports."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from stylelab import images
from stylelab.cli import main
from stylelab.engine import Engine
from stylelab.fast.engine import FastEngine
from stylelab.recipes import Recipe
from stylelab.records import read_provenance
from stylelab.runs import load_run
from stylelab.task import Task
from tests.conftest import gradient_image

HINT = "pip install 'stylelab[fast]'"


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def _pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


@pytest.fixture
def inputs(tmp_path, small_tubingen, small_starry, small_scream):
    """content.png (the classic photo, 160 px) and two styles, as files."""
    folder = tmp_path / "in"
    folder.mkdir()
    small_tubingen.save(folder / "content.png")
    small_starry.save(folder / "starry.png")
    small_scream.save(folder / "scream.png")
    return folder


def test_run_engine_fast_writes_a_png_whose_settings_repeat_with_from(capsys, tmp_path, inputs):
    out = tmp_path / "out.png"
    argv = ["run", inputs / "content.png", "--style", inputs / "starry.png", "--engine", "fast", "--size", 96]
    code, err = run_cli(capsys, *argv, "--strength", 0.8, "-o", out)
    assert code == 0, err
    assert "fast engine (one pass" in err and "with fp32" in err and f"wrote {out} (fast engine, " in err
    info = read_provenance(out)
    assert info["resolved"].engine == "fast" and info["resolved"].strength == 0.8
    assert info["status"] == "done" and info["steps"] == 0 and info["losses"] == {}
    assert info["device"] == "cpu" and info["precision"] == "fp32"
    assert Image.open(out).size == (96, 72)

    again = tmp_path / "again.png"
    assert run_cli(capsys, "run", "--from", out, "-o", again, "--quiet")[0] == 0
    assert np.array_equal(_pixels(out), _pixels(again))
    assert read_provenance(again)["resolved"] == info["resolved"]
    weaker = tmp_path / "weaker.png"
    assert run_cli(capsys, "run", "--from", out, "--strength", 0.3, "-o", weaker, "--quiet")[0] == 0
    assert read_provenance(weaker)["resolved"].strength == 0.3
    assert np.abs(_pixels(weaker) - _pixels(out)).mean() > 2


def test_a_fast_run_folder_is_written_from_its_events(capsys, tmp_path, inputs):
    out, folder = tmp_path / "out.png", tmp_path / "runs" / "first"
    argv = ["run", inputs / "content.png", "-s", inputs / "starry.png", "--engine", "fast", "--size", 64]
    code, err = run_cli(capsys, *argv, "--run-dir", folder, "-o", out, "--save-every", 5, "--quiet")
    assert code == 0, err
    run = load_run(folder)
    assert run.status == "done" and run.recipe.engine == "fast" and run.info["steps"] == 0
    assert (folder / "metrics.csv").read_text().splitlines() == ["step,elapsed"]  # no steps, no loss terms
    assert run.metrics() == [] and run.snapshots() == []
    assert np.array_equal(_pixels(run.result), _pixels(out))
    assert json.loads((folder / "run.json").read_text())["task"]["styles"][0]["images"][0]["sha256"]
    assert not (tmp_path / "out-step000000.png").exists()  # --save-every means nothing to a fast run


def _chroma(path) -> np.ndarray:
    return skcolor.rgb2yiq(_pixels(path) / 255.0)[..., 1:]


def test_strength_blending_and_colour_from_the_command_line(capsys, tmp_path, inputs):
    content = inputs / "content.png"
    base = ["run", content, "--engine", "fast", "--size", 96, "--quiet"]

    def run(name, *extra):
        out = tmp_path / f"{name}.png"
        code, err = run_cli(capsys, *base, *extra, "-o", out)
        assert code == 0, err
        return out

    starry = run("starry", "-s", inputs / "starry.png")
    scream = run("scream", "-s", inputs / "scream.png")
    first_only = run(
        "first",
        "-s",
        inputs / "starry.png",
        inputs / "scream.png",
        "--style-blend-weights",
        1,
        "--style-blend-weights",
        0,
    )
    even = run("even", "-s", inputs / "starry.png", inputs / "scream.png")
    assert np.array_equal(_pixels(first_only), _pixels(starry))  # weight 0: the second style's vector drops out
    d_even = [np.abs(_pixels(even) - _pixels(p)).mean() for p in (starry, scream)]
    assert max(d_even) < np.abs(_pixels(starry) - _pixels(scream)).mean()  # a blend lies between them

    photo = np.asarray(images.fit(Image.open(content).convert("RGB"), 96), dtype=np.int16)
    none = run("none", "-s", inputs / "starry.png", "--strength", 0)
    assert np.abs(_pixels(none) - photo).mean() < np.abs(_pixels(starry) - photo).mean()

    kept = run("kept", "-s", inputs / "starry.png", "--preserve-color", "luminance")
    photo_chroma = skcolor.rgb2yiq(photo / 255.0)[..., 1:]
    assert np.abs(_chroma(kept) - photo_chroma).mean() < 0.25 * np.abs(_chroma(starry) - photo_chroma).mean()


def test_without_the_extra_the_command_says_how_to_install_it(capsys, tmp_path, inputs, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as tests/fast/test_files.py: the runtime is missing
    out = tmp_path / "out.png"
    argv = ["run", inputs / "content.png", "-s", inputs / "starry.png", "-o", out, "--size", 64]
    code, err = run_cli(capsys, *argv, "--engine", "fast")
    assert code == 2 and HINT in err and len(err.strip().splitlines()) == 1 and not out.exists()
    code, err = run_cli(capsys, *argv, "--init", "fast", "--weights", "standin", "--steps", 1)
    assert code == 2 and HINT in err and not out.exists()


# ------------------------------------------------------------------ --init fast


@pytest.mark.parametrize("colour", ["none", "luminance"])
def test_init_fast_starts_the_optimiser_from_the_fast_result(fast_model, small_tubingen, small_starry, colour):
    task = Task.of(small_tubingen, [small_starry])
    optimiser = Engine(device="cpu", weights="standin")
    optimiser.fast = FastEngine(model=fast_model)
    recipe = Recipe(weights="standin", device="cpu", init="fast", steps=0, size=64, strength=0.6, preserve_color=colour)
    start = optimiser.run(optimiser.prepare([task], recipe))[0]
    fast = FastEngine(model=fast_model)
    painted = fast.run(fast.prepare([task], recipe.replace(engine="fast")))[0]
    assert start.ok and painted.ok and start.image.size == painted.image.size == (64, 48)
    assert np.array_equal(np.asarray(start.image), np.asarray(painted.image))

    stepped = optimiser.run(optimiser.prepare([task], recipe.replace(steps=3)))[0]
    assert stepped.ok and stepped.steps == 3
    assert not np.array_equal(np.asarray(stepped.image), np.asarray(painted.image))


def test_init_fast_is_a_recipe_value_the_cli_takes(capsys, tmp_path, inputs):
    out = tmp_path / "out.png"
    argv = ["run", inputs / "content.png", "-s", inputs / "starry.png", "-o", out, "--size", 64, "--quiet"]
    code, err = run_cli(capsys, *argv, "--init", "fast", "--weights", "standin", "--steps", 2)
    assert code == 0, err
    info = read_provenance(out)
    assert info["resolved"].init == "fast" and info["resolved"].engine == "optimise" and info["steps"] == 2


# ------------------------------------------------------------------ sweeps


def test_a_sweep_over_engine_writes_both_runs_and_the_report_shows_them(capsys, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    gradient_image(96, 64, seed=1).save(folder / "content.png")
    gradient_image(64, 64, seed=9).rotate(90).save(folder / "style.png")
    exp = tmp_path / "exp"
    argv = ["sweep", folder / "content.png", "--styles", folder / "style.png", "--set", "engine=fast,optimise"]
    code, err = run_cli(capsys, *argv, "--weights", "standin", "--steps", 2, "--size", 64, "-o", exp, "-q", "--report")
    assert code == 0, err
    runs = {p.name: load_run(p) for p in (exp / "runs").iterdir()}
    assert sorted(runs) == ["content__style__default__engine-fast", "content__style__default__engine-optimise"]
    fast, optimise = runs["content__style__default__engine-fast"], runs["content__style__default__engine-optimise"]
    assert fast.recipe.engine == "fast" and fast.info["steps"] == 0 and fast.info["precision"] == "fp32"
    assert optimise.recipe.engine == "optimise" and optimise.info["steps"] == 2
    for run in (fast, optimise):
        assert run.status == "done" and set(run.info["distances"]) == {"content", "style", "gram", "moments", "swd"}
    page = (exp / "report.html").read_text(encoding="utf-8")
    for run in (fast, optimise):
        assert run.name in page and f"{run.info['distances']['style']:.3g}" in page
