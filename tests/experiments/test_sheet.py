"""``stylelab sheet``: any images (other tools' too, any size) in one effect picture with their metrics."""

from __future__ import annotations

import io
import re
import zlib

import numpy as np
import pytest
from PIL import Image

from stylelab import sheets
from stylelab.cli import main
from stylelab.metrics import distances
from stylelab.recipes import Recipe
from stylelab.records import RunRecord
from stylelab.runs import write_run


def pdf_text(data: bytes) -> str:
    """Every string the PDF draws, space-separated (enough to find labels)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            stream = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"BT(.*?)ET", stream, re.S):
            out.append(b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", block)).decode("latin-1"))
    return " ".join(out)


@pytest.fixture
def results(tmp_path, inputs):
    """Three results of different sizes and makers: a JPEG 'from another tool', a PNG, and a run folder."""
    rng = np.random.default_rng(3)
    other = tmp_path / "other-tool.jpg"
    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(other, quality=90)
    mine = tmp_path / "mine.png"
    Image.open(inputs / "content.png").resize((72, 48)).rotate(8).save(mine)
    run_folder = tmp_path / "runs" / "content__mosaic__default"
    buf = io.BytesIO()
    Image.open(inputs / "styles" / "mosaic.png").resize((96, 64)).save(buf, "PNG")
    record = RunRecord(
        recipe=Recipe(), content=str(inputs / "content.png"), styles=[], status="done", image=buf.getvalue()
    )
    write_run(run_folder, record, process_picture=False)
    return [other, mine, run_folder]


def test_sheet_puts_any_images_in_an_effect_picture_with_their_metrics(results, inputs, tmp_path, capsys):
    content, style = inputs / "content.png", inputs / "styles" / "mosaic.png"
    out = tmp_path / "effect.pdf"
    # Measured at 128 px (the option; 512 by default) so that the three style losses' yardsticks stay quick.
    argv = ["sheet", *map(str, results), "--content", str(content), "--style", str(style), "-o", str(out)]
    argv += ["--size", "128"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    text = pdf_text(out.read_bytes())
    paths = [results[0], results[1], results[2] / "result.png"]
    for label, path in zip(["other-tool", "mine", "content__mosaic__default"], paths):
        d = distances(path, content, [style], size=128)
        assert f"{label}: content distance {d.content:.4f}  style distance {d.style:.4f}" in printed
        assert label in text
        assert f"c {d.content:.3f}  s {d.style:.3f}" in text  # under its picture
    assert "content: content" in text and "style: mosaic" in text
    assert out.read_bytes().count(b"/Subtype /Image") >= 5  # content, style, three results: embedded
    png = tmp_path / "effect.png"
    argv = ["sheet", str(results[0]), "-c", str(content), "-s", str(style), "-o", str(png), "-l", "theirs"]
    assert main([*argv, "--size", "128"]) == 0
    img = Image.open(png)
    img.load()
    assert img.width > 300 and img.height > 200


def test_compare_picture_labels_each_image(inputs):
    content = Image.open(inputs / "content.png")
    items = [("a", content, {"content": 0.1234, "style": 0.5}), ("b", content.resize((30, 50)), None)]
    fig = sheets.compare_picture(items, content, Image.open(inputs / "styles" / "waves.png"), title="t")
    texts = [t.get_text() for t in fig.texts]
    assert "c 0.123  s 0.500" in texts and "a" in texts and "b" in texts and "t" in texts
    assert sum(len(ax.get_images()) for ax in fig.axes) == 4  # content, style and the two images


@pytest.mark.parametrize(
    "extra, message",
    [
        (["-o", "x.jpg"], "--out must end in .png or .pdf"),
        (["-l", "one", "-l", "two"], "--label given 2 times for 1 images"),
        (["--style-weights", "1", "2"], "--style-weights has 2 values for 1 styles"),
    ],
)
def test_sheet_bad_options_are_one_line(results, inputs, tmp_path, capsys, extra, message):
    argv = ["sheet", str(results[1]), "-c", str(inputs / "content.png"), "-s", str(inputs / "styles" / "mosaic.png")]
    assert main([*argv, "-o", str(tmp_path / "e.png"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e.png").exists()


def test_sheet_bad_inputs_are_one_line(results, inputs, tmp_path, capsys):
    style = str(inputs / "styles" / "mosaic.png")
    cases = [
        (["sheet", str(tmp_path / "nope.png"), "-c", str(inputs / "content.png"), "-s", style], "no such file"),
        (["sheet", str(tmp_path), "-c", str(inputs / "content.png"), "-s", style], "folder without a result.png"),
        (["sheet", str(results[1]), "-c", str(tmp_path / "gone.png"), "-s", style], "no such file"),
        (["sheet", str(results[1]), "-s", style], "give --content"),
        (["sheet", str(results[1]), "-c", str(inputs / "content.png")], "give --style"),
    ]
    for argv, message in cases:
        assert main([*argv, "-o", str(tmp_path / "e.png")]) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "e.png").exists()
