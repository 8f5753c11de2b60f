"""The command line, through ``stylelab.cli.main(argv)``."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from stylelab import images
from stylelab.cli import expand_multi_values, main
from stylelab.records import read_provenance

TINY = ["--size", "64", "--steps", "4", "--device", "cpu", "--quiet"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_expand_multi_values():
    argv = ["run", "c.jpg", "--style", "a.jpg", "b.jpg", "--style-weights", "0.7", "0.3", "--steps", "5", "-o", "x"]
    assert expand_multi_values(argv) == [
        "run", "c.jpg", "--style", "a.jpg", "--style", "b.jpg",
        "--style-weights", "0.7", "--style-weights", "0.3", "--steps", "5", "-o", "x",
    ]  # fmt: skip
    # Negative numbers are values, not options.
    assert expand_multi_values(["--style-weights", "-1", "2"]) == ["--style-weights", "-1", "--style-weights", "2"]


@pytest.mark.slow
def test_run_writes_a_png_with_its_settings_and_info_shows_them(capsys, tmp_path, tubingen, starry_night):
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "run", tubingen, "--style", starry_night, "-o", out, *TINY, "--style-weight", 7)
    assert code == 0, err
    img = Image.open(out)
    assert img.format == "PNG" and max(img.size) == 64 and img.mode == "RGB"
    info = read_provenance(out)
    assert info["recipe"]["style_weight"] == 7.0 and info["recipe"]["steps"] == 4
    assert info["recipe"]["name"] == "default"
    assert info["content"].endswith("tubingen.jpg") and info["styles"][0].endswith("starry_night.jpg")
    assert info["status"] == "done" and info["steps"] == 4
    assert set(info["losses"]) == {"content", "style", "tv", "total"}

    code, text, _ = run_cli(capsys, "info", out)
    assert code == 0
    assert "style_weight = 7.0" in text and "tubingen.jpg" in text and "status: done" in text
    assert f"stylelab run --from {out}" in text


@pytest.mark.slow
def test_run_from_repeats_a_run_bit_for_bit(capsys, tmp_path, tubingen, starry_night, monkeypatch):
    first = tmp_path / "first.png"
    argv = ["run", tubingen, "--style", starry_night, "-o", first, *TINY, "--optimizer", "adam", "--init", "noise"]
    assert run_cli(capsys, *argv, "--seed", 3)[0] == 0
    again = tmp_path / "again.png"
    monkeypatch.chdir(tmp_path)  # --from works from anywhere: inputs are stored as absolute paths
    assert run_cli(capsys, "run", "--from", first, "-o", again, "--quiet")[0] == 0
    assert read_provenance(again)["recipe"] == read_provenance(first)["recipe"]
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))
    # Changing one thing on the way.
    changed = tmp_path / "changed.png"
    assert run_cli(capsys, "run", "--from", first, "--seed", 4, "-o", changed, "--quiet")[0] == 0
    assert read_provenance(changed)["recipe"]["seed"] == 4
    assert not np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(changed)))


@pytest.mark.slow
def test_run_dir_holds_the_whole_run(capsys, tmp_path, tubingen, starry_night):
    out, run_dir = tmp_path / "out.png", tmp_path / "runs" / "first"
    code, _, err = run_cli(
        capsys, "run", tubingen, "--style", starry_night, "-o", out, "--run-dir", run_dir, *TINY, "--save-every", 2
    )
    assert code == 0, err
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["metrics.csv", "process.png", "recipe.toml", "result.png", "run.json", "snapshots"]
    assert not (tmp_path / "runs" / "first.partial").exists()
    assert "steps = 4" in (run_dir / "recipe.toml").read_text()
    with open(run_dir / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert list(rows[0]) == ["step", "elapsed", "content", "style", "tv", "total"]
    assert all(float(r["total"]) > 0 for r in rows)
    snaps = sorted(p.name for p in (run_dir / "snapshots").iterdir())
    assert snaps == ["step_000000.png", "step_000002.png", "step_000004.png"]
    assert Image.open(run_dir / "process.png").size[0] > 200
    assert np.array_equal(np.asarray(Image.open(run_dir / "result.png")), np.asarray(Image.open(out)))
    assert json.loads((run_dir / "run.json").read_text())["status"] == "done"


def _bad_inputs(tmp_path, tubingen, starry_night) -> dict[str, tuple[list, str]]:
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture\n")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(tubingen.read_bytes()[:5000])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    from tests.conftest import png_with_size

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_with_size(200_000, 200_000))
    zero = tmp_path / "zero.png"
    zero.write_bytes(png_with_size(0, 64))
    c, s = str(tubingen), str(starry_night)
    return {
        "missing content": ([tmp_path / "nope.jpg", "--style", s], "no such file"),
        "missing style": ([c, "--style", tmp_path / "nope.jpg"], "no such file"),
        "not an image": ([text, "--style", s], "not an image"),
        "truncated image": ([c, "--style", truncated], "damaged or truncated"),
        "zero-size file": ([empty, "--style", s], "is empty"),
        "zero-size dims": ([zero, "--style", s], "not an image"),
        "absurd dims": ([c, "--style", bomb], "absurd dimensions"),
        "unknown layer": ([c, "--style", s, "--style-layers", "relu3_1", "relu9_1"], "unknown layer 'relu9_1'"),
        "negative weight": ([c, "--style", s, "--style-weight", "-5"], "style_weight must be a finite number >= 0"),
        "negative layer weight": ([c, "--style", s, "--style-layer-weights", "1", "1", "1", "1", "-1"], ">= 0"),
        "unknown optimiser": ([c, "--style", s, "--optimizer", "lbgfs"], "did you mean 'lbfgs'"),
        "unknown recipe": ([c, "--style", s, "--recipe", "nope"], "unknown recipe 'nope'"),
        "no style": ([c], "at least one --style"),
        "not png": ([c, "--style", s, "-o", tmp_path / "out.jpg"], "must be a .png"),
        "bad weights": ([c, "--style", s, "--weights", "nope"], "--weights must be"),
    }


BAD_CASES = [
    "missing content", "missing style", "not an image", "truncated image", "zero-size file", "zero-size dims",
    "absurd dims", "unknown layer", "negative weight", "negative layer weight", "unknown optimiser",
    "unknown recipe", "no style", "not png", "bad weights",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_exit_2_and_nothing_written(capsys, tmp_path, tubingen, starry_night, case):
    args, pattern = _bad_inputs(tmp_path, tubingen, starry_night)[case]
    out, run_dir = tmp_path / "out" / "result.png", tmp_path / "run"
    argv = ["run", *args, "--run-dir", run_dir, "--device", "cpu", "--steps", "2", "--size", "32"]
    if "-o" not in args:
        argv += ["-o", out]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    code, stdout, stderr = run_cli(capsys, *argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and pattern in lines[0]
    assert "Traceback" not in stderr and stdout == ""
    assert not out.exists() and not run_dir.exists() and not (tmp_path / "run.partial").exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written anywhere


def test_error_messages_with_brackets_are_printed_verbatim(capsys, tmp_path):
    path = tmp_path / "[red]photo[/].jpg"
    code, _, err = run_cli(capsys, "run", path, "--style", path, "-o", tmp_path / "o.png")
    assert code == 2 and f"no such file: {path}" in err


def test_unwritable_output_is_refused_before_the_run(capsys, tmp_path, tubingen, starry_night):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where the output's folder should be")
    code, _, err = run_cli(capsys, "run", tubingen, "--style", starry_night, "-o", blocker / "o.png", *TINY)
    assert code == 2 and "cannot write" in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text().startswith("a file")


def test_run_output_in_a_file_that_is_a_folder(capsys, tmp_path, tubingen, starry_night):
    folder = tmp_path / "taken.png"
    folder.mkdir()
    code, _, err = run_cli(capsys, "run", tubingen, "--style", starry_night, "-o", folder, *TINY)
    assert code == 2 and "is a folder" in err and len(err.strip().splitlines()) == 1


def test_info_on_a_png_without_settings(capsys, tmp_path):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    code, _, err = run_cli(capsys, "info", plain)
    assert code == 2 and "carries no stylelab settings" in err


def test_info_on_a_missing_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "info", tmp_path / "gone.png")
    assert code == 2 and err.count("\n") == 1


def test_recipes_lists_and_shows_presets(capsys):
    code, text, _ = run_cli(capsys, "recipes")
    assert code == 0 and "default" in text
    code, text, _ = run_cli(capsys, "recipes", "default")
    assert code == 0 and 'optimizer = "lbfgs"' in text


def test_help_lists_every_recipe_option(capsys):
    from stylelab.recipes import FIELDS

    code, text, _ = run_cli(capsys, "run", "--help")
    assert code == 0
    for name, f in FIELDS.items():
        if f.metadata.get("cli", True):
            assert "--" + name.replace("_", "-") in text
    for option in ("--recipe", "--run-dir", "--quiet", "--from", "--style"):
        assert option in text


def test_version(capsys):
    code, text, _ = run_cli(capsys, "--version")
    assert code == 0 and text.startswith("stylelab ")


def test_png_metadata_survives(tmp_path):
    path = images.save_png(Image.new("RGB", (2, 2)), tmp_path / "x.png", {"stylelab": json.dumps({"a": 1})})
    assert json.loads(images.read_png_text(path)["stylelab"]) == {"a": 1}


@pytest.mark.slow
def test_divergence_writes_the_last_good_image_and_exits_3(capsys, tmp_path, tiny_paths, monkeypatch):
    """Decided: a diverged run still writes its last good image (never a black one), warns, and exits 3."""
    from tests.core.test_engine import PoisonAt

    content, style = tiny_paths
    good = tmp_path / "good.png"
    args = ["--size", "32", "--device", "cpu", "--quiet", "--optimizer", "sgd"]
    assert run_cli(capsys, "run", content, "--style", style, "-o", good, "--steps", "3", *args)[0] == 0
    PoisonAt(monkeypatch, 5)
    out, run_dir = tmp_path / "out.png", tmp_path / "run"
    code, _, err = run_cli(
        capsys, "run", content, "--style", style, "-o", out, "--run-dir", run_dir, "--steps", "50", *args
    )
    assert code == 3
    assert "diverged at step 5" in err and "--lr" in err and "--style-weight" in err
    assert f"wrote the last good image (step 4) to {out}" in err
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(good)))
    info = read_provenance(out)
    assert info["status"] == "diverged" and info["steps"] == 4
    assert json.loads((run_dir / "run.json").read_text())["status"] == "diverged"
    assert np.array_equal(np.asarray(Image.open(run_dir / "result.png")), np.asarray(Image.open(good)))


@pytest.mark.slow
def test_interrupt_exits_130_and_writes_nothing(capsys, tmp_path, tiny_paths, monkeypatch):
    from stylelab import objective

    content, style = tiny_paths
    original = objective.Objective.__call__
    calls = [0]

    def ctrl_c(obj, features, image, grams=None):
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return original(obj, features, image, grams)

    monkeypatch.setattr(objective.Objective, "__call__", ctrl_c)
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "run", content, "--style", style, "-o", out, "--size", "32", "--quiet")
    assert code == 130 and "nothing written" in err and not out.exists()
