"""A tiny sweep through the CLI, then its pictures, report and metrics."""

from __future__ import annotations

import base64
import io
import re
import zlib

import pytest
from PIL import Image

from stylelab import sheets
from stylelab.cli import main
from stylelab.metrics import distances
from stylelab.report import experiment_runs


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, inputs):
    out = tmp_path_factory.mktemp("sweep") / "exp"
    code = main(
        [
            "sweep",
            str(inputs / "content.png"),
            "--styles",
            str(inputs / "styles" / "mosaic.png"),
            str(inputs / "styles" / "waves.png"),
            "--set",
            "optimizer=adam,lbfgs",
            "--size",
            "32",
            "--steps",
            "2",
            "--save-every",
            "1",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    return out


def pdf_text(data: bytes) -> str:
    """The text a PDF draws: every string of every BT..ET block, in order (kerning dropped)."""
    out = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            stream = zlib.decompress(m.group(1))
        except zlib.error:
            continue
        for block in re.findall(rb"BT(.*?)ET", stream, re.S):
            out.append(b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", block)).decode("latin-1"))
    return "\n".join(out)


def test_sweep_cli_wrote_every_run(experiment):
    runs = experiment_runs(experiment)
    assert len(runs) == 4
    assert [r.info["sweep"]["optimizer"] for r in runs] == ["adam", "adam", "lbfgs", "lbfgs"]  # plan order
    assert main(["sweep", str(experiment / "experiment.toml"), "-o", str(experiment), "--quiet"]) == 0


def test_effect_picture_png_and_pdf(experiment, tmp_path):
    runs = experiment_runs(experiment)
    fig = sheets.effect_picture(runs)
    png, pdf = sheets.save_figure(fig, tmp_path / "e.png", tmp_path / "e.pdf")[::-1]
    img = Image.open(png)
    img.load()
    assert img.width > 300 and img.height > 300
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for words in ("optimizer adam", "optimizer lbfgs", "style: mosaic", "style: waves", "varies"):
        assert words in text, words
    assert b"/Subtype /Image" in data  # the pictures are embedded, not redrawn


def test_process_grid_and_loss_curves(experiment):
    runs = experiment_runs(experiment)
    for fig in (sheets.process_grid(runs), sheets.loss_curves(runs)):
        img = sheets.figure_to_image(fig)
        assert img.width > 300
    # The grid's columns are the steps every run has.
    assert {s for s, _ in runs[0].snapshots()} == {0, 1, 2}


def test_report_html_is_self_contained_and_pdf_has_text(experiment):
    assert main(["report", str(experiment)]) == 0
    html = (experiment / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    uris = re.findall(r"src='data:image/png;base64,([^']+)'", html)
    assert len(uris) >= 3  # effect picture, process grid, loss curves
    for uri in uris:
        Image.open(io.BytesIO(base64.b64decode(uri))).load()
    for rel in re.findall(r"<img loading='lazy' alt='[^']*' src='([^']+)'", html):
        assert (experiment / rel).is_file()
    for run in experiment_runs(experiment):
        assert run.name in html
    pdf = (experiment / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "content d" in text and "optimizer" in text
    assert (experiment / "effect.png").is_file() and (experiment / "effect.pdf").is_file()


def test_report_of_an_empty_folder_is_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished runs" in capsys.readouterr().err


def test_metrics_cli(experiment, inputs, capsys):
    run = experiment_runs(experiment)[0]
    content, style = str(inputs / "content.png"), run.info["styles"][0]
    assert main(["metrics", str(run.result), "--content", content, "--style", style]) == 0
    shown = capsys.readouterr().out
    d = distances(run.result, content, [style], size=run.recipe.size)  # the run's size, as the command measures
    assert f"content distance {d.content:.4f}" in shown and f"style distance {d.style:.4f}" in shown
    assert main(["metrics", str(run.result), "--content", content, "--style", style, "--json"]) == 0
    assert '"style_distance"' in capsys.readouterr().out
    # Two styles blended: the distance to the blend, not to either one.
    other = str(inputs / "styles" / "hubble.png")
    assert main(["metrics", content, "-c", content, "-s", style, other, "--style-weights", "1", "1", "--json"]) == 0
    assert main(["metrics", str(inputs / "nope.png"), "-c", content, "-s", style]) == 2
    assert "no such file" in capsys.readouterr().err


def test_sweep_cli_errors_are_one_line(inputs, tmp_path, capsys):
    assert main(["sweep", str(inputs / "content.png"), "--styles", str(tmp_path), "-o", str(tmp_path / "x")]) == 2
    assert "holds no images" in capsys.readouterr().err
    bad = ["sweep", str(inputs / "content.png"), "--styles", str(inputs / "styles"), "--set", "optimiser=adam"]
    assert main(bad) == 2
    assert "did you mean 'optimizer'" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert not (tmp_path / "x").exists()
