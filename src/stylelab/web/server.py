"""Starting the studio: checks first, then uvicorn on a socket we bound ourselves.

Binding the socket here (rather than letting uvicorn do it) turns "address in
use" and similar into one-line StylelabErrors, and lets ``--port 0`` report
the port the system chose.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ..errors import StylelabError
from .limits import DEFAULT_MAX_QUEUE, DEFAULT_MAX_SIZE, DEFAULT_MAX_STEPS, Limits
from .security import check_bind
from .video_uploads import DEFAULT_MAX_VIDEO_FRAMES, check_video_limits


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; raises StylelabError if that is not possible."""
    if not 0 <= port <= 65535:
        raise StylelabError(f"--port must be between 0 and 65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise StylelabError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def studio_url(host: str, port: int, token: str | None = None) -> str:
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/" + (f"?token={quote(token)}" if token else "")


def make_server(app, log_level: str = "warning"):
    """A uvicorn server for ``app`` that ends open event streams as soon as it is asked to stop."""
    import uvicorn

    class StudioServer(uvicorn.Server):
        async def shutdown(self, sockets=None):
            # Event streams never end on their own; closing the hub ends them so
            # that shutdown does not wait out the graceful timeout.
            app.state.hub.close()
            await super().shutdown(sockets=sockets)

    config = uvicorn.Config(app, log_level=log_level, timeout_graceful_shutdown=3, lifespan="on")
    return StudioServer(config)


def serve(
    runs: str | Path = "runs",
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    max_upload_mb: float = 25.0,
    max_size: int = DEFAULT_MAX_SIZE,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_queue: int = DEFAULT_MAX_QUEUE,
    announce: Callable[[str], None] | None = None,
    log_level: str = "warning",
    max_video_mb: float | None = None,
    max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES,
) -> None:
    """Run the studio until interrupted. ``announce`` receives the URL to open once listening.

    ``max_size``, ``max_steps`` and ``max_queue`` are the studio's bounds on a job (``limits.Limits``);
    ``max_upload_mb`` bounds an image upload, ``max_video_mb`` (default: the same) and ``max_video_frames`` a video.
    """
    check_bind(host, token)
    if not max_upload_mb > 0:
        raise StylelabError(f"--max-upload-mb must be > 0, not {max_upload_mb}")
    Limits(max_size, max_steps, max_queue)  # refused here, before anything listens
    check_video_limits(max_upload_mb if max_video_mb is None else max_video_mb, max_video_frames)
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise StylelabError("the studio needs the web extra: pip install 'stylelab[web]'") from None
    from .app import create_app

    sock = bind_socket(host, port)
    app = create_app(
        runs,
        token=token,
        max_upload_mb=max_upload_mb,
        max_size=max_size,
        max_steps=max_steps,
        max_queue=max_queue,
        max_video_mb=max_video_mb,
        max_video_frames=max_video_frames,
    )
    server = make_server(app, log_level)
    if announce is not None:
        announce(studio_url(host, sock.getsockname()[1], token))
    server.run(sockets=[sock])
