"""Every mistake on the command line is one line on stderr and exit 2: usage errors, damaged
settings, odd sizes, bad weights; Ctrl-C is "interrupted" and 130 wherever it lands."""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import time

import pytest
import typer
from PIL import Image, PngImagePlugin

from stylelab.cli import app, main

from ..conftest import gradient_image

app_module = importlib.import_module("stylelab.cli.app")  # the module; stylelab.cli.app is the Typer app


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: "), err
    return lines[0]


USAGE_MISTAKES = {
    "unknown option": (["--bogus"], "No such option"),
    "unknown command": (["frobnicate"], "No such command"),
    "bad int": (["run", "c.jpg", "-s", "s.jpg", "--steps", "abc"], "--steps"),
    "bad float": (["run", "c.jpg", "-s", "s.jpg", "--style-weight", "x"], "--style-weight"),
    "bad port": (["serve", "--port", "abc"], "--port"),
    "missing value": (["run", "c.jpg", "--style"], "requires an argument"),
    "missing argument": (["report"], None),
    "unknown option of run": (["run", "c.jpg", "--nope", "1"], "No such option"),
}


@pytest.mark.parametrize("case", USAGE_MISTAKES)
def test_usage_mistakes_are_one_line_and_exit_2(capsys, case):
    argv, words = USAGE_MISTAKES[case]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    if words is None:  # no arguments at all: the command's help, and still exit 2 (nothing ran)
        assert "Usage:" in out and "Traceback" not in err
    else:
        assert words in one_line(err)


def test_plain_run_shows_its_help_and_exits_2(capsys):
    code, out, err = run_cli(capsys, "run")
    assert code == 2 and "Usage: stylelab run" in out and "Traceback" not in err


def test_main_catches_the_classes_the_parser_really_raises():
    # The pinned typer carries its own click: catching click's classes caught nothing. This fails
    # again if an upgrade changes which classes the parser raises.
    command = typer.main.get_command(app)
    raised = []
    for argv in (["--bogus"], ["run", "x", "--steps", "abc"], ["run"]):
        try:
            with command.make_context("stylelab", argv) as ctx:
                command.invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - what is raised is the point
            raised.append(exc)
    assert len(raised) == 3
    assert all(isinstance(exc, app_module.USAGE_ERROR) for exc in raised), [type(e).__mro__ for e in raised]
    assert isinstance(raised[2], app_module.NO_ARGS_IS_HELP)


def test_help_and_version_still_exit_0(capsys):
    assert run_cli(capsys, "--version")[0] == 0
    code, out, _ = run_cli(capsys, "run", "--help")
    assert code == 0 and "--style" in out


# ------------------------------------------------------------------ damaged settings in a PNG


def png_with_settings(path, settings) -> str:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("stylelab", settings if isinstance(settings, str) else json.dumps(settings))
    gradient_image().save(path, pnginfo=info)
    return str(path)


GOOD = {"version": "0.1.0", "content": "c.jpg", "styles": ["s.jpg"], "recipe": {"steps": 3}, "losses": {"style": 1.0}}
DAMAGED = {
    "not json": "{nope",
    "not a table": json.dumps([1, 2]),
    "unknown recipe key": {**GOOD, "recipe": {"stepz": 3}},
    "no recipe": {k: v for k, v in GOOD.items() if k != "recipe"},
    "recipe of wrong type": {**GOOD, "recipe": "default"},
    "bad recipe value": {**GOOD, "recipe": {"steps": "many"}},
    "styles of wrong type": {**GOOD, "styles": "s.jpg"},
    "content of wrong type": {**GOOD, "content": 5},
    "non-numeric losses": {**GOOD, "losses": {"style": "low"}},
    "deep nesting": "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize("case", DAMAGED)
def test_a_damaged_settings_block_is_one_line_for_info_and_from(capsys, tmp_path, case):
    png = png_with_settings(tmp_path / "made.png", DAMAGED[case])
    for argv in (["info", png], ["run", "--from", png, "-o", tmp_path / "again.png"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2 and "damaged" in one_line(err), (argv, err)
    assert not (tmp_path / "again.png").exists()


def test_good_settings_are_shown(capsys, tmp_path):
    png = png_with_settings(tmp_path / "made.png", GOOD)
    code, out, _ = run_cli(capsys, "info", png)
    assert code == 0 and "steps = 3" in out and "style 1" in out


# ------------------------------------------------------------------ sizes and odd images


@pytest.mark.parametrize(
    ("content_size", "size", "words"),
    [
        ((3, 10000), 512, "too narrow"),
        ((10000, 3), 512, "too narrow"),
        ((3, 1000), 512, "--size 5334"),
        ((40, 30), 16, "--size 22"),
        ((40, 30), 20, "--size 22"),
    ],
)
def test_thin_or_tiny_images_are_refused_before_the_run(capsys, tmp_path, content_size, size, words):
    content = tmp_path / "thin.png"
    Image.new("RGB", content_size, (90, 120, 200)).save(content)
    style = tmp_path / "style.png"
    gradient_image().save(style)
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, "--size", size, "--steps", "1", "-q")
    line = one_line(err)
    assert code == 2 and "needs at least 16 px" in line and words in line and not out.exists()


def test_a_thin_style_image_is_refused(capsys, tmp_path):
    style = tmp_path / "thin.png"
    Image.new("RGB", (4, 900)).save(style)
    content = tmp_path / "c.png"
    gradient_image().save(content)
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", tmp_path / "o.png", "--steps", "1", "-q")
    assert code == 2 and "a style image (4x900)" in one_line(err)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--size", "8192", "fits"),
        ("--style-scale", "100", "style_scale must be at most"),
        ("--seed", str(2**64), "seed must be between"),
        ("--seed", "-1", "seed must be between"),
        ("--device", "meta", "unknown device"),
        ("--device", "xpu", "unknown device"),
        ("--style-blend-weights", "1", "1 blend weights for 2 style images"),
    ],
)
def test_settings_that_cannot_run_are_refused_before_anything_is_written(capsys, tmp_path, option, value, words):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    gradient_image(400, 300).save(content)
    gradient_image(seed=3).save(style)
    out, rd = tmp_path / "out.png", tmp_path / "rd"
    argv = ["run", content, "-s", style, style, "-o", out, "--run-dir", rd, "--steps", "1", option, value, "-q"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and words in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "s.png"]  # no output, no run folder, no .partial


def test_out_of_memory_during_the_run_is_one_line(capsys, tmp_path, tiny_paths, monkeypatch):
    from stylelab import objective

    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(objective.Objective, "__call__", no_memory)
    content, style = tiny_paths
    rd = tmp_path / "rd"
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", tmp_path / "o.png", "--run-dir", rd, "-q")
    assert code == 2 and "out of memory" in one_line(err)
    assert not rd.exists() and not (tmp_path / "rd.partial").exists() and not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ weights, layers, recipes


def test_weight_files_that_are_not_state_dicts_are_one_line(capsys, tmp_path, tiny_paths):
    import pickle

    import torch

    content, style = tiny_paths
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    no_bias = tmp_path / "nobias.pth"
    torch.save({f"features.{i}.weight": torch.zeros(1) for i in (0,)}, no_bias)
    for path, words in ((plain, "cannot read weights file"), (no_bias, "has no features.0.bias")):
        code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", tmp_path / "o.png", "--weights", path, "-q")
        assert code == 2 and words in one_line(err)  # and no warning lines from torch before it


def test_layers_with_a_bad_size_and_recipes_with_a_non_recipe_file(capsys, tmp_path):
    for size in ("-5", "0"):
        code, out, err = run_cli(capsys, "layers", "--size", size)
        assert code == 2 and "--size must be between" in one_line(err) and out == ""
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:secret\n")
    not_recipe = tmp_path / "notes.toml"
    not_recipe.write_text('title = "secret"\n')
    for path in (secret, not_recipe):
        code, out, err = run_cli(capsys, "recipes", path)
        assert code == 2 and "secret" not in out + err


# ------------------------------------------------------------------ Ctrl-C while starting up


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.6])
def test_ctrl_c_while_the_command_starts_is_interrupted_and_130(tmp_path, tiny_paths, delay):
    """SIGINT during start-up (imports, loading the network): no traceback, exit 130, nothing written."""
    content, style = tiny_paths
    out = tmp_path / "o.png"
    argv = [sys.executable, "-m", "stylelab", "run", content, "-s", style, "-o", out, "--steps", "2000", "--size", "32"]
    proc = subprocess.Popen([str(a) for a in argv], stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and ("interrupted" in err or "nothing written" in err), err
    assert not out.exists()
