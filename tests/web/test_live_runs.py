"""Runs still being written into the runs folder (a CLI run, a sweep): listed as running and read
while they grow, through one confined way into ``.partial`` folders, and nothing else."""

from __future__ import annotations

import io
import json
import os

from PIL import Image

from .conftest import GrowingRun
from .test_confinement import SECRET_TEXT, outside, secret_png  # noqa: F401 - the fixture, and its helpers


def test_a_run_being_written_is_listed_as_running_with_its_losses_and_newest_snapshot(make_client, runs_dir):
    client = make_client(worker=False)
    run = GrowingRun(runs_dir / "cli-live", terms=("content", "style", "tv", "temporal", "total")).start()
    run.step(3).snapshot((250, 0, 0)).step(2)
    listed = client.get("/api/runs").json()["runs"]
    assert [(r["key"], r["status"], r["running"], r["steps"], r["total"]) for r in listed] == [
        ("cli-live.partial", "running", True, 5, 40)
    ]
    assert listed[0]["final"] == "cli-live" and listed[0]["losses"]["temporal"] == 4.0 / 5
    picture = client.get(listed[0]["thumb"])
    assert picture.status_code == 200 and Image.open(io.BytesIO(picture.content)).getpixel((0, 0)) == (250, 0, 0)
    detail = client.get("/api/runs/cli-live.partial").json()
    # The terms are the run's own, from its metrics.csv header: an extra one comes through.
    assert detail["terms"] == ["content", "style", "tv", "temporal", "total"]
    assert [m["step"] for m in detail["metrics"]] == [1, 2, 3, 4, 5] and detail["recipe_values"]["steps"] == 40
    run.step(1).snapshot((0, 250, 0))
    again = client.get("/api/runs/cli-live.partial").json()
    assert again["steps"] == 6 and again["result"].endswith("step=6")
    run.finish()
    client.app.state.gallery.invalidate()
    moved = client.get("/api/runs/cli-live.partial").json()  # renamed: the page following it moves on
    assert moved == {"key": "cli-live.partial", "running": False, "finished_as": "cli-live"}
    assert client.get("/api/latest/cli-live.partial").status_code == 404
    done = client.get("/api/runs/cli-live").json()
    assert done["status"] == "done" and done["terms"] == ["content", "style", "tv", "temporal", "total"]
    assert [r["key"] for r in client.get("/api/runs").json()["runs"]] == ["cli-live"]


def test_a_half_written_line_is_not_read(make_client, runs_dir):
    client = make_client(worker=False)
    GrowingRun(runs_dir / "r").start().step(2)
    with open(runs_dir / "r.partial" / "metrics.csv", "a") as fh:
        fh.write("3,0.3,1.0,2.")  # the writer is in the middle of this line
    detail = client.get("/api/runs/r.partial").json()
    assert [m["step"] for m in detail["metrics"]] == [1, 2] and detail["steps"] == 2


def test_only_unfinished_run_folders_are_read_and_only_inside_the_runs_folder(make_client, runs_dir, outside):  # noqa: F811
    client = make_client(worker=False)
    GrowingRun(runs_dir / "real").start().step(1).snapshot()
    (runs_dir / "empty.partial").mkdir()  # not a run: nothing in it
    # A .partial link to a run being written outside the runs folder, with a secret snapshot.
    elsewhere = outside / "elsewhere"
    GrowingRun(elsewhere).start().step(1)
    secret_png(outside / "elsewhere.partial" / "snapshots" / "step_000001.png")
    os.symlink(outside / "elsewhere.partial", runs_dir / "linked.partial")
    # A snapshot inside a real unfinished run that links outside.
    os.symlink(outside / "secret.png", runs_dir / "real.partial" / "snapshots" / "step_000009.png")
    listed = client.get("/api/runs").json()["runs"]
    assert [r["key"] for r in listed] == ["real.partial"]
    assert listed[0]["thumb"].endswith("step=1")  # the linked step 9 counts as absent
    for path in (
        "/api/runs/linked.partial",
        "/api/latest/linked.partial",
        "/api/runs/empty.partial",
        "/api/latest/real",  # not an unfinished run
        "/api/latest/real.partial/snapshots.partial",
        "/api/latest/../outside/elsewhere.partial",
        "/api/latest/.studio.partial",
        "/files/real.partial/metrics.csv",  # the general file route still refuses .partial folders
        "/files/real.partial/snapshots/step_000001.png",
    ):
        response = client.get(path)
        assert response.status_code in (400, 404), path
        assert SECRET_TEXT.encode() not in response.content, path
    assert client.get("/api/latest/real.partial").status_code == 200


def test_after_a_restart_an_interrupted_jobs_chart_comes_from_what_its_run_left(make_client, runs_dir):
    crashed, stopped = "20240101-000000-abcdef", "20240101-000001-abcdef"
    terms = ("content", "style", "tv", "temporal", "total")
    GrowingRun(runs_dir / crashed, terms=terms).start().step(4).snapshot()  # killed here: only .partial is left
    GrowingRun(runs_dir / stopped, terms=terms).start().step(3).finish("cancelled")  # stopped cleanly
    job = {"recipe": {"size": 48}, "content": "0" * 20, "styles": ["1" * 20], "names": {}}
    saved = [job | {"id": crashed, "state": "running"}, job | {"id": stopped, "state": "interrupted", "run": stopped}]
    (runs_dir / ".studio").mkdir()
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps(saved))
    client = make_client(worker=False)
    detail = client.get(f"/api/jobs/{crashed}").json()
    assert detail["state"] == "interrupted"
    assert detail["terms"] == list(terms)
    assert [row[0] for row in detail["history"]] == [1, 2, 3, 4] and len(detail["history"][0]) == 6
    assert client.get(f"/api/jobs/{crashed}/live.png").status_code == 200  # its last snapshot
    detail = client.get(f"/api/jobs/{stopped}").json()
    assert detail["terms"] == list(terms) and [row[0] for row in detail["history"]] == [1, 2, 3]
    assert client.get(f"/api/jobs/{stopped}/live.png").status_code == 200  # its result
