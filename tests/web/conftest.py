"""Fixtures for the studio's tests: small input images, an app on a temporary runs folder,
and a real uvicorn server on loopback in a thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from stylelab.demo import mosaic, waves

TINY = {"size": 64, "steps": 4, "save_every": 2}
STANDIN = {"weights": "standin"}  # the stand-in network (features.py): no VGG, for apps made with standin=True


def pytest_configure(config):
    # Starlette's TestClient would prefer httpx2; httpx (pinned in constraints.txt) works the same here.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="session")
def input_images(tmp_path_factory) -> dict[str, Path]:
    """A content photo and two styles, small, written as files (as a user would upload them)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("inputs")
    content = Image.fromarray(data.coffee()).resize((96, 64), Image.Resampling.LANCZOS)
    paths = {
        "content": folder / "coffee.jpg",
        "style": folder / "mosaic.png",
        "style2": folder / "waves.png",
    }
    content.save(paths["content"], quality=92)
    mosaic(96).save(paths["style"])
    waves(96).save(paths["style2"])
    return paths


def upload(client, path: Path) -> dict:
    response = client.post(f"/api/uploads?name={path.name}", content=path.read_bytes())
    assert response.status_code == 200, response.text
    return response.json()


def job_body(content_id: str, style_ids: list[str], **settings) -> dict:
    return {
        "recipe": "default",
        "settings": {**TINY, **settings},
        "content": content_id,
        "styles": [{"upload": s, "weight": 1.0} for s in style_ids],
    }


def wait_for(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture
def make_client(runs_dir):
    """A TestClient factory: ``make_client(worker=False, token=None, max_upload_mb=25)``."""
    from fastapi.testclient import TestClient

    from stylelab.web.app import create_app

    clients = []

    def factory(**kwargs):
        client = TestClient(create_app(kwargs.pop("runs", runs_dir), **kwargs), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


class ServerThread:
    """A real uvicorn server for ``app`` on 127.0.0.1 (``port``, or a free one), in a daemon thread."""

    def __init__(self, app, port: int = 0):
        from stylelab.web.server import bind_socket, make_server

        self.sock = bind_socket("127.0.0.1", port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = make_server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, 15, what="the server to start")
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive(), "the server did not stop"


@pytest.fixture
def live_server(runs_dir):
    """The studio on a real server, offering the stand-in network (``STANDIN`` settings) for fast runs."""
    from stylelab.web.app import create_app

    with ServerThread(create_app(runs_dir, standin=True)) as server:
        yield server


class GrowingRun:
    """A run folder written the way ``stylelab run --run-dir`` writes it (``runs.RunWriter`` fed the
    engine's events), one event at a time: ``<folder>.partial/`` grows, then becomes ``<folder>/``."""

    def __init__(self, folder: Path, recipe=None, terms=("content", "style", "tv", "total"), total: int = 40):
        from stylelab.recipes import load_recipe
        from stylelab.runs import RunWriter

        self.recipe = recipe or load_recipe("default", size=48, steps=total)
        self.terms, self.total, self.done = tuple(terms), total, 0
        self.task = {"content": {"name": "tubingen.jpg"}, "styles": [{"images": [{"name": "starry.jpg"}]}]}
        self.writer = RunWriter(Path(folder), task=self.task)
        self.history: list[dict] = []
        self.image = Image.new("RGB", (48, 32), (40, 90, 200))

    def start(self) -> GrowingRun:
        from stylelab.events import Started

        self.writer(Started(0, self.recipe, self.total, self.image.size, "cpu", terms=self.terms))
        return self

    def step(self, n: int = 1) -> GrowingRun:
        from stylelab.events import Step

        for _ in range(n):
            self.done += 1
            losses = {t: (i + 1.0) / self.done for i, t in enumerate(self.terms)}
            self.history.append({"step": self.done, "elapsed": 0.1 * self.done, **losses})
            self.writer(Step(0, self.done, self.total, losses, 0.1 * self.done))
        return self

    def snapshot(self, colour=(40, 90, 200)) -> GrowingRun:
        from stylelab.events import Snapshot

        self.image = Image.new("RGB", (48, 32), colour)
        self.writer(Snapshot(0, self.done, self.image, self.history[-1] if self.history else {}))
        return self

    def finish(self, status: str = "done") -> GrowingRun:
        from stylelab.engine import Result
        from stylelab.events import Done, Failed

        result = Result(self.image, self.recipe, self.history, status, "", 0.1 * self.done, self.done, terms=self.terms)
        self.writer(Done(0, result) if status == "done" else Failed(0, self.done, status, status, result))
        return self


@pytest.fixture(scope="session")
def video_clips(tmp_path_factory) -> dict[str, Path]:
    """Small real videos made by ``video.synthetic`` (a camera move over a photo), and files that are not videos."""
    from stylelab.video.synthetic import make_clip, write_clip, write_sine

    folder = tmp_path_factory.mktemp("clips")
    paths = {
        "clip": write_clip(folder / "clip.mp4", make_clip(4, (48, 32), seed=1), 24),
        "long": write_clip(folder / "long.mp4", make_clip(6, (48, 32), seed=2), 24),
        "mkv": write_clip(folder / "clip.mkv", make_clip(3, (48, 32), seed=3), 24),
        "audio": write_sine(folder / "tone.m4a", 0.3),
        "text": folder / "notes.mp4",
    }
    paths["text"].write_text("this is a text file, whatever its name says\n" * 20)
    return paths


def video_body(content_id: str, style_ids: list[str], video: dict | None = None, **settings) -> dict:
    """A video job on the stand-in network: 48 px, 2 steps a frame (``create_app(standin=True)``)."""
    body = job_body(content_id, style_ids, **({"size": 48, "steps": 2, "save_every": None} | STANDIN | settings))
    body["settings"] = {k: v for k, v in body["settings"].items() if v is not None}
    return body | {"video": {"frame_steps": 2} | (video or {})}
