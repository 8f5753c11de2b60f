"""Uploaded images and videos: bounded while they stream in, decoded and checked before anything runs.

An upload is stored once under ``<runs>/.studio/uploads/<id>.<ext>`` where the
id is the start of its SHA-256 (the same picture uploaded twice is one file),
with a small JSON sidecar holding its display name and size. What Pillow does not
recognise as an image is examined as a video (``video_uploads``): a container
FFmpeg opens, holding a video stream that decodes, within the studio's bytes and
frames; its sidecar also says ``kind = "video"``, its frame count, rate and duration. Jobs refer to
uploads by id only; ids are checked against their pattern before use, and the
sidecar and the image are read only where they resolve inside the runs folder
(``security.inside``): a link planted in the store, or a sidecar naming another
file, is an upload that is not there.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
from pathlib import Path

from PIL import Image

from .. import images
from ..errors import ImageError, StylelabError
from ..video.io import MAX_FRAME_PIXELS
from .security import pattern_id, readable
from .video_uploads import DEFAULT_MAX_VIDEO_FRAMES, VIDEO_EXTENSIONS, examine_video

UPLOAD_ID = re.compile(r"[0-9a-f]{20}")
# Formats a browser can show and Pillow decodes itself. Others (EPS, for one,
# which Pillow hands to Ghostscript) are refused before any decoding happens.
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
# The studio's own ceiling on pixels: far above any photo, far below what would
# exhaust memory once decoded (40 Mpx RGB is 120 MB).
MAX_PIXELS = 40_000_000
NAME_CHARS = re.compile(r"[^\w.\- ()]+")


class UploadError(StylelabError):
    """An upload the studio will not use; the message says why."""


class UploadTooLarge(UploadError):
    """An upload over the studio's size limit (HTTP 413)."""


def display_name(name: str | None) -> str:
    """A file name fit to show (never used as a path)."""
    name = NAME_CHARS.sub("_", Path(name or "image").name)[:80].strip()
    return name or "image"


class UploadStore:
    """Validated images uploaded to the studio."""

    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        max_pixels: int = MAX_PIXELS,
        root: Path | None = None,
        max_video_bytes: int | None = None,
        max_video_frames: int = DEFAULT_MAX_VIDEO_FRAMES,
    ):
        """``root``: the folder every read must stay inside (the runs folder; default ``folder`` itself).
        ``max_video_bytes`` (default ``max_bytes``) and ``max_video_frames`` bound a video upload."""
        self.folder = Path(folder)
        self.root = Path(root if root is not None else folder).resolve()
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_video_bytes = max_bytes if max_video_bytes is None else max_video_bytes
        self.max_video_frames = max_video_frames

    @property
    def most_bytes(self) -> int:
        """The largest upload of either kind: what a request body may bring."""
        return max(self.max_bytes, self.max_video_bytes)

    def too_large_message(self, kind: str | None = None) -> str:
        """Why an upload is refused for its size: as an image, as a video, or (``None``) not known yet."""
        mb = lambda n: f"{n / 1e6:g} MB"  # noqa: E731
        if kind == "video":
            return f"the video is larger than {mb(self.max_video_bytes)} (the studio's --max-video-mb)"
        if kind == "image":
            return f"the image is larger than {mb(self.max_bytes)} (the studio's --max-upload-mb)"
        if self.max_video_bytes == self.max_bytes:
            return f"the upload is larger than {mb(self.max_bytes)} (the studio's --max-upload-mb)"
        return (
            f"the upload is larger than {mb(self.most_bytes)}: images may be {mb(self.max_bytes)} (--max-upload-mb),"
            f" videos {mb(self.max_video_bytes)} (--max-video-mb)"
        )

    def add(self, data: bytes, name: str | None) -> dict:
        """Check ``data`` is an image the engine can use, or a video it can paint, store it, and describe it.

        Raises:
            UploadError: too large, neither an image nor a video we take, damaged,
                over the pixel limit, or (a video) over the frame limit.
        """
        if len(data) > self.most_bytes:
            raise UploadTooLarge(self.too_large_message())
        if not data:
            raise UploadError("the upload is empty")
        not_ours = f"{display_name(name)} is not an image the studio takes (PNG, JPEG, WebP, GIF, BMP or TIFF)"
        fmt = None
        try:
            with Image.open(io.BytesIO(data), formats=list(FORMATS)) as probe:
                fmt = probe.format
        except Image.DecompressionBombError:
            pass  # absurd dimensions: load_rgb below refuses it with its own message
        except Exception:  # noqa: BLE001 - any failure to recognise the header means "not an image we take"
            return self._add_video(data, name)
        if len(data) > self.max_bytes:
            raise UploadTooLarge(self.too_large_message("image"))
        try:
            img, _ = images.load_rgb(data, max_pixels=self.max_pixels)
        except ImageError as exc:
            raise UploadError(str(exc).replace("uploaded image", display_name(name))) from None
        if fmt not in FORMATS:
            raise UploadError(not_ours)
        upload_id = hashlib.sha256(data).hexdigest()[:20]
        meta = {
            "id": upload_id,
            "name": display_name(name),
            "format": fmt,
            "width": img.width,
            "height": img.height,
            "file": f"{upload_id}.{FORMATS[fmt]}",
        }
        self._check_folder()
        if self._stored(meta["file"]) is None:  # absent, or a planted link: the rename replaces the link
            images.atomic_write_bytes(self.folder / meta["file"], data)
        images.atomic_write_text(self.folder / f"{upload_id}.json", json.dumps(meta))
        return self.public(meta)

    def _check_folder(self) -> None:
        if not self.folder.resolve().is_relative_to(self.root):  # never write through a linked store folder
            raise UploadError(f"{self.folder} leads outside the runs folder; remove that link")

    def _add_video(self, data: bytes, name: str | None) -> dict:
        """``add`` for what is not an image: FFmpeg must find a video in it (``video_uploads``)."""
        if len(data) > self.max_video_bytes:
            raise UploadTooLarge(self.too_large_message("video"))
        shown = display_name(name)
        upload_id = hashlib.sha256(data).hexdigest()[:20]
        self._check_folder()
        self.folder.mkdir(parents=True, exist_ok=True)
        # FFmpeg reads files: the bytes are examined under a hidden name the store never serves,
        # then renamed into place (or dropped, when refused or already stored).
        incoming = self.folder / f".incoming-{secrets.token_hex(6)}{Path(shown).suffix.lower()[:6]}"
        try:
            incoming.write_bytes(data)
            found = examine_video(
                incoming, shown, max_frames=self.max_video_frames, max_pixels=min(self.max_pixels, MAX_FRAME_PIXELS)
            )
            # The same bytes stored before under another extension stay that file: a video job
            # going on after a stop finds its input where it was (video run folders name it).
            kept = next((e for e in VIDEO_EXTENSIONS if self._stored(f"{upload_id}.{e}") is not None), None)
            ext = found.pop("ext")
            meta = {"id": upload_id, "name": shown, "kind": "video", "file": f"{upload_id}.{kept or ext}"} | found
            if kept is None:
                os.replace(incoming, self.folder / meta["file"])
        finally:
            incoming.unlink(missing_ok=True)
        images.atomic_write_text(self.folder / f"{upload_id}.json", json.dumps(meta))
        return self.public(meta)

    def public(self, meta: dict) -> dict:
        out = {k: meta[k] for k in ("id", "name", "format", "width", "height")} | {"url": f"/api/uploads/{meta['id']}"}
        out["kind"] = meta.get("kind", "image")
        if out["kind"] == "video":
            out |= {k: meta.get(k) for k in ("frames", "fps", "duration", "has_audio")}
        return out

    def _stored(self, name: str) -> Path | None:
        """The store's file ``name``, resolved, if it is a file inside the runs folder."""
        return readable(self.root, self.folder / name, hidden=True)

    def meta(self, upload_id: str) -> dict:
        """The sidecar of a stored upload; raises UploadError if there is none (or it, or its image, leads outside)."""
        pattern_id(UPLOAD_ID, upload_id, "upload")
        missing = UploadError(f"no upload {upload_id}; upload the image again")
        sidecar = self._stored(f"{upload_id}.json")
        if sidecar is None:
            raise missing
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise missing from None
        # Only the names add() gives: a sidecar naming any other file is not one of ours.
        names = {f"{upload_id}.{ext}" for ext in (*FORMATS.values(), *VIDEO_EXTENSIONS)}
        if not isinstance(meta, dict) or meta.get("id") != upload_id or meta.get("file") not in names:
            raise missing
        if self._stored(meta["file"]) is None:
            raise UploadError(f"upload {upload_id} is missing its file; upload the image again")
        return meta

    def path(self, upload_id: str) -> Path:
        """The stored image of an upload, resolved; raises UploadError as ``meta`` does."""
        path = self._stored(self.meta(upload_id)["file"])
        if path is None:
            raise UploadError(f"upload {upload_id} is missing its file; upload the image again")
        return path

    def add_file(self, path: Path, name: str | None = None) -> dict:
        """Store a file the server itself chose (a run's kept input), with the same checks."""
        if path.stat().st_size > self.most_bytes:
            raise UploadTooLarge(self.too_large_message())
        return self.add(path.read_bytes(), name or path.name)

    def name_of(self, path: str | Path) -> str | None:
        """The name an upload was given, for a path into this store (what a video run records); else None."""
        path = Path(path)
        if not UPLOAD_ID.fullmatch(path.stem) or path.parent.resolve() != self.folder.resolve():
            return None
        try:
            return self.meta(path.stem)["name"]
        except StylelabError:
            return None
