"""Progress sinks: the terminal bar and the notebook display (with a stand-in for IPython)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from rich.console import Console

from stylelab import progress
from stylelab.engine import Result
from stylelab.events import Done, Failed, Snapshot, Started, Step
from stylelab.recipes import Recipe


class FakeHandle:
    def __init__(self, log: list, name: str, first):
        self.log, self.name = log, name
        self.log.append((name, "display", first))

    def update(self, obj, raw: bool = False):
        self.log.append((self.name, "update", obj))


class FakeDisplay:
    """IPython.display.display's contract: display(obj, raw=..., display_id=True) -> a handle with update()."""

    def __init__(self):
        self.log: list = []
        self.handles: list[FakeHandle] = []

    def __call__(self, obj, raw: bool = False, display_id: bool = False):
        assert display_id is True
        handle = FakeHandle(self.log, f"h{len(self.handles)}", obj)
        self.handles.append(handle)
        return handle


def _events(image: Image.Image):
    recipe = Recipe(steps=4, size=32)
    result = Result(image, recipe, [{"step": 4, "elapsed": 2.0, "content": 1, "style": 2, "tv": 0, "total": 3}])
    losses = {"content": 0.5, "style": 0.25, "tv": 0.0, "total": 0.75}
    return [
        Started(0, recipe, 4, (32, 24), "cpu"),
        Step(0, 1, 4, losses, 1.0),
        Step(1, 1, 4, losses, 1.0),  # another batch item: not this display's
        Step(0, 2, 4, losses, 2.0),
        Snapshot(0, 2, image, losses),
        Done(0, result),
    ]


def test_notebook_display_updates_text_and_picture_in_place():
    fake = FakeDisplay()
    nb = progress.NotebookDisplay(display=fake)
    image = Image.new("RGB", (32, 24), "red")
    for event in _events(image):
        nb(event)
    assert len(fake.handles) == 2  # one text line and one picture, updated in place
    texts = [obj["text/plain"] for name, kind, obj in fake.log if name == "h0" and kind == "update"]
    assert texts == [
        "step 1/4  eta 3s  content 0.5  style 0.25  tv 0  total 0.75",
        "step 2/4  eta 2s  content 0.5  style 0.25  tv 0  total 0.75",
    ]
    pictures = [obj for name, kind, obj in fake.log if name == "h1" and kind == "update"]
    assert pictures == [image, image]  # the snapshot, then the result


def test_notebook_display_reports_failure():
    fake = FakeDisplay()
    nb = progress.NotebookDisplay(display=fake)
    nb(Failed(0, 3, "diverged at step 3: lower --lr", "diverged"))
    assert fake.log[-1] == ("h0", "update", {"text/plain": "diverged: diverged at step 3: lower --lr"})


def test_in_notebook_is_false_outside_jupyter():
    assert progress.in_notebook() is False


def test_progress_bar_shows_steps_and_losses():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    image = Image.new("RGB", (32, 24))
    with progress.ProgressBar(console=console) as bar:
        for event in _events(image):
            bar(event)
        bar(Failed(0, 2, "x", "diverged"))
    text = buf.getvalue()
    assert "2/4" in text and "diverged" in text


def test_stylize_uses_the_notebook_display_in_a_notebook(monkeypatch, tiny_content, tiny_style):
    import stylelab

    fake = FakeDisplay()
    real = progress.NotebookDisplay
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "NotebookDisplay", lambda: real(display=fake))
    result = stylelab.stylize(tiny_content, tiny_style, size=32, steps=2, device="cpu")
    assert result.ok
    updates = [obj for name, kind, obj in fake.log if kind == "update"]
    assert any(isinstance(o, dict) and o["text/plain"].startswith("step 2/2") for o in updates)
    assert updates[-1] is result.image  # the result shown inline at the end
    assert result._repr_png_().startswith(b"\x89PNG")  # and the returned Result displays as its image


def test_notebook_display_shows_preview_images():
    """Between snapshots (or with none at all) the live picture follows the run's Preview events."""
    from stylelab.events import Preview

    fake = FakeDisplay()
    nb = progress.NotebookDisplay(display=fake)
    first, second = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    for event in (Preview(0, 3, first), Preview(1, 3, second), Preview(0, 6, second)):
        nb(event)
    pictures = [obj for name, kind, obj in fake.log if name == "h1" and kind == "update"]
    assert pictures == [first, second]  # item 1 belongs to another display


def test_log_lines_every_n_steps_and_the_ending():
    lines: list[str] = []
    log = progress.LogLines(2, write=lines.append)
    recipe = Recipe(steps=5, size=32)
    log(Started(0, recipe, 5, (32, 24), "cpu", "first"))
    for step in range(1, 6):
        log(Step(0, step, 5, {"content": 0.5, "total": 1.0}, 0.5 * step))
    log(Failed(0, 5, "lower --lr", "diverged"))
    assert lines == [
        "first: step 2/5  content 0.5  total 1  0.5 s/step  eta 0:02",
        "first: step 4/5  content 0.5  total 1  0.5 s/step  eta 0:00",
        "first: step 5/5  content 0.5  total 1  0.5 s/step  eta 0:00",
        "first: diverged at step 5: lower --lr",
    ]


# ------------------------------------------------------------------ a sweep's progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _specs(n: int, steps: int = 10):
    from stylelab.experiments import RunSpec

    recipe = Recipe(steps=steps, size=32)
    return [RunSpec(f"run{i}", "c.png", f"s{i}.png", recipe, {}) for i in range(n)]


def _record(spec, batch, elapsed, status="done", distances=(0.52, 0.21)):
    from stylelab.records import RunRecord

    extra = {"batch_size": len(batch), "batch_runs": [s.name for s in batch]}
    if distances:
        extra["distances"] = {"content": distances[0], "style": distances[1]}
    return RunRecord(spec.recipe, "c.png", [spec.style], status, elapsed=elapsed, extra=extra)


def test_sweep_clock_counts_a_batch_as_done_when_its_first_run_comes_back():
    clock = FakeClock()
    eta = progress.SweepClock({f"run{i}": 1.0 for i in range(6)}, clock)
    assert eta.left() is None  # nothing to go by yet
    clock.now += 13
    eta.finish(["run0", "run0", "run1", "run2"])  # the first run of a batch of three
    assert eta.left() == pytest.approx(13.0)  # three of six took 13 s: 13 s to go (not 65 s, not 1 s)
    clock.now += 4
    assert eta.left() == pytest.approx(9.0)  # counting down between runs
    clock.now += 20
    assert eta.left() == 0.0  # late, never negative


def test_sweep_clock_weighs_runs_by_their_work():
    clock = FakeClock()
    short, long = Recipe(steps=100, size=64), Recipe(steps=1000, size=64)
    work = {"short": progress.run_work(short), "long": progress.run_work(long)}
    assert work["long"] == pytest.approx(10 * work["short"])
    assert progress.run_work(short.replace(size=128)) == pytest.approx(4 * work["short"])
    assert progress.run_work(short.replace(scales=2)) == pytest.approx(1.5 * work["short"])
    eta = progress.SweepClock(work, clock)
    clock.now += 10
    eta.finish(["short"])
    assert eta.left() == pytest.approx(100.0)  # ten times the work still to do


def test_sweep_lines_one_per_finished_run_with_the_sweeps_eta():
    from stylelab.records import RunRecord

    clock, lines = FakeClock(), []
    specs = _specs(6)
    with progress.SweepProgress(specs, lines=True, write=lines.append, clock=clock) as sweep_progress:
        clock.now += 13
        for spec in specs[:3]:
            sweep_progress.run_finished(spec, _record(spec, specs[:3], 12.34))
        clock.now += 11
        sweep_progress.run_finished(specs[3], _record(specs[3], specs[3:4], 5.0, "diverged", distances=None))
        failed = RunRecord(specs[4].recipe, "c.png", ["s4.png"], "error", "the style image is too small")
        sweep_progress.run_failed(specs[4], failed)
        clock.now += 6
        sweep_progress.run_finished(specs[5], _record(specs[5], specs[5:], 6.0))
    assert lines == [
        "[1/6] run0 done in 12.3 s (batch of 3; content 0.52 style 0.21) · sweep eta 0:13",
        "[2/6] run1 done in 12.3 s (batch of 3; content 0.52 style 0.21) · sweep eta 0:13",
        "[3/6] run2 done in 12.3 s (batch of 3; content 0.52 style 0.21) · sweep eta 0:13",
        "[4/6] run3 diverged in 5.0 s · sweep eta 0:12",  # 24 s for 4 of 6
        "[5/6] run4 failed: the style image is too small · sweep eta 0:05",  # 24 s for 5 of 6
        "[6/6] run5 done in 6.0 s (content 0.52 style 0.21) · sweep took 0:30",
    ]


def test_sweep_lines_with_print_every_add_each_runs_steps():
    lines = []
    sweep_progress = progress.SweepProgress(2, print_every=2, write=lines.append)
    recipe = Recipe(steps=4, size=32)
    sweep_progress(Started(0, recipe, 4, (32, 24), "cpu", "run0"))
    for step in range(1, 5):
        sweep_progress(Step(0, step, 4, {"total": 1.0}, 0.1 * step))
    assert [line.split("  ")[0] for line in lines] == ["run0: step 2/4", "run0: step 4/4"]


def test_sweep_bar_shows_runs_done_with_the_sweeps_eta():
    buf = io.StringIO()
    clock = FakeClock()
    specs = _specs(6)
    console = Console(file=buf, force_terminal=False, width=100)
    with progress.SweepProgress(specs, console=console, description="study: 6 runs", clock=clock) as bar:
        recipe = specs[0].recipe
        for i in range(3):
            bar(Started(i, recipe, 10, (32, 24), "cpu", specs[i].name))
            bar(Step(i, 10, 10, {"content": 1.0, "style": 2.0, "total": 3.0}, 1.0))
        clock.now += 13
        for i, spec in enumerate(specs[:3]):
            bar(Done(i, Result(None, recipe, [])))
            bar.run_finished(spec, _record(spec, specs[:3], 13.0))
    text = buf.getvalue()
    assert "study: 6 runs" in text and "3/6" in text and "0:00:13" in text  # not rich's "0:00:01"
    assert "0/0" not in text and "run0" not in text  # each run's bar goes when it ends


def test_sweep_bar_starts_when_runs_come_back_without_events():
    """A batch that fails before its first step sends no Started: the bar still counts it."""
    buf = io.StringIO()
    specs = _specs(1)
    with progress.SweepProgress(specs, console=Console(file=buf, force_terminal=False, width=100)) as bar:
        bar.run_failed(specs[0], _record(specs[0], specs, None, "error", None))
    assert "1/1" in buf.getvalue()
