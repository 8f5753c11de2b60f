"""``--help``: options in sections with an example on top, values named in words, and
defaults that say whose they are; the same when the help goes to a pipe (capsys: no terminal)."""

from __future__ import annotations

import importlib
import re

import pytest
import typer

from stylelab.cli import app, main
from stylelab.recipes import FIELDS, Recipe, load_recipe

app_module = importlib.import_module("stylelab.cli.app")


def help_text(capsys, *command) -> str:
    code = main([*command, "--help"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def sections(text: str) -> list[str]:
    """The section titles of a click help text: unindented lines ending in a colon."""
    return [line[:-1] for line in text.splitlines() if re.fullmatch(r"[A-Z][\w ,]*:", line)]


COMMANDS = [name for name in typer.main.get_command(app).commands]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_placeholder_reads_like_a_python_type(capsys, command):
    text = help_text(capsys, command)
    for typeish in ("<list[", "<int", "<float", "<str>", "<path>", "range>"):
        assert typeish not in text, f"stylelab {command} --help shows {typeish!r}:\n{text}"


def test_run_help_groups_its_options_with_examples_first(capsys):
    text = help_text(capsys, "run")
    assert sections(text) == [
        "What to paint",
        "Image",
        "Loss weights",
        "Layers",
        "Optimiser",
        "Network and device",
        "Output and progress",
        "Other options",  # -h, --help
    ]
    assert text.index("Examples:") < text.index("What to paint:")
    assert "  stylelab run photo.jpg --style starry.jpg -o out.png\n" in text  # kept on one line, not rewrapped

    def section(title: str) -> str:
        start = text.index(f"\n{title}:\n")
        end = text.find("\n\n", start + 1)
        return " ".join(text[start:end].split())  # wrapped lines joined

    assert "--style FILE..." in section("What to paint") and "CONTENT" in section("What to paint")
    assert "--style-weight X" in section("Loss weights") and "--tv-weight" in section("Loss weights")
    assert "--style-layers NAME..." in section("Layers")
    assert "--optimizer lbfgs|adam|sgd" in section("Optimiser") and "--steps N" in section("Optimiser")
    assert "--output FILE.png" in section("Output and progress") and "--print-every N" in section("Output and progress")
    assert "--init content|style|noise|fast|FILE" in section("Image")
    assert "[default recipe: 200]" in section("Optimiser")  # whose default it is
    assert "--style-weights" not in text  # the old name works but is not offered


def test_every_recipe_setting_has_a_section():
    for name, f in FIELDS.items():
        if f.metadata.get("cli", True):
            assert name in app_module.SECTION_OF, f"{name} would land in 'Other options'"


def test_the_defaults_run_shows_are_the_default_recipes():
    """run --help says "[default recipe: X]" from the Recipe's field defaults: they must be the preset's."""
    preset = load_recipe("default")
    for name, f in FIELDS.items():
        if f.metadata.get("cli", True):
            assert getattr(preset, name) == getattr(Recipe(), name), name


def test_sweep_help_shows_no_recipe_defaults_and_groups_its_own_options(capsys):
    text = help_text(capsys, "sweep")
    # Left out, a setting keeps each recipe's own value: no single default to show.
    steps = " ".join(text[text.index("--steps N") :].split("\n  --")[0].split())
    assert "default" not in steps, steps
    assert "[default recipe" not in text and "[default: 200]" not in text and "[default: 512]" not in text
    assert "each recipe's own values" in " ".join(text.split())
    assert {"What to compare", "Optimiser", "Output and progress", "Running the sweep", "Ray cluster"} <= set(
        sections(text)
    )
    assert text.index("Examples:") < text.index("What to compare:")
    assert "--budget X" in text and "--set KEY=V1,V2..." in text and "--styles FILE|DIR..." in text


def test_commands_of_other_modules_get_words_for_their_values(capsys):
    text = help_text(capsys, "sheet")
    assert "--out PATH" in text and "IMAGES" in text
    text = help_text(capsys, "serve")
    assert "--port N" in text and "--max-upload-mb X" in text


def test_a_missing_argument_is_named_as_in_the_help(capsys):
    code = main(["report"])
    out = capsys.readouterr().out
    assert code == 2 and "Usage: stylelab report [OPTIONS] {FOLDER}" in out
