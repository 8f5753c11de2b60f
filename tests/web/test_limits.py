"""The studio's bounds on what one request may ask for: size, steps, memory-heavy settings, the queue."""

from __future__ import annotations

import json

import pytest

from stylelab.cli import main
from stylelab.errors import StylelabError

from .conftest import job_body, upload


@pytest.fixture
def inputs(make_client, input_images):
    """A factory: a client made with ``options`` and the ids of one content and one style upload on it."""

    def factory(**options):
        client = make_client(worker=False, **options)
        return client, upload(client, input_images["content"])["id"], upload(client, input_images["style"])["id"]

    return factory


@pytest.mark.parametrize(
    ("options", "settings", "message"),
    [
        ({}, {"size": 8192}, "size must be between 16 and 2048 pixels"),
        ({}, {"size": "100000"}, "size must be between 16 and 2048 pixels"),
        ({"max_size": 128}, {"size": 256}, "size must be between 16 and 128 pixels"),
        ({}, {"size": 0}, "size must be between 16 and 2048 pixels"),
        ({}, {"steps": 1_000_000_000}, "steps must be between 0 and 10000"),
        ({"max_steps": 50}, {"steps": 51}, "steps must be between 0 and 50"),
        ({}, {"steps": -5}, "steps must be between 0 and 10000"),
        ({"max_steps": 100}, {"steps": 60, "scales": 2, "size": 128}, "steps × scales"),  # 91 px then 128 px
        ({}, {"size": 2048, "style_scale": 4}, "style scale"),
        ({"max_size": 256}, {"size": 128, "style_scale": 2.5}, "style scale"),
        ({}, {"device": "meta"}, "unknown device 'meta'"),
        ({}, {"device": "xpu"}, "unknown device 'xpu'"),
        ({}, {"device": "cuda:x"}, "unknown device 'cuda:x'"),
        ({}, {"seed": 2**64}, "seed must be between 0 and"),
        ({}, {"seed": -1}, "seed must be between 0 and"),
    ],
)
def test_settings_over_the_studios_bounds_are_refused_at_submit(inputs, options, settings, message):
    client, content, style = inputs(**options)
    response = client.post("/api/jobs", json=job_body(content, [style], **settings))
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert message in detail and len(detail.splitlines()) == 1
    assert client.get("/api/jobs").json()["jobs"] == []  # nothing queued, so nothing was ever allocated


def test_an_infinite_blend_weight_is_refused(inputs):
    client, content, style = inputs()
    body = job_body(content, [style, style])
    body["styles"][1]["weight"] = float("inf")  # json.dumps writes Infinity, which the server's parser accepts
    response = client.post("/api/jobs", content=json.dumps(body), headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json() == {"detail": "styles.1.weight: Input should be a finite number"}
    assert client.get("/api/jobs").json()["jobs"] == []


def test_the_bounds_name_the_serve_option_that_raises_them(inputs):
    client, content, style = inputs()
    for settings, option in (({"size": 4096}, "--max-size"), ({"steps": 20_000}, "--max-steps")):
        detail = client.post("/api/jobs", json=job_body(content, [style], **settings)).json()["detail"]
        assert option in detail, detail


def test_settings_at_the_bounds_are_accepted_and_the_form_is_told_them(inputs):
    client, content, style = inputs(max_size=256, max_steps=300)
    ok = client.post("/api/jobs", json=job_body(content, [style], size=256, steps=150, scales=2, style_scale=1.0))
    assert ok.status_code == 201, ok.text
    info = client.get("/api/info").json()
    assert info["limits"] == {"max_size": 256, "max_steps": 300, "max_queue": 20}
    by_name = {f["name"]: f for f in info["fields"]}
    assert by_name["size"]["max"] == 256 and by_name["steps"]["max"] == 300


def test_a_preset_over_the_bounds_is_refused_with_the_setting_named(inputs):
    client, content, style = inputs(max_steps=500)
    body = job_body(content, [style]) | {"recipe": "gatys", "settings": {"size": 64}}  # gatys runs 1000 steps
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400 and "steps must be between 0 and 500" in response.json()["detail"]


def test_a_full_queue_answers_429_until_a_job_leaves_it(inputs, runs_dir):
    client, content, style = inputs(max_queue=3)
    jobs = [client.post("/api/jobs", json=job_body(content, [style])).json() for _ in range(3)]
    assert all(j["state"] == "queued" for j in jobs)
    full = client.post("/api/jobs", json=job_body(content, [style]))
    assert full.status_code == 429
    detail = full.json()["detail"]
    assert "3 jobs" in detail and "--max-queue" in detail and len(detail.splitlines()) == 1
    assert client.post(f"/api/jobs/{jobs[0]['id']}/again").status_code == 429  # "run again" queues too
    assert len(json.loads((runs_dir / ".studio" / "jobs.json").read_text())) == 3
    client.post(f"/api/jobs/{jobs[0]['id']}/cancel")
    assert client.post("/api/jobs", json=job_body(content, [style])).status_code == 201


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_size": 0}, "--max-size"),
        ({"max_size": 10_000}, "--max-size"),
        ({"max_steps": -1}, "--max-steps"),
        ({"max_queue": 0}, "--max-queue"),
    ],
)
def test_create_app_refuses_bounds_that_make_no_sense(runs_dir, options, message):
    from stylelab.web.app import create_app

    with pytest.raises(StylelabError, match=message):
        create_app(runs_dir, worker=False, **options)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-size", "0"], "--max-size must be"),
        (["--max-size", "-512"], "--max-size must be"),
        (["--max-steps", "0"], "--max-steps must be"),
        (["--max-queue", "-3"], "--max-queue must be"),
    ],
)
def test_serve_refuses_bad_bounds_in_one_line_before_listening(capsys, tmp_path, args, message):
    assert main(["serve", "--port", "0", "--runs", str(tmp_path / "runs"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_a_queued_job_over_todays_bounds_fails_when_the_worker_reaches_it(make_client, runs_dir):
    """A job queued by a server with larger bounds (or a hand-edited jobs.json) is checked again before it runs."""
    from stylelab.recipes import load_recipe

    from .conftest import wait_for

    job_id = "20240101-000000-abcdef"
    recipe = load_recipe("default", size=4096).to_dict(drop_none=True)
    record = {"id": job_id, "recipe": recipe, "content": "0" * 20, "styles": ["1" * 20], "names": {}}
    (runs_dir / ".studio").mkdir(parents=True)
    (runs_dir / ".studio" / "jobs.json").write_text(json.dumps([record | {"state": "queued"}]))
    client = make_client()
    job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["state"] == "failed" and j, 30)
    assert "size must be between 16 and 2048 pixels" in job["message"]
    assert not (runs_dir / job_id).exists() and not (runs_dir / f"{job_id}.partial").exists()
