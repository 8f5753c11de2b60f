"""Uploaded images: bounded while they stream in, decoded and checked before anything runs.

An upload is stored once under ``<runs>/.studio/uploads/<id>.<ext>`` where the
id is the start of its SHA-256 (the same picture uploaded twice is one file),
with a small JSON sidecar holding its display name and size. Jobs refer to
uploads by id only; ids are checked against their pattern before use, and the
sidecar and the image are read only where they resolve inside the runs folder
(``security.inside``): a link planted in the store, or a sidecar naming another
file, is an upload that is not there.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

from PIL import Image

from .. import images
from ..errors import ImageError, StylelabError
from .security import pattern_id, readable

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

    def __init__(self, folder: Path, *, max_bytes: int, max_pixels: int = MAX_PIXELS, root: Path | None = None):
        """``root``: the folder every read must stay inside (the runs folder; default ``folder`` itself)."""
        self.folder = Path(folder)
        self.root = Path(root if root is not None else folder).resolve()
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def too_large_message(self) -> str:
        return f"the image is larger than {self.max_bytes / 1e6:g} MB (the studio's --max-upload-mb)"

    def add(self, data: bytes, name: str | None) -> dict:
        """Check ``data`` is an image the engine can use, store it, and describe it.

        Raises:
            UploadError: too large, not an image, an unsupported format, damaged,
                or over the pixel limit.
        """
        if len(data) > self.max_bytes:
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
            raise UploadError(not_ours) from None
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
        if not self.folder.resolve().is_relative_to(self.root):  # never write through a linked store folder
            raise UploadError(f"{self.folder} leads outside the runs folder; remove that link")
        if self._stored(meta["file"]) is None:  # absent, or a planted link: the rename replaces the link
            images.atomic_write_bytes(self.folder / meta["file"], data)
        images.atomic_write_text(self.folder / f"{upload_id}.json", json.dumps(meta))
        return self.public(meta)

    def public(self, meta: dict) -> dict:
        return {k: meta[k] for k in ("id", "name", "format", "width", "height")} | {"url": f"/api/uploads/{meta['id']}"}

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
        names = {f"{upload_id}.{ext}" for ext in FORMATS.values()}
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
        if path.stat().st_size > self.max_bytes:
            raise UploadTooLarge(self.too_large_message())
        return self.add(path.read_bytes(), name or path.name)
