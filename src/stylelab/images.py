"""Reading any image safely, converting to and from tensors, writing atomically.

Every odd input a user may have is either made into plain RGB (greyscale,
palette, CMYK, 16-bit, EXIF-rotated, alpha) or refused with one line
(missing, not an image, truncated, empty, absurdly large).
"""

from __future__ import annotations

import io
import os
import secrets
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from .errors import ImageError, InputTypeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

# Larger inputs are refused before decoding: a decompression bomb declares a huge
# size in a few bytes. 100 Mpx covers any real photo or scan.
MAX_PIXELS = 100_000_000
RESAMPLE = Image.Resampling.LANCZOS


def _describe(src) -> str:
    return str(src) if isinstance(src, (str, os.PathLike)) else type(src).__name__


def _is_tensor(src) -> bool:
    # A tensor exists only once torch is imported: no need to import it here to ask.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(src, torch.Tensor)


def open_image(src, *, max_pixels: int = MAX_PIXELS, what: str | None = None) -> Image.Image:
    """Open and fully decode an image from a path, bytes, PIL image, array or tensor.

    EXIF orientation is applied. The mode is left as it is; see ``to_rgb``.
    ``what`` names the argument in messages ("content", "style 2").

    Raises:
        InputTypeError: ``src`` is none of the kinds above (None, a number, a dict, a list).
        ImageError: missing, unreadable, truncated, empty, too large, or an array of no image type.
    """
    label = what or _describe(src)
    if isinstance(src, Image.Image):
        img = src
    elif isinstance(src, np.ndarray):
        img = _from_array(src, label)
    elif _is_tensor(src):
        img = _from_array(src.detach().cpu().numpy(), label)
    elif not isinstance(src, (str, os.PathLike, bytes, bytearray)):
        raise InputTypeError(
            f"{what or 'an image'} must be a file path, PIL image, numpy array or tensor, not {type(src).__name__}"
        )
    else:
        name = _describe(src)
        if isinstance(src, (bytes, bytearray)):
            fp = io.BytesIO(src)
            name = "uploaded image"
        else:
            path = Path(src).expanduser()
            if not path.exists():
                raise ImageError(f"no such file: {name}")
            if path.is_dir():
                raise ImageError(f"{name} is a folder, not an image")
            if path.stat().st_size == 0:
                raise ImageError(f"{name} is empty (0 bytes), not an image")
            fp = path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fp)
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError(f"{name} is {w}x{h}, over the limit of {max_pixels:,} pixels")
                img.load()
        except ImageError:
            raise
        except UnidentifiedImageError:
            raise ImageError(f"{name} is not an image stylelab can read") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name} declares absurd dimensions (a decompression bomb?)") from None
        except (OSError, SyntaxError, ValueError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ImageError(f"{name} is damaged or truncated ({first})") from None
    w, h = img.size
    if w == 0 or h == 0:
        raise ImageError(f"{label} has zero size ({w}x{h})")
    if w * h > max_pixels:
        raise ImageError(f"{label} is {w}x{h}, over the limit of {max_pixels:,} pixels")
    try:
        return ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block should not lose the picture
        return img


def _from_array(a: np.ndarray, label: str = "an image array") -> Image.Image:
    a = np.asarray(a)
    if a.dtype.kind not in "buif":  # complex, strings, objects, dates: no picture in them
        raise InputTypeError(f"{label}: an image array holds numbers (uint8, uint16 or float), not {a.dtype}")
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]  # a batch of one, as tensors often come
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)  # CHW -> HWC
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ImageError(f"{label}: an image array must be HxW, HxWx3 or HxWx4, not {a.shape}")
    if a.size == 0:
        raise ImageError(f"{label}: the image array has zero size {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a.astype(np.float64) / 257.0).round().astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ImageError(f"{label}: the image array contains NaN or inf")
        # Floats are 0..1 by convention; an array whose values go well past 1 is 0..255
        # (np.asarray(img, dtype=float)), and clipping it would give a white picture.
        top = 255.0 if a.max() > 1.5 else 1.0
        a = (np.clip(a / top, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    else:
        a = np.clip(a, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def _sixteen_bit_to_8(img: Image.Image) -> Image.Image:
    a = np.asarray(img, dtype=np.float64)
    top = 65535.0 if a.max() > 255 or img.mode.startswith("I;16") else 255.0
    if img.mode == "F":
        top = 1.0 if a.max() <= 1.0 else top
    return Image.fromarray((np.clip(a / top, 0, 1) * 255).round().astype(np.uint8), "L")


def to_rgb(img: Image.Image, *, background=(255, 255, 255)) -> tuple[Image.Image, Image.Image | None]:
    """Plain 8-bit RGB plus the alpha channel if the image had one.

    Transparent areas are composited on ``background`` (white), the way the
    image looks in a viewer.
    """
    alpha = None
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _sixteen_bit_to_8(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBa", "La"):
        img = img.convert("RGBA")
    if img.mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        alpha = img.getchannel("A")
        base = Image.new("RGB", img.size, background)
        base.paste(img.convert("RGB"), mask=alpha)
        img = base
    if img.mode != "RGB":
        img = img.convert("RGB")
    if alpha is not None and alpha.getextrema() == (255, 255):
        alpha = None  # fully opaque: nothing to keep
    return img, alpha


def load_rgb(src, *, max_pixels: int = MAX_PIXELS, what: str | None = None) -> tuple[Image.Image, Image.Image | None]:
    """``open_image`` then ``to_rgb``: the one call inputs go through."""
    return to_rgb(open_image(src, max_pixels=max_pixels, what=what))


def fitted_size(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """(width, height) scaled so the longest side is ``longest`` pixels, keeping the aspect ratio."""
    w, h = size
    scale = longest / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def fit(img: Image.Image, longest: int) -> Image.Image:
    """Resize so the longest side is ``longest`` pixels, keeping the aspect ratio."""
    size = fitted_size(img.size, longest)
    return img if size == img.size else img.resize(size, RESAMPLE)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """(1, 3, H, W) float32 RGB in 0..1."""
    import torch

    a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def to_pil(x: torch.Tensor) -> Image.Image:
    """The first image of a (B, 3, H, W) or (3, H, W) tensor as RGB, clamped to 0..1."""
    import torch

    if x.dim() == 4:
        x = x[0]
    a = x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(a), "RGB")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file so it is either complete or absent: temp file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600), and a result should get the
    # permissions any new file gets (0666 minus the umask).
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def png_bytes(img: Image.Image, metadata: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (metadata or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    img.save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def save_png(img: Image.Image, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Save atomically as PNG with text metadata (iTXt chunks, UTF-8)."""
    return atomic_write_bytes(path, png_bytes(img, metadata))


def read_png_text(path: str | Path) -> dict[str, str]:
    """A PNG's text chunks (read before any EXIF transposition, which drops them)."""
    open_image(path)  # the same checks and one-line errors as any input
    with Image.open(path) as img:
        img.load()
        return dict(getattr(img, "text", {}) or {})


def with_alpha(img: Image.Image, alpha: Image.Image | None) -> Image.Image:
    """Attach a content image's alpha (resized) to a result."""
    if alpha is None:
        return img
    out = img.convert("RGBA")
    out.putalpha(alpha.resize(img.size, RESAMPLE))
    return out
