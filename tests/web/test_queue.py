"""The queue on the stand-in network (milliseconds a step, no VGG): one network for every job,
masked styles, labels among the queue's jobs."""

from __future__ import annotations

import json

from PIL import Image

from .conftest import STANDIN, job_body, upload, wait_for


def finished(client, job_id: str) -> dict:
    def check():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(check, 120, interval=0.05, what=f"job {job_id} to finish")


def test_three_jobs_build_the_network_once(make_client, input_images):
    client = make_client(standin=True)
    content = upload(client, input_images["content"])["id"]
    style = upload(client, input_images["style"])["id"]
    ids = [
        client.post("/api/jobs", json=job_body(content, [style], steps=2, style_weight=w, **STANDIN)).json()["id"]
        for w in (1, 5, 20)
    ]
    jobs = [finished(client, i) for i in ids]
    assert [j["state"] for j in jobs] == ["done"] * 3, [j["message"] for j in jobs]
    assert client.app.state.queue.engines.builds == 1
    assert client.get("/api/info").json()["engine"] == {"builds": 1}
    assert jobs[0]["build_seconds"] > 0 and [j["build_seconds"] for j in jobs[1:]] == [0.0, 0.0]
    assert all(j["startup"] is not None and j["startup"] >= j["build_seconds"] for j in jobs)
    # Each label says what sets the job apart from the others painted from the same images.
    assert [j["label"] for j in client.get("/api/jobs").json()["jobs"]] == [
        f"mosaic on coffee · style weight {w}" for w in (20, 5, 1)
    ]


def test_a_job_with_a_mask_paints_its_style_there_and_the_other_style_elsewhere(
    make_client, runs_dir, input_images, tmp_path
):
    client = make_client(standin=True)
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (0, 0, 48, 64))  # the left half
    mask.save(tmp_path / "left.png")
    content = upload(client, input_images["content"])["id"]
    styles = [upload(client, input_images[k])["id"] for k in ("style", "style2")]
    mask_id = upload(client, tmp_path / "left.png")["id"]
    body = job_body(content, styles, steps=3, **STANDIN)
    body["styles"][0]["mask"] = mask_id
    job = finished(client, client.post("/api/jobs", json=body).json()["id"])
    assert job["state"] == "done", job["message"]
    folder = runs_dir / job["run"]
    assert sorted(p.name for p in (folder / "inputs").iterdir()) == [
        "content.jpg",
        "mask_1.png",
        "style_1.png",
        "style_2.png",
    ]
    task = json.loads((folder / "run.json").read_text())["task"]
    # Two style sets: the masked style in its region, the other painting the rest; inputs as kept copies.
    assert [s["images"][0]["upload"] for s in task["styles"]] == ["mosaic.png", "waves.png"]
    assert task["styles"][0]["mask"]["name"] == str(folder / "inputs" / "mask_1.png")
    assert task["styles"][0]["mask"]["upload"] == "left.png" and task["styles"][1]["mask"] == "background"
    # "Run again with changes" gets the mask back, as the mask of style 1.
    inputs = client.post(f"/api/reuse/{job['run']}").json()["inputs"]
    assert [(i["role"], i["number"], i["name"]) for i in inputs] == [
        ("content", 0, "coffee.jpg"),
        ("style", 1, "mosaic.png"),
        ("style", 2, "waves.png"),
        ("mask", 1, "left.png"),
    ]
    again = client.post(f"/api/jobs/{job['id']}/again").json()
    assert again["masks"] == [mask_id, None] and "(regions)" in again["label"]
    compared = client.get(f"/api/compare?run={job['run']}").json()
    assert {f["name"]: f["shown"] for f in compared["fields"]}["region masks"] == ["left.png + the rest"]
