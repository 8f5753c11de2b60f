"""The engine's mechanics on tiny images: events, cancelling, divergence, seeds, inits, scales, styles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stylelab import engine, objective, optimizers
from stylelab.engine import scale_sizes, stylize_batch, stylize_one
from stylelab.events import Done, Failed, Snapshot, Started, Step, for_item
from stylelab.recipes import Recipe

pytestmark = pytest.mark.slow  # real weights, but tiny images

TINY = dict(size=32, steps=4, device="cpu")


def recipe(**changes) -> Recipe:
    return Recipe(**{**TINY, **changes})


class Recorder:
    def __init__(self, stop_at: int | None = None):
        self.events = []
        self.stop_at = stop_at

    def __call__(self, event):
        self.events.append(event)
        return self.stop_at is not None and isinstance(event, Step) and event.step == self.stop_at

    def kinds(self) -> list[str]:
        return [type(e).__name__ + (f"@{e.step}" if hasattr(e, "step") else "") for e in self.events]


def arr(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int16)


# ------------------------------------------------------------------ events


def test_events_go_to_every_callback_in_order(tiny_content, tiny_style):
    a, b = Recorder(), Recorder()
    result = stylize_one(tiny_content, [tiny_style], recipe(save_every=2), callbacks=[a, b])
    expected = ["Started", "Snapshot@0", "Step@1", "Step@2", "Snapshot@2", "Step@3", "Step@4", "Snapshot@4", "Done"]
    assert a.kinds() == expected
    assert b.kinds() == expected
    started, done = a.events[0], a.events[-1]
    assert isinstance(started, Started) and started.total_steps == 4 and started.size == (32, 24)
    assert started.device == "cpu" and started.recipe == result.recipe
    assert isinstance(done, Done) and done.result is result
    steps = [e for e in a.events if isinstance(e, Step)]
    assert all(set(e.losses) == {"content", "style", "tv", "total"} for e in steps)
    assert [e.elapsed for e in steps] == sorted(e.elapsed for e in steps)
    assert result.history == [{"step": e.step, "elapsed": e.elapsed, **e.losses} for e in steps]
    snapshot = a.events[-2]
    assert isinstance(snapshot, Snapshot) and snapshot.image.size == (32, 24)
    assert np.array_equal(arr(snapshot.image), arr(result.image))


def test_no_snapshots_without_save_every(tiny_content, tiny_style):
    rec = Recorder()
    stylize_one(tiny_content, [tiny_style], recipe(steps=2), callbacks=[rec])
    assert rec.kinds() == ["Started", "Step@1", "Step@2", "Done"]


def test_a_callback_returning_true_cancels_and_keeps_the_latest_image(tiny_content, tiny_style):
    rec = Recorder(stop_at=3)
    result = stylize_one(tiny_content, [tiny_style], recipe(steps=10, optimizer="adam"), callbacks=[rec])
    assert result.status == "cancelled" and result.steps == 3
    assert isinstance(rec.events[-1], Failed) and rec.events[-1].kind == "cancelled"
    assert rec.events[-1].result is result
    # The image after three steps: what an uninterrupted three-step run gives.
    three = stylize_one(tiny_content, [tiny_style], recipe(steps=3, optimizer="adam"))
    assert np.array_equal(arr(result.image), arr(three.image))


def test_stop_event_cancels(tiny_content, tiny_style):
    import threading

    stop = threading.Event()

    def stopper(event):
        if isinstance(event, Step) and event.step == 2:
            stop.set()

    result = stylize_one(tiny_content, [tiny_style], recipe(steps=10), callbacks=[stopper], stop=stop)
    assert result.status == "cancelled" and result.steps == 2 and result.image is not None


def test_keyboard_interrupt_ends_the_run_interrupted_and_keeps_the_image(tiny_content, tiny_style):
    def interrupt(event):
        if isinstance(event, Step) and event.step == 2:
            raise KeyboardInterrupt

    rec = Recorder()
    result = stylize_one(tiny_content, [tiny_style], recipe(steps=10), callbacks=[interrupt, rec])
    assert result.status == "interrupted" and result.image is not None and result.steps == 2
    assert isinstance(rec.events[-1], Failed) and rec.events[-1].kind == "interrupted"


def test_batch_events_carry_the_item_and_for_item_renumbers(tiny_content, tiny_style):
    rec, only_second = Recorder(), Recorder()
    results = stylize_batch(
        tiny_content, [[tiny_style], [tiny_content]], recipe(steps=2), callbacks=[rec, for_item(only_second, 1)]
    )
    assert len(results) == 2
    assert sorted({e.item for e in rec.events}) == [0, 1]
    assert only_second.kinds() == ["Started", "Step@1", "Step@2", "Done"]
    assert all(e.item == 0 for e in only_second.events)
    assert only_second.events[-1].result is results[1]


# ------------------------------------------------------------------ divergence


class PoisonAt:
    """Make the objective return NaN for every item from call ``k`` on (1-based)."""

    def __init__(self, monkeypatch, k: int):
        self.k, self.calls = k, 0
        original = objective.Objective.__call__

        def poisoned(obj, features, image, grams=None):
            self.calls += 1
            terms = original(obj, features, image, grams)
            if self.calls >= self.k:
                terms = {name: t * float("nan") for name, t in terms.items()}
            return terms

        monkeypatch.setattr(objective.Objective, "__call__", poisoned)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam", "sgd"])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_image(monkeypatch, tiny_content, tiny_style, optimizer):
    good = stylize_one(tiny_content, [tiny_style], recipe(steps=3, optimizer=optimizer))
    PoisonAt(monkeypatch, 5)
    rec = Recorder()
    result = stylize_one(tiny_content, [tiny_style], recipe(steps=20, optimizer=optimizer), callbacks=[rec])
    assert result.status == "diverged"
    assert "diverged at step 5" in result.message
    assert "--lr" in result.message and "--style-weight" in result.message
    assert f"now {optimizers.DEFAULT_LR[optimizer]:g}" in result.message
    # Steps 1-4 had finite losses; the image evaluated at step 4 (after 3 updates) is the last good one.
    assert result.steps == 4 and len(result.history) == 4
    assert np.array_equal(arr(result.image), arr(good.image))
    assert arr(result.image).mean() > 30  # never a black picture
    failed = rec.events[-1]
    assert isinstance(failed, Failed) and failed.kind == "diverged" and failed.reason == result.message
    assert not any(isinstance(e, Step) and e.step >= 5 for e in rec.events)


def test_nan_image_is_caught_the_step_it_happens(monkeypatch, tiny_content, tiny_style):
    real_make = optimizers.make

    def make(name, lr, history=None):
        opt = real_make(name, lr, history)
        step, count = opt.step, [0]

        def poisoned(x, grad, active):
            step(x, grad, active)
            count[0] += 1
            if count[0] == 3:
                x[0, 0, 0, 0] = float("nan")  # inf would be clamped into range; NaN is not

        opt.step = poisoned
        return opt

    monkeypatch.setattr(optimizers, "make", make)
    result = stylize_one(tiny_content, [tiny_style], recipe(steps=10, optimizer="adam"))
    monkeypatch.undo()
    assert result.status == "diverged" and "the image became NaN/inf" in result.message
    assert result.steps == 2  # steps 1-2 reported; step 3 produced the bad image
    two = stylize_one(tiny_content, [tiny_style], recipe(steps=2, optimizer="adam"))
    assert np.array_equal(arr(result.image), arr(two.image))


def test_one_diverging_item_does_not_stop_the_others(monkeypatch, tiny_content, tiny_style):
    original = objective.Objective.__call__
    calls = [0]

    def poison_first(obj, features, image, grams=None):
        calls[0] += 1
        terms = original(obj, features, image, grams)
        if calls[0] >= 3:
            mask = torch.tensor([float("nan"), 1.0])
            terms = {k: t * mask for k, t in terms.items()}
        return terms

    monkeypatch.setattr(objective.Objective, "__call__", poison_first)
    first, second = stylize_batch(tiny_content, [[tiny_style], [tiny_style]], recipe(steps=6))
    assert first.status == "diverged" and first.steps == 2
    assert second.status == "done" and second.steps == 6


# ------------------------------------------------------------------ seeds and inits


def test_same_seed_is_bit_identical_on_cpu(tiny_content, tiny_style):
    r = recipe(init="noise", optimizer="adam", seed=11)
    a = stylize_one(tiny_content, [tiny_style], r)
    b = stylize_one(tiny_content, [tiny_style], r)
    assert np.array_equal(arr(a.image), arr(b.image))
    assert a.history == [{**row, "elapsed": a_row["elapsed"]} for row, a_row in zip(b.history, a.history)]


def test_noise_init_depends_on_the_seed(tiny_content, tiny_style):
    a = stylize_one(tiny_content, [tiny_style], recipe(init="noise", steps=0, seed=1))
    b = stylize_one(tiny_content, [tiny_style], recipe(init="noise", steps=0, seed=2))
    c = stylize_one(tiny_content, [tiny_style], recipe(init="noise", steps=0, seed=1))
    assert not np.array_equal(arr(a.image), arr(b.image))
    assert np.array_equal(arr(a.image), arr(c.image))
    # Faint noise around mid-grey (full-range noise leaves grain): never wrapped around or clipped.
    values = arr(a.image)
    limit = 255 * engine.NOISE_AMPLITUDE
    assert abs(values.mean() - 127.5) < 1 and 0.4 * limit < values.std() < 0.7 * limit
    assert values.min() >= 127.5 - limit - 1 and values.max() <= 127.5 + limit + 1


def test_init_content_style_and_path(tmp_path, tiny_content, tiny_style):
    content = stylize_one(tiny_content, [tiny_style], recipe(steps=0))
    assert np.abs(arr(content.image) - arr(tiny_content.resize((32, 24), Image.Resampling.LANCZOS))).max() <= 1
    # A style of another shape is cropped to the output's proportions (centred), never stretched.
    style = stylize_one(tiny_content, [tiny_style], recipe(steps=0, init="style"))
    cropped = tiny_style.crop((0, 4, 32, 28))  # the 32x32 style's middle 32x24
    assert np.abs(arr(style.image) - arr(cropped)).max() <= 1
    assert np.abs(arr(style.image) - arr(tiny_style.resize((32, 24), Image.Resampling.LANCZOS))).max() > 20
    start = tmp_path / "start.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(start)
    from_path = stylize_one(tiny_content, [tiny_style], recipe(steps=0, init=str(start)))
    assert from_path.image.size == (32, 24) and from_path.image.getpixel((5, 5)) == (10, 200, 30)


def test_init_path_that_is_not_an_image(tmp_path, tiny_content, tiny_style):
    from stylelab.errors import ImageError

    with pytest.raises(ImageError, match="no such file"):
        stylize_one(tiny_content, [tiny_style], recipe(init=str(tmp_path / "nope.png")))


# ------------------------------------------------------------------ styles, scales, sizes, colour


def test_blend_weights_one_and_zero_equal_the_single_style(tiny_content, tiny_style):
    other = tiny_content.transpose(Image.Transpose.ROTATE_90)
    single = stylize_one(tiny_content, [tiny_style], recipe())
    blended = stylize_one(tiny_content, [tiny_style, other], recipe(), weights=(1.0, 0.0))
    assert np.array_equal(arr(single.image), arr(blended.image))
    half = stylize_one(tiny_content, [tiny_style, other], recipe(), weights=(0.5, 0.5))
    assert not np.array_equal(arr(single.image), arr(half.image))


@pytest.mark.parametrize("init", ["content", "noise"])
def test_content_layer_weights_follow_the_recipes_layer_order(tiny_content, tiny_style, init):
    # Layers given deepest first: the network returns activations in its own order,
    # and a weight must still go to the layer it was written beside.
    alone = stylize_one(tiny_content, [tiny_style], recipe(init=init, content_layers=("relu4_2",)))
    weighted = recipe(init=init, content_layers=("relu4_2", "relu2_1"), content_layer_weights=(1.0, 0.0))
    both = stylize_one(tiny_content, [tiny_style], weighted)
    assert np.array_equal(arr(alone.image), arr(both.image))


def test_blend_weights_must_match_the_styles(tiny_content, tiny_style):
    from stylelab.errors import RecipeError

    with pytest.raises(RecipeError, match="3 blend weights for 2 style images"):
        stylize_one(tiny_content, [tiny_style, tiny_style], recipe(), weights=(1, 1, 1))
    with pytest.raises(RecipeError, match="with one style there is nothing to blend"):
        stylize_one(tiny_content, [tiny_style], recipe(), weights=(10,))


def test_style_scale_resizes_the_style_relative_to_the_output(monkeypatch, tiny_content, tiny_style):
    sizes = []
    real_fit = engine.images.fit

    def spy(img, longest):
        sizes.append(longest)
        return real_fit(img, longest)

    monkeypatch.setattr(engine.images, "fit", spy)
    stylize_one(tiny_content, [tiny_style], recipe(size=64, steps=1, style_scale=0.5))
    assert 32 in sizes
    sizes.clear()
    stylize_one(tiny_content, [tiny_style], recipe(size=64, steps=1, style_scale=2.0))
    assert 128 in sizes


def test_style_scale_changes_the_result(tiny_content, tiny_style):
    a = stylize_one(tiny_content, [tiny_style], recipe(size=48))
    b = stylize_one(tiny_content, [tiny_style], recipe(size=48, style_scale=0.5))
    assert not np.array_equal(arr(a.image), arr(b.image))


def test_scale_sizes():
    assert scale_sizes(512, 1) == [512]
    assert scale_sizes(512, 2) == [362, 512]
    assert scale_sizes(512, 3) == [256, 362, 512]
    assert scale_sizes(96, 3) == [64, 68, 96]  # never below 64 px ...
    assert scale_sizes(48, 3) == [48]  # ... unless the output itself is smaller


def test_scales_run_coarse_to_fine_and_end_at_size(tiny_content, tiny_style):
    rec = Recorder()
    r = recipe(size=96, steps=2, scales=2, save_every=2)
    result = stylize_one(tiny_content, [tiny_style], r, callbacks=[rec])
    steps = [e for e in rec.events if isinstance(e, Step)]
    assert [(e.step, e.scale) for e in steps] == [(1, 0), (2, 0), (3, 1), (4, 1)]
    assert rec.events[0].total_steps == 4
    shots = {e.step: e.image.size for e in rec.events if isinstance(e, Snapshot)}
    assert shots[0] == (68, 51) and shots[2] == (68, 51)  # the coarse scale, about 96 / sqrt(2)
    assert shots[4] == (96, 72) and result.image.size == (96, 72)


def test_size_caps_the_longest_side(tiny_content, tiny_style):
    portrait = tiny_content.transpose(Image.Transpose.ROTATE_90)
    result = stylize_one(portrait, [tiny_style], recipe(size=40, steps=1))
    assert result.image.size == (30, 40)


def test_rgba_content_gives_an_rgba_result(tiny_content, tiny_style):
    rgba = tiny_content.convert("RGBA")
    alpha = Image.new("L", rgba.size, 255)
    alpha.paste(0, (0, 0, 10, 30))
    rgba.putalpha(alpha)
    result = stylize_one(rgba, [tiny_style], recipe(steps=1))
    assert result.image.mode == "RGBA"
    a = np.asarray(result.image)[..., 3]
    assert a[:, :4].max() < 40 and a[:, -8:].min() == 255


def _yiq(img: Image.Image) -> np.ndarray:
    from skimage import color

    return color.rgb2yiq(np.asarray(img.convert("RGB"), dtype=np.float64) / 255)


def test_preserve_color_luminance_keeps_the_contents_chrominance(tiny_content, tiny_style):
    r = recipe(size=40, steps=8, preserve_color="luminance", style_weight=50)
    result = stylize_one(tiny_content, [tiny_style], r)
    plain = stylize_one(tiny_content, [tiny_style], r.replace(preserve_color="none"))
    content = tiny_content.resize(result.image.size, Image.Resampling.LANCZOS)
    c, got, unpreserved = _yiq(content), _yiq(result.image), _yiq(plain.image)
    iq_error = np.abs(got[..., 1:] - c[..., 1:]).mean()
    assert iq_error < 0.01  # the content's colours, up to rounding and gamut clipping
    assert np.abs(unpreserved[..., 1:] - c[..., 1:]).mean() > 5 * iq_error  # the style's colours otherwise
    assert np.abs(got[..., 0] - c[..., 0]).mean() > 0.02  # while the luminance was stylised


def test_preserve_color_histogram_matches_the_styles_colours_to_the_content(tiny_content):
    # Other colours (darker, channels swapped), as rich a distribution as the content's.
    a = np.asarray(tiny_content, dtype=np.float64) / 255
    style = Image.fromarray((a[::-1, :, [2, 0, 1]] ** 2.5 * 255).round().astype(np.uint8))
    from stylelab.plan import prepare
    from stylelab.task import Task

    item = prepare([Task.of(tiny_content, [style])], recipe(preserve_color="histogram")).items[0]
    matched = np.asarray(item.sets[0].images[0], dtype=np.float64)
    content = np.asarray(tiny_content, dtype=np.float64)
    original = np.asarray(style, dtype=np.float64)
    for ch in range(3):
        gap = abs(original[..., ch].mean() - content[..., ch].mean())
        assert gap > 25
        assert abs(matched[..., ch].mean() - content[..., ch].mean()) < min(8, gap / 4)
        assert np.percentile(matched[..., ch], 90) == pytest.approx(np.percentile(content[..., ch], 90), abs=8)
    assert np.array_equal(np.asarray(item.content), content)  # the content is left alone
    result = stylize_one(tiny_content, [style], recipe(preserve_color="histogram", steps=2))
    assert result.image.size == (32, 24)


def test_result_fields(tiny_content, tiny_style):
    result = stylize_one(tiny_content, [tiny_style], recipe(steps=2))
    assert result.ok and result.status == "done" and result.steps == 2
    assert result.device == "cpu" and result.elapsed > 0 and result.peak_memory > 0
    assert set(result.losses) == {"content", "style", "tv", "total"}
    assert result._repr_png_().startswith(b"\x89PNG")


def test_unknown_device():
    from stylelab.errors import RecipeError

    with pytest.raises(RecipeError, match="unknown device 'gpu7'"):
        engine.resolve_device("gpu7")
    if not torch.cuda.is_available():
        with pytest.raises(RecipeError, match="no usable CUDA GPU"):
            engine.resolve_device("cuda")
    assert engine.resolve_device("cpu").type == "cpu"
