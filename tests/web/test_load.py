"""The studio stays responsive while a job runs: a real uvicorn server on loopback, a real engine run."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import job_body, upload, wait_for

REQUESTS = 50
LIMIT_S = 1.0


def test_fifty_concurrent_status_and_gallery_requests_answer_within_a_second_while_a_job_runs(
    live_server, input_images
):
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        content = upload(client, input_images["content"])["id"]
        style = upload(client, input_images["style"])["id"]
        # Long enough to still be running while the requests are answered; cancelled afterwards.
        body = job_body(content, [style], steps=2000, save_every=50)
        job = client.post("/api/jobs", json=body).json()
        wait_for(lambda: client.get(f"/api/jobs/{job['id']}").json()["step"] >= 1, 60, what="the job to run")
        step_before = client.get(f"/api/jobs/{job['id']}").json()["step"]

        # Fifty requests at once over fifty connections of one pool (a fresh client per request would
        # measure the client's own start-up, tens of milliseconds of CPU each, not the server).
        pool_limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)
        with httpx.Client(base_url=live_server.url, timeout=10, limits=pool_limits) as crowd:

            def timed(path: str) -> tuple[str, int, float]:
                t0 = time.perf_counter()
                r = crowd.get(path)
                return path, r.status_code, time.perf_counter() - t0

            paths = ["/api/jobs", "/api/runs"] * (REQUESTS // 2)
            with ThreadPoolExecutor(REQUESTS) as pool:
                results = list(pool.map(timed, paths))
        after = client.get(f"/api/jobs/{job['id']}").json()
        # The engine ran through the burst (a step at 64 px takes longer than the burst) and goes on.
        wait_for(
            lambda: client.get(f"/api/jobs/{job['id']}").json()["step"] > after["step"], 30, what="the job to go on"
        )
        client.post(f"/api/jobs/{job['id']}/cancel")
        final = wait_for(
            lambda: (j := client.get(f"/api/jobs/{job['id']}").json())["state"] != "running" and j, 60, what="cancel"
        )

    latencies = [t for _, _, t in results]
    print(
        f"\n{REQUESTS} concurrent requests while a job ran: median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (job at step {step_before} before, {after['step']} after)"
    )
    assert all(status == 200 for _, status, _ in results)
    assert max(latencies) < LIMIT_S, sorted(latencies)[-5:]
    assert after["state"] == "running", "the job must be running during the whole burst"
    assert final["state"] == "cancelled"


def test_event_stream_carries_steps_snapshots_and_the_final_state(live_server, input_images):
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        content = upload(client, input_images["content"])["id"]
        style = upload(client, input_images["style"])["id"]
        kinds: dict[str, list] = {"job": [], "step": [], "snapshot": []}
        pictures = []
        with client.stream("GET", "/api/events", timeout=httpx.Timeout(60, read=60)) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            job = client.post("/api/jobs", json=job_body(content, [style])).json()
            kind = None
            deadline = time.monotonic() + 90
            for line in stream.iter_lines():
                assert time.monotonic() < deadline, "no final state within 90 s"
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in kinds:
                    data = json.loads(line[6:])
                    if data.get("id") == job["id"]:
                        kinds[kind].append(data)
                    if kind == "snapshot" and len(kinds["snapshot"]) == 1:
                        # The first snapshot (step 0), fetched while the job still runs.
                        pictures.append(client.get(data["url"]))
                    if kind == "job" and data.get("id") == job["id"] and data["state"] == "done":
                        break
    states = [j["state"] for j in kinds["job"]]
    assert states[0] == "queued" and "running" in states and states[-1] == "done"
    steps = [row[0] for event in kinds["step"] for row in event["rows"]]
    assert steps == list(range(1, 5)), "every step's losses reach the page, in order, even when throttled"
    assert kinds["snapshot"], "snapshots are announced"
    assert pictures[0].status_code == 200 and pictures[0].content.startswith(b"\x89PNG")
    assert kinds["job"][-1]["run"] == job["id"]  # the finished picture is in the run folder now
