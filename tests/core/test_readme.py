"""The README's promises: the two commands, every option documented with its real default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from PIL import Image

from stylelab.cli import _default_text
from stylelab.recipes import Recipe

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def recipe_option_rows() -> list[str]:
    rows = []
    for f in dataclasses.fields(Recipe):
        if not f.metadata.get("cli", True):
            continue
        default = "—" if f.default is None else f"`{_default_text(f.default)}`"
        rows.append(f"| `--{f.name.replace('_', '-')}` | {default} | {f.metadata['help']} |")
    return rows


def test_the_two_commands():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_recipe_options_table_is_generated_from_the_recipe():
    block = README.split("<!-- recipe-options")[1].split("<!-- /recipe-options -->")[0]
    table = [line for line in block.splitlines() if line.startswith("| `--")]
    expected = recipe_option_rows()
    assert table == expected, "regenerate the table:\n" + "\n".join(expected)


def test_exit_codes_are_documented():
    for code in ("| 0 |", "| 2 |", "| 3 |", "| 130 |"):
        assert code in README


def test_the_picture_is_there_and_small():
    match = re.search(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert match, "the README shows a result"
    path = ROOT / match.group(1)
    assert path.is_file() and path.stat().st_size < 300_000
    assert max(Image.open(path).size) >= 512
