"""Progress sinks: the terminal bar and the notebook display (with a stand-in for IPython)."""

from __future__ import annotations

import io

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
