"""The benchmark's FLOP counter and conv microbenchmark (no timing assertions)."""

import pytest
import torch

from stylelab.bench import flops

DEFAULT_LAYERS = ("relu4_2", "relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def test_one_conv_counts_two_flops_per_multiply_add():
    s = flops.ConvShape("conv1_1", c_in=3, c_out=64, height=4, width=5)
    # 64 outputs x 20 pixels, each a dot product of 3 x 3 x 3 = 27 weights: 27 multiplies + 27 adds.
    assert s.flops == 64 * 20 * 27 * 2


def test_network_is_cut_after_the_deepest_layer():
    assert [s.name for s in flops.conv_shapes(["relu1_1"], 8, 8)] == ["conv1_1"]
    assert [s.name for s in flops.conv_shapes(["conv2_1", "relu1_2"], 8, 8)] == ["conv1_1", "conv1_2", "conv2_1"]
    names = [s.name for s in flops.conv_shapes(DEFAULT_LAYERS, 64, 64)]
    assert names[-1] == "conv5_1" and len(names) == 13  # conv5_2..5_4 are never run


def test_shapes_follow_pooling_and_channels():
    shapes = {s.name: s for s in flops.conv_shapes(DEFAULT_LAYERS, 48, 64)}
    assert (shapes["conv1_2"].c_in, shapes["conv1_2"].c_out, shapes["conv1_2"].height) == (64, 64, 48)
    assert (shapes["conv3_1"].c_in, shapes["conv3_1"].c_out) == (128, 256)
    assert (shapes["conv3_1"].height, shapes["conv3_1"].width) == (12, 16)  # after two 2x2 pools
    assert (shapes["conv5_1"].height, shapes["conv5_1"].width) == (3, 4)


def test_step_is_forward_plus_input_gradient():
    f = flops.forward_flops(DEFAULT_LAYERS, 64, 64)
    assert flops.step_flops(DEFAULT_LAYERS, 64, 64) == 2 * f
    assert flops.step_flops(DEFAULT_LAYERS, 64, 64, batch=4) == 8 * f
    # Hand count per input pixel at 64x64 (each pool quarters the pixels):
    per_pixel = 2 * 9 * (3 * 64 + 64 * 64 + (64 * 128 + 128 * 128) / 4 + (128 * 256 + 3 * 256 * 256) / 16)
    per_pixel += 2 * 9 * ((256 * 512 + 3 * 512 * 512) / 64 + 512 * 512 / 256)
    assert f == round(per_pixel * 64 * 64)


def test_flops_match_what_torch_counts():
    from torch.utils.flop_counter import FlopCounterMode

    s = flops.ConvShape("x", 8, 16, 10, 12)
    x = torch.zeros(1, s.c_in, s.height, s.width, requires_grad=True)
    w = torch.zeros(s.c_out, s.c_in, 3, 3)
    with FlopCounterMode(display=False) as counter:
        y = torch.nn.functional.conv2d(x, w, padding=1)
        forward = counter.get_total_flops()
        y.sum().backward()  # input gradient only: w does not require grad
    assert forward == s.flops
    assert counter.get_total_flops() == 2 * s.flops


def test_microbenchmark_reports_every_conv():
    # Smoke test on tiny shapes, short loops: the fields the bench reads, not the speed.
    shapes = flops.conv_shapes(["relu2_1"], 16, 16)
    r = flops.conv_throughput(shapes, "cpu", min_time=0.002, batch_time=0.001, warmup=0.01)
    assert [p["name"] for p in r["per_conv"]] == ["conv1_1", "conv1_2", "conv2_1"]
    assert all(p["layout"] in ("nchw", "channels_last") for p in r["per_conv"])
    assert all(p["forward"] > 0 and p["backward"] > 0 for p in r["per_conv"])
    assert all(p["forward_spread"] >= 0 and p["backward_spread"] >= 0 for p in r["per_conv"])
    assert r["flops"] == flops.step_flops(["relu2_1"], 16, 16)  # forward + backward to the input
    assert r["flops_per_s"] == r["flops"] / r["seconds"]
    assert r["wall"] >= r["seconds"] and r["cores_used"] > 0  # the round also ran untimed warm-up calls


def test_batches_are_timed_after_untimed_calls_and_fill_the_time_asked():
    calls = []
    per_call = flops.time_batches(lambda: calls.append(1), "cpu", min_time=0.004, batch_time=0.001, min_batches=3)
    assert len(per_call) >= 3 and all(t > 0 for t in per_call)
    # Two untimed calls, then an untimed warm-up batch and the timed batches, all of k calls.
    k, rest = divmod(len(calls) - 2, len(per_call) + 1)
    assert rest == 0 and k >= 1
    assert sum(per_call) * k >= 0.004


def test_a_slow_call_is_its_own_warm_up():
    import time

    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.004)

    per_call = flops.time_batches(slow, "cpu", min_time=0.003, batch_time=0.001, min_batches=2)
    # The first call took min_time already: no sizing call, no warm-up batch, 1 call per batch.
    assert len(per_call) == 2 and len(calls) == 1 + 2
    assert min(per_call) >= 0.004


def _round(times: dict[str, float], layout="channels_last", flops_total=1000) -> dict:
    per_conv = [{"name": n, "layout": layout, "forward": t / 2, "backward": t / 2} for n, t in times.items()]
    return {"flops": flops_total, "flops_per_s": flops_total / sum(times.values()), "per_conv": per_conv}


def test_best_of_rounds_takes_each_conv_at_its_fastest_round():
    # A busy moment slowed conv_a in round 0 and conv_b in round 1: neither round alone is the machine's speed.
    rounds = [_round({"conv_a": 4.0, "conv_b": 1.0}), _round({"conv_a": 2.0, "conv_b": 3.0}, layout="nchw")]
    best = flops.best_of_rounds(rounds)
    assert best["seconds"] == 3.0 and best["flops_per_s"] == 1000 / 3.0
    assert [(p["name"], p["round"], p["layout"]) for p in best["per_conv"]] == [
        ("conv_a", 1, "nchw"),
        ("conv_b", 0, "channels_last"),
    ]
    assert best["flops_per_s"] > max(r["flops_per_s"] for r in rounds)
    with pytest.raises(ValueError):
        flops.best_of_rounds([])


def test_microbenchmark_backward_is_the_input_gradient():
    # The call the microbenchmark times gives autograd's input gradient.
    x = torch.randn(1, 4, 6, 6, requires_grad=True)
    w = torch.randn(5, 4, 3, 3)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    g = torch.randn_like(y)
    (expected,) = torch.autograd.grad(y, x, g)
    args = (g, x.detach(), w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, False, False])
    got, wgrad, bgrad = torch.ops.aten.convolution_backward(*args)
    assert torch.allclose(got, expected, atol=1e-5) and wgrad is None and bgrad is None
