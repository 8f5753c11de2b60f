"""The instant preview (POST /api/preview: the fast engine, outside the queue) and Refine (a job
starting from the fast picture). Jobs run on the stand-in network; the preview on the real fast model
(onnxruntime, milliseconds at these sizes)."""

from __future__ import annotations

import io
import json
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from .conftest import STANDIN, job_body, upload, wait_for


def picture(response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.float64)


def finished(client, job_id: str) -> dict:
    def check():
        job = client.get(f"/api/jobs/{job_id}").json()
        return job if job["state"] not in ("queued", "running") else None

    return wait_for(check, 120, interval=0.05, what=f"job {job_id} to finish")


@pytest.fixture
def inputs(make_client, input_images):
    """A client (stand-in network offered, worker running) with the content and both styles uploaded."""
    client = make_client(standin=True)
    ids = {k: upload(client, input_images[k])["id"] for k in ("content", "style", "style2")}
    return client, ids


def ask(http, ids, styles=("style",), **fields):
    settings = fields.pop("settings", {"size": 48})
    body = {"content": ids["content"], "styles": [ids[s] for s in styles], "settings": settings} | fields
    return http.post("/api/preview", json=body)


def test_the_preview_is_a_picture_of_the_size_asked_for_and_follows_strength_and_weights(inputs):
    client, ids = inputs
    info = client.get("/api/info").json()
    assert info["fast_available"] is True and info["fast_reason"] is None
    assert info["preview"] == {"size": 512, "max": 1024}
    answer = ask(client, ids)
    full = picture(answer)
    assert full.size == (48, 32)  # the content is 96 x 64: its longest side at the size asked for
    assert float(answer.headers["x-elapsed"]) > 0 and "x-preview-note" not in answer.headers
    assert picture(ask(client, ids, settings={"size": 80})).size == (80, 53)
    weak = picture(ask(client, ids, settings={"size": 48, "strength": 0.2}))
    content = pixels(Image.open(io.BytesIO(client.get(f"/api/uploads/{ids['content']}").content)).resize((48, 32)))
    # Less strength: nearer the photo than the full-strength picture is.
    assert np.abs(pixels(weak) - content).mean() < np.abs(pixels(full) - content).mean() - 5
    both = ("style", "style2")
    first = pixels(picture(ask(client, ids, both, weights=[1, 0])))
    second = pixels(picture(ask(client, ids, both, weights=[0, 1])))
    assert np.array_equal(first, pixels(full)), "a blend weighing only the first style is that style's picture"
    assert np.abs(first - second).mean() > 5
    assert np.array_equal(second, pixels(picture(ask(client, ids, ("style2",)))))
    big = ask(client, ids, settings={"size": 1500})  # above the preview's largest: painted at 1024, and said so
    assert max(picture(big).size) == 1024 and "Previewed at 1024 px" in big.headers["x-preview-note"]


def test_the_preview_composites_regions_by_a_label_image(inputs, tmp_path):
    client, ids = inputs
    labels = Image.new("RGB", (96, 64), (255, 0, 0))
    labels.paste((0, 0, 255), (48, 0, 96, 64))  # red on the left: style 1; blue on the right: style 2
    labels.save(tmp_path / "labels.png")
    label_id = upload(client, tmp_path / "labels.png")["id"]
    assert client.get(f"/api/uploads/{label_id}/labels").json() == {"colours": ["#ff0000", "#0000ff"]}
    both = ("style", "style2")
    regions = pixels(picture(ask(client, ids, both, labels=label_id)))
    one, two = (pixels(picture(ask(client, ids, (s,)))) for s in both)
    left, right = np.s_[:, 4:20], np.s_[:, 28:44]  # away from the soft border between the regions
    assert np.abs(regions[left] - one[left]).mean() < np.abs(regions[left] - two[left]).mean()
    assert np.abs(regions[right] - two[right]).mean() < np.abs(regions[right] - one[right]).mean()
    # Style-image masks are the run's: the preview leaves them out, and says so.
    noted = ask(client, ids, both, image_masks=[label_id, None])
    assert np.array_equal(pixels(picture(noted)), pixels(picture(ask(client, ids, both))))
    assert "style-image masks" in noted.headers["x-preview-note"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"content": ""}, "content must be an upload id"),
        ({"content": "0" * 20}, "upload the image again"),
        ({"styles": []}, "add at least one style image"),
        ({"settings": {"size": 48, "strength": 2}}, "strength must be between 0 and 1"),
        ({"settings": {"size": "big"}}, "size must be a whole number"),
        ({"settings": {"size": 48, "steps": 3}}, "unknown preview setting 'steps'"),
        ({"settings": {"size": 48, "preserve_color": "sepia"}}, "preserve_color"),
        ({"weights": [1, 2]}, "2 weights for 1 styles"),
        ({"masks": ["style"]}, "mask 1: not a valid upload id"),  # the name of an input, not its id
        ({"shape": 1}, "unknown preview field 'shape'"),
    ],
)
def test_a_bad_preview_request_is_400_with_one_line(inputs, change, message):
    client, ids = inputs
    answer = ask(client, ids, **change)
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert message in detail and "\n" not in detail


def test_a_preview_that_is_not_json_or_mixes_masks_and_labels_is_400(inputs):
    client, ids = inputs
    answer = client.post("/api/preview", content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400 and "JSON" in answer.json()["detail"]
    both = ("style", "style2")
    answer = ask(client, ids, both, masks=[ids["style"], None], labels=ids["style2"])
    assert answer.status_code == 400 and "not both" in answer.json()["detail"]


def test_without_the_fast_extra_the_preview_is_503_with_the_install_hint(make_client, input_images, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as tests/fast do: the runtime is missing
    client = make_client(worker=False)
    info = client.get("/api/info").json()
    assert info["fast_available"] is False and "pip install 'stylelab[fast]'" in info["fast_reason"]
    ids = {k: upload(client, input_images[k])["id"] for k in ("content", "style")}
    answer = ask(client, ids)
    assert answer.status_code == 503 and "pip install 'stylelab[fast]'" in answer.json()["detail"]


def test_a_preview_does_not_wait_for_a_running_job(inputs):
    client, ids = inputs
    body = job_body(ids["content"], [ids["style"]], steps=10000, save_every=None, **STANDIN)
    body["settings"] = {k: v for k, v in body["settings"].items() if v is not None}
    job = client.post("/api/jobs", json=body).json()
    wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["step"] >= 1, 60, what="the job to start")
    began = time.perf_counter()
    assert picture(ask(client, ids)).size == (48, 32)
    took = time.perf_counter() - began
    running = client.get(f"/api/jobs/{job['id']}").json()
    assert running["state"] == "running" and running["step"] < 10000, "the preview came while the job ran"
    assert took < 10, f"the preview took {took:.1f} s"
    client.post(f"/api/jobs/{job['id']}/cancel")
    assert finished(client, job["id"])["state"] == "cancelled"


def test_only_the_latest_preview_of_a_page_is_painted(inputs):
    client, ids = inputs
    previewer = client.app.state.previewer
    answers = {}

    def send(name, strength):
        answers[name] = ask(client, ids, settings={"size": 48, "strength": strength}, client="page-1")

    with previewer._turn:  # a preview is being painted: the next ones of the page wait their turn
        older = threading.Thread(target=send, args=("older", 0.3))
        older.start()
        wait_for(lambda: previewer._waiting == 1, 10, what="the first preview to wait")
        newer = threading.Thread(target=send, args=("newer", 0.6))
        newer.start()
        wait_for(lambda: previewer._waiting == 2, 10, what="the second preview to wait")
    older.join(30)
    newer.join(30)
    assert answers["older"].status_code == 409 and "newer preview" in answers["older"].json()["detail"]
    assert picture(answers["newer"]).size == (48, 32)


def test_refine_queues_a_job_starting_from_the_fast_picture(inputs, runs_dir):
    client, ids = inputs
    body = job_body(ids["content"], [ids["style"]], steps=2, init="fast", **STANDIN)
    job = finished(client, client.post("/api/jobs", json=body).json()["id"])
    assert job["state"] == "done", job["message"]
    assert job["recipe"]["init"] == "fast"
    folder = runs_dir / job["run"]
    assert json.loads((folder / "run.json").read_text())["recipe"]["init"] == "fast"
    # Its first snapshot is the start image: the fast picture at the run's size, not the photo.
    start = pixels(Image.open(folder / "snapshots" / "step_000000.png").convert("RGB"))
    fast = pixels(picture(ask(client, ids, settings={"size": 64})))
    content = pixels(Image.open(folder / "inputs" / "content.jpg").convert("RGB").resize(start.shape[1::-1]))
    assert np.abs(start - fast).mean() < np.abs(start - content).mean() / 3
