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
    """A real uvicorn server for ``app`` on 127.0.0.1 (a free port), in a daemon thread."""

    def __init__(self, app):
        from stylelab.web.server import bind_socket, make_server

        self.sock = bind_socket("127.0.0.1", 0)
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
    from stylelab.web.app import create_app

    with ServerThread(create_app(runs_dir)) as server:
        yield server
