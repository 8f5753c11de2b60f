"""What keeps the studio safe to run: tokens, bounded request bodies, confined paths.

Three rules, each enforced in one place:

- Every file the studio reads or lists on a request goes through ``inside``:
  the path with its symlinks resolved must still be inside the runs folder, so
  a link planted there pointing elsewhere is treated as absent. A path from a
  request goes through ``confined`` first (a relative path, no dot-names) or is
  an id the server generated and validates by pattern.
- Request bodies are counted while they stream in (``BodyLimit``), so an
  oversized upload is refused at the limit, never read whole into memory first.
- Off loopback every request carries the token (``TokenGate``); on loopback
  without a token, requests must name a loopback host, which stops a web page
  from reaching the studio through DNS rebinding, and writes must come from the
  studio's own origin.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, urlsplit

from ..errors import StylelabError
from ..folders import PARTIAL

COOKIE = "stylelab_token"
TOKEN_HEADER = "x-stylelab-token"


class UnsafePath(StylelabError):
    """A path from a request that does not name something inside the runs folder."""


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise StylelabError(
            f"binding to {host} makes the studio reachable from other machines: give --token SECRET "
            "(every request must then carry it), or bind to 127.0.0.1"
        )


def inside(root: Path, path: Path, *, hidden: bool = False, partial: bool = False) -> Path:
    """``path`` with every symlink resolved, if that is still inside ``root``; raises UnsafePath otherwise.

    The one check every disk read of the studio goes through. ``root`` must be
    resolved already (callers resolve it once; an unresolved one refuses
    everything, never too little). Unless ``hidden``, the part under ``root``
    may not contain dot-names (``.studio``) or ``.partial`` folders after
    resolving either, so a link cannot lead into the studio's own state or an
    unfinished run; ``partial`` lets ``.partial`` folders through (what
    ``confined_partial`` reads), dot-names still not. The message names
    ``path`` as given, never where it leads.
    """
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        raise UnsafePath(f"not inside the runs folder: {_shown(root, Path(path))}") from None
    if resolved == root or not resolved.is_relative_to(root):
        raise UnsafePath(f"not inside the runs folder: {_shown(root, Path(path))}")
    if not hidden and any(
        p.startswith(".") or (p.endswith(PARTIAL) and not partial) for p in resolved.relative_to(root).parts
    ):
        raise UnsafePath(f"not inside the runs folder: {_shown(root, Path(path))}")
    return resolved


def _shown(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name


def readable(root: Path, path: Path, *, hidden: bool = False, partial: bool = False) -> Path | None:
    """``inside(root, path)`` if that names a file, else None: links out and missing files are alike."""
    try:
        resolved = inside(root, path, hidden=hidden, partial=partial)
    except UnsafePath:
        return None
    return resolved if resolved.is_file() else None


def confined(root: Path, rel: str) -> Path:
    """``root / rel`` resolved, if it stays inside ``root``; raises UnsafePath otherwise.

    ``rel`` arrives already percent-decoded once by the server. A ``%`` left in
    it means it was encoded twice; no name the studio makes contains one, so it
    is refused rather than decoded again (decoding twice is how filters are
    bypassed). Dot-names (``..``, ``.studio``, hidden files) are refused too,
    before and (through ``inside``) after resolving symlinks.
    """
    parts = _parts(rel)
    if any(part.endswith(PARTIAL) for part in parts):
        raise UnsafePath(f"not a path inside the runs folder: {rel!r}")
    base = root.resolve()
    try:
        return inside(base, base / PurePosixPath(*parts))
    except UnsafePath:
        raise UnsafePath(f"not a path inside the runs folder: {rel!r}") from None  # a symlink pointing out


def confined_partial(root: Path, key: str) -> Path:
    """The unfinished run folder ``root / key`` resolved, where ``key`` ends in one ``.partial`` folder.

    The one way into a ``.partial`` folder (a run still being written, shown
    live): ``confined``'s rules, except that the last part, and only it, ends
    in ``.partial``. Raises UnsafePath otherwise; reads inside it go through
    ``inside(..., partial=True)``.
    """
    parts = _parts(key)
    if not parts[-1].endswith(PARTIAL) or any(p.endswith(PARTIAL) for p in parts[:-1]):
        raise UnsafePath(f"not an unfinished run in the runs folder: {key!r}")
    base = root.resolve()
    try:
        return inside(base, base / PurePosixPath(*parts), partial=True)
    except UnsafePath:
        raise UnsafePath(f"not an unfinished run in the runs folder: {key!r}") from None


def _parts(rel: str) -> tuple[str, ...]:
    """The parts of a relative path from a request; UnsafePath for anything but plain names."""
    if not rel or len(rel) > 1024 or any(c in rel for c in "\\%\x00") or rel.startswith("/"):
        raise UnsafePath(f"not a path inside the runs folder: {rel!r}")
    parts = PurePosixPath(rel).parts
    if any(part.startswith(".") for part in parts):
        raise UnsafePath(f"not a path inside the runs folder: {rel!r}")
    return parts


def relative_key(root: Path, folder: Path) -> str:
    """The id under which a folder inside ``root`` appears in URLs (a relative POSIX path)."""
    return folder.resolve().relative_to(root.resolve()).as_posix()


def pattern_id(pattern: re.Pattern, value: str, what: str) -> str:
    if not pattern.fullmatch(value or ""):
        raise UnsafePath(f"not a valid {what} id: {value!r}")
    return value


# ---------------------------------------------------------------- ASGI middleware


async def _send_json(send, status: int, detail: str, headers: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuse request bodies over the limit for their path, counting bytes as they arrive.

    ``limit_for(path)`` gives (bytes allowed, the one-line message a refusal carries).
    """

    def __init__(self, app, limit_for: Callable[[str], tuple[int, str]]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, message = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _send_json(send, 413, message, [(b"connection", b"close")])
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return msg

        async def tracking_send(msg):
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _send_json(send, 413, message, [(b"connection", b"close")])


class TokenGate:
    """Every request carries the token (header, cookie or ``?token=``) when one is set.

    A valid ``?token=`` sets a cookie, so after opening the printed URL once the
    page, its images and its event stream are authorised without the token in
    every URL. Without a token (loopback only), the Host must be a loopback
    name and writes must come from this origin.
    """

    def __init__(self, app, token: str | None):
        self.app = app
        self.token = token

    def _presented(self, scope) -> tuple[str | None, bool]:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query:
            return query["token"][0], True
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        if TOKEN_HEADER in headers:
            return headers[TOKEN_HEADER], False
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                return value, False
        return None, False

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is None:
            host = urlsplit("//" + headers.get(b"host", b"").decode("latin-1")).hostname or ""
            if host and not is_loopback(host):
                return await _send_json(send, 403, f"this studio answers only to localhost, not {host!r}")
            origin = headers.get(b"origin", b"").decode("latin-1")
            if scope.get("method") not in ("GET", "HEAD") and origin:
                origin_host = urlsplit(origin).hostname or ""
                if not is_loopback(origin_host):
                    return await _send_json(send, 403, "writes are accepted only from the studio's own page")
            return await self.app(scope, receive, send)
        given, from_query = self._presented(scope)
        if given is None or not secrets.compare_digest(given.encode(), self.token.encode()):
            return await _send_json(
                send, 401, "this studio needs its token: open the URL `stylelab serve` printed (it ends in ?token=...)"
            )
        if not from_query:
            return await self.app(scope, receive, send)

        async def send_with_cookie(msg):
            if msg["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                msg = {**msg, "headers": [*msg.get("headers", []), (b"set-cookie", cookie.encode("latin-1"))]}
            await send(msg)

        await self.app(scope, receive, send_with_cookie)


class SecurityHeaders:
    """Headers on every response: no MIME sniffing, no referrer, no framing by other sites."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"SAMEORIGIN"),
    ]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(msg):
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": [*msg.get("headers", []), *self.HEADERS]}
            await send(msg)

        await self.app(scope, receive, send_with_headers)


def check_state_folders(root: Path) -> None:
    """Refuse a runs folder whose ``.studio`` (or its uploads) is a link leading elsewhere: the studio writes there."""
    for rel in (".studio", ".studio/uploads"):
        try:
            inside(root, root / rel, hidden=True)
        except UnsafePath:
            raise StylelabError(
                f"{root / rel} is a link leading outside the runs folder; the studio keeps its uploads and queue"
                " there: remove the link"
            ) from None
