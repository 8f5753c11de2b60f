"""A tiny sweep through the CLI, then its pictures, report and metrics."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylelab
from stylelab import curves, process_grid, sheets
from stylelab.cli import main
from stylelab.metrics import distances
from stylelab.recipes import Recipe
from stylelab.records import RunRecord
from stylelab.report import experiment_runs, gather, write_report
from stylelab.runs import write_run


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
            text = b"".join(re.findall(rb"\(((?:\\.|[^\\)])*)\)", block))
            out.append(re.sub(rb"\\([()\\])", rb"\1", text).decode("latin-1"))  # \( \) \\ are escapes
    return "\n".join(out)


def test_sweep_cli_wrote_every_run(experiment):
    runs = experiment_runs(experiment)
    assert len(runs) == 4
    assert [r.info["sweep"]["optimizer"] for r in runs] == ["adam", "adam", "lbfgs", "lbfgs"]  # plan order
    assert main(["sweep", str(experiment / "experiment.toml"), "-o", str(experiment), "--quiet"]) == 0


def test_effect_picture_png_and_pdf(experiment, tmp_path):
    runs = experiment_runs(experiment)
    fig = sheets.effect_picture(runs)
    pdf, png = sheets.save_figure(fig, tmp_path / "e.png", tmp_path / "e.pdf")
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
    for fig in (process_grid.process_grid(runs), curves.loss_curves(runs)):
        img = sheets.figure_to_image(fig)
        assert img.width > 300
    # The grid's columns are the steps every run has.
    assert {s for s, _ in runs[0].snapshots()} == {0, 1, 2}


def test_report_html_is_self_contained_and_pdf_has_text(experiment):
    assert main(["report", str(experiment)]) == 0
    html = (experiment / "report.html").read_text()
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", html)
    assert "http://" not in html and "https://" not in html
    uris = re.findall(r"src='data:image/(?:jpeg|png);base64,([^']+)'", html)
    assert len(uris) >= 3 + 4  # effect picture, process grid, loss curves; a thumbnail per run
    for uri in uris:
        Image.open(io.BytesIO(base64.b64decode(uri))).load()
    links = re.findall(r"href='([^']+)'", html)
    assert "effect.png" in links and "losses.png" in links and "process-grid.png" in links
    for rel in links:  # full-size pictures beside the report, by relative path
        assert (experiment / rel).is_file(), rel
    for run in experiment_runs(experiment):
        assert run.name in html
    pdf = (experiment / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    text = pdf_text(pdf)
    assert "content d" in text and "optimizer" in text
    assert "missing" not in text and "missing" not in html
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
    blended = ["metrics", content, "-c", content, "-s", style, other, "--style-weights", "1", "1", "--json"]
    assert main([*blended, "--size", "128"]) == 0  # the content photo itself, at a small size
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


# ---------------------------------------------------------------- reports of synthetic runs
# Run folders written with runs.write_run from made-up records: no engine, so 36 runs cost seconds.


def fake_experiment(
    root,
    inputs,
    recipes=("alpha", "beta"),
    styles=("mosaic", "waves"),
    *,
    name="orange-study",
    steps=10,
    snapshots=(0, 5, 10),
    batch=True,
    process=False,
    size=(48, 32),
    no_snapshots=(),
):
    """An experiment folder ``root`` of recipes x styles runs; returns the run names in plan order.

    Each recipe's runs form one batch (when ``batch``) that took 6 s per run in it, so per-run
    shares are checkable; runs named in ``no_snapshots`` saved none.
    """
    root.mkdir(parents=True, exist_ok=True)
    # A plannable experiment file, so the report orders the runs as a sweep would (recipe, then style).
    recipes_toml = ", ".join(f'{{ base = "default", name = "{r}" }}' for r in recipes)
    style_paths = ", ".join(f'"{inputs / "styles" / f"{s}.png"}"' for s in styles)
    content = inputs / "content.png"
    (root / "experiment.toml").write_text(
        f'name = "{name}"\ncontent = ["{content}"]\nstyles = [{style_paths}]\nrecipes = [{recipes_toml}]\n'
    )
    rng = np.random.default_rng(0)
    names = []
    for r, recipe_name in enumerate(recipes):
        batch_names = [f"content__{s}__{recipe_name}" for s in styles]
        for i, style in enumerate(styles):
            run_name = batch_names[i]
            history = [
                {
                    "step": k,
                    "elapsed": 0.1 * k,
                    "content": 0.01 * k,
                    "style": (5 + r + i) / k,
                    "tv": 0.0,
                    "total": 0.01 * k + (5 + r + i) / k,
                }
                for k in range(1, steps + 1)
            ]

            def picture():  # smooth blobs plus a little grain: about as compressible as a photo
                coarse = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
                a = np.asarray(coarse).astype(float) + rng.normal(0, 6, (size[1], size[0], 3))
                buf = io.BytesIO()
                Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(buf, "PNG")
                return buf.getvalue()

            shots = [] if run_name in no_snapshots else [(k, picture(), {"total": 1.0}) for k in snapshots]
            size_of_batch = len(styles) if batch else 1
            record = RunRecord(
                recipe=Recipe(
                    name=recipe_name,
                    steps=steps,
                    size=64,
                    style_weight=2.0 + 3 * r,
                    optimizer="adam" if r % 2 else "lbfgs",
                    seed=7,
                ),
                content=str(inputs / "content.png"),
                styles=[str(inputs / "styles" / f"{style}.png")],
                status="done",
                steps=steps,
                elapsed=6.0 * size_of_batch,
                device="cpu",
                peak_memory=(300 + r) * 2**20,
                losses=history[-1],
                history=history,
                snapshots=shots,
                image=picture(),
                started=1.7e9 + 10 * r,
                finished=1.7e9 + 10 * r + 6,
                extra={
                    "run": run_name,
                    "sweep": {"content": "content", "style": style, "recipe": recipe_name},
                    "batch_size": size_of_batch,
                    "batch_runs": batch_names if batch else [run_name],
                    "distances": {"content": 0.1 + 0.01 * r, "style": 0.5 - 0.01 * i},
                },
            )
            # A process picture is drawn for the first run only and copied to the others (the drawing
            # is what costs; the report only reads the file).
            write_run(root / "runs" / run_name, record, process_picture=process and not names)
            if process and names:
                shutil.copy(root / "runs" / names[0] / "process.png", root / "runs" / run_name / "process.png")
            names.append(run_name)
    return names


def test_title_is_the_experiment_name_not_the_folder(tmp_path, inputs):
    folder = tmp_path / "out-folder-7"
    fake_experiment(folder, inputs, recipes=("alpha",), styles=("mosaic",))
    write_report(folder)
    html = (folder / "report.html").read_text()
    assert "<h1>orange-study</h1>" in html and "<title>orange-study: stylelab report</title>" in html
    text = pdf_text((folder / "report.pdf").read_bytes())
    assert "orange-study" in text
    assert "out-folder-7 ·" not in text  # the running header names the experiment, not the folder
    (folder / "experiment.toml").unlink()
    assert gather(folder).title == "out-folder-7"  # no experiment file: the folder is all there is


def test_settings_table_says_what_is_shared_and_what_differs(tmp_path, inputs):
    folder = tmp_path / "exp"
    fake_experiment(folder, inputs, recipes=("alpha", "beta"), styles=("mosaic", "waves"))
    report = gather(folder)
    shared, differs = dict(report.shared), dict(report.differs)
    assert shared["size"] == "64" and shared["steps"] == "10" and shared["seed"] == "7"
    assert shared["content"] == "content" and "style_layers" in shared
    assert differs["style_weight"] == "2, 5" and differs["optimizer"] == "lbfgs, adam"
    assert differs["recipe"] == "alpha, beta" and differs["style"] == "mosaic, waves"
    assert not set(shared) & set(differs)
    env = dict(report.environment)
    assert env["device"] == "cpu" and env["stylelab"] == "0.1.0"
    import torch

    from stylelab.records import machine

    assert env["torch"] == torch.__version__ and env["machine"] == machine()  # every record carries them
    assert env["precision"] == "-"  # these made-up records have none
    assert "with stylelab" in env["report made"] and "torch" in env["report made"]
    write_report(folder)
    html = (folder / "report.html").read_text()
    for words in ("Shared by all runs", "Differs between runs", "<th>style_weight</th><td>2, 5</td>"):
        assert words in html, words
    text = pdf_text((folder / "report.pdf").read_bytes())
    # (matplotlib writes "ff" as one ligature glyph, which pdf_text cannot read: "Di ers")
    assert "Shared by all runs" in text and "between runs" in text and "lbfgs, adam" in text


def test_recorded_machine_torch_and_precision_are_shown(tmp_path, inputs):
    folder = tmp_path / "exp"
    (name,) = fake_experiment(folder, inputs, recipes=("alpha",), styles=("mosaic",))
    info = json.loads((folder / "runs" / name / "run.json").read_text())
    info.update(torch="2.13.0", precision="bf16", machine={"cpu": "Some CPU", "cores": 8})
    (folder / "runs" / name / "run.json").write_text(json.dumps(info))
    env = dict(gather(folder).environment)
    assert env["torch"] == "2.13.0" and env["precision"] == "bf16" and env["machine"] == "Some CPU, 8 cores"


def test_time_per_run_is_its_share_of_the_batch(tmp_path, inputs):
    folder = tmp_path / "exp"
    fake_experiment(folder, inputs, recipes=("alpha", "beta"), styles=("mosaic", "waves", "hubble"))
    report = gather(folder)
    col = {c: i for i, c in enumerate(report.columns)}
    times = [float(row[col["time s"]]) for row in report.rows]
    assert times == [6.0] * 6  # each batch of 3 took 18 s: 6 s each, not 18 s repeated
    assert sum(times) == 36.0
    by_recipe: dict[str, list[list[str]]] = {}
    for row in report.rows:  # (runs are in name order here: the experiment file has no plan)
        by_recipe.setdefault(row[0].rsplit("__", 1)[1], []).append(row)
    assert {r: {row[col["batch"]] for row in rows} for r, rows in by_recipe.items()} == {
        "alpha": {"#1 ×3"},
        "beta": {"#2 ×3"},
    }
    assert sorted(row[col["peak MiB"]] for row in report.rows) == ["", "", "", "", "300", "301"]  # once per batch
    assert [row[col["s/step"]] for row in report.rows] == ["0.6000"] * 6
    assert dict(report.environment)["batches"].startswith("2, 36.0 s")
    alone = tmp_path / "alone"
    fake_experiment(alone, inputs, recipes=("alpha",), styles=("mosaic", "waves"), batch=False)
    rows = gather(alone).rows
    assert [r[gather(alone).columns.index("time s")] for r in rows] == ["6.00", "6.00"]


def test_loss_curves_are_small_multiples_with_36_runs(tmp_path, inputs):
    folder = tmp_path / "exp"
    recipes = tuple(f"r{k:02d}" for k in range(12))
    fake_experiment(folder, inputs, recipes=recipes, styles=("mosaic", "waves", "hubble"), snapshots=())
    runs = experiment_runs(folder)
    assert len(runs) == 36
    fig = curves.loss_curves(runs)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert len(panels) == 12 * 3  # a row per recipe, a column per term (tv is zero everywhere: left out)
    assert [ax.get_title() for ax in panels[:3]] == ["content", "style", "total"]
    assert [ax.get_ylabel() for ax in panels[::3]] == list(recipes)
    assert all(len(ax.get_lines()) == 3 for ax in panels)  # one line per style, not 36
    colours = {tuple(ax.get_lines()[0].get_color()) for ax in panels}
    assert len(colours) == 1  # the first style has the same colour in every panel
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["mosaic", "waves", "hubble"]


def test_loss_terms_come_from_the_metrics_file(tmp_path, inputs):
    folder = tmp_path / "exp"
    (name,) = fake_experiment(folder, inputs, recipes=("alpha",), styles=("mosaic",))
    (folder / "runs" / name / "metrics.csv").write_text("step,elapsed,wobble,total\n1,0.1,3.0,4.0\n2,0.2,2.0,3.0\n")
    grid = curves.loss_grid(experiment_runs(folder))
    assert grid.terms == ["wobble", "total"]
    assert sheets.process_picture([], [{"step": 1, "elapsed": 0, "wobble": 1.0}]).width > 100


def test_process_grid_title_clears_the_first_row(tmp_path, inputs):
    folder = tmp_path / "exp"
    fake_experiment(folder, inputs, recipes=("alpha", "beta"), styles=("mosaic", "waves", "hubble"))
    fig = process_grid.process_grid(experiment_runs(folder), title="a title")
    renderer = fig.canvas.get_renderer()
    title = next(t for t in fig.texts if t.get_text() == "a title").get_window_extent(renderer)
    steps = [t.get_window_extent(renderer) for t in fig.texts if t.get_text().startswith("step ")]
    pictures = [im.get_window_extent(renderer) for ax in fig.axes for im in ax.get_images()]
    assert len(steps) == 3 and len(pictures) == 6 * 3
    top_of_pictures = max(p.y1 for p in pictures)
    assert all(title.y0 > s.y1 for s in steps)  # display coordinates: y grows upwards
    assert all(s.y0 >= top_of_pictures for s in steps)


def test_runs_without_snapshots_are_named_once_not_shown_missing(tmp_path, inputs):
    folder = tmp_path / "exp"
    names = fake_experiment(folder, inputs, styles=("mosaic", "waves"), no_snapshots=("content__waves__beta",))
    grid = process_grid.process_rows(experiment_runs(folder))
    assert len(grid.rows) == len(names) - 1 and grid.left_out == ["content__waves__beta"]
    write_report(folder)
    html = (folder / "report.html").read_text()
    text = " ".join(pdf_text((folder / "report.pdf").read_bytes()).split())  # captions wrap
    assert html.count("1 run(s) saved no snapshots") == 1 and "1 run(s) saved no snapshots" in text
    assert "missing" not in html and "missing" not in text
    none = tmp_path / "none"
    fake_experiment(none, inputs, snapshots=())
    (none / "process-grid.png").write_bytes(b"stale")
    write_report(none)
    assert "No run saved snapshots" in (none / "report.html").read_text()
    assert "No run saved snapshots" in " ".join(pdf_text((none / "report.pdf").read_bytes()).split())
    assert not (none / "process-grid.png").exists()  # no grid, and no stale one from an earlier report


MEDIABOX = re.compile(rb"/MediaBox\s*\[([^\]]*)\]")


def test_36_runs_report_is_small_paged_and_quiet(tmp_path, inputs):
    folder = tmp_path / "exp"
    recipes = tuple(f"r{k:02d}" for k in range(12))
    fake_experiment(
        folder,
        inputs,
        recipes=recipes,
        styles=("mosaic", "waves", "hubble"),
        snapshots=(0, 4, 8, 10),
        process=True,
        size=(64, 43),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "More than 20 figures have been opened"
        write_report(folder)
    html, pdf = (folder / "report.html").stat().st_size, (folder / "report.pdf").stat().st_size
    # Measured: 1.07 MB and 0.37 MB; before JPEG thumbnails and pages, the same runs gave 2.97 MB and 3.93 MB.
    assert html < 1_600_000 and pdf < 800_000, (html, pdf)
    data = (folder / "report.pdf").read_bytes()
    boxes = MEDIABOX.findall(data)
    assert len(boxes) >= 8 and len(set(boxes)) == 1  # title, effect, losses x3, process x6, runs: one size
    width, height = (float(v) for v in boxes[0].split()[2:])
    assert (round(width), round(height)) == (842, 595)  # A4 landscape
    assert b"/DCTDecode" in data  # photographs as JPEG
    text = " ".join(pdf_text(data).split())
    for caption in (
        "picture for content",
        "Loss terms against the step",
        "Snapshots of each run",
        "time s: the run",
    ):
        assert caption in text, caption
    assert "picture (content)" not in text  # the sheets' own titles stay in their PNGs: a page has one heading
    assert re.findall(r"src='data:image/jpeg;base64", (folder / "report.html").read_text())


def test_report_imports_no_pyplot_and_leaves_the_backend_alone(tmp_path, inputs):
    folder = tmp_path / "exp"
    fake_experiment(folder, inputs, recipes=("alpha",), styles=("mosaic",))
    code = f"""
import sys, matplotlib
before = dict.__getitem__(matplotlib.rcParams, "backend")
import stylelab.report, stylelab.sheets, stylelab.cli
stylelab.report.write_report({str(folder)!r})
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert dict.__getitem__(matplotlib.rcParams, "backend") is before, "backend changed"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(Path(stylelab.__file__).parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_report_does_not_overwrite_a_users_files_of_the_same_name(tmp_path, capsys):
    folder = tmp_path / "runs-of-mine"
    write_run(folder / "runs" / "a", RunRecord(Recipe(size=32, steps=1), "c.png", ["s.png"], "done"))
    (folder / "report.html").write_text("<p>my own report</p>")
    assert main(["report", str(folder)]) == 2
    assert "report.html" in capsys.readouterr().err
    assert (folder / "report.html").read_text() == "<p>my own report</p>"
    (folder / "report.html").unlink()
    assert main(["report", str(folder)]) == 0
    assert main(["report", str(folder)]) == 0  # its own files: replaced
