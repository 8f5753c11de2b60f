"""Running sweeps: batches, resuming, stopping, batched == single, folders from records."""

from __future__ import annotations

import json
import re
import threading

import numpy as np
import pytest
import torch

from stylelab.engine import stylize_batch, stylize_one
from stylelab.errors import StylelabError
from stylelab.events import Done
from stylelab.experiments import build
from stylelab.memory import image_bytes
from stylelab.recipes import load_recipe
from stylelab.records import RunRecorder
from stylelab.runs import PARTIAL, RunWriter, is_complete, load_run, write_run
from stylelab.sweep import LocalExecutor, batch_limit, plan_batches, run_sweep

TINY = {"size": 32, "steps": 2, "save_every": 1}


def _exp(inputs, **kw):
    args = dict(
        name="t",
        contents=[str(inputs / "content.png")],
        styles=[str(inputs / "styles" / "mosaic.png"), str(inputs / "styles" / "waves.png")],
        recipes=["default"],
        settings=dict(TINY),
        grid={"optimizer": ["adam", "lbfgs"]},
    )
    args.update(kw)
    return build(**args)


class CountingExecutor(LocalExecutor):
    def __init__(self):
        super().__init__()
        self.batches = []

    def run(self, batches, deliver, *, events=None, stop):
        self.batches.extend([spec.name for spec in b.runs] for b in batches)
        super().run(batches, deliver, events=events, stop=stop)


def test_batches_group_runs_that_differ_only_in_style(inputs):
    specs = _exp(inputs, styles=[str(inputs / "styles")]).plan()
    batches = plan_batches(specs, 2)
    assert [len(b.runs) for b in batches] == [2, 1, 2, 1]
    for b in batches:
        assert len({(s.content, s.recipe) for s in b.runs}) == 1
    assert [len(b.runs) for b in plan_batches(specs, 8)] == [3, 3]


def test_memory_estimate_grows_with_size_and_limits_the_batch(inputs):
    r = load_recipe("default")
    assert image_bytes(r, 512, 512) > 3.5 * image_bytes(r, 256, 256)
    small = r.replace(size=64)
    per = image_bytes(small, 64, 43)
    assert batch_limit(small, str(inputs / "content.png"), free=int(per * 2 * 3.5)) == 3
    assert batch_limit(small, str(inputs / "content.png"), requested=2, free=1 << 40) == 2
    assert batch_limit(small, str(inputs / "content.png"), free=1) == 1


def test_sweep_resumes_and_redoes_only_what_is_missing(tmp_path, inputs):
    exp = _exp(inputs)
    out = tmp_path / "exp"
    ex = CountingExecutor()
    summary = run_sweep(exp, out=out, executor=ex)
    names = [s.name for s in exp.plan()]
    assert summary.written == names and summary.skipped == 0
    assert ex.batches == [names[0:2], names[2:4]]  # two styles optimised together, per optimiser
    for name in names:
        run = load_run(out / "runs" / name)
        assert run.status == "done"
        assert run.info["batch_size"] == 2 and run.info["sweep"]["optimizer"] in ("adam", "lbfgs")
        assert run.info["seconds_per_step"] > 0 and run.info["peak_memory"] > 0
        assert 0 < run.info["distances"]["content"] < 2 and run.info["distances"]["style"] > 0
        assert [s for s, _ in run.snapshots()] == [0, 1, 2]
    assert (out / "experiment.toml").is_file()

    # Nothing to do the second time.
    ex = CountingExecutor()
    assert run_sweep(exp, out=out, executor=ex).skipped == 4 and ex.batches == []

    # A deleted run and a run killed while being written (only its .partial left) run again, alone.
    import shutil

    shutil.rmtree(out / "runs" / names[0])
    killed = out / "runs" / names[3]
    killed.rename(killed.with_name(killed.name + PARTIAL))
    (killed.with_name(killed.name + PARTIAL) / "run.json").unlink()
    ex = CountingExecutor()
    summary = run_sweep(exp, out=out, executor=ex)
    assert sorted(summary.written) == [names[0], names[3]]
    assert ex.batches == [[names[0]], [names[3]]]
    assert all(is_complete(out / "runs" / n) for n in names)
    assert not list((out / "runs").glob(f"*{PARTIAL}"))


def test_changed_settings_are_not_silently_skipped(tmp_path, inputs):
    out = tmp_path / "exp"
    run_sweep(_exp(inputs, grid={}), out=out)
    changed = _exp(inputs, grid={}, settings={**TINY, "style_weight": 9.0})
    with pytest.raises(StylelabError, match="other settings"):
        run_sweep(changed, out=out)
    summary = run_sweep(changed, out=out, redo=True)
    assert len(summary.written) == 2
    assert load_run(out / "runs" / summary.written[0]).recipe.style_weight == 9.0


def test_stop_saves_finished_runs_and_the_next_sweep_continues(tmp_path, inputs):
    exp = _exp(inputs)
    out = tmp_path / "exp"
    stop = threading.Event()

    def stop_after_first_batch(event):
        if isinstance(event, Done) and event.item == 1:
            stop.set()

    summary = run_sweep(exp, out=out, events=stop_after_first_batch, stop=stop)
    assert summary.interrupted and len(summary.written) == 2 and summary.remaining == 2
    summary = run_sweep(exp, out=out)
    assert summary.skipped == 2 and len(summary.written) == 2 and not summary.interrupted


def test_a_run_cut_short_is_not_written(tmp_path, inputs):
    exp = _exp(inputs, grid={}, settings={**TINY, "steps": 50})
    out = tmp_path / "exp"
    stop = threading.Event()
    summary = run_sweep(exp, out=out, events=lambda e: stop.set() if getattr(e, "step", 0) == 3 else None, stop=stop)
    assert summary.written == [] and summary.interrupted
    assert not [p for p in (out / "runs").iterdir()]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd"])
def test_batched_equals_single(inputs, optimizer):
    recipe = load_recipe("default", size=48, steps=6, optimizer=optimizer, seed=3)
    content = inputs / "content.png"
    styles = [inputs / "styles" / "mosaic.png", inputs / "styles" / "waves.png", inputs / "styles" / "hubble.png"]
    batched = stylize_batch(content, [[s] for s in styles], recipe)
    for style, together in zip(styles, batched):
        alone = stylize_one(content, [style], recipe)
        a = torch.tensor([[r["content"], r["style"]] for r in alone.history])
        b = torch.tensor([[r["content"], r["style"]] for r in together.history])
        # Float sums in another order drift a little over the steps; another image's
        # curvature or moments leaking in would change the losses by far more.
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-5), (a, b)
        # Pixels in 8-bit levels. Float noise moves a few pixels by a few levels (Adam divides
        # by the root of tiny second moments, L-BFGS compounds its steps); an image following
        # another's path would differ everywhere by tens of levels.
        pixels = [np.asarray(img, dtype=np.float32) for img in (alone.image, together.image)]
        diff = torch.from_numpy(pixels[0] - pixels[1])
        assert diff.abs().mean() < 1.5, diff.abs().mean()
        assert (diff.abs() > 8).float().mean() < 0.01


def test_write_run_gives_the_same_folder_as_run_writer(tmp_path, inputs):
    recipe = load_recipe("default", size=32, steps=3, save_every=1)
    content, style = str(inputs / "content.png"), str(inputs / "styles" / "waves.png")
    recorder = RunRecorder()
    stylize_one(content, [style], recipe, callbacks=[recorder, RunWriter(tmp_path / "streamed")])
    write_run(tmp_path / "written", recorder.record)
    a, b = tmp_path / "streamed", tmp_path / "written"
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*"))
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*"))
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    assert (a / "recipe.toml").read_text() == (b / "recipe.toml").read_text()
    for snap in (a / "snapshots").iterdir():
        assert snap.read_bytes() == (b / "snapshots" / snap.name).read_bytes()
    ia, ib = json.loads((a / "run.json").read_text()), json.loads((b / "run.json").read_text())
    for key in ("status", "steps", "losses", "recipe", "content", "styles", "task", "precision"):
        assert ia[key] == ib[key]
    # The record survives pickling, as it must to come back from another process.
    import pickle

    assert pickle.loads(pickle.dumps(recorder.record)).history == recorder.record.history


def test_a_worker_can_run_a_batch_from_image_bytes(inputs):
    import dataclasses

    from stylelab.sweep import Batch, execute_batch

    spec = _exp(inputs, grid={}, settings={"size": 32, "steps": 1}).plan()[0]
    data = {"/elsewhere/c.png": open(spec.content, "rb").read(), "/elsewhere/s.png": open(spec.style, "rb").read()}
    remote = dataclasses.replace(spec, content="/elsewhere/c.png", style="/elsewhere/s.png")
    (record,) = execute_batch(Batch(remote.content, remote.recipe, [remote]), inputs=data)
    assert record.status == "done" and record.content == "/elsewhere/c.png" and record.styles == ["/elsewhere/s.png"]
    assert record.extra["distances"]["style"] > 0


def test_a_sweep_checks_every_input_before_it_writes_anything(inputs, tmp_path):
    broken = tmp_path / "zz-broken.png"  # sorted last: its run would come up third
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    exp = _exp(
        inputs, styles=[str(inputs / "styles" / "mosaic.png"), str(inputs / "styles" / "waves.png"), str(broken)]
    )
    out = tmp_path / "exp"
    with pytest.raises(StylelabError, match="zz-broken.png"):
        run_sweep(exp, out=out)
    assert not out.exists()  # no experiment.toml, no runs/, no finished run


def test_a_sweep_refuses_a_run_that_would_not_fit_in_memory_before_any_run(inputs, tmp_path, monkeypatch):
    from stylelab import memory

    monkeypatch.setattr(memory, "available_memory", lambda device="auto": 64 * 2**20)
    out = tmp_path / "exp"
    with pytest.raises(StylelabError, match="needs about"):
        run_sweep(_exp(inputs), out=out)
    assert not out.exists()


# ------------------------------------------------------------------ the sweep command


def _sweep_cli(capsys, *argv) -> tuple[int, str, str]:
    from stylelab.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cli_args(inputs, out) -> list:
    return [
        inputs / "content.png", "--styles", inputs / "styles" / "mosaic.png", inputs / "styles" / "waves.png",
        "--recipes", "default", "gatys", "--weights", "standin", "--size", "32", "--steps", "3", "-o", out,
    ]  # fmt: skip


def test_a_sweep_without_a_terminal_prints_a_line_per_run(capsys, inputs, tmp_path):
    """capsys's stderr is no terminal (a log, CI, a cluster job): a line per finished run, no bar."""
    out = tmp_path / "exp"
    code, _, err = _sweep_cli(capsys, "sweep", *_cli_args(inputs, out), "--set", "style_weight=2,10")
    assert code == 0, err
    runs = [line for line in err.splitlines() if line.startswith("[")]
    assert len(runs) == 8
    pattern = r"\[(\d)/8\] content__\w+__\w+__style_weight-\d+ done in \d+\.\d s \(batch of 2; content \S+ style \S+\)"
    for k, line in enumerate(runs, 1):
        assert re.match(pattern, line) and line.startswith(f"[{k}/8]"), line
        assert re.search(r" · sweep eta \d+:\d\d$" if k < 8 else r" · sweep took \d+:\d\d$", line), line
    assert "\x1b[" not in err and "━" not in err  # no bar drawn into a log
    # gatys counts its weights in jcjohnson's units (its own style weight: 100): 2 is named.
    note = next(line for line in err.splitlines() if line.startswith("note:"))
    assert "style_weight 2 for gatys (its own: 100, jcjohnson units; 2 runs)" in note and "10 for gatys" not in note
    # Again: nothing to run, no bar and no 0/0.
    code, _, err = _sweep_cli(capsys, "sweep", *_cli_args(inputs, out), "--set", "style_weight=2,10")
    assert code == 0 and "all 8 runs are finished; nothing to run" in err and "0/0" not in err


def test_dry_run_agrees_with_the_real_run(capsys, inputs, tmp_path):
    out = tmp_path / "exp"
    args = [*_cli_args(inputs, out), "--budget", "0.5", "--batch", "2"]
    args[args.index("--steps") : args.index("--steps") + 2] = []  # a budget goes without --steps
    code, listing, err = _sweep_cli(capsys, "sweep", *args, "--dry-run")
    assert code == 0, err
    assert not out.exists()  # nothing written
    planned = re.findall(r"batch of (\d+) \((\d+) steps, (\d+) px\): (.+)", listing)
    assert [(n, steps) for n, steps, _, _ in planned] == [("2", "100"), ("2", "500")]  # default 200, gatys 1000
    code, _, err = _sweep_cli(capsys, "sweep", *args)
    assert code == 0, err
    for _, steps, size, names in planned:
        names = names.split(", ")
        for name in names:
            info = json.loads((out / "runs" / name / "run.json").read_text())
            assert info["batch_runs"] == names and info["steps"] == int(steps) and info["recipe"]["size"] == int(size)
    code, listing, _ = _sweep_cli(capsys, "sweep", *args, "--dry-run")
    assert code == 0 and "4 runs, 4 finished, 0 batches to run" in listing
    # The same refusals: a budget with --steps, a Ray option without Ray.
    code, _, err = _sweep_cli(capsys, "sweep", *args, "--steps", "5", "--dry-run")
    assert code == 2 and "--budget scales each recipe's own steps" in err
    code, _, err = _sweep_cli(capsys, "sweep", *args, "--num-cpus", "2", "--dry-run")
    assert code == 2 and "--num-cpus goes with --executor ray" in err


def test_runs_that_fail_are_reported_to_on_failed_not_on_run(inputs, tmp_path):
    from stylelab.sweep import _error_record

    class Failing(LocalExecutor):
        def run(self, batches, deliver, *, events=None, stop):
            for batch in batches:
                for spec in batch.runs:
                    deliver(spec, _error_record(spec, batch, "the worker ran out of disk"))

    written, failed = [], []
    exp = _exp(inputs, grid={})
    summary = run_sweep(
        exp,
        out=tmp_path / "exp",
        executor=Failing(),
        on_run=lambda spec, record: written.append(spec.name),
        on_failed=lambda spec, record: failed.append((spec.name, record.message)),
    )
    names = [s.name for s in exp.plan()]
    assert written == [] and failed == [(n, "the worker ran out of disk") for n in names]
    assert summary.failed == failed
