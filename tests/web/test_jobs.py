"""Jobs through the real engine (VGG19 with its bundled weights, 64 px, a few steps)."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from stylelab.recipes import recipe_from_toml
from stylelab.runs import load_run

from .conftest import job_body, upload, wait_for

pytestmark = pytest.mark.slow


def finished(client, job_id: str, timeout: float = 120) -> dict:
    def check():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(check, timeout, interval=0.1, what=f"job {job_id} to finish")


def start_long_job(client, input_images, min_step: int) -> dict:
    """A 500-step job, returned once it has done ``min_step`` steps: one to interrupt half-way."""
    content = upload(client, input_images["content"])["id"]
    style = upload(client, input_images["style"])["id"]
    job = client.post("/api/jobs", json=job_body(content, [style], steps=500, save_every=50)).json()
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["step"] >= min_step, 60, what=f"{min_step} step(s)")
    return job


def test_a_job_runs_to_a_run_folder_that_keeps_its_inputs(make_client, runs_dir, input_images):
    client = make_client()
    content = upload(client, input_images["content"])["id"]
    style = upload(client, input_images["style"])["id"]
    job = client.post("/api/jobs", json=job_body(content, [style])).json()
    done = finished(client, job["id"])
    assert done["state"] == "done", done["message"]
    assert done["step"] == done["total"] == 4 and len(done["history"]) == 4
    assert done["run"] == job["id"]
    run = load_run(runs_dir / done["run"])
    assert run.status == "done" and run.recipe.size == 64 and run.recipe.steps == 4
    assert [s for s, _ in run.snapshots()] == [0, 2, 4]
    assert Image.open(run.result).size == (64, 43)
    kept = sorted(p.name for p in (run.folder / "inputs").iterdir())
    assert kept == ["content.jpg", "style_1.png"]
    assert (run.folder / "inputs" / "content.jpg").read_bytes() == input_images["content"].read_bytes()
    assert run.info["content"] == str(run.folder / "inputs" / "content.jpg")  # `stylelab run --from` finds it
    assert run.info["studio"]["names"]["content"] == "coffee.jpg"
    assert done["live"] is None  # the page shows the run folder's result now
    late = client.get(f"/api/jobs/{job['id']}/live.png?step=4")  # a page that asks anyway gets the result
    assert late.status_code == 200 and late.content == run.result.read_bytes()
    listed = client.get("/api/runs").json()["runs"]
    assert [r["key"] for r in listed] == [job["id"]] and listed[0]["title"] == "mosaic on coffee"


def test_cancel_stops_a_running_job_and_keeps_its_last_image(make_client, runs_dir, input_images):
    client = make_client()
    job = start_long_job(client, input_images, min_step=2)
    client.post(f"/api/jobs/{job['id']}/cancel")
    done = finished(client, job["id"])
    assert done["state"] == "cancelled"
    assert 2 <= done["step"] < 500
    run = load_run(runs_dir / job["id"])
    assert run.status == "cancelled" and run.result.is_file()
    assert json.loads((runs_dir / job["id"] / "run.json").read_text())["steps"] == done["step"]


def test_jobs_run_one_at_a_time_in_order_and_a_failed_one_does_not_stop_the_queue(make_client, input_images):
    client = make_client(worker=False)
    content = upload(client, input_images["content"])["id"]
    style = upload(client, input_images["style"])["id"]
    doomed_style = upload(client, input_images["style2"])["id"]
    ids = [
        client.post("/api/jobs", json=job_body(content, [doomed_style], steps=1)).json()["id"],
        client.post("/api/jobs", json=job_body(content, [style], steps=2)).json()["id"],
        client.post("/api/jobs", json=job_body(content, [style], steps=1, optimizer="adam")).json()["id"],
    ]
    # The first job's style vanishes from disk before the worker gets to it.
    for path in (client.app.state.runs / ".studio" / "uploads").glob(f"{doomed_style}.*"):
        path.unlink()
    client.app.state.queue.start()
    jobs = [finished(client, i) for i in ids]
    assert [j["state"] for j in jobs] == ["failed", "done", "done"]
    assert "upload the image again" in jobs[0]["message"]
    assert jobs[1]["started"] >= jobs[0]["finished"] and jobs[2]["started"] >= jobs[1]["finished"]
    assert jobs[2]["recipe"]["optimizer"] == "adam"
    assert not list(client.app.state.runs.glob("*.partial")), "a failed job leaves no half-written folder"


def test_a_start_image_upload_starts_the_optimisation(make_client, runs_dir, input_images):
    client = make_client()
    content = upload(client, input_images["content"])["id"]
    style = upload(client, input_images["style"])["id"]
    start = upload(client, input_images["style2"])["id"]
    body = job_body(content, [style], steps=1, save_every=1) | {"start": start}
    job = client.post("/api/jobs", json=body).json()
    done = finished(client, job["id"])
    assert done["state"] == "done", done["message"]
    folder = runs_dir / job["id"]
    assert (folder / "inputs" / "start.png").is_file()
    # The start image is the task's, recorded as the copy the run keeps (never the upload store's path).
    task = json.loads((folder / "run.json").read_text())["task"]
    assert task["init"]["name"] == str(folder / "inputs" / "start.png") and task["init"]["upload"] == "waves.png"
    assert recipe_from_toml((folder / "recipe.toml").read_text()).init == "content"
    # Snapshot 0 is the start image, not the content.
    first = Image.open(folder / "snapshots" / "step_000000.png").convert("RGB")
    waves = Image.open(input_images["style2"]).convert("RGB").resize(first.size)
    coffee = Image.open(input_images["content"]).convert("RGB").resize(first.size)
    diff = lambda a, b: sum(abs(x - y) for x, y in zip(a.tobytes(), b.tobytes()))  # noqa: E731
    assert diff(first, waves) < diff(first, coffee)


def test_stopping_the_server_mid_job_marks_it_interrupted_and_keeps_its_last_image(make_client, runs_dir, input_images):
    client = make_client()
    job = start_long_job(client, input_images, min_step=1)
    client.__exit__(None, None, None)  # lifespan shutdown: the worker is stopped
    saved = {j["id"]: j for j in json.loads((runs_dir / ".studio" / "jobs.json").read_text())}
    assert saved[job["id"]]["state"] == "interrupted"
    assert load_run(runs_dir / job["id"]).result.is_file()


def test_a_run_made_by_the_cli_shows_in_the_gallery(make_client, runs_dir, input_images, tmp_path):
    from stylelab.cli import main

    code = main(
        [
            "run",
            str(input_images["content"]),
            "--style",
            str(input_images["style"]),
            "--size",
            "32",
            "--steps",
            "2",
            "--run-dir",
            str(runs_dir / "from-cli"),
            "-o",
            str(tmp_path / "out.png"),
            "-q",
        ]
    )
    assert code == 0
    client = make_client(worker=False)
    listed = client.get("/api/runs").json()["runs"]
    assert [(r["key"], r["title"], r["studio"]) for r in listed] == [("from-cli", "mosaic on coffee", False)]
    run = client.get("/api/runs/from-cli").json()
    assert [m["step"] for m in run["metrics"]] == [1, 2] and run["inputs"] == []
    assert run["recipe_values"]["size"] == 32
