"""Video jobs end to end on the stand-in network: frames published as they finish, a complete video run
folder under the runs folder, the gallery's video, poster and frames; cancel, and going on after a stop."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from .conftest import upload, video_body, wait_for


def finished(client, job_id: str, timeout: float = 120) -> dict:
    def check():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(check, timeout, interval=0.05, what=f"job {job_id} to finish")


def recorded(client) -> list[tuple[str, dict]]:
    """Every event the queue publishes from now on, as (kind, data)."""
    hub, events = client.app.state.hub, []
    publish = hub.publish

    def record(kind, data):
        events.append((kind, json.loads(json.dumps(data, default=str))))
        publish(kind, data)

    hub.publish = record
    return events


def test_a_video_job_publishes_its_frames_and_ends_in_a_video_run_folder_the_gallery_plays(
    make_client, runs_dir, video_clips, input_images
):
    from stylelab.video.io import probe
    from stylelab.video.run_folder import is_video_folder

    client = make_client(standin=True)
    events = recorded(client)
    clip = upload(client, video_clips["clip"])["id"]
    style = upload(client, input_images["style"])["id"]
    job = client.post("/api/jobs", json=video_body(clip, [style])).json()
    done = finished(client, job["id"])
    assert done["state"] == "done", done["message"]
    assert (done["frame"], done["frames"], done["run"], done["folder"]) == (4, 4, job["id"], job["id"])

    frames = [d for kind, d in events if kind == "frame" and d["id"] == job["id"]]
    assert [f["frame"] for f in frames] == [1, 2, 3, 4] and {f["total"] for f in frames} == {4}
    assert frames[-1]["eta"] == 0 and all(f["eta"] is not None for f in frames)
    assert all(f["url"].endswith(f"?frame={f['frame']}") and "total" in f["losses"] for f in frames)
    steps = [d for kind, d in events if kind == "step" and d["id"] == job["id"]]
    assert {(s["frame"], s["step"]) for s in steps} >= {(1, 2), (4, 2)}  # each frame's steps, from 1 again
    assert "temporal" in done["terms"]  # the last frame was carried along the flow

    folder = runs_dir / job["id"]
    assert is_video_folder(folder)
    info = json.loads((folder / "video.json").read_text())
    assert (info["status"], info["frames_done"], info["frames_total"]) == ("done", 4, 4)
    assert sorted(p.name for p in (folder / "frames").iterdir()) == [f"frame_{n:06d}.png" for n in range(1, 5)]
    assert probe(folder / "video.mp4").frames == 4
    live = client.get(f"/api/jobs/{job['id']}/live.png?frame=4")
    assert live.status_code == 200 and live.content == (folder / "frames" / "frame_000004.png").read_bytes()

    (card,) = client.get("/api/runs").json()["runs"]
    assert (card["key"], card["kind"], card["status"], card["running"]) == (job["id"], "video", "done", False)
    assert card["title"] == "mosaic on clip" and card["studio"] and card["frames_done"] == 4
    video = client.get(card["video"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content == (folder / "video.mp4").read_bytes() and video.headers["accept-ranges"] == "bytes"
    part = client.get(card["video"], headers={"Range": "bytes=0-99"})  # how a browser seeks
    assert part.status_code == 206 and len(part.content) == 100
    assert part.headers["content-range"] == f"bytes 0-99/{len(video.content)}"
    poster = client.get(card["poster"])
    assert poster.content == (folder / "frames" / "frame_000001.png").read_bytes()
    assert Image.open(__import__("io").BytesIO(client.get(card["thumb"]).content)).format == "JPEG"

    detail = client.get(f"/api/runs/{job['id']}").json()
    assert [f["frame"] for f in detail["frames"]] == [1, 2, 3, 4]
    assert [m["frame"] for m in detail["metrics"]] == [1, 2, 3, 4] and "temporal" in detail["terms"]
    assert [(i["role"], i["name"]) for i in detail["inputs"]] == [("content", "clip.mp4"), ("style", "mosaic.png")]
    assert set(detail["downloads"]) >= {"video.mp4", "frames.csv", "everything (.zip)"}
    assert client.get(detail["frames"][2]["thumb"]).status_code == 200
    assert client.get(f"/api/thumb/{job['id']}?frame=9").status_code == 404
    reused = client.post(f"/api/reuse/{job['id']}").json()["inputs"]
    assert [(i["role"], i["id"], i["kind"]) for i in reused] == [("content", clip, "video"), ("style", style, "image")]


def start_video(client, clips, images, steps: int = 40, **video) -> dict:
    """A 6-frame job of ``steps`` steps a frame, returned once its first frame is saved: one to stop mid-clip."""
    clip = upload(client, clips["long"])["id"]
    style = upload(client, images["style"])["id"]
    body = video_body(clip, [style], {"frame_steps": steps} | video, steps=steps)
    job = client.post("/api/jobs", json=body).json()
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["frame"] >= 1, 60, 0.02, "the first frame")
    return job


def test_cancel_stops_a_video_mid_clip_and_run_again_goes_on_from_the_next_frame(
    make_client, runs_dir, video_clips, input_images
):
    client = make_client(standin=True)
    job = start_video(client, video_clips, input_images)
    client.post(f"/api/jobs/{job['id']}/cancel")
    stopped = finished(client, job["id"])
    k = stopped["frame"]
    assert stopped["state"] == "cancelled" and 1 <= k < 6, stopped
    assert f"goes on from frame {k + 1}" in stopped["message"]
    info = json.loads((runs_dir / job["id"] / "video.json").read_text())
    assert (info["status"], info["frames_done"]) == ("cancelled", k)
    assert not (runs_dir / job["id"] / "video.mp4").exists()
    listed = {r["key"]: r for r in client.get("/api/runs").json()["runs"]}
    assert listed[job["id"]]["status"] == "cancelled" and listed[job["id"]]["video"] is None
    first_frames = {n: (runs_dir / job["id"] / "frames" / f"frame_{n:06d}.png").read_bytes() for n in range(1, k + 1)}

    again = client.post(f"/api/jobs/{job['id']}/again").json()
    assert again["folder"] == job["id"] and again["kind"] == "video"
    done = finished(client, again["id"])
    assert done["state"] == "done", done["message"]
    assert (done["resumed_from"], done["frame"], done["run"]) == (k, 6, job["id"])
    for n, data in first_frames.items():  # the frames saved before were kept, not painted again
        assert (runs_dir / job["id"] / "frames" / f"frame_{n:06d}.png").read_bytes() == data
    assert (runs_dir / job["id"] / "video.mp4").is_file()
    assert not (runs_dir / again["id"]).exists()


def test_a_restart_mid_video_interrupts_the_job_and_run_again_goes_on_in_its_folder(
    make_client, runs_dir, video_clips, input_images
):
    client = make_client(standin=True)
    job = start_video(client, video_clips, input_images)
    client.__exit__(None, None, None)  # the server stops: its worker is stopped mid-clip
    saved = {j["id"]: j for j in json.loads((runs_dir / ".studio" / "jobs.json").read_text())}[job["id"]]
    assert saved["state"] == "interrupted" and "goes on from frame" in saved["message"]
    k = saved["frame"]

    client = make_client(standin=True)
    old = client.get(f"/api/jobs/{job['id']}").json()
    assert old["state"] == "interrupted"
    live = client.get(f"/api/jobs/{job['id']}/live.png")  # its newest frame, from the run folder
    assert live.content == (runs_dir / job["id"] / "frames" / f"frame_{k:06d}.png").read_bytes()
    again = client.post(f"/api/jobs/{job['id']}/again").json()
    done = finished(client, again["id"])
    assert done["state"] == "done" and done["resumed_from"] == k and done["run"] == job["id"]


@pytest.mark.parametrize("missing", ["clip", "style"])
def test_a_video_job_whose_upload_vanished_fails_with_one_line_and_writes_nothing(
    make_client, runs_dir, video_clips, input_images, missing
):
    client = make_client(standin=True, worker=False)
    ids = {"clip": upload(client, video_clips["clip"])["id"], "style": upload(client, input_images["style"])["id"]}
    job = client.post("/api/jobs", json=video_body(ids["clip"], [ids["style"]])).json()
    for path in (runs_dir / ".studio" / "uploads").glob(f"{ids[missing]}.*"):
        path.unlink()
    client.app.state.queue.start()
    failed = finished(client, job["id"])
    assert failed["state"] == "failed" and "upload" in failed["message"] and "\n" not in failed["message"]
    assert not (runs_dir / job["id"]).exists()


def test_a_video_job_paints_each_style_in_its_region_of_every_frame(make_client, runs_dir, video_clips, input_images):
    mask = Image.new("L", (48, 32), 0)
    mask.paste(255, (0, 0, 24, 32))  # white on the left: the first style paints there
    mask_path = runs_dir.parent / "left.png"
    mask.save(mask_path)
    client = make_client(standin=True)
    clip = upload(client, video_clips["clip"])["id"]
    styles = [upload(client, input_images["style"])["id"], upload(client, input_images["style2"])["id"]]
    body = video_body(clip, styles, {"max_frames": 2})
    body["styles"][0]["mask"] = upload(client, mask_path)["id"]
    job = client.post("/api/jobs", json=body).json()
    done = finished(client, job["id"])
    assert done["state"] == "done" and done["frame"] == 2, done["message"]
    settings = json.loads((runs_dir / job["id"] / "video.json").read_text())["settings"]
    assert settings["masks"][0]["name"].endswith(".png") and settings["background"]["name"].endswith(".png")
    (card,) = client.get("/api/runs").json()["runs"]
    assert card["title"] == "mosaic + waves (regions) on clip"
