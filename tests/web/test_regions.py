"""Regions in the studio beyond a mask per style: a colour-label image, style-image masks (the part
of a painting to take the style from), kept with the run; and the per-loss distances a sweep
records, on a run's page and in compare. Jobs run on the stand-in network."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from stylelab.recipes import load_recipe

from .conftest import STANDIN, job_body, upload, video_body, wait_for


def finished(client, job_id: str) -> dict:
    def check():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(check, 120, interval=0.05, what=f"job {job_id} to finish")


@pytest.fixture
def masks(tmp_path) -> dict:
    """A two-colour label image (red left, blue right), a one-colour one, and a top-half mask."""
    labels = Image.new("RGB", (96, 64), (255, 0, 0))
    labels.paste((0, 0, 255), (48, 0, 96, 64))
    labels.save(tmp_path / "labels.png")
    Image.new("RGB", (96, 64), (0, 200, 0)).save(tmp_path / "green.png")
    top = Image.new("L", (96, 96), 0)
    top.paste(255, (0, 0, 96, 48))
    top.save(tmp_path / "top.png")
    return {k: tmp_path / f"{k}.png" for k in ("labels", "green", "top")}


@pytest.fixture
def uploaded(make_client, input_images, masks):
    client = make_client(standin=True)
    ids = {k: upload(client, input_images[k])["id"] for k in ("content", "style", "style2")}
    ids |= {k: upload(client, path)["id"] for k, path in masks.items()}
    return client, ids


def body_for(ids, styles=("style", "style2"), **settings):
    return job_body(ids["content"], [ids[s] for s in styles], **({"steps": 2} | STANDIN | settings))


def test_a_label_image_job_paints_a_region_per_colour_and_keeps_the_image(uploaded, runs_dir):
    client, ids = uploaded
    body = body_for(ids) | {"labels": ids["labels"]}
    queued = client.post("/api/jobs", json=body).json()
    assert queued["labels"] == ids["labels"] and queued["masks"] is None and queued["weights"] is None
    assert queued["names"]["labels"] == "labels.png" and "(regions)" in queued["label"]
    job = finished(client, queued["id"])
    assert job["state"] == "done", job["message"]
    folder = runs_dir / job["run"]
    kept = sorted(p.name for p in (folder / "inputs").iterdir())
    assert kept == ["content.jpg", "labels.png", "style_1.png", "style_2.png"]
    task = json.loads((folder / "run.json").read_text())["task"]
    # One style set per colour, each naming the kept label image and its colour's place.
    assert [s["mask"]["index"] for s in task["styles"]] == [0, 1]
    assert {s["mask"]["labels"]["name"] for s in task["styles"]} == {str(folder / "inputs" / "labels.png")}
    assert {s["mask"]["labels"]["upload"] for s in task["styles"]} == {"labels.png"}
    inputs = client.post(f"/api/reuse/{job['run']}").json()["inputs"]
    assert [(i["role"], i["number"], i["name"]) for i in inputs] == [
        ("content", 0, "coffee.jpg"),
        ("style", 1, "mosaic.png"),
        ("style", 2, "waves.png"),
        ("labels", 0, "labels.png"),
    ]
    assert [i["role"] for i in client.get(f"/api/runs/{job['run']}").json()["inputs"]][-1] == "labels"
    again = client.post(f"/api/jobs/{job['id']}/again").json()
    assert again["labels"] == ids["labels"]
    rows = {f["name"]: f["shown"] for f in client.get(f"/api/compare?run={job['run']}").json()["fields"]}
    assert rows["region masks"] == ["labels.png colour 1 + labels.png colour 2"]


def test_a_label_image_is_checked_when_the_job_is_submitted(uploaded):
    client, ids = uploaded
    cases = [
        (body_for(ids, ("style",)) | {"labels": ids["labels"]}, "labels", "add a style per colour"),
        (body_for(ids) | {"labels": ids["green"]}, "labels", "1 colour for 2 styles"),
        (body_for(ids) | {"labels": "0" * 20}, "labels", "upload the image again"),
    ]
    masked = body_for(ids) | {"labels": ids["labels"]}
    masked["styles"][0]["mask"] = ids["top"]
    cases.append((masked, "labels", "not both"))
    blended = body_for(ids) | {"labels": ids["labels"]}
    blended["styles"][1]["weight"] = 3
    cases.append((blended, "blend.1", "remove the label image"))
    for body, key, message in cases:
        answer = client.post("/api/jobs", json=body)
        assert answer.status_code == 400, answer.text
        assert list(answer.json()["errors"]) == [key] and message in answer.json()["errors"][key], answer.json()
    assert client.get("/api/jobs").json()["jobs"] == []


def test_style_image_masks_take_each_style_from_part_of_its_painting_and_are_kept(uploaded, runs_dir):
    client, ids = uploaded
    # Blended styles, the first taken from the top of its painting only.
    body = body_for(ids)
    body["styles"][0]["image_mask"] = ids["top"]
    job = finished(client, client.post("/api/jobs", json=body).json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["image_masks"] == [ids["top"], None] and job["names"]["image_masks"] == ["top.png", None]
    folder = runs_dir / job["run"]
    stored = client.app.state.uploads.path(ids["top"])
    assert (folder / "inputs" / "style_mask_1.png").read_bytes() == stored.read_bytes()
    task = json.loads((folder / "run.json").read_text())["task"]
    assert len(task["styles"]) == 1
    parts = task["styles"][0]["image_masks"]
    assert parts[0]["name"] == str(folder / "inputs" / "style_mask_1.png") and parts[0]["upload"] == "top.png"
    assert parts[1] is None
    # Regions: style 1 on the left of the photo, style 2 (taken from the top of its painting) the rest.
    left = Image.new("L", (96, 64), 0)
    left.paste(255, (0, 0, 48, 64))
    regions = body_for(ids)
    regions["styles"][0]["mask"] = upload(client, _saved(left, runs_dir.parent / "left.png"))["id"]
    regions["styles"][1]["image_mask"] = ids["top"]
    second = finished(client, client.post("/api/jobs", json=regions).json()["id"])
    assert second["state"] == "done", second["message"]
    sets = json.loads((runs_dir / second["run"] / "run.json").read_text())["task"]["styles"]
    assert [s.get("mask") == "background" for s in sets] == [False, True]
    assert sets[0].get("image_masks") is None and sets[1]["image_masks"][0]["upload"] == "top.png"
    inputs = client.post(f"/api/reuse/{second['run']}").json()["inputs"]
    assert [(i["role"], i["number"], i["name"]) for i in inputs][-1] == ("style_mask", 2, "top.png")
    compared = client.get(f"/api/compare?run={job['run']}&run={second['run']}").json()
    row = next(f for f in compared["fields"] if f["name"] == "style-image masks")
    assert row["shown"] == ["top.png + –", "– + top.png"] and row["differs"]
    again = client.post(f"/api/jobs/{second['id']}/again").json()
    assert again["image_masks"] == [None, ids["top"]]


def _saved(img: Image.Image, path):
    img.save(path)
    return path


def test_style_image_masks_are_refused_for_a_video_and_with_a_start_from_the_fast_picture(uploaded, video_clips):
    client, ids = uploaded
    body = body_for(ids, init="fast")
    body["styles"][1]["image_mask"] = ids["top"]
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code == 400 and list(answer.json()["errors"]) == ["init"]
    assert "whole painting" in answer.json()["errors"]["init"]
    clip = upload(client, video_clips["clip"])["id"]
    video = video_body(clip, [ids["style"]])
    video["styles"][0]["image_mask"] = ids["top"]
    answer = client.post("/api/jobs", json=video)
    assert list(answer.json()["errors"]) == ["part.0"] and "whole painting" in answer.json()["errors"]["part.0"]
    body["styles"][1]["image_mask"] = "0" * 20  # a mistake of the mask itself is the mask's
    assert "upload the image again" in client.post("/api/jobs", json=body).json()["errors"]["part.1"]


def _measured_run(folder, distances: dict, style_weight: float):
    """A run folder as a sweep leaves it: RunWriter fed the engine's events, with the distances it measured."""
    from stylelab.engine import Result
    from stylelab.events import Done, Started, Step
    from stylelab.runs import RunWriter

    recipe = load_recipe("default", size=48, steps=2, style_weight=style_weight)
    task = {"content": {"name": "content.jpg"}, "styles": [{"images": [{"name": "style.jpg"}]}]}
    writer = RunWriter(folder, extra={"distances": distances}, task=task)
    image = Image.new("RGB", (48, 32), (200, 120, 40))
    writer(Started(0, recipe, 2, image.size, "cpu"))
    for step in (1, 2):
        writer(Step(0, step, 2, {"content": 1.0, "style": 1.0, "tv": 0.0, "total": 2.0}, 0.1 * step))
    writer(Done(0, Result(image, recipe, [], "done", "", 0.2, 2)))


def test_the_distances_a_sweep_measured_show_on_the_run_page_and_in_compare(make_client, runs_dir):
    first = {"content": 0.61, "style": 0.163, "gram": 0.163, "moments": 0.21, "swd": 0.052}
    second = {"content": 0.72, "style": 0.151, "gram": 0.151, "moments": 0.25, "swd": 0.047}
    _measured_run(runs_dir / "sweep" / "point_000", first, 5.0)
    _measured_run(runs_dir / "sweep" / "point_001", second, 20.0)
    client = make_client(worker=False)
    run = client.get("/api/runs/sweep/point_000").json()
    shown = [(d["key"], d["name"], d["value"]) for d in run["distances"]]
    assert shown == [
        ("content", "content distance", 0.61),
        ("style", "style distance (Gram)", 0.163),  # gram is the same distance: shown once
        ("moments", "style distance (moments)", 0.21),
        ("swd", "style distance (SWD)", 0.052),
    ]
    compared = client.get("/api/compare?run=sweep/point_000&run=sweep/point_001").json()
    rows = {r["key"]: r for r in compared["distances"]}
    assert list(rows) == ["content", "style", "moments", "swd"]
    assert rows["content"]["values"] == [0.61, 0.72] and rows["content"]["best"] == 0
    assert rows["swd"]["values"] == [0.052, 0.047] and rows["swd"]["best"] == 1
    assert compared["differs"] == ["style_weight"]  # measurements are not settings
    # A run that measured nothing (the studio's own, the CLI's) has no distances, and none in compare.
    _measured_run(runs_dir / "cli-run", None, 5.0)
    client.app.state.gallery.invalidate()
    assert client.get("/api/runs/cli-run").json()["distances"] == []
    compared = client.get("/api/compare?run=cli-run&run=sweep/point_001").json()
    assert [(r["values"], r["best"]) for r in compared["distances"]][0] == ([None, 0.72], None)


def test_a_video_job_paints_each_style_where_the_label_image_has_its_colour(make_client, runs_dir, video_clips, masks):
    client = make_client(standin=True)
    clip = upload(client, video_clips["clip"])["id"]
    styles = [upload(client, path)["id"] for path in (masks["top"], masks["green"])]  # any two images as styles
    body = video_body(clip, styles, {"max_frames": 2}) | {"labels": upload(client, masks["labels"])["id"]}
    job = finished(client, client.post("/api/jobs", json=body).json()["id"])
    assert job["state"] == "done" and job["frame"] == 2, job["message"]
    settings = json.loads((runs_dir / job["id"] / "video.json").read_text())["settings"]
    assert len(settings["masks"]) == 1 and settings["masks"][0]["name"].endswith(".png")  # one label image
    assert settings.get("background") is None and "(regions)" in job["label"]
