"""The fast engine behind the Engine protocol: the model's own pictures, checks before events, one ending per item."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from stylelab.engine import EngineCache, make_engine
from stylelab.errors import ImageError, MemoryLimitError, RecipeError, StylelabError
from stylelab.events import Done, Failed, Started, Step
from stylelab.fast.engine import FastEngine, preview
from stylelab.recipes import Recipe
from stylelab.task import Task
from tests.conftest import gradient_image

FAST = Recipe(engine="fast", size=96, device="cpu")


@pytest.fixture
def engine(fast_model) -> FastEngine:
    return FastEngine(model=fast_model)


def _run(engine, tasks, recipe=FAST, sinks=(), stop=None):
    events = []
    results = engine.run(engine.prepare(tasks, recipe), [events.append, *sinks], stop)
    return results, events


def _same(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a), np.asarray(b))


def test_make_engine_gives_the_fast_engine_with_the_attributes_runs_read():
    engine = make_engine(FAST)
    assert isinstance(engine, FastEngine) and engine.accepts(FAST) and not engine.accepts(Recipe())
    assert engine.device.type == "cpu" and engine.precision == "fp32" and engine.config["engine"] == "fast"
    with pytest.raises(RecipeError, match="recipe asks for engine 'optimise'"):
        engine.prepare([Task.of(gradient_image(), [gradient_image(seed=1)])], Recipe())


@pytest.mark.parametrize("colour", ["none", "luminance", "histogram"])
def test_a_run_is_the_models_own_picture(engine, fast_model, small_tubingen, small_starry, small_scream, colour):
    recipe = FAST.replace(preserve_color=colour, strength=0.7)
    weights = [0.3, 0.7]
    (res,), _ = _run(engine, [Task.of(small_tubingen, [small_starry, small_scream], weights=weights)], recipe)
    expected = fast_model.paint(
        small_tubingen, [small_starry, small_scream], weights, size=96, strength=0.7, preserve_color=colour
    )
    assert res.ok and _same(res.image, expected)


def test_events_and_result_follow_the_protocol(engine, small_tubingen, small_starry):
    tasks = [Task.of(small_tubingen, [small_starry], label="a"), Task.of(gradient_image(60, 90), [small_starry])]
    results, events = _run(engine, tasks)
    kinds = [(type(e).__name__, e.item) for e in events]
    assert kinds == [("Started", 0), ("Done", 0), ("Started", 1), ("Done", 1)]
    started = events[0]
    assert started.terms == () and started.total_steps == 0 and started.size == (96, 72) and started.label == "a"
    assert not any(isinstance(e, Step) for e in events)
    for res, size in zip(results, [(96, 72), (64, 96)]):
        assert res.status == "done" and res.image.size == size and res.steps == 0 and res.history == []
        assert res.device == "cpu" and res.precision == "fp32" and res.terms == () and res.losses == {}
        assert res.peak_memory > 0 and 0 < res.elapsed < 60 and res.task is not None
    assert events[1].result is results[0]


def test_the_model_is_loaded_once_and_style_vectors_are_reused(small_tubingen, small_starry, monkeypatch):
    engine = FastEngine(threads=1)
    cache = EngineCache()
    assert cache.get(FAST) is cache.get(FAST.replace(size=64, strength=0.5))
    calls = []
    task = Task.of(small_tubingen, [small_starry])
    _run(engine, [task])
    model = engine.model()
    original = model.style_vector
    monkeypatch.setattr(model, "style_vector", lambda *a, **k: calls.append(1) or original(*a, **k))
    _run(engine, [task, task], FAST.replace(strength=0.5))
    assert engine.builds == 1 and engine.model() is model and calls == []


def test_regions_are_painted_whole_and_composited_by_their_masks(engine, fast_model, small_starry, small_scream):
    content = gradient_image(96, 64, seed=5)
    left = Image.new("L", (96, 64), 0)
    left.paste(255, (0, 0, 48, 64))
    top_right = Image.new("L", (96, 64), 0)
    top_right.paste(255, (48, 0, 96, 32))
    (res,), _ = _run(engine, [Task.of(content, [small_starry, small_scream], masks=[left, top_right])])
    a = np.asarray(res.image, dtype=int)
    starry = np.asarray(fast_model.paint(content, small_starry, size=96), dtype=int)
    scream = np.asarray(fast_model.paint(content, small_scream, size=96), dtype=int)
    plain = np.asarray(content, dtype=int)
    # away from the masks' edges (bilinear resizing softens one pixel), each part is its own picture
    assert np.abs(a[:, :46] - starry[:, :46]).max() <= 1
    assert np.abs(a[:30, 50:] - scream[:30, 50:]).max() <= 1
    assert np.abs(a[34:, 50:] - plain[34:, 50:]).max() <= 1  # no mask: the content stays
    assert np.abs(starry[:30, 50:] - scream[:30, 50:]).mean() > 10  # the parts really differ


def test_style_image_masks_are_refused_in_one_line(engine, small_tubingen, small_starry):
    from stylelab.task import StyleSet

    task = Task(small_tubingen, (StyleSet((small_starry,), image_masks=(Image.new("L", (8, 8), 255),)),))
    with pytest.raises(ImageError, match="style-image masks: the fast model reads the whole style image"):
        engine.prepare([task], FAST)


def test_sizes_the_model_cannot_paint_are_refused_before_any_event(engine, small_starry):
    thin = gradient_image(300, 10)
    with pytest.raises(ImageError, match=r"becomes 96x3 at 96 px, but the fast model needs 16 px.*--size 480"):
        engine.prepare([Task.of(thin, [small_starry])], FAST)
    with pytest.raises(RecipeError, match="at most 4096 px"):
        engine.prepare([Task.of(gradient_image(), [small_starry])], FAST.replace(size=5000))


def test_a_run_that_would_not_fit_in_memory_is_refused_naming_a_size_that_fits(engine, small_tubingen, small_starry):
    task = Task.of(small_tubingen, [small_starry])
    plan = engine.prepare([task], FAST.replace(size=2048), memory_free=8 << 30)
    assert plan.estimate.total < 2 << 30
    with pytest.raises(MemoryLimitError, match=r"needs about .* GiB at --size 2048.*--size (\d+) fits") as err:
        engine.prepare([task], FAST.replace(size=2048), memory_free=600 << 20)
    fits = int(err.value.args[0].split("--size ")[-1].split()[0])
    engine.prepare([task], FAST.replace(size=fits), memory_free=600 << 20)  # the size it names does fit


def test_bad_inputs_are_the_plans_one_line_errors(engine, small_tubingen, small_starry, tmp_path):
    with pytest.raises(ImageError, match="no such file: .*missing.jpg"):
        engine.prepare([Task.of(tmp_path / "missing.jpg", [small_starry])], FAST)
    (tmp_path / "text.jpg").write_text("not a picture")
    with pytest.raises(ImageError, match="style") as err:
        engine.prepare([Task.of(small_tubingen, [tmp_path / "text.jpg"])], FAST)
    assert "\n" not in str(err.value)


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("on", [Started, Done])
def test_a_failing_sink_gives_every_sink_one_ending_then_raises(engine, small_tubingen, small_starry, on):
    def bad(event):
        if isinstance(event, on):
            raise Boom("sink broke")

    seen = []
    with pytest.raises(Boom):
        engine.run(engine.prepare([Task.of(small_tubingen, [small_starry])], FAST), [bad, seen.append])
    endings = [e for e in seen if isinstance(e, (Done, Failed))]
    assert len(endings) == 1
    if on is Started:  # nothing painted: the item ends as an error
        assert isinstance(endings[0], Failed) and endings[0].kind == "error" and "sink broke" in endings[0].reason
    else:  # the others got their Done before the error is raised
        assert isinstance(endings[0], Done) and endings[0].result.image is not None


def test_an_error_in_the_model_ends_the_item_then_is_raised(engine, small_tubingen, small_starry, monkeypatch):
    monkeypatch.setattr(engine.model(), "stylize", lambda *a, **k: (_ for _ in ()).throw(Boom("model broke")))
    events = []
    with pytest.raises(Boom):
        engine.run(engine.prepare([Task.of(small_tubingen, [small_starry])], FAST), [events.append])
    assert [type(e) for e in events] == [Started, Failed]
    assert events[1].kind == "error" and events[1].reason == "model broke"


def test_running_out_of_memory_is_a_one_line_error(engine, small_tubingen, small_starry, monkeypatch):
    def no_memory(*a, **k):
        raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for 1234 bytes")

    monkeypatch.setattr(engine.model(), "stylize", no_memory)
    events = []
    with pytest.raises(MemoryLimitError, match="lower --size"):
        engine.run(engine.prepare([Task.of(small_tubingen, [small_starry])], FAST), [events.append])
    assert isinstance(events[-1], Failed) and events[-1].kind == "error"


def test_ctrl_c_interrupts_the_item_and_those_after_it(engine, small_tubingen, small_starry, monkeypatch):
    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.model(), "stylize", interrupt)
    task = Task.of(small_tubingen, [small_starry])
    results, events = _run(engine, [task, task])
    assert [r.status for r in results] == ["interrupted", "interrupted"]
    endings = [(e.item, e.kind) for e in events if isinstance(e, Failed)]
    assert endings == [(0, "interrupted"), (1, "interrupted")]


def test_stop_and_a_callback_returning_true_cancel(engine, small_tubingen, small_starry):
    task = Task.of(small_tubingen, [small_starry])
    stop = threading.Event()
    stop.set()
    results, events = _run(engine, [task, task], stop=stop)
    assert [r.status for r in results] == ["cancelled"] * 2 and all(r.image is None for r in results)
    assert [type(e) for e in events] == [Failed, Failed] and {e.kind for e in events} == {"cancelled"}

    results, events = _run(engine, [task, task], sinks=[lambda e: isinstance(e, Started) and e.item == 0])
    assert [r.status for r in results] == ["cancelled", "done"]
    assert [(type(e).__name__, e.item) for e in events] == [
        ("Started", 0), ("Failed", 0), ("Started", 1), ("Done", 1),
    ]  # fmt: skip


def test_preview_is_one_call_for_the_studio(engine, fast_model, small_tubingen, small_starry):
    res = preview(small_tubingen, small_starry, size=80, strength=0.5, engine=engine)
    assert res.ok and res.recipe.engine == "fast" and res.recipe.size == 80
    assert _same(res.image, fast_model.paint(small_tubingen, small_starry, size=80, strength=0.5))
    with pytest.raises(StylelabError):
        preview(small_tubingen, small_starry, size=80, strength=2, engine=engine)
