"""Path confinement, tokens, loopback-only defaults and bounded uploads."""

from __future__ import annotations

import http.client
import os
import select
import socket
from pathlib import Path

import pytest

from stylelab.errors import StylelabError
from stylelab.web.security import UnsafePath, check_bind, confined, is_loopback

from .conftest import upload

SECRET_TEXT = "top secret, outside the runs folder"


@pytest.fixture
def secret(tmp_path) -> Path:
    """A file next to (not inside) the runs folder, which no request may read."""
    path = tmp_path / "secret.txt"
    path.write_text(SECRET_TEXT)
    return path


# ---------------------------------------------------------------- confined()


@pytest.mark.parametrize(
    "rel",
    [
        "../secret.txt",
        "a/../../secret.txt",
        "/etc/passwd",
        "//etc/passwd",
        "%2e%2e/secret.txt",  # arrived encoded twice: one decoding leaves %2e
        "..%2fsecret.txt",
        "..\\secret.txt",
        ".studio/jobs.json",
        "run.partial/result.png",
        "ok/\x00.png",
        "",
        ".",
    ],
)
def test_confined_refuses_paths_leaving_the_runs_folder_or_hidden_ones(tmp_path, rel):
    root = tmp_path / "runs"
    root.mkdir()
    with pytest.raises(UnsafePath):
        confined(root, rel)


def test_confined_accepts_plain_nested_paths_and_refuses_symlinks_pointing_out(tmp_path, secret):
    root = tmp_path / "runs"
    (root / "exp" / "run1").mkdir(parents=True)
    assert confined(root, "exp/run1/result.png") == (root / "exp" / "run1" / "result.png").resolve()
    os.symlink(secret, root / "link.txt")
    with pytest.raises(UnsafePath):
        confined(root, "link.txt")


def test_loopback_detection_and_bind_check():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("127.8.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "s3cret")
    with pytest.raises(StylelabError, match="--token"):
        check_bind("0.0.0.0", None)


# ---------------------------------------------------------------- over HTTP, through a real server

TRAVERSALS = [
    "/files/../secret.txt",
    "/files/../../secret.txt",
    "/files/%2e%2e/secret.txt",
    "/files/..%2fsecret.txt",
    "/files/%2e%2e%2fsecret.txt",
    "/files/%252e%252e%252fsecret.txt",
    "/files/%252e%252e/secret.txt",
    "/files//etc/passwd",
    "/files/%2fetc%2fpasswd",
    "/files/..%5csecret.txt",
    "/files/.studio/jobs.json",
    "/api/runs/..%2f..%2fetc",
    "/api/runs/%2e%2e",
    "/api/thumb/..%2fsecret.txt",
    "/api/zip/..%2f..",
    "/api/uploads/..%2f..%2fsecret.txt",
    "/api/jobs/..%2f..%2fsecret.txt",
    "/static/../secret.txt",
    "/static/%2e%2e/%2e%2e/%2e%2e/secret.txt",
]


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET exactly ``path`` (http.client sends it as written: no normalising, no re-encoding)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_no_request_path_reads_outside_the_runs_folder(live_server, secret):
    # The secret sits next to the runs folder, so "../secret.txt" from it would be the file.
    assert live_server.url and (Path(secret).parent / "runs").is_dir()
    for path in TRAVERSALS:
        status, body = raw_get(live_server.port, path)
        assert status in (400, 404, 422), (path, status)
        assert SECRET_TEXT.encode() not in body and b"root:" not in body, path
    status, body = raw_post(live_server.port, "/api/reuse/..%2f..%2fsecret.txt")
    assert status == 404 and SECRET_TEXT.encode() not in body


def raw_post(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=b"")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_files_inside_the_runs_folder_are_served(make_client, runs_dir):
    client = make_client(worker=False)
    (runs_dir / "exp").mkdir()
    (runs_dir / "exp" / "notes.txt").write_text("hello")
    assert client.get("/files/exp/notes.txt").text == "hello"
    assert client.get("/files/exp/missing.txt").status_code == 404
    download = client.get("/files/exp/notes.txt?download=1")
    assert "attachment" in download.headers["content-disposition"]
    assert "sandbox" in download.headers["content-security-policy"]


# ---------------------------------------------------------------- tokens and hosts


def test_with_a_token_every_request_needs_it_and_a_token_url_sets_a_cookie(make_client):
    client = make_client(worker=False, token="s3cret")
    for path in ("/", "/static/app.js", "/api/info", "/api/jobs", "/api/runs", "/api/events", "/files/x.png"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "token" in response.json()["detail"]
    assert client.get("/api/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/api/info", headers={"X-Stylelab-Token": "s3cret"}).status_code == 200
    assert client.post("/api/uploads", content=b"x").status_code == 401
    first = client.get("/?token=s3cret")
    assert first.status_code == 200 and "stylelab_token=s3cret" in first.headers["set-cookie"]
    assert "HttpOnly" in first.headers["set-cookie"]
    assert client.get("/api/info").status_code == 200  # the cookie now carries it
    assert client.get("/static/style.css").status_code == 200


def test_without_a_token_only_loopback_hosts_and_same_origin_writes_are_accepted(make_client, input_images):
    client = make_client(worker=False)
    assert client.get("/api/info").status_code == 200
    assert client.get("/api/info", headers={"Host": "localhost:8000"}).status_code == 200
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own host name.
    assert client.get("/api/info", headers={"Host": "evil.example"}).status_code == 403
    data = input_images["content"].read_bytes()
    assert client.post("/api/uploads", content=data, headers={"Origin": "http://evil.example"}).status_code == 403
    ok = client.post("/api/uploads", content=data, headers={"Origin": "http://127.0.0.1:8000"})
    assert ok.status_code == 200


def test_security_headers_on_every_response(make_client):
    client = make_client(worker=False)
    for path in ("/", "/api/info", "/static/app.js"):
        headers = client.get(path).headers
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "SAMEORIGIN"


# ---------------------------------------------------------------- uploads


def test_an_upload_over_the_limit_is_refused_with_the_limit_named(make_client, input_images):
    client = make_client(worker=False, max_upload_mb=0.2)
    # Declared too large: refused before any of the body is read.
    declared = client.post("/api/uploads", content=b"\0" * 300_000)
    assert declared.status_code == 413
    assert "0.2 MB" in declared.json()["detail"]
    assert upload(client, input_images["content"])["width"] == 96  # small ones still pass


def test_an_upload_without_a_declared_length_is_cut_off_at_the_limit_while_it_streams(runs_dir):
    """The server answers 413 while a 300 MB chunked upload is still being sent: it never reads it all."""
    from stylelab.web.app import create_app

    from .conftest import ServerThread

    offered, chunk = 300_000_000, b"\0" * 65536
    with ServerThread(create_app(runs_dir, max_upload_mb=1)) as server:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        head = "POST /api/uploads?name=big.png HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode())
        sent = 0
        try:
            while sent < offered:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it closed the connection on us: also a refusal
        reply = b""
        while not reply.endswith(b"}") and (part := sock.recv(65536)):
            reply += part
        sock.close()
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"1 MB" in reply
    # Loopback buffers hold a few MB; anything near the 300 MB offered would mean the body was read whole.
    assert sent < 40_000_000, f"{sent / 1e6:.0f} MB went out before the refusal"


def test_an_oversized_multipart_upload_is_refused_too(make_client):
    client = make_client(worker=False, max_upload_mb=0.1)
    response = client.post("/api/uploads", files={"file": ("big.png", b"\0" * 400_000, "image/png")})
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"hello, I am text", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 40, "not an image"),
    ],
)
def test_uploads_that_are_not_usable_images_are_refused_with_a_clear_message(make_client, payload, message):
    client = make_client(worker=False)
    response = client.post("/api/uploads?name=thing.png", content=payload)
    assert response.status_code == 400
    assert message in response.json()["detail"]


def test_a_decompression_bomb_and_a_truncated_image_are_refused(make_client, input_images):
    from tests.conftest import png_with_size

    client = make_client(worker=False)
    bomb = client.post("/api/uploads?name=bomb.png", content=png_with_size(50_000, 50_000))
    assert bomb.status_code == 400
    detail = bomb.json()["detail"]
    assert "bomb.png" in detail and ("limit" in detail or "absurd" in detail)
    data = input_images["content"].read_bytes()
    truncated = client.post("/api/uploads?name=cut.jpg", content=data[: len(data) // 2])
    assert truncated.status_code == 400
    assert "cut.jpg" in truncated.json()["detail"]
    assert not list((client.app.state.runs / ".studio" / "uploads").glob("*.jpg")), "nothing refused is stored"
