"""Styles by region, end to end: masks through the plan, the objective, the records, `--from` and sweeps;
and, with the real network, each region taking its own style without a seam at the border."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylelab import demo, metrics
from stylelab.cli import main
from stylelab.engine import make_engine
from stylelab.errors import StylelabError
from stylelab.experiments import load
from stylelab.recipes import STYLE_LOSSES, load_recipe
from stylelab.records import checked_provenance, read_provenance
from stylelab.sweep import run_sweep
from stylelab.task import BACKGROUND, LabelMask, StyleSet, Task

from ..conftest import gradient_image


def save_mask(path, array) -> str:
    Image.fromarray((np.clip(array, 0, 1) * 255).round().astype(np.uint8), "L").save(path)
    return str(path)


def halves(w: int, h: int, soft: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Left and right masks that add up to 1; ``soft``: the width of a linear ramp between them (px)."""
    x = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0) + 0.5
    right = np.clip((x - (w - soft) / 2) / soft, 0, 1) if soft else (x >= w / 2).astype(np.float32)
    return 1 - right, right


@pytest.fixture
def files(tmp_path):
    """A 48x32 content, two styles and masks for its halves (as files, absolute paths)."""
    gradient_image(48, 32, seed=3).save(tmp_path / "content.png")
    demo.mosaic(64).save(tmp_path / "mosaic.png")
    demo.waves(64).save(tmp_path / "waves.png")
    demo.mosaic(64, seed=2).save(tmp_path / "other.png")
    left, right = halves(48, 32)
    labels = np.where(right[..., None] > 0.5, [30, 40, 200], [220, 30, 30]).astype(np.uint8)
    Image.fromarray(labels, "RGB").save(tmp_path / "labels.png")
    names = ("content", "mosaic", "waves", "other", "labels")
    return {
        **{k: str(tmp_path / f"{k}.png") for k in names},
        "left": save_mask(tmp_path / "left.png", left),
        "right": save_mask(tmp_path / "right.png", right),
    }


def standin(**settings):
    return load_recipe("default", **{"size": 48, "steps": 3, "weights": "standin", **settings})


def paint(tasks, recipe):
    engine = make_engine(recipe)
    return engine.run(engine.prepare(tasks, recipe), [])


# ------------------------------------------------------------------ the engine with masks (stand-in network)


@pytest.mark.parametrize("kind", STYLE_LOSSES)
def test_a_white_mask_paints_as_no_mask_under_every_style_loss(files, tmp_path, kind):
    """A region covering everything is the whole image: the same losses step for step."""
    white = save_mask(tmp_path / "white.png", np.ones((32, 48)))
    recipe = standin(style_loss=kind, optimizer="adam", steps=4, precision="fp32")
    plain, masked = paint(
        [Task.of(files["content"], [files["mosaic"]]), Task.of(files["content"], [files["mosaic"]], masks=[white])],
        recipe,
    )
    assert masked.status == plain.status == "done"
    for a, b in zip(plain.history, masked.history):
        assert b["style"] == pytest.approx(a["style"], rel=1e-4) and b["total"] == pytest.approx(a["total"], rel=1e-4)


def test_a_label_image_paints_as_one_mask_per_style(files):
    recipe = standin(steps=4)
    by_labels, by_masks = paint(
        [
            Task.of(files["content"], [files["mosaic"], files["waves"]], masks=[files["labels"]]),
            Task.of(files["content"], [files["mosaic"], files["waves"]], masks=[files["left"], files["right"]]),
        ],
        recipe,
    )
    assert by_labels.task.styles[0].mask == LabelMask(files["labels"], 0)
    for a, b in zip(by_masks.history, by_labels.history):
        assert b["style"] == pytest.approx(a["style"], rel=1e-5) and b["content"] == pytest.approx(
            a["content"], rel=1e-5
        )


def test_what_no_mask_covers_keeps_the_content_or_takes_the_background(files):
    """One style on the left half: the right half stays the photo; with a background style it changes too."""
    recipe = standin(steps=30, optimizer="adam", style_weight=1000.0, content_weight=1.0)
    alone, with_background = paint(
        [
            Task.of(files["content"], [files["mosaic"]], masks=[files["left"]]),
            Task.of(files["content"], [files["mosaic"]], masks=[files["left"]], background=files["waves"]),
        ],
        recipe,
    )
    photo = np.asarray(Image.open(files["content"]), np.float32)

    def change(result, cols):
        return np.abs(np.asarray(result.image, np.float32) - photo)[:, cols].mean()

    left, right = slice(0, 22), slice(26, 48)  # away from the 2x2 poolings that straddle the border
    assert change(alone, left) > 10 * max(change(alone, right), 0.05)
    assert change(with_background, right) > 5 * max(change(alone, right), 0.05)
    assert with_background.task.styles[1].mask is BACKGROUND


def test_mask_mistakes_are_refused_before_any_step(files, tmp_path):
    black = save_mask(tmp_path / "black.png", np.zeros((32, 48)))
    engine = make_engine(standin())
    with pytest.raises(StylelabError, match=r"black everywhere"):
        engine.prepare(
            [Task.of(files["content"], [files["mosaic"], files["waves"]], masks=[files["left"], black])], standin()
        )
    with pytest.raises(StylelabError, match="2 masks for 3 style images"):
        Task.of(
            files["content"], [files["mosaic"], files["waves"], files["other"]], masks=[files["left"], files["right"]]
        )
    covered = Task.of(
        files["content"],
        [files["mosaic"], files["waves"]],
        masks=[files["left"], files["right"]],
        background=files["other"],
    )
    with pytest.raises(StylelabError, match="nowhere to go"):
        engine.prepare([covered], standin())
    with pytest.raises(StylelabError, match=r"--style-masks"):
        Task.of(files["content"], [files["mosaic"]], image_masks=[files["left"], files["right"]])


# ------------------------------------------------------------------ masks in the records: run.json, PNG, --from


def test_masks_round_trip_through_run_json_png_settings_and_from(files, tmp_path, capsys):
    out, folder = tmp_path / "out.png", tmp_path / "run"
    top = np.zeros((32, 48))
    top[:16] = 1
    files = {**files, "right": save_mask(tmp_path / "top.png", top)}  # the bottom right is left for the background
    common = ["--size", "48", "--steps", "2", "--weights", "standin", "-q"]
    argv = [
        "run",
        files["content"],
        "--style",
        files["mosaic"],
        files["waves"],
        "--masks",
        files["left"],
        files["right"],
    ]
    argv += ["--style-masks", files["right"], "none", "--background", files["other"], "-o", str(out)]
    assert main([*argv, "--run-dir", str(folder), *common]) == 0
    expected = Task(
        files["content"],
        (
            StyleSet((files["mosaic"],), mask=files["left"], image_masks=(files["right"],)),
            StyleSet((files["waves"],), mask=files["right"]),
            StyleSet((files["other"],), mask=BACKGROUND),
        ),
    )
    from_png = read_provenance(out)
    run_json = json.loads((folder / "run.json").read_text())
    assert from_png["resolved_task"] == expected
    assert checked_provenance(run_json, "run.json")["resolved_task"] == expected
    assert run_json["task"] == from_png["task"]  # one record: run.json and the PNG's settings
    assert run_json["task"]["styles"][0]["mask"]["sha256"]  # the mask's content is recorded, not only its name

    again = tmp_path / "again.png"
    assert main(["run", "--from", str(out), "-o", str(again), "--steps", "3", "-q"]) == 0
    assert read_provenance(again)["resolved_task"] == expected  # --from with a changed setting keeps the masks
    assert read_provenance(again)["resolved"].steps == 3
    other = tmp_path / "changed.png"
    assert main(["run", "--from", str(out), "--background", files["mosaic"], "-o", str(other), "-q"]) == 0
    changed = read_provenance(other)["resolved_task"]
    assert [s.mask for s in changed.styles] == [files["left"], files["right"], BACKGROUND]
    assert changed.styles[2].images == (files["mosaic"],) and changed.styles[0].image_masks == (files["right"],)
    assert main(["info", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "what no mask covers" in shown and "style-image masks" in shown


# ------------------------------------------------------------------ region layouts in sweeps


def write_experiment(tmp_path, files, regions: str) -> str:
    path = tmp_path / "exp.toml"
    path.write_text(
        f'name = "layouts"\ncontent = "{files["content"]}"\nstyles = ["{files["other"]}"]\n'
        '[set]\nsize = 32\nsteps = 2\nweights = "standin"\n' + regions
    )
    return str(path)


REGIONS = """
[[regions]]
name = "halves"
styles = ["{mosaic}", "{waves}"]
masks = [["{left}", "{right}"], ["{labels}"]]

[[regions]]
name = "left-only"
styles = ["{mosaic}"]
masks = ["{left}"]
background = "{waves}"
"""


def test_a_mask_set_is_a_sweepable_input(files, tmp_path):
    exp = load(write_experiment(tmp_path, files, REGIONS.format(**files)))
    names = [spec.name for spec in exp.plan()]
    assert names == [
        "content__other__default",
        "content__halves-left__default",
        "content__halves-labels__default",
        "content__left-only__default",
    ]
    summary = run_sweep(exp, out=tmp_path / "out")
    assert sorted(summary.written) == sorted(names) and not summary.failed
    run = json.loads((tmp_path / "out" / "runs" / "content__halves-left__default" / "run.json").read_text())
    assert [s["mask"]["name"] for s in run["task"]["styles"]] == [files["left"], files["right"]]
    assert set(run["distances"]) == {"content", "style", *STYLE_LOSSES}  # measured under every style loss
    labels = json.loads((tmp_path / "out" / "runs" / "content__halves-labels__default" / "run.json").read_text())
    assert labels["task"]["styles"][1]["mask"] == {"labels": labels["task"]["styles"][0]["mask"]["labels"], "index": 1}
    # The experiment file the sweep wrote plans the same runs (a second sweep finds them done).
    again = load(tmp_path / "out" / "experiment.toml")
    assert [spec.name for spec in again.plan()] == names
    assert [spec.regions for spec in again.plan()] == [spec.regions for spec in exp.plan()]
    assert run_sweep(again, out=tmp_path / "out").skipped == len(names)


def test_a_bad_mask_stops_a_sweep_before_it_writes(files, tmp_path):
    black = save_mask(tmp_path / "black.png", np.zeros((32, 48)))
    bad = REGIONS.format(**{**files, "right": black})
    with pytest.raises(StylelabError, match="black everywhere"):
        run_sweep(load(write_experiment(tmp_path, files, bad)), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    three = '[[regions]]\nstyles = ["{mosaic}", "{waves}", "{other}"]\nmasks = ["{left}", "{right}"]\n'
    with pytest.raises(StylelabError, match="2 masks for 3 styles"):
        load(write_experiment(tmp_path, files, three.format(**files)))
    clash = '[[regions]]\nname = "other"\nstyles = ["{mosaic}"]\nmasks = ["{left}"]\n'
    with pytest.raises(StylelabError, match="both named 'other'"):
        load(write_experiment(tmp_path, files, clash.format(**files)))


# ------------------------------------------------------------------ measured with the real network (slow)

SIZE = (96, 72)
SIZES = {"gram": SIZE, "moments": SIZE, "swd": (64, 48)}  # swd's exact 1-D distances cost most per step
SOFT = 24  # px of the ramp between the two masks at 96 px (a quarter of the width)
MARGIN = 0.7  # a region's distance to its own style is at most this share of its distance to the other


@pytest.fixture(scope="module")
def painted(tubingen):
    """The photo's left half in mosaic, its right half in waves (soft masks), under each style loss."""
    photo = Image.open(tubingen).convert("RGB")
    styles = (demo.mosaic(128), demo.waves(128))
    done = {}

    def run(kind):
        if kind not in done:
            size = SIZES[kind]
            content = photo.resize(size)
            masks = [torch.from_numpy(m) for m in halves(*size, soft=size[0] // 4)]
            recipe = load_recipe("default", size=max(size), steps=60, style_loss=kind, style_weight=10.0)
            (result,) = paint([Task.of(content, list(styles), masks=masks)], recipe)
            assert result.status == "done", result.message
            done[kind] = (result.image, content, styles, masks)
        return done[kind]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("kind", STYLE_LOSSES)
def test_each_region_is_closer_to_its_own_style(painted, kind):
    """The measure is the loss the run optimised, each region's features weighted by its own mask."""
    image, content, styles, masks = painted(kind)
    d = {
        (r, s): metrics.task_distances(
            image, Task.of(content, [styles[s]], masks=[masks[r]]), size=max(image.size), kinds=(kind,)
        )
        for r in range(2)
        for s in range(2)
    }
    d = {key: v.by_loss[kind] for key, v in d.items()}
    for region in range(2):
        own, other = d[region, region], d[region, 1 - region]
        assert own < MARGIN * other, f"{kind}: region {region} {own:.3f} to its style, {other:.3f} to the other"


@pytest.mark.slow
def test_soft_masks_leave_no_seam(painted):
    """No spike of the image's gradient across the border (a pasted seam of the same halves has one)."""
    image = np.asarray(painted("gram")[0], np.float32) / 255
    w = image.shape[1]

    def seam(img):
        steps = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))  # per column boundary
        border = steps[w // 2 - 3 : w // 2 + 2].max()
        inside = np.concatenate([steps[6 : w // 2 - SOFT // 2], steps[w // 2 + SOFT // 2 : -6]]).mean()
        return border / inside

    assert seam(image) < 1.3  # measured 1.03 (hard masks: 0.96)
    pasted = np.concatenate([image[:, : w // 2], image[::-1, w // 2 :]], axis=1)  # the right half upside down
    assert seam(pasted) > 1.6  # measured 2.57


# ------------------------------------------------------------------ the examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_example_masks_are_made_from_the_photo(tmp_path):
    """examples/make_region_masks.py makes the masks that ship, and the example sweeps plan with them."""
    spec = importlib.util.spec_from_file_location("make_region_masks", EXAMPLES / "make_region_masks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for path in module.make_masks(tmp_path):
        made, shipped = np.asarray(Image.open(path)), np.asarray(Image.open(EXAMPLES / "masks" / path.name))
        assert np.array_equal(made, shipped), path.name
    cup, table = (np.asarray(Image.open(tmp_path / n), np.int32) for n in ("cup.png", "table.png"))
    assert np.array_equal(cup + table, np.full_like(cup, 255))  # soft edges, still a partition of the photo
    assert 0.3 < (cup > 127).mean() < 0.7 and ((cup > 0) & (cup < 255)).mean() > 0.02
    regions = load(EXAMPLES / "regions.toml").plan()
    assert [s.name for s in regions] == [
        "coffee__edges-cup-hard__default",
        "coffee__edges-cup__default",
        "coffee__labels__default",
        "coffee__cup-only__default",
        "coffee__cup-on-hubble__default",
    ]
    losses = load(EXAMPLES / "style-losses.toml").plan()
    assert sorted({s.recipe.style_loss for s in losses}) == sorted(STYLE_LOSSES) and len(losses) == 6
