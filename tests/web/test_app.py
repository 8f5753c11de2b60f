"""The studio's API without a running engine: recipes, uploads, job checks, the gallery, compare."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from stylelab.recipes import FIELDS, load_recipe, preset_names
from stylelab.runs import RunWriter

from .conftest import job_body, upload


def test_info_describes_the_form_from_the_recipe_fields(make_client):
    info = make_client(worker=False).get("/api/info").json()
    names = [f["name"] for f in info["fields"]]
    assert set(names) == {n for n, f in FIELDS.items() if f.metadata.get("cli", True)}
    by_name = {f["name"]: f for f in info["fields"]}
    assert by_name["optimizer"]["choices"] == ["lbfgs", "adam", "sgd"]
    assert by_name["init"]["choices"] == ["content", "style", "noise", "fast"]  # no paths from a form
    assert by_name["size"]["default"] == FIELDS["size"].default and by_name["size"]["main"]
    assert [r["name"] for r in info["recipes"]] == preset_names()
    assert info["recipes"][0]["values"] == load_recipe(preset_names()[0]).to_dict()


def test_the_page_and_its_scripts_are_served_locally(make_client):
    client = make_client(worker=False)
    page = client.get("/")
    assert page.status_code == 200 and "stylelab studio" in page.text
    for asset in (
        "app.js",
        "form.js",
        "form_errors.js",
        "masks.js",
        "live.js",
        "gallery.js",
        "plot.js",
        "dom.js",
        "style.css",
        "icon.svg",
    ):
        assert client.get(f"/static/{asset}").status_code == 200, asset
    # Nothing is fetched from elsewhere: no absolute URLs to other hosts in the page or its assets.
    for text in [page.text] + [client.get(f"/static/{a}").text for a in ("app.js", "style.css")]:
        assert "http://" not in text and "https://" not in text


def test_uploads_raw_and_multipart_are_stored_once_and_served_back(make_client, input_images):
    client = make_client(worker=False)
    first = upload(client, input_images["content"])
    assert (first["width"], first["height"], first["format"], first["name"]) == (96, 64, "JPEG", "coffee.jpg")
    data = input_images["content"].read_bytes()
    again = client.post("/api/uploads", files={"file": ("other name.jpg", data, "image/jpeg")}).json()
    assert again["id"] == first["id"] and again["name"] == "other name.jpg"
    assert client.get(first["url"]).content == data
    assert client.get("/api/uploads/0123456789abcdef0123").status_code == 400  # well formed, unknown
    assert client.get("/api/uploads/not-an-id").status_code == 404


@pytest.fixture
def uploaded(make_client, input_images):
    client = make_client(worker=False)
    return client, upload(client, input_images["content"])["id"], upload(client, input_images["style"])["id"]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"recipe": "nope"}, "recipe", "unknown recipe"),
        ({"recipe": "../../etc/passwd.toml"}, "recipe", "unknown recipe"),
        ({"settings": {"stepz": 3}}, "stepz", "did you mean 'steps'"),
        ({"settings": {"optimizer": "lbgfs"}}, "optimizer", "did you mean 'lbfgs'"),
        ({"settings": {"size": 5}}, "size", "size must be between"),
        ({"settings": {"style_weight": -1}}, "style_weight", "style weight must be"),  # the form's words
        ({"settings": {"init": "/etc/passwd"}}, "init", "upload a start image"),
        ({"settings": {"weights": "/tmp/evil.pth"}}, "weights", "weights must be one of"),
        ({"settings": {"weights": "standin"}}, "weights", "weights must be one of caffe, torchvision in"),
        ({"settings": {"device": "tpu"}}, "device", "unknown device"),
        ({"content": "0123456789abcdef0123"}, "content", "no upload"),
        ({"content": "../../secret"}, "content", "not a valid upload id"),
        ({"content": ""}, "content", "add a content image"),
        ({"styles": []}, "styles", "add at least one style image"),
    ],
)
def test_a_bad_job_request_is_refused_with_one_line_and_queues_nothing(uploaded, change, field, message):
    client, content, style = uploaded
    body = job_body(content, [style]) | change
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400
    assert message in response.json()["detail"] and len(response.json()["detail"].splitlines()) == 1
    assert message in response.json()["errors"][field]
    assert client.get("/api/jobs").json()["jobs"] == []


def test_every_mistake_of_a_form_is_reported_at_once_tied_to_its_field(uploaded, input_images):
    client, content, style = uploaded
    body = job_body(content, [style, style], size=0, steps=-5, style_weight="lots", optimizer="lbgfs")
    body["styles"][0]["weight"] = -2
    body["styles"][1]["weight"] = None  # an empty weight box
    errors = client.post("/api/jobs", json=body).json()["errors"]
    assert set(errors) == {"size", "steps", "style_weight", "optimizer", "blend.0", "blend.1"}
    assert "size must be between 16 and 2048" in errors["size"] and "not 0" in errors["size"]
    assert "steps must be between 0 and 10000" in errors["steps"] and "not -5" in errors["steps"]
    assert errors["style_weight"] == "style weight must be a number, not 'lots'"  # as the form labels it
    assert "0 or more" in errors["blend.0"] and "number" in errors["blend.1"]
    # Settings fine one by one but not together are tied to the first setting the reason names.
    body = job_body(content, [style], size=2048, style_scale=4)
    assert list(client.post("/api/jobs", json=body).json()["errors"]) == ["style_scale"]


def test_masks_go_with_styles_one_each_and_not_with_blend_weights(uploaded, input_images):
    client, content, style = uploaded
    style2 = upload(client, input_images["style2"])["id"]
    mask = upload(client, input_images["style"])["id"]  # any image will do as a mask here
    body = job_body(content, [style, style2])
    body["styles"][0] |= {"mask": mask, "weight": 2}
    errors = client.post("/api/jobs", json=body).json()["errors"]
    assert list(errors) == ["blend.0"] and "blend weights and masks do not go together" in errors["blend.0"]
    three = job_body(content, [style, style2, style])
    three["styles"][0]["mask"] = mask
    errors = client.post("/api/jobs", json=three).json()["errors"]
    assert list(errors) == ["mask.1", "mask.2"]  # one style may go without: it paints the rest; two may not
    body["styles"][0]["weight"] = 1
    body["styles"][1]["mask"] = "not-an-upload"
    assert list(client.post("/api/jobs", json=body).json()["errors"]) == ["mask.1"]
    body["styles"][1]["mask"] = None  # style 2 paints what style 1's mask leaves
    job = client.post("/api/jobs", json=body).json()
    assert job["masks"] == [mask, None] and job["weights"] is None
    assert job["names"]["masks"] == ["mosaic.png", None]
    assert job["label"].startswith("mosaic + waves (regions) on coffee")


def test_a_job_is_queued_with_the_recipe_the_form_asked_for(uploaded, input_images):
    client, content, style = uploaded
    style2 = upload(client, input_images["style2"])["id"]
    body = job_body(content, [style, style2], steps="12", style_weight="7.5")
    body["styles"][1]["weight"] = 3
    job = client.post("/api/jobs", json=body).json()
    assert job["state"] == "queued"
    assert job["recipe"]["steps"] == 12 and job["recipe"]["style_weight"] == 7.5 and job["recipe"]["size"] == 64
    assert job["weights"] == [1.0, 3.0] and "style_weights" not in job["recipe"]  # the task's, not the recipe's
    assert job["names"] == {"content": "coffee.jpg", "styles": ["mosaic.png", "waves.png"]}
    assert client.get("/api/jobs").json()["jobs"][0]["id"] == job["id"]
    assert client.get(f"/api/jobs/{job['id']}").json()["history"] == []


def test_a_queued_job_can_be_cancelled_and_the_queue_survives_a_restart(make_client, uploaded, runs_dir):
    client, content, style = uploaded
    first = client.post("/api/jobs", json=job_body(content, [style])).json()
    second = client.post("/api/jobs", json=job_body(content, [style])).json()
    cancelled = client.post(f"/api/jobs/{first['id']}/cancel").json()
    assert cancelled["state"] == "cancelled"
    saved = json.loads((runs_dir / ".studio" / "jobs.json").read_text())
    assert {j["id"]: j["state"] for j in saved} == {first["id"]: "cancelled", second["id"]: "queued"}
    # Pretend the server died while the second job ran.
    saved[1]["state"] = "running"
    saved[0]["run"] = "../../elsewhere"  # a tampered file cannot point the studio outside the runs folder
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps(saved))
    restarted = make_client(worker=False)
    states = {j["id"]: j for j in restarted.get("/api/jobs").json()["jobs"]}
    assert states[second["id"]]["state"] == "interrupted"
    assert "server stopped" in states[second["id"]]["message"]
    assert states[first["id"]]["state"] == "cancelled" and states[first["id"]]["run"] is None
    assert json.loads((runs_dir / ".studio" / "jobs.json").read_text())[1]["state"] == "interrupted"
    # "Run again" queues the same settings and inputs as a new job.
    again = restarted.post(f"/api/jobs/{second['id']}/again").json()
    assert again["state"] == "queued" and again["id"] != second["id"]
    assert (again["recipe"], again["content"], again["styles"]) == (second["recipe"], content, [style])


def test_unknown_or_malformed_job_ids_are_not_found(make_client):
    client = make_client(worker=False)
    assert client.get("/api/jobs/20240101-000000-abcdef").status_code == 404
    assert client.post("/api/jobs/..%2f..%2fx/cancel").status_code == 404
    assert client.get("/api/jobs/x/live.png").status_code == 404


# ---------------------------------------------------------------- gallery


def fake_run(folder, recipe, status="done", steps=4):
    """A run folder written by RunWriter the way the engine drives it, without running VGG."""
    from stylelab.engine import Result
    from stylelab.events import Done, Failed, Snapshot, Started, Step

    task = {"content": {"name": "content.jpg"}, "styles": [{"images": [{"name": "style.jpg"}]}]}
    writer = RunWriter(folder, task=task)
    image = Image.new("RGB", (48, 32), (200, 120, 40))
    writer(Started(0, recipe, steps, image.size, "cpu"))
    history = []
    for step in range(1, steps + 1):
        losses = {"content": 1.0 / step, "style": 2.0 / step, "tv": 0.0, "total": 3.0 / step}
        history.append({"step": step, "elapsed": 0.1 * step, **losses})
        writer(Step(0, step, steps, losses, 0.1 * step))
    writer(Snapshot(0, steps, image, history[-1]))
    result = Result(image, recipe, history, status, "", 0.4, steps)
    writer(Done(0, result) if status == "done" else Failed(0, steps, "cancelled", status, result))
    return folder


@pytest.fixture(scope="module")
def gallery_runs(tmp_path_factory):
    """Runs as the CLI and a sweep leave them; made once (process pictures take a moment), only read."""
    runs_dir = tmp_path_factory.mktemp("gallery") / "runs"
    base = load_recipe("default", size=48, steps=4)
    fake_run(runs_dir / "cli-run", base)
    fake_run(runs_dir / "sweep-1" / "point_000", base.replace(style_weight=1.0))
    fake_run(runs_dir / "sweep-1" / "point_001", base.replace(style_weight=10.0, optimizer="adam"), "cancelled")
    (runs_dir / "sweep-1" / "report.html").write_text("<h1>report</h1>")
    (runs_dir / "half.partial").mkdir()  # an unfinished run is not listed
    return runs_dir


def test_gallery_lists_cli_and_sweep_runs_with_experiment_reports(make_client, gallery_runs):
    listing = make_client(runs=gallery_runs, worker=False).get("/api/runs").json()
    keys = {r["key"] for r in listing["runs"]}
    assert keys == {"cli-run", "sweep-1/point_000", "sweep-1/point_001"}
    by_key = {r["key"]: r for r in listing["runs"]}
    assert by_key["sweep-1/point_001"]["status"] == "cancelled"
    assert by_key["sweep-1/point_001"]["experiment"] == "sweep-1" and by_key["cli-run"]["experiment"] is None
    assert by_key["cli-run"]["result"] == "/files/cli-run/result.png"
    assert listing["experiments"] == [{"key": "sweep-1", "runs": 2, "report": "/files/sweep-1/report.html"}]


def test_a_run_opens_to_its_result_process_settings_and_metrics(make_client, gallery_runs):
    client = make_client(runs=gallery_runs, worker=False)
    run = client.get("/api/runs/sweep-1/point_001").json()
    assert run["recipe_values"]["optimizer"] == "adam" and run["recipe_values"]["style_weight"] == 10.0
    assert 'optimizer = "adam"' in run["recipe_toml"]
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4]
    assert run["metrics"][-1]["total"] == pytest.approx(0.75)
    assert client.get(run["result"]).headers["content-type"] == "image/png"
    assert client.get(run["process"]).status_code == 200
    thumb = client.get("/api/thumb/sweep-1/point_001")
    assert thumb.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(thumb.content)).width <= 360
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/zip/sweep-1/point_001").content))
    assert {"point_001/result.png", "point_001/recipe.toml", "point_001/metrics.csv"} <= set(archive.namelist())
    assert client.get("/api/runs/sweep-1").status_code == 404  # an experiment folder is not a run
    assert client.get("/api/runs/half.partial").status_code == 404
    report = client.get("/files/sweep-1/report.html")
    assert report.text == "<h1>report</h1>" and report.headers["content-type"].startswith("text/html")


def test_compare_marks_exactly_the_settings_that_differ(make_client, gallery_runs):
    client = make_client(runs=gallery_runs, worker=False)
    data = client.get("/api/compare?run=sweep-1/point_000&run=sweep-1/point_001&run=cli-run").json()
    assert data["differs"] == ["optimizer", "style_weight"]
    by_name = {f["name"]: f for f in data["fields"]}
    assert by_name["style_weight"]["values"] == [1.0, 10.0, 5.0]
    assert not by_name["size"]["differs"] and by_name["size"]["values"] == [48, 48, 48]
    assert [len(r["metrics"]) for r in data["runs"]] == [4, 4, 4]
    picture = client.get("/api/compare.png?run=sweep-1/point_000&run=sweep-1/point_001")
    assert picture.status_code == 200 and Image.open(io.BytesIO(picture.content)).width > 100
    assert client.get("/api/compare").status_code == 400
    assert client.get("/api/compare?run=../x").status_code == 404


def test_reuse_makes_uploads_from_the_inputs_a_run_kept(make_client, runs_dir, input_images):
    client = make_client(worker=False)
    folder = fake_run(runs_dir / "kept", load_recipe("default", size=48))
    (folder / "inputs").mkdir()
    (folder / "inputs" / "content.jpg").write_bytes(input_images["content"].read_bytes())
    (folder / "inputs" / "style_1.png").write_bytes(input_images["style"].read_bytes())
    (folder / "inputs" / "style_2.png").write_bytes(input_images["style2"].read_bytes())
    inputs = client.post("/api/reuse/kept").json()["inputs"]
    assert [(i["role"], i["name"]) for i in inputs] == [
        ("content", "content.jpg"),
        ("style", "style_1.png"),
        ("style", "style_2.png"),
    ]
    # A studio run recorded the names the files were uploaded under: those come back.
    info = json.loads((folder / "run.json").read_text())
    info["studio"] = {"names": {"content": "coffee.jpg", "styles": ["mosaic.png", "waves.png"]}}
    (folder / "run.json").write_text(json.dumps(info))
    inputs = client.post("/api/reuse/kept").json()["inputs"]
    assert [i["name"] for i in inputs] == ["coffee.jpg", "mosaic.png", "waves.png"]
    assert client.get(inputs[0]["url"]).content == input_images["content"].read_bytes()
    assert client.post("/api/reuse/cli-missing").status_code == 404
