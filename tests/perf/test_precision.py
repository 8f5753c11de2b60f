"""Precision and device choices, including the CUDA paths' logic, on any machine."""

import warnings

import pytest
import torch

from stylelab import engine, precision
from stylelab.errors import RecipeError
from stylelab.recipes import Recipe

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.mark.parametrize(
    ("asked", "device", "native", "expected"),
    [
        ("fp32", CPU, True, None),
        ("fp32", CUDA, True, None),
        ("bf16", CUDA, False, torch.bfloat16),
        ("bf16", CPU, False, torch.bfloat16),  # asked for: honoured even where emulated
        ("auto", CUDA, True, None),  # not measured on a GPU yet
        ("auto", CPU, True, torch.bfloat16),  # measured: pays, same quality
        ("auto", CPU, False, None),  # emulated bf16 is slower
        ("auto", MPS, True, None),
        ("bf16", MPS, True, None),
    ],
)
def test_conv_dtype(asked, device, native, expected):
    assert precision.conv_dtype(asked, device, native_bf16=native) == expected


def test_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        precision.conv_dtype("fp8", CPU)


def test_bf16_flags_are_read_from_cpuinfo():
    assert precision.has_bf16_flags("processor: 0\nflags\t\t: fpu sse avx512f avx512_bf16 avx2\n")
    assert precision.has_bf16_flags("flags : fpu amx_bf16 amx_tile\n")
    assert not precision.has_bf16_flags("flags : fpu avx512f avx512bw\nbugs : avx512_bf16\n")
    assert not precision.has_bf16_flags("")


def test_autocast_factory_builds_the_right_context():
    assert precision.autocast_factory("fp32", CPU)().__class__.__name__ == "nullcontext"
    ctx = precision.autocast_factory("bf16", CPU)()
    with ctx:
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": only the object is inspected
        cuda_ctx = precision.autocast_factory("bf16", CUDA)()
    assert isinstance(cuda_ctx, torch.autocast)
    assert cuda_ctx.device == "cuda" and cuda_ctx.fast_dtype == torch.bfloat16


def test_cuda_is_refused_clearly_without_a_gpu_and_used_with_one():
    if torch.cuda.is_available():
        assert engine.resolve_device("cuda").type == "cuda"
        assert engine.resolve_device("auto").type == "cuda"
    else:
        with pytest.raises(RecipeError, match="no usable CUDA GPU"):
            engine.resolve_device("cuda:0")
        assert engine.resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.slow
def test_bf16_targets_stay_float32():
    # CPU autocast takes the path CUDA autocast takes: bf16 convolutions, float32 Grams and targets.
    from stylelab.vgg import build

    r = Recipe(size=32, steps=1, device="cpu", precision="bf16")
    net = build(set(r.resolved_content_layers) | set(r.resolved_style_layers))
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(24, 32, 3, generator=gen).numpy()
    from stylelab.plan import prepare
    from stylelab.targets import StyleCache, build_objective
    from stylelab.task import Task

    plan = prepare([Task.of(content, [torch.rand(32, 32, 3, generator=gen).numpy()])], r)
    autocast = precision.autocast_factory("bf16", CPU)
    with autocast():
        assert net(torch.rand(1, 3, 24, 32))["relu1_1"].dtype == torch.bfloat16
    objective = build_objective(net, plan.items, r, 32, CPU, autocast, StyleCache(), ())
    assert all(t.gram.dtype == torch.float32 for t in objective.regions[0].targets.values())
    assert all(t.dtype == torch.float32 for t in objective.content_targets.values())


@pytest.mark.slow
def test_bf16_run_reaches_the_losses_of_fp32():
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(48, 64, 3, generator=gen).numpy()
    style = torch.rand(48, 48, 3, generator=gen).numpy()
    runs = {
        p: engine.stylize_one(content, [style], Recipe(size=64, steps=8, device="cpu", precision=p))
        for p in ("fp32", "bf16")
    }
    first, last = runs["fp32"].history[0]["total"], runs["fp32"].history[-1]["total"]
    assert last < 0.8 * first  # fp32 made progress...
    assert runs["bf16"].history[-1]["total"] == pytest.approx(last, rel=0.1)  # ...and bf16 the same
