"""Symlinks inside the runs folder that point outside it: no route reads or lists what they point to.

Each test plants one link the way someone with write access to the runs folder
(a shared disk, an unpacked archive) could, then asks the route that would
follow it. The secret files outside carry SECRET_TEXT in their bytes (a PNG's
text chunk, a run.json message, a recipe's description), so a response that
leaked them would contain it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from stylelab.recipes import load_recipe

from .conftest import job_body, upload

SECRET_TEXT = "top secret, outside the runs folder"
SECRET_METRIC = 987654.25  # a loss value only the outside metrics.csv holds


def secret_png(path: Path, colour=(10, 200, 30)) -> Path:
    """A real image (so image routes would decode it) whose bytes also hold the secret text."""
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", SECRET_TEXT)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (40, 30), colour).save(path, "PNG", pnginfo=info)
    return path


def plain_run(folder: Path, **info) -> Path:
    """A complete run folder as ``runs.load_run`` reads it, written by hand (no engine, no process picture)."""
    (folder / "snapshots").mkdir(parents=True)
    (folder / "recipe.toml").write_text(load_recipe("default", size=48, steps=4).to_toml())
    (folder / "run.json").write_text(json.dumps({"status": "done", "finished": 1.0, "message": ""} | info))
    (folder / "metrics.csv").write_text("step,elapsed,content,style,tv,total\n1,0.1,1.0,2.0,0.0,3.0\n")
    Image.new("RGB", (48, 32), (200, 120, 40)).save(folder / "result.png")
    Image.new("RGB", (48, 32), (200, 120, 40)).save(folder / "snapshots" / "step_000004.png")
    return folder


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder next to the runs folder holding things no request may reach."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET_TEXT)
    secret_png(folder / "secret.png")
    return folder


def link(path: Path, target: Path) -> Path:
    """``path`` made a symlink to ``target``, replacing what was there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)
    return path


def assert_no_secret(response) -> None:
    assert SECRET_TEXT.encode() not in response.content, (response.request.url, response.status_code)


# ---------------------------------------------------------------- the live image of a finished job


def test_live_image_does_not_follow_a_result_linked_outside(make_client, runs_dir, outside):
    job_id = "20240101-000000-abcdef"
    recipe = load_recipe("default", size=48).to_dict(drop_none=True)
    record = {"id": job_id, "recipe": recipe, "content": "0" * 20, "styles": ["1" * 20], "names": {}}
    (runs_dir / ".studio").mkdir(parents=True)
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps([record | {"state": "done", "run": job_id}]))
    link(runs_dir / job_id / "result.png", outside / "secret.png")
    client = make_client(worker=False)
    assert client.get(f"/api/jobs/{job_id}").json()["run"] == job_id  # the job itself is fine
    response = client.get(f"/api/jobs/{job_id}/live.png")
    assert response.status_code == 404
    assert_no_secret(response)


# ---------------------------------------------------------------- gallery images


def test_thumbnail_and_compare_picture_refuse_a_result_linked_outside(make_client, runs_dir, outside):
    plain_run(runs_dir / "r1")
    plain_run(runs_dir / "r2")
    link(runs_dir / "r1" / "result.png", outside / "secret.png")
    link(runs_dir / "r2" / "result.png", outside / "secret.png")
    client = make_client(worker=False)
    thumb = client.get("/api/thumb/r1")
    assert thumb.status_code == 404 and not thumb.headers["content-type"].startswith("image/")
    picture = client.get("/api/compare.png?run=r1&run=r2")
    assert picture.status_code == 404 and not picture.headers["content-type"].startswith("image/")
    summary = {r["key"]: r for r in client.get("/api/runs").json()["runs"]}["r1"]
    assert summary["result"] is None and summary["thumb"] is None  # shown as a run without a result


def test_files_refuses_links_out_and_links_into_hidden_folders(make_client, runs_dir, outside):
    plain_run(runs_dir / "r1")
    link(runs_dir / "r1" / "notes.txt", outside / "secret.txt")
    link(runs_dir / "r1" / "linked", outside)
    (runs_dir / ".studio").mkdir()
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps([{"message": SECRET_TEXT}]))
    link(runs_dir / "r1" / "queue.json", runs_dir / ".studio" / "jobs.json")  # inside, but a hidden file
    client = make_client(worker=False)
    for rel in ("r1/notes.txt", "r1/linked/secret.txt", "r1/queue.json"):
        response = client.get(f"/files/{rel}")
        assert response.status_code == 404, rel
        assert_no_secret(response)
    assert client.get("/files/r1/result.png").status_code == 200  # plain files still are served


# ---------------------------------------------------------------- "run again with changes"


def test_reuse_does_not_copy_inputs_linked_outside_into_the_uploads(make_client, runs_dir, outside):
    plain_run(runs_dir / "r1")
    link(runs_dir / "r1" / "inputs" / "content.png", outside / "secret.png")
    plain_run(runs_dir / "r2")
    link(runs_dir / "r2" / "inputs", outside / "kept")
    secret_png(outside / "kept" / "content.png")
    client = make_client(worker=False)
    for key in ("r1", "r2"):
        response = client.post(f"/api/reuse/{key}")
        assert response.status_code == 200 and response.json() == {"inputs": []}, key
    uploads = runs_dir / ".studio" / "uploads"
    assert not uploads.exists() or not any(SECRET_TEXT.encode() in p.read_bytes() for p in uploads.iterdir())
    detail = client.get("/api/runs/r2").json()
    assert detail["inputs"] == []  # not listed either


# ---------------------------------------------------------------- the run listing and a run's page


def test_a_run_whose_run_json_or_recipe_is_linked_outside_is_neither_listed_nor_opened(make_client, runs_dir, outside):
    elsewhere = plain_run(outside / "run", message=SECRET_TEXT)
    (elsewhere / "recipe.toml").write_text(load_recipe("default", description=SECRET_TEXT).to_toml())
    plain_run(runs_dir / "ok")
    plain_run(runs_dir / "info-out")
    link(runs_dir / "info-out" / "run.json", elsewhere / "run.json")
    plain_run(runs_dir / "recipe-out")
    link(runs_dir / "recipe-out" / "recipe.toml", elsewhere / "recipe.toml")
    link(runs_dir / "folder-out", elsewhere)
    client = make_client(worker=False)
    listing = client.get("/api/runs")
    assert [r["key"] for r in listing.json()["runs"]] == ["ok"]
    assert_no_secret(listing)
    for key in ("info-out", "recipe-out", "folder-out"):
        for response in (
            client.get(f"/api/runs/{key}"),
            client.get(f"/api/compare?run=ok&run={key}"),
            client.get(f"/api/zip/{key}"),
            client.get(f"/api/thumb/{key}"),
            client.post(f"/api/reuse/{key}"),
        ):
            assert response.status_code == 404, (key, response.request.url)
            assert_no_secret(response)


def test_metrics_snapshots_and_inputs_linked_outside_are_not_read_or_listed(make_client, runs_dir, outside):
    (outside / "metrics.csv").write_text(f"step,elapsed,content,style,tv,total\n1,0.1,1.0,2.0,0.0,{SECRET_METRIC}\n")
    secret_png(outside / "shots" / "step_000777.png")
    secret_png(outside / "kept" / "content.png")
    plain_run(runs_dir / "r1")
    link(runs_dir / "r1" / "metrics.csv", outside / "metrics.csv")
    link(runs_dir / "r1" / "snapshots", outside / "shots")
    link(runs_dir / "r1" / "inputs", outside / "kept")
    plain_run(runs_dir / "r2")
    link(runs_dir / "r2" / "snapshots" / "step_000777.png", outside / "shots" / "step_000777.png")
    client = make_client(worker=False)
    detail = client.get("/api/runs/r1").json()
    assert detail["metrics"] == [] and detail["snapshots"] == [] and detail["inputs"] == []
    assert "metrics.csv" not in detail["downloads"]
    assert [s["step"] for s in client.get("/api/runs/r2").json()["snapshots"]] == [4]
    compared = client.get("/api/compare?run=r1&run=r2").json()
    assert compared["runs"][0]["metrics"] == []
    assert str(SECRET_METRIC) not in json.dumps(compared)


def test_zip_leaves_out_files_and_folders_linked_outside(make_client, runs_dir, outside):
    plain_run(runs_dir / "r1")
    link(runs_dir / "r1" / "notes.txt", outside / "secret.txt")
    link(runs_dir / "r1" / "linked", outside)
    response = make_client(worker=False).get("/api/zip/r1")
    assert response.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(response.content)).namelist()
    assert "r1/result.png" in names and not any("notes" in n or "linked" in n for n in names)
    assert_no_secret(response)


# ---------------------------------------------------------------- the studio's own state


def planted_upload(uploads: Path, upload_id: str, file: str) -> None:
    uploads.mkdir(parents=True, exist_ok=True)
    meta = {"id": upload_id, "name": "x.png", "format": "PNG", "width": 40, "height": 30, "file": file}
    (uploads / f"{upload_id}.json").write_text(json.dumps(meta))


def test_an_upload_linked_or_pointed_outside_is_not_served_or_used(make_client, runs_dir, outside, input_images):
    uploads = runs_dir / ".studio" / "uploads"
    linked, traversing, sidecar = "a" * 20, "b" * 20, "c" * 20
    planted_upload(uploads, linked, f"{linked}.png")
    link(uploads / f"{linked}.png", outside / "secret.png")
    planted_upload(uploads, traversing, "../../../outside/secret.png")  # a tampered sidecar
    Image.new("RGB", (8, 8)).save(uploads / f"{sidecar}.png")
    meta = {"id": sidecar, "name": SECRET_TEXT, "format": "PNG", "width": 8, "height": 8, "file": f"{sidecar}.png"}
    (outside / "meta.json").write_text(json.dumps(meta))
    link(uploads / f"{sidecar}.json", outside / "meta.json")
    client = make_client(worker=False)
    style = upload(client, input_images["style"])["id"]
    for upload_id in (linked, traversing, sidecar):
        served = client.get(f"/api/uploads/{upload_id}")
        assert served.status_code in (400, 404), upload_id
        assert_no_secret(served)
        queued = client.post("/api/jobs", json=job_body(upload_id, [style]))
        assert queued.status_code == 400 and "upload" in queued.json()["detail"], upload_id
        assert_no_secret(queued)


def test_a_queue_file_linked_outside_is_not_loaded(make_client, runs_dir, outside):
    job = {"id": "20240101-000000-abcdef", "recipe": {}, "content": "0" * 20, "styles": [], "names": {}}
    (outside / "jobs.json").write_text(json.dumps([job | {"state": "done", "message": SECRET_TEXT}]))
    link(runs_dir / ".studio" / "jobs.json", outside / "jobs.json")
    client = make_client(worker=False)
    response = client.get("/api/jobs")
    assert response.json() == {"jobs": []}
    assert_no_secret(response)
    assert (outside / "jobs.json").read_text().count(SECRET_TEXT) == 1  # and nothing was written through the link


def test_a_studio_folder_linked_outside_is_refused_at_start(runs_dir, outside):
    from stylelab.errors import StylelabError
    from stylelab.web.app import create_app

    runs_dir.mkdir()
    os.symlink(outside, runs_dir / ".studio")
    with pytest.raises(StylelabError, match=".studio"):
        create_app(runs_dir, worker=False)


# ---------------------------------------------------------------- the one check itself


def test_inside_resolves_links_and_refuses_what_leads_out_hidden_or_loops(tmp_path, outside):
    from stylelab.web.security import UnsafePath, inside

    root = (tmp_path / "runs").resolve()
    plain_run(root / "r1")
    link(root / "alias", root / "r1")
    assert inside(root, root / "alias" / "result.png") == root / "r1" / "result.png"  # a link within is followed
    link(root / "out.png", outside / "secret.png")
    link(root / "loop", root / "loop")
    (root / ".studio").mkdir()
    link(root / "state", root / ".studio")
    for path in (root / "out.png", root / "loop", root / "state", root / "..", root):
        with pytest.raises(UnsafePath) as refused:
            inside(root, path)
        assert str(outside) not in str(refused.value)  # the message never says where a link leads
    assert inside(root, root / "state", hidden=True) == root / ".studio"


# ---------------------------------------------------------------- a running run's page


@pytest.mark.parametrize("outside_is_a_run", [True, False])
def test_a_running_key_outside_the_runs_folder_says_nothing_of_what_is_there(runs_dir, outside, outside_is_a_run):
    """``x.partial`` names the run it becomes once finished; a key that climbs out of the runs
    folder gets the same answer whether or not a finished run sits where it points."""
    from stylelab.web.gallery import Gallery, RunNotFound

    if outside_is_a_run:
        plain_run(outside / "done", message=SECRET_TEXT)
    runs_dir.mkdir(parents=True, exist_ok=True)
    plain_run(runs_dir / "mine")
    gallery = Gallery(runs_dir)
    with pytest.raises(RunNotFound) as caught:
        gallery.detail("../outside/done.partial")
    assert str(caught.value) == "no run being written under '../outside/done.partial' (it may have finished)"
    assert gallery.detail("mine.partial")["finished_as"] == "mine"  # inside, it still leads to the run
