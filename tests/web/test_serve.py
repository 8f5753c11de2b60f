"""`stylelab serve`: refusals before starting, and a crash that loses no job."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from stylelab.cli import main

from .conftest import job_body, upload, wait_for


def test_serve_refuses_a_public_address_without_a_token(capsys):
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--token" in err and "Traceback" not in err


def test_serve_refuses_a_busy_port_and_a_bad_upload_limit(capsys, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--runs", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err
    assert main(["serve", "--max-upload-mb", "0", "--runs", str(tmp_path / "runs")]) == 2
    assert "--max-upload-mb" in capsys.readouterr().err


@pytest.mark.slow
def test_a_job_running_when_the_server_is_killed_is_interrupted_on_the_next_start(tmp_path, input_images, make_client):
    runs = tmp_path / "runs"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "stylelab", "serve", "--port", str(port), "--runs", str(runs)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return httpx.get(url + "/api/info", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 60, interval=0.2, what="stylelab serve to answer")
        with httpx.Client(base_url=url, timeout=10) as client:
            content = upload(client, input_images["content"])["id"]
            style = upload(client, input_images["style"])["id"]
            job = client.post("/api/jobs", json=job_body(content, [style], steps=1000, save_every=1)).json()
            waiting = client.post("/api/jobs", json=job_body(content, [style])).json()
            wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["step"] >= 2, 90, what="two steps")
        os.kill(server.pid, signal.SIGKILL)  # no chance to tidy up
        server.wait(10)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    restarted = make_client(runs=runs, worker=False)
    jobs = {j["id"]: j for j in restarted.get("/api/jobs").json()["jobs"]}
    assert jobs[job["id"]]["state"] == "interrupted"
    assert f"{job['id']}.partial" in jobs[job["id"]]["message"]  # where its snapshots so far are
    assert jobs[waiting["id"]]["state"] == "queued"  # the queue carries on after a restart
    assert json.loads((runs / ".studio" / "jobs.json").read_text())[0]["state"] == "interrupted"
    assert list((runs / f"{job['id']}.partial" / "snapshots").glob("step_*.png"))


@pytest.mark.parametrize(("option", "value"), [("--max-video-frames", "0"), ("--max-video-mb", "-1")])
def test_serve_refuses_bad_video_bounds_in_one_line(capsys, tmp_path, option, value):
    assert main(["serve", "--port", "0", "--runs", str(tmp_path / "runs"), option, value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and option in err and not (tmp_path / "runs").exists()
