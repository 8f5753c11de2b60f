"""The Engine's shape, on the stand-in network (milliseconds): made once and reused, exactly one
ending per item whatever goes wrong, runs' own peak memory, and a cheap ``import stylelab``."""

from __future__ import annotations

import errno
import subprocess
import sys
import threading

import numpy as np
import pytest

from stylelab import objective
from stylelab.engine import Engine, EngineCache
from stylelab.errors import MemoryLimitError
from stylelab.events import Done, Failed, Started, Step
from stylelab.recipes import Recipe
from stylelab.runs import RunWriter
from stylelab.task import Task

from ..conftest import gradient_image

STANDIN = dict(size=32, steps=3, device="cpu", weights="standin")


def recipe(**changes) -> Recipe:
    return Recipe(**{**STANDIN, **changes})


class Events:
    def __init__(self, fail_on=None):
        self.events, self.fail_on = [], fail_on

    def __call__(self, event):
        self.events.append(event)
        if self.fail_on is not None and self.fail_on(event):
            raise OSError(errno.ENOSPC, "No space left on device")

    def endings(self, item=None):
        return [e for e in self.events if isinstance(e, (Done, Failed)) and (item is None or e.item == item)]


def tasks(n=2):
    return [
        Task.of(gradient_image(40, 30, seed=i), [gradient_image(32, 32, seed=10 + i)], label=f"t{i}") for i in range(n)
    ]


# ------------------------------------------------------------------ made once, reused


def test_one_engine_builds_its_network_once_for_many_runs():
    engine = Engine.for_recipe(recipe())
    for seed in range(3):
        engine.run(engine.prepare(tasks(1), recipe(seed=seed)))
    assert engine.builds == 1
    # the style targets of the same style are made once too
    assert engine.styles.misses == 1 and engine.styles.hits == 2


def test_a_deeper_recipe_rebuilds_once_and_a_shallower_one_reuses():
    engine = Engine.for_recipe(recipe())
    shallow = recipe(style_layers=("relu1_1",), content_layers=("relu2_1",))
    engine.run(engine.prepare(tasks(1), shallow))
    engine.run(engine.prepare(tasks(1), recipe()))
    engine.run(engine.prepare(tasks(1), shallow))
    assert engine.builds == 2


def test_an_engine_cache_keeps_one_engine_per_network():
    cache = EngineCache()
    a, b = cache.get(recipe()), cache.get(recipe(steps=9, style_weight=2))
    assert a is b and cache.get(recipe(pooling="avg")) is not a


def test_an_engine_refuses_a_recipe_for_another_network():
    engine = Engine.for_recipe(recipe())
    with pytest.raises(Exception, match="this engine runs"):
        engine.prepare(tasks(1), recipe(pooling="avg"))


def test_a_batch_may_hold_different_contents_and_each_ends_where_it_would_alone():
    engine = Engine.for_recipe(recipe())
    together = engine.run(engine.prepare(tasks(2), recipe()))
    alone = [engine.run(engine.prepare([t], recipe()))[0] for t in tasks(2)]
    for a, b in zip(together, alone):
        diff = np.abs(np.asarray(a.image, dtype=int) - np.asarray(b.image, dtype=int))
        assert diff.max() <= 1
    assert together[0].history[-1]["content"] != together[1].history[-1]["content"]


def test_events_carry_the_terms_and_steps_carry_each_of_them():
    ev = Events()
    engine = Engine.for_recipe(recipe())
    engine.run(engine.prepare(tasks(1), recipe()), [ev])
    started = ev.events[0]
    assert isinstance(started, Started) and started.terms == ("content", "style", "tv", "total")
    assert all(tuple(e.losses) == started.terms for e in ev.events if isinstance(e, Step))


# ------------------------------------------------------------------ exactly one ending


@pytest.mark.parametrize("where", ["Started", "Step", "Snapshot"])
def test_a_sink_that_raises_ends_every_item_once_and_leaves_no_partial(tmp_path, where):
    broken = Events(fail_on=lambda e: type(e).__name__ == where and e.item == 1)
    watcher = Events()
    writers = [RunWriter(tmp_path / "a"), RunWriter(tmp_path / "b")]
    from stylelab.events import for_item

    sinks = [for_item(writers[0], 0), for_item(writers[1], 1), broken, watcher]
    engine = Engine.for_recipe(recipe(save_every=1))
    with pytest.raises(OSError, match="No space left"):
        engine.run(engine.prepare(tasks(2), recipe(save_every=1)), sinks)
    for item in (0, 1):
        endings = watcher.endings(item)
        assert len(endings) == 1 and isinstance(endings[0], Failed) and endings[0].kind == "error", endings
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .partial, no half-written folder
    assert all(w._metrics_file is None for w in writers)  # metrics.csv closed


def test_out_of_memory_in_a_step_is_one_error_ending_and_a_stylelab_error(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB")

    monkeypatch.setattr(objective.Objective, "__call__", no_memory)
    watcher = Events()
    engine = Engine.for_recipe(recipe())
    with pytest.raises(MemoryLimitError, match="out of memory"):
        engine.run(engine.prepare(tasks(1), recipe()), [RunWriter(tmp_path / "rd"), watcher])
    (ending,) = watcher.endings()
    assert isinstance(ending, Failed) and ending.kind == "error" and "out of memory" in ending.reason
    assert list(tmp_path.iterdir()) == []


def test_a_bug_in_the_run_still_ends_every_item(monkeypatch):
    def bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(objective.Objective, "__call__", bug)
    watcher = Events()
    engine = Engine.for_recipe(recipe())
    with pytest.raises(ZeroDivisionError):
        engine.run(engine.prepare(tasks(2), recipe()), [watcher])
    assert [type(e).__name__ for e in watcher.endings()] == ["Failed", "Failed"]


def test_a_stop_before_a_later_batch_ends_its_items_cancelled():
    stop = threading.Event()
    watcher = Events()
    different = [tasks(1)[0], Task.of(gradient_image(60, 30), [gradient_image(32, 32)])]  # two sizes: two batches

    def stop_after_first(event):
        if isinstance(event, Done):
            stop.set()

    engine = Engine.for_recipe(recipe())
    plan = engine.prepare(different, recipe())
    assert len(plan.batches) == 2
    results = engine.run(plan, [stop_after_first, watcher], stop)
    assert [r.status for r in results] == ["done", "cancelled"]
    assert [type(e).__name__ for e in watcher.endings()] == ["Done", "Failed"]


def test_interrupted_is_its_own_ending_with_the_image_so_far():
    def ctrl_c(event):
        if isinstance(event, Step) and event.step == 2:
            raise KeyboardInterrupt

    watcher = Events()
    engine = Engine.for_recipe(recipe(steps=5))
    (res,) = engine.run(engine.prepare(tasks(1), recipe(steps=5)), [ctrl_c, watcher])
    assert res.status == "interrupted" and res.image is not None and res.steps == 2
    (ending,) = watcher.endings()
    assert ending.kind == "interrupted" and ending.result is res


# ------------------------------------------------------------------ memory, sweeps


def _high_water() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))


def test_each_run_reports_its_own_peak_memory():
    import torch

    engine = Engine.for_recipe(recipe())
    big = torch.ones(256, 2**20)  # 1 GiB touched before the run, then freed: not the run's peak
    del big
    before = _high_water()  # the process's peak so far, with that GiB in it
    (res,) = engine.run(engine.prepare(tasks(1), recipe()))
    assert 0 < res.peak_memory < before - 512 * 2**20


def test_a_local_sweep_with_one_broken_run_finishes_the_others(tmp_path, monkeypatch):
    from stylelab import sweep
    from stylelab.experiments import build

    content = tmp_path / "c.png"
    gradient_image(40, 30).save(content)
    styles = []
    for name in ("a", "b", "c"):
        styles.append(tmp_path / f"{name}.png")
        gradient_image(32, 32, seed=ord(name)).save(styles[-1])
    exp = build(name="t", contents=[str(content)], styles=[str(s) for s in styles], recipes=["default"],
                settings=dict(STANDIN))  # fmt: skip
    real = sweep.execute_batch

    def second_breaks(batch, **kwargs):
        if batch.runs[0].style.endswith("b.png"):
            raise RuntimeError("a broken run")
        return real(batch, **kwargs)

    monkeypatch.setattr(sweep, "execute_batch", second_breaks)
    summary = sweep.run_sweep(exp, out=tmp_path / "exp", max_batch=1)
    assert len(summary.written) == 2 and [name for name, _ in summary.failed] == ["c__b__default"]
    assert "a broken run" in summary.failed[0][1]


def test_a_sweep_builds_the_network_once(tmp_path):
    from stylelab import sweep
    from stylelab.experiments import build

    content = tmp_path / "c.png"
    gradient_image(40, 30).save(content)
    for name in ("a", "b", "c"):
        gradient_image(32, 32, seed=ord(name)).save(tmp_path / f"{name}.png")
    exp = build(name="t", contents=[str(content)], styles=[str(tmp_path / f"{n}.png") for n in "abc"],
                recipes=["default"], settings=dict(STANDIN), grid={"style_weight": [1, 2]})  # fmt: skip
    executor = sweep.LocalExecutor()
    summary = sweep.run_sweep(exp, out=tmp_path / "exp", max_batch=1, executor=executor)
    assert len(summary.written) == 6 and executor.engines.builds == 1


# ------------------------------------------------------------------ import hygiene


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_stylelab_loads_no_torch_and_changes_nothing():
    code = (
        "import os, sys; before = dict(os.environ); import stylelab, stylelab.cli; "
        "print('torch' in sys.modules, 'matplotlib.pyplot' in sys.modules, dict(os.environ) == before)"
    )
    assert _fresh(code) == "False False True"


def test_help_loads_no_torch():
    code = (
        "import sys; from stylelab.cli import main; main(['--help']); main(['run', '--help']); "
        "print('TORCH', 'torch' in sys.modules)"
    )
    assert _fresh(code).splitlines()[-1] == "TORCH False"
