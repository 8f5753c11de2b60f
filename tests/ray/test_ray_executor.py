"""The Ray executor (ray_executor.py, ray_worker.py): same run folders as the local one, retries,
Ctrl-C, failures, resuming.

Tests taking the ray_cluster fixture use the session's local Ray instance of 2 CPUs
(conftest.py); images are 40-48 px and runs 3-20 steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylelab import cli, experiments, sweep
from stylelab.events import Started, Step
from stylelab.runs import find_runs, is_complete, load_run

SETTINGS = {"size": 40, "steps": 3}


def experiment(tiny_images, name="ray-test", styles=("starry", "scream"), grid=None, **settings):
    return experiments.build(
        name=name,
        contents=[str(tiny_images["content"])],
        styles=[str(tiny_images[s]) for s in styles],
        recipes=["default"],
        settings={**SETTINGS, **settings},
        grid=grid if grid is not None else {"style_weight": [1e4, 1e5]},
    )


def folders(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((root / "runs").iterdir())}


def info(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def assert_same_runs(expected: Path, got: Path) -> None:
    """The same run folders: names, recipes, files, results within the tolerance of thread counts."""
    want, have = folders(expected), folders(got)
    assert list(have) == list(want)
    for name, folder in want.items():
        other = have[name]
        assert is_complete(other)
        assert (other / "recipe.toml").read_text() == (folder / "recipe.toml").read_text()
        assert sorted(p.name for p in other.iterdir()) == sorted(p.name for p in folder.iterdir())
        a = np.asarray(Image.open(folder / "result.png"), dtype=int)
        b = np.asarray(Image.open(other / "result.png"), dtype=int)
        # Other torch thread counts sum in another order; the same seed gives the same run.
        assert a.shape == b.shape and np.abs(a - b).max() <= 2
        i, j = info(folder), info(other)
        assert sorted(i) == sorted(j)
        assert (i["status"], i["steps"], i["content"], i["styles"]) == (
            j["status"],
            j["steps"],
            j["content"],
            j["styles"],
        )
        for key, value in i["losses"].items():
            assert j["losses"][key] == pytest.approx(value, rel=1e-3)
        assert j["distances"] == pytest.approx(i["distances"], abs=1e-3)
        assert len(load_run(other).metrics()) == len(load_run(folder).metrics()) == i["steps"]


@pytest.fixture(scope="module")
def local_sweep(tiny_images, tmp_path_factory) -> Path:
    """The reference: the small sweep run by the local executor."""
    out = tmp_path_factory.mktemp("local") / "exp"
    summary = sweep.run_sweep(experiment(tiny_images), out=out)
    assert len(summary.written) == 4 and not summary.failed
    return out


# ---------------------------------------------------------------- without a cluster


def test_without_ray_the_cli_says_how_to_install_it(tiny_images, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when Ray is not installed
    args = ["sweep", str(tiny_images["content"]), "--styles", str(tiny_images["starry"]), "-o", str(tmp_path / "e")]
    code = cli.main([*args, "--executor", "ray"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "pip install 'stylelab[ray]'" in err
    assert not (tmp_path / "e").exists()


def test_ray_options_need_the_ray_executor(tiny_images, tmp_path, capsys):
    args = ["sweep", str(tiny_images["content"]), "--styles", str(tiny_images["starry"]), "-o", str(tmp_path / "e")]
    assert cli.main([*args, "--shared-dir"]) == 2
    assert "--shared-dir goes with --executor ray" in capsys.readouterr().err
    assert cli.main([*args, "--executor", "dask"]) == 2
    assert "--executor is local or ray" in capsys.readouterr().err


def test_resources_one_gpu_per_task_where_there_are_gpus_else_a_few_cpus():
    from stylelab.ray_executor import plan_resources

    gpu = plan_resources({"CPU": 16, "GPU": 2}, [8, 8])
    assert (gpu.num_gpus, gpu.num_cpus, gpu.threads, gpu.per_node) == (1, 1, 1, 1)
    assert plan_resources({"CPU": 16, "GPU": 2}, [8, 8], gpus_per_task=0.5).per_node == 2
    # Without a number of CPUs per task, the cluster's CPUs are shared among the tasks to run.
    many = plan_resources({"CPU": 40}, [32, 8], tasks=100)
    assert (many.num_gpus, many.num_cpus, many.threads, many.per_node) == (0, 1, 1, 32)
    few = plan_resources({"CPU": 40}, [32, 8], tasks=4)
    assert (few.num_cpus, few.threads, few.per_node) == (10, 10, 3)
    assert plan_resources({"CPU": 40}, [32, 8], tasks=1).num_cpus == 32  # never more than a node has
    assert plan_resources({"CPU": 40}, [32, 8]).num_cpus == 1  # for planning memory: the smallest task
    fixed = plan_resources({"CPU": 2}, [2], cpus_per_task=2, tasks=10)
    assert (fixed.num_cpus, fixed.threads, fixed.per_node) == (2, 2, 1)
    assert plan_resources({"CPU": 2, "GPU": 1}, [2], gpus_per_task=0).num_gpus == 0


def test_an_address_that_does_not_answer_fails_in_seconds():
    import socket

    from stylelab.errors import StylelabError
    from stylelab.ray_executor import _check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        t0 = time.monotonic()
        with pytest.raises(StylelabError, match="cannot reach the Ray cluster"):
            _check_reachable(address, timeout=2)
        assert time.monotonic() - t0 < 5
    _check_reachable("auto")  # left to Ray


# ---------------------------------------------------------------- on the session's Ray instance


def test_same_run_folders_as_the_local_executor(ray_cluster, local_sweep, tiny_images, tmp_path):
    from stylelab.ray_executor import RayExecutor

    seen: list = []
    summary = sweep.run_sweep(experiment(tiny_images), out=tmp_path / "exp", executor=RayExecutor(), events=seen.append)
    assert len(summary.written) == 4 and not summary.failed and not summary.interrupted
    assert_same_runs(local_sweep, tmp_path / "exp")
    # Progress came back from the workers: each run started and reached its last step.
    started = sorted(e.item for e in seen if isinstance(e, Started))
    assert started == [0, 1, 2, 3]
    assert {e.item for e in seen if isinstance(e, Step) and e.step == SETTINGS["steps"]} == {0, 1, 2, 3}


def test_shared_dir_workers_write_the_same_folders(ray_cluster, local_sweep, tiny_images, tmp_path):
    from stylelab.ray_executor import RayExecutor

    out = tmp_path / "exp"
    delivered = []
    summary = sweep.run_sweep(
        experiment(tiny_images),
        out=out,
        executor=RayExecutor(runs_dir=out / "runs"),
        on_run=lambda spec, record: delivered.append((spec.name, record.image)),
    )
    assert len(summary.written) == 4 and not summary.failed
    assert_same_runs(local_sweep, out)
    # The driver got summaries, not the images: the workers wrote the folders.
    assert sorted(name for name, _ in delivered) == sorted(folders(out)) and all(img is None for _, img in delivered)


def test_a_retried_task_keeps_the_folders_an_earlier_attempt_finished(local_sweep, tiny_images, tmp_path):
    """In shared-dir mode an attempt that died after writing one run's folder is not redone for it."""
    from stylelab.ray_worker import run_batch

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    exp = experiment(tiny_images)
    batch = sweep.plan_batches(exp.plan(), 8)[0]
    assert len(batch.runs) == 2
    first, second = batch.runs
    shutil.copytree(local_sweep / "runs" / first.name, runs_dir / first.name)
    before = info(runs_dir / first.name)
    (runs_dir / (second.name + ".partial")).mkdir()  # what the dead attempt left of the other run
    paths = [batch.content, first.style, second.style]
    outcomes = run_batch(batch, [0, 1], 1, None, str(runs_dir), paths, *(Path(p).read_bytes() for p in paths))
    assert [(o.name, o.written, o.error) for o in outcomes] == [(first.name, True, ""), (second.name, True, "")]
    assert info(runs_dir / first.name) == before  # kept, not done again
    assert is_complete(runs_dir / second.name) and not (runs_dir / (second.name + ".partial")).exists()
    assert info(runs_dir / second.name)["batch_size"] == 1


def _worker_pids(raylet: int, title: str = "ray::stylelab-batch") -> list[int]:
    """Workers of this session's raylet whose title (Ray sets it to ray::<task name>) says they run a stylelab task."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == raylet and (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace") == title:
                pids.append(int(proc.name))
        except (OSError, ValueError, IndexError):
            continue
    return pids


def test_a_killed_worker_is_retried_and_every_run_completes(ray_cluster, tiny_images, tmp_path):
    import ray
    from stylelab.ray_executor import RayExecutor

    def parent_pid() -> int:  # defined here so that Ray ships it by value
        return os.getppid()

    raylet = ray.get(ray.remote(parent_pid).remote())  # a worker's parent: the raylet of this session
    killed: list[int] = []
    events: list = []

    def kill_first_worker(event) -> None:
        events.append(event)
        if isinstance(event, Step) and not killed:
            pids = _worker_pids(raylet)
            assert len(pids) == 1  # one task at a time: 2 CPUs, 2 per task
            os.kill(pids[0], signal.SIGKILL)
            killed.append(event.item)

    # Long enough (a second or more) that the driver, reading progress every POLL
    # seconds, sees a step while the worker is still alive to be killed.
    exp = experiment(tiny_images, grid={}, steps=300, optimizer="adam")
    delivered = []
    summary = sweep.run_sweep(
        exp,
        out=tmp_path / "exp",
        executor=RayExecutor(cpus_per_task=2, retries=2),
        events=kill_first_worker,
        on_run=lambda spec, record: delivered.append(spec.name),
    )
    assert killed, "no worker was running a task to kill"
    assert not summary.failed and len(summary.written) == 2
    # The killed task ran again: its runs started twice, and each run was delivered once.
    starts = [e.item for e in events if isinstance(e, Started)]
    assert starts.count(killed[0]) == 2
    assert sorted(delivered) == sorted(spec.name for spec in exp.plan())
    runs = folders(tmp_path / "exp")
    assert len(runs) == 2 and all(is_complete(f) and info(f)["steps"] == 300 for f in runs.values())


def test_ctrl_c_writes_what_is_done_and_the_next_sweep_continues(ray_cluster, tiny_images, tmp_path):
    from stylelab.ray_executor import RayExecutor

    exp = experiment(tiny_images, styles=("starry", "scream", "hat"), grid={}, steps=10, optimizer="adam")

    def interrupt(spec, record) -> None:
        raise KeyboardInterrupt  # Ctrl-C as soon as the first run is written

    first = sweep.run_sweep(
        exp, out=tmp_path / "exp", max_batch=1, executor=RayExecutor(cpus_per_task=1), on_run=interrupt
    )
    assert first.interrupted and 1 <= len(first.written) < 3
    runs = folders(tmp_path / "exp")
    assert sorted(runs) == sorted(first.written) and all(is_complete(f) for f in runs.values())
    finished = {name: info(f)["finished"] for name, f in runs.items()}

    second = sweep.run_sweep(exp, out=tmp_path / "exp", max_batch=1, executor=RayExecutor(cpus_per_task=1))
    assert second.skipped == len(first.written) and len(second.written) == 3 - len(first.written)
    assert not second.interrupted and len(find_runs(tmp_path / "exp")) == 3
    assert {name: info(tmp_path / "exp" / "runs" / name)["finished"] for name in finished} == finished


def test_a_failing_run_is_reported_and_the_others_finish(ray_cluster, tiny_images, tmp_path, capsys):
    bad_weights = tmp_path / "not-weights.pth"
    bad_weights.write_text("not a state dict")
    spec = tmp_path / "exp.toml"
    spec.write_text(
        f'content = ["{tiny_images["content"]}"]\nstyles = ["{tiny_images["starry"]}"]\n'
        f'recipes = ["default", {{ base = "default", name = "broken", weights = "{bad_weights}" }}]\n'
        "[set]\nsize = 40\nsteps = 3\n"
    )
    code = cli.main(["sweep", str(spec), "-o", str(tmp_path / "exp"), "--executor", "ray", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "content__starry__broken" in failed[0] and "cannot read weights file" in failed[0]
    assert "1 run(s) failed" in err
    runs = folders(tmp_path / "exp")
    assert list(runs) == ["content__starry__default"] and is_complete(runs["content__starry__default"])


def test_a_bad_image_stops_the_sweep_before_any_run(ray_cluster, tiny_images, tmp_path, capsys):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    args = ["sweep", str(tiny_images["content"]), "--styles", str(tiny_images["starry"]), str(broken)]
    code = cli.main([*args, "-o", str(tmp_path / "exp"), "--size", "40", "--steps", "3", "--executor", "ray", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and str(broken) in err
    assert not (tmp_path / "exp").exists()  # checked before anything was written


def test_resuming_after_the_driver_is_killed_skips_finished_runs(ray_cluster, tiny_images, tmp_path):
    out = tmp_path / "exp"
    styles = [str(tiny_images[s]) for s in ("starry", "scream", "hat")]
    command = [sys.executable, "-m", "stylelab", "sweep", str(tiny_images["content"]), "--styles", *styles]
    command += ["--set", "style_weight=1e4,1e5", "--size", "40", "--steps", "10", "--optimizer", "adam"]
    command += ["--batch", "1", "-o", str(out), "-q", "--executor", "ray", "--cpus-per-task", "1"]
    driver = subprocess.Popen([*command, "--address", ray_cluster], stderr=subprocess.PIPE, text=True)
    runs = out / "runs"
    deadline = time.monotonic() + 120
    while not (runs.is_dir() and any(is_complete(f) for f in runs.iterdir())):
        assert driver.poll() is None, driver.stderr.read()
        assert time.monotonic() < deadline, "no run finished in 2 minutes"
        time.sleep(0.1)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    driver.stderr.close()
    done = {f.name: info(f)["finished"] for f in runs.iterdir() if is_complete(f)}
    assert 1 <= len(done) < 6

    # Again, this time starting its own local Ray instance (no --address).
    again = subprocess.run([*command, "--num-cpus", "2"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} already done" in again.stderr
    assert len(find_runs(out)) == 6 and not any(p.name.endswith(".partial") for p in runs.iterdir())
    assert {name: info(runs / name)["finished"] for name in done} == done


def test_the_executor_stops_when_asked(ray_cluster, tiny_images, tmp_path):
    """``stop`` (what the studio sets) cancels what is left without writing it."""
    from stylelab.ray_executor import RayExecutor

    stop = threading.Event()
    stop.set()
    exp = experiment(tiny_images)
    summary = sweep.run_sweep(exp, out=tmp_path / "exp", executor=RayExecutor(), stop=stop)
    assert summary.interrupted and summary.written == [] and list((tmp_path / "exp" / "runs").iterdir()) == []


def test_a_node_with_another_stylelab_version_runs_nothing(tiny_images, tmp_path):
    from stylelab.ray_worker import run_batch

    batch = sweep.plan_batches(experiment(tiny_images).plan(), 8)[0]
    paths = [batch.content, *(spec.style for spec in batch.runs)]
    data = [Path(p).read_bytes() for p in paths]
    outcomes = run_batch(batch, [0, 1], 1, None, str(tmp_path), paths, *data, version="0.0.0-elsewhere")
    assert [o.name for o in outcomes] == [spec.name for spec in batch.runs]
    assert all("the driver 0.0.0-elsewhere" in o.error and o.record is None for o in outcomes)
    assert list(tmp_path.iterdir()) == []


def test_a_worker_left_with_a_half_imported_torch_ends_so_ray_retries_elsewhere():
    """A task cancelled (Ctrl-C, ray.cancel) while its worker imported torch leaves that worker a
    torch without its submodules; the next task there ends the process instead of failing its runs
    with "partially initialized module 'torch'" (Ray then retries it on a fresh worker)."""
    import subprocess
    import sys

    broken = (
        "import sys, types; sys.modules['torch'] = types.ModuleType('torch'); "
        "from stylelab.ray_worker import own_worker; own_worker(1); print('went on')"
    )
    done = subprocess.run([sys.executable, "-c", broken], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "went on" not in done.stdout, done.stderr
    whole = "from stylelab.ray_worker import own_worker; print(own_worker(1).get_num_threads())"
    done = subprocess.run([sys.executable, "-c", whole], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "1", done.stderr
