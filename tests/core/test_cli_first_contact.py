"""What a first `stylelab run` shows and keeps: its first line, plain progress lines where
stderr is no terminal, snapshots beside -o, the image so far on Ctrl-C (and the API's
Interrupted), blend weights and their old name, `info` on a run folder, a misspelt --init,
a description that says what changed. All on the stand-in network (milliseconds a run)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from stylelab import api, stylize
from stylelab.cli import main
from stylelab.events import Step
from stylelab.records import read_provenance

FAST = ["--weights", "standin", "--size", "32", "--device", "cpu"]


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def ctrl_c_at_step(monkeypatch, step: int) -> None:
    """Ctrl-C as the run's callbacks see step ``step`` (where the user's key press lands)."""
    from stylelab.runs import RunWriter

    original = RunWriter.__call__

    def press(writer, event):
        original(writer, event)
        if isinstance(event, Step) and event.step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(RunWriter, "__call__", press)


# ------------------------------------------------------------------ what a run shows


def test_the_first_line_says_what_the_run_will_do(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--steps", "3", "--optimizer", "adam")
    assert code == 0, err
    first = err.splitlines()[0]
    assert first.startswith("stylelab: 32x24 px, 3 adam steps, gram style loss, on cpu")
    assert "standin weights" in first and first.endswith(f"-> {out}")


def test_without_a_terminal_progress_is_plain_lines(capsys, tmp_path, tiny_paths):
    """capsys's stderr is no terminal, as in a log, CI or cluster job: lines, not a bar that prints nothing."""
    content, style = tiny_paths
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", tmp_path / "o.png", *FAST, "--steps", "40")
    assert code == 0, err
    steps = [line for line in err.splitlines() if line.startswith("step ")]
    assert [int(re.match(r"step (\d+)/40", line).group(1)) for line in steps] == list(range(2, 41, 2))  # ~20 a run
    assert all(re.search(r"content \S+  style \S+  tv \S+  total \S+  \S+ s/step  eta \d+:\d\d$", s) for s in steps)
    assert "done: 40 steps in" in err and "\x1b[" not in err  # no terminal codes in a log


def test_print_every_sets_the_lines_interval(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    argv = ["run", content, "-s", style, "-o", tmp_path / "o.png", *FAST, "--steps", "10", "--print-every", "4"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert re.findall(r"^step (\d+)/10", err, re.M) == ["4", "8", "10"]  # and the last step
    code, _, err = run_cli(capsys, *argv[:-1], "0")
    assert code == 2 and "--print-every must be at least 1" in err


def test_snapshots_beside_the_output_without_a_run_folder(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    out = tmp_path / "out.png"
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--steps", "6", "--save-every", "3")
    assert code == 0, err
    names = sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".png")
    assert names == ["out-step000000.png", "out-step000003.png", "out-step000006.png", "out.png"]
    for step in (0, 3, 6):
        info = json.loads(Image.open(tmp_path / f"out-step{step:06d}.png").text["stylelab"])
        assert info["snapshot"] == step and info["of"] == str(out)
        assert set(info["losses"]) >= ({"content", "style"} if step else set())  # none before the first step
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out-step000006.png")), np.asarray(Image.open(out)))
    assert "snapshots: " in err and "(3 files)" in err
    # A second run replaces them (stylelab made them); a file of the user's in their place is refused first.
    assert run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--steps", "6", "--save-every", "3")[0] == 0
    Image.new("RGB", (4, 4)).save(tmp_path / "out-step000003.png")
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--steps", "6", "--save-every", "3")
    assert code == 2 and "out-step000003.png" in err


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_keeps_the_image_so_far_beside_the_output(capsys, tmp_path, tiny_paths, monkeypatch):
    content, style = tiny_paths
    out, run_dir = tmp_path / "out.png", tmp_path / "run"
    ctrl_c_at_step(monkeypatch, 3)
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, "--run-dir", run_dir, *FAST, "--steps", "50")
    assert code == 130
    kept = tmp_path / "out-interrupted.png"
    assert not out.exists() and kept.is_file()
    info = read_provenance(kept)
    assert info["status"] == "interrupted" and info["steps"] == 3
    assert f"interrupted at step 3 of 50: the image so far is in {kept}" in err
    assert f"nothing written to {out}" in err


def test_ctrl_c_in_the_api_raises_interrupted_with_the_result(tiny_content, tiny_style):
    def press_ctrl_c(event):
        if isinstance(event, Step) and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(api.Interrupted) as caught:
        stylize(tiny_content, tiny_style, callback=press_ctrl_c, size=32, steps=20, weights="standin", device="cpu")
    assert isinstance(caught.value, KeyboardInterrupt)  # an `except KeyboardInterrupt` still catches it
    result = caught.value.result
    assert result.status == "interrupted" and result.steps == 2
    assert isinstance(result.image, Image.Image) and result.image.size == (32, 24)


# ------------------------------------------------------------------ blend weights


def test_blend_weights_new_name_old_name_and_one_style(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    other = tmp_path / "other.png"
    Image.open(content).save(other)
    out = tmp_path / "blend.png"
    base = ["run", content, "-s", style, other, "-o", out, *FAST, "--steps", "2", "-q"]
    code, _, err = run_cli(capsys, *base, "--style-blend-weights", "0.7", "0.3")  # several values after one option
    assert code == 0, err
    assert read_provenance(out)["resolved_task"].styles[0].weights == (0.7, 0.3)
    code, _, err = run_cli(capsys, *base, "--style-weights", "0.25", "0.75")
    assert code == 0 and "--style-weights is now --style-blend-weights" in err
    assert read_provenance(out)["resolved_task"].styles[0].weights == (0.25, 0.75)
    # With one style there is nothing to blend; --style-weight weighs the style term.
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run_cli(
        capsys, "run", content, "-s", style, "-o", tmp_path / "one.png", *FAST, "--style-blend-weights", "2"
    )
    assert code == 2 and "nothing to blend" in err and "--style-weight" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before


# ------------------------------------------------------------------ info, --init, descriptions


def test_info_on_a_run_folder(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    run_dir = tmp_path / "first"
    argv = ["run", content, "-s", style, "-o", tmp_path / "o.png", "--run-dir", run_dir, *FAST, "--steps", "3", "-q"]
    assert run_cli(capsys, *argv)[0] == 0
    code, text, err = run_cli(capsys, "info", run_dir)
    assert code == 0, err
    assert "status: done" in text and "steps: 3" in text and str(content) in text
    assert f"repeat with: stylelab run --from {run_dir / 'result.png'}" in text
    code, _, err = run_cli(capsys, "info", tmp_path)  # a folder, but no run folder
    assert code == 2 and "without run.json" in err


def test_a_misspelt_init_suggests_the_kind(capsys, tmp_path, tiny_paths, monkeypatch):
    content, style = tiny_paths
    out = tmp_path / "o.png"
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--init", "nosie")
    assert code == 2 and "did you mean 'noise'?" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # A file of that name is a start image, as asked.
    (tmp_path / "nosie").write_bytes(content.read_bytes())
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(
        capsys, "run", content, "-s", style, "-o", out, *FAST, "--init", "nosie", "--steps", "1", "-q"
    )
    assert code == 0, err
    # A missing path is a missing file, without a guess.
    code, _, err = run_cli(capsys, "run", content, "-s", style, "-o", out, *FAST, "--init", tmp_path / "noise.png")
    assert code == 2 and "no such file" in err and "did you mean" not in err


def test_info_shows_a_description_that_says_what_changed(capsys, tmp_path, tiny_paths):
    content, style = tiny_paths
    out = tmp_path / "o.png"
    argv = ["run", content, "-s", style, "-o", out, *FAST, "--steps", "2", "--optimizer", "adam", "-q"]
    assert run_cli(capsys, *argv)[0] == 0
    recipe = read_provenance(out)["resolved"]
    assert recipe.name == "default"  # what it started from
    assert "changed: steps=2, optimizer=adam" in recipe.description and "weights=standin" in recipe.description
    code, text, _ = run_cli(capsys, "info", out)
    assert code == 0 and "changed: steps=2, optimizer=adam" in text
    # Repeating it with one more change adds to the list rather than stacking a second one.
    again = tmp_path / "again.png"
    assert run_cli(capsys, "run", "--from", out, "--seed", "4", "-o", again, "-q")[0] == 0
    described = read_provenance(again)["resolved"].description
    assert described.count("changed:") == 1 and described.endswith("seed=4") and "optimizer=adam" in described


def test_divergence_with_lbfgs_does_not_suggest_lbfgs(capsys, tmp_path, tiny_paths, monkeypatch):
    from tests.core.test_engine import PoisonAt

    content, style = tiny_paths
    PoisonAt(monkeypatch, 4)
    out = tmp_path / "o.png"
    code, _, err = run_cli(
        capsys, "run", content, "-s", style, "-o", out, *FAST, "--steps", "20", "--optimizer", "lbfgs"
    )
    assert code == 3 and "diverged at step" in err
    assert "--optimizer lbfgs" not in err and "--optimizer adam" in err


# ------------------------------------------------------------------ installing


def test_the_readme_says_how_to_install_without_cuda_and_names_every_extra():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    section = (root / "README.md").read_text(encoding="utf-8").split("## Install without make")[1].split("\n## ")[0]
    assert "--index-url https://download.pytorch.org/whl/cpu" in section
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in section
    assert re.findall(r"^\| `(\w+)` \|", section, re.M) == list(project["project"]["optional-dependencies"])
    # Type checkers read the package's annotations: py.typed is in the package and in its data.
    assert (root / "src" / "stylelab" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["stylelab"]
