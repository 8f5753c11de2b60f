"""Video run folders in the gallery, whoever painted them, and the confinement of what they hold:
a video, frame or video.json that is a link leading out of the runs folder is never served."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from .test_confinement import SECRET_TEXT, assert_no_secret, link, secret_png


@pytest.fixture
def outside(tmp_path) -> Path:
    """Files beside the runs folder that no request may reach (each holds SECRET_TEXT)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET_TEXT)
    secret_png(folder / "secret.png")
    secret_png(folder / "frames" / "frame_000001.png")
    return folder


@pytest.fixture(scope="module")
def painted(tmp_path_factory) -> Path:
    """A video run folder as `stylelab video --run-dir` leaves it (run_clip on the stand-in network)."""
    from stylelab.demo import mosaic
    from stylelab.recipes import load_recipe
    from stylelab.video.clip_run import run_clip
    from stylelab.video.pipeline import ClipSpec
    from stylelab.video.synthetic import make_clip, write_clip

    folder = tmp_path_factory.mktemp("painted")
    clip = write_clip(folder / "street.mp4", make_clip(3, (48, 32), seed=4), 24)
    mosaic(48).save(folder / "mosaic.png")
    recipe = load_recipe("default", size=48, steps=2, weights="standin", temporal_weight=5)
    outcome = run_clip(ClipSpec(str(clip), (str(folder / "mosaic.png"),), recipe, frame_steps=2), folder / "run")
    assert outcome.status == "done", outcome.message
    return folder / "run"


def placed(painted: Path, runs_dir: Path, key: str = "street-run") -> Path:
    runs_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copytree(painted, runs_dir / key))


def edit_info(folder: Path, **changes) -> None:
    info = json.loads((folder / "video.json").read_text())
    (folder / "video.json").write_text(json.dumps(info | changes))


def test_a_video_run_folder_made_by_the_cli_is_listed_played_and_shown_frame_by_frame(make_client, runs_dir, painted):
    folder = placed(painted, runs_dir / "trials", "street-run")  # in an experiment folder, as a sweep puts them
    client = make_client(worker=False)
    listing = client.get("/api/runs").json()
    (card,) = listing["runs"]
    assert (card["key"], card["kind"], card["status"], card["title"]) == (
        "trials/street-run",
        "video",
        "done",
        "mosaic on street",
    )
    assert card["studio"] is False and card["experiment"] == "trials" and listing["experiments"][0]["runs"] == 1
    assert client.get(card["video"]).content == (folder / "video.mp4").read_bytes()
    detail = client.get("/api/runs/trials/street-run").json()
    assert detail["inputs"] == []  # its inputs are files of the user's, not uploads: neither shown nor served
    assert [f["frame"] for f in detail["frames"]] == [1, 2, 3] and detail["recipe_values"]["size"] == 48
    assert client.post("/api/reuse/trials/street-run").json() == {"inputs": []}
    assert client.get("/api/compare?run=trials/street-run").status_code == 404  # compare is for stills
    import io
    import zipfile

    names = zipfile.ZipFile(io.BytesIO(client.get("/api/zip/trials/street-run").content)).namelist()
    assert "street-run/video.mp4" in names and "street-run/frames/frame_000003.png" in names


def test_a_video_being_painted_is_listed_running_with_its_newest_frame_and_stalled_once_it_stops_moving(
    make_client, runs_dir, painted
):
    folder = placed(painted, runs_dir)
    (folder / "video.mp4").unlink()
    (folder / "frames" / "frame_000003.png").unlink()
    edit_info(folder, status="running", frames_done=2, updated=time.time())
    client = make_client(worker=False)
    (card,) = client.get("/api/runs").json()["runs"]
    assert (card["status"], card["running"], card["video"], card["frames_done"]) == ("running", True, None, 2)
    assert card["thumb"].endswith("?frame=2") and card["result"].endswith("frames/frame_000002.png")
    edit_info(folder, updated=time.time() - 3600)
    client.app.state.gallery.invalidate()
    (card,) = client.get("/api/runs").json()["runs"]
    assert card["status"] == "stalled" and not card["running"] and "no new frame" in card["message"]


@pytest.mark.parametrize(
    "planted",
    ["video.mp4", "frames/frame_000001.png", "video.json", "frames"],
)
def test_a_video_folder_with_a_link_leading_out_is_not_listed_and_nothing_it_links_is_served(
    make_client,
    runs_dir,
    painted,
    outside,
    planted,
):
    folder = placed(painted, runs_dir)
    secrets = {
        "video.mp4": outside / "secret.txt",
        "frames/frame_000001.png": outside / "secret.png",
        "video.json": outside / "secret.json",
        "frames": outside / "frames",
    }
    (outside / "secret.json").write_text(
        json.dumps(json.loads((folder / "video.json").read_text()) | {"message": SECRET_TEXT})
    )
    link(folder / planted, secrets[planted])
    client = make_client(worker=False)
    assert client.get("/api/runs").json()["runs"] == []
    served = "frames/frame_000001.png" if planted == "frames" else planted
    for url in (f"/files/street-run/{served}", "/api/thumb/street-run", "/api/runs/street-run", "/api/zip/street-run"):
        response = client.get(url)
        assert response.status_code == 404, url
        assert_no_secret(response)


def test_a_video_json_naming_files_elsewhere_reuses_and_shows_none_of_them(make_client, runs_dir, painted, outside):
    folder = placed(painted, runs_dir)
    info = json.loads((folder / "video.json").read_text())
    store = runs_dir / ".studio" / "uploads"
    store.mkdir(parents=True)
    (store / "0123456789abcdef0123.json").write_text(json.dumps({"id": "0123456789abcdef0123", "file": "../x.png"}))
    info["settings"]["input"]["name"] = str(outside / "secret.png")
    info["settings"]["styles"] = [{"name": str(store / "0123456789abcdef0123.png")}]  # no such upload, a bad sidecar
    (folder / "video.json").write_text(json.dumps(info))
    client = make_client(worker=False)
    assert client.get("/api/runs/street-run").json()["inputs"] == []
    response = client.post("/api/reuse/street-run")
    assert response.json() == {"inputs": []}
    assert_no_secret(response)


def test_the_live_image_of_a_video_job_does_not_follow_a_frame_linked_outside(make_client, runs_dir, painted, outside):
    from stylelab.recipes import load_recipe

    folder = placed(painted, runs_dir, "20240101-000000-abcdef")
    link(folder / "frames" / "frame_000003.png", outside / "secret.png")
    record = {
        "id": folder.name, "recipe": load_recipe("default", size=48).to_dict(drop_none=True), "content": "0" * 20,
        "styles": ["1" * 20], "names": {}, "state": "interrupted", "kind": "video", "folder": folder.name,
        "frame": 3, "frames": 3,
    }  # fmt: skip
    (runs_dir / ".studio").mkdir(parents=True)
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps([record]))
    client = make_client(worker=False)
    response = client.get(f"/api/jobs/{folder.name}/live.png")
    assert response.status_code == 404
    assert_no_secret(response)


def test_after_a_crash_a_video_job_counts_the_frames_its_folder_saved(make_client, runs_dir, painted):
    from stylelab.recipes import load_recipe

    folder = placed(painted, runs_dir, "20240101-000000-abcdef")
    (folder / "video.mp4").unlink()
    edit_info(folder, status="running", frames_done=2)
    record = {
        "id": folder.name,
        "recipe": load_recipe("default", size=48).to_dict(drop_none=True),
        "content": "0" * 20,
        "styles": ["1" * 20],
        "names": {},
        "state": "running",
        "kind": "video",
        "folder": folder.name,
        "frame": 0,
        "frames": 0,
    }  # fmt: skip  (jobs.json as a killed server left it: written when the job started)
    (runs_dir / ".studio").mkdir(parents=True)
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps([record]))
    client = make_client(worker=False)
    job = client.get(f"/api/jobs/{folder.name}").json()
    assert job["state"] == "interrupted" and (job["frame"], job["frames"]) == (2, 3)
    assert job["message"].endswith("“Run again” goes on from frame 3")
    live = client.get(f"/api/jobs/{folder.name}/live.png")
    assert live.content == (folder / "frames" / "frame_000002.png").read_bytes()
