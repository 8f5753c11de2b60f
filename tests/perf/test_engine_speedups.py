"""Speed levers in the engine must not change what it computes."""

import numpy as np
import pytest

from stylelab import engine, vgg
from stylelab.engine import stylize_batch, stylize_one
from stylelab.recipes import Recipe

pytestmark = pytest.mark.slow


def _recipe(**kw):
    return Recipe(size=64, steps=4, device="cpu", **kw)


def test_content_targets_from_the_first_step_equal_a_separate_pass(monkeypatch, tiny_content, tiny_style):
    content, style = tiny_content, tiny_style
    real = engine.build_objective
    asked = []
    monkeypatch.setattr(engine, "build_objective", lambda *a, **k: asked.append(k.get("content")) or real(*a, **k))
    fast = stylize_one(content, [style], _recipe())
    assert asked == [False]  # the reuse path was taken
    monkeypatch.setattr(engine, "build_objective", lambda *a, **k: real(*a, **{**k, "content": True}))
    slow = stylize_one(content, [style], _recipe())
    a, b = np.asarray(fast.image, dtype=float), np.asarray(slow.image, dtype=float)
    assert np.abs(a - b).max() <= 1
    for h_fast, h_slow in zip(fast.history, slow.history):
        assert h_fast["content"] == pytest.approx(h_slow["content"], rel=1e-4, abs=1e-9)
        assert h_fast["style"] == pytest.approx(h_slow["style"], rel=1e-4)
    assert fast.history[0]["content"] == 0.0  # step 1 starts at the content image


def test_content_reuse_is_not_used_when_the_start_is_not_the_content(tiny_content, tiny_style):
    content, style = tiny_content, tiny_style
    r = stylize_one(content, [style], _recipe(init="noise"))
    assert r.history[0]["content"] > 0.01  # a real content target, far from noise


def test_batched_items_match_their_single_runs_with_content_reuse(tiny_content, tiny_style):
    content, style, style2 = tiny_content, tiny_style, tiny_content  # two different styles
    batch = stylize_batch(content, [[style], [style2]], _recipe())
    for item, s in zip(batch, (style, style2)):
        single = stylize_one(content, [s], _recipe())
        assert np.abs(np.asarray(item.image, float) - np.asarray(single.image, float)).max() <= 2
        assert item.history[-1]["total"] == pytest.approx(single.history[-1]["total"], rel=1e-3)


def test_channels_last_network_gives_the_same_features():
    layers = ("relu1_1", "relu3_1", "relu4_2", "relu5_1")
    nchw = vgg.build(layers, channels_last=False)
    nhwc = vgg.build(layers, channels_last=True)
    x = np.random.default_rng(1).random((1, 3, 48, 64), dtype=np.float32)
    import torch

    x = torch.from_numpy(x)
    a, b = nchw(x), nhwc(x)
    assert b["relu1_1"].is_contiguous(memory_format=torch.channels_last)
    for k in layers:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-3 * a[k].abs().max().item())


def test_layout_choice_per_device():
    assert vgg.prefers_channels_last("cpu") is True
    assert vgg.prefers_channels_last("cuda") is False  # a torch.device; no GPU needed to ask
