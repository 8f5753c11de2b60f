"""Images: every odd input made into RGB, every bad one refused in one line, atomic writes."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylelab import images
from stylelab.errors import ImageError
from tests.conftest import png_with_size

# ------------------------------------------------------------------ odd but valid inputs


def test_greyscale_becomes_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(6, 8) * 5, "L").save(path)
    img, alpha = images.load_rgb(path)
    a = np.asarray(img)
    assert img.mode == "RGB" and img.size == (8, 6) and alpha is None
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all()
    assert a[1, 2, 0] == (8 + 2) * 5


def test_rgba_is_composited_on_white_and_the_alpha_kept(tmp_path):
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :3, 3] = 255  # ... opaque on the left
    rgba[:, 3:, 3] = 0  # ... transparent on the right
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    img, alpha = images.load_rgb(path)
    a = np.asarray(img)
    assert img.mode == "RGB"
    assert (a[:, :3] == [255, 0, 0]).all()
    assert (a[:, 3:] == [255, 255, 255]).all()  # what a viewer shows
    assert alpha is not None and np.asarray(alpha)[:, :3].min() == 255 and np.asarray(alpha)[:, 3:].max() == 0
    # The result gets the alpha back, resized to it.
    result = images.with_alpha(Image.new("RGB", (12, 8), "blue"), alpha)
    assert result.mode == "RGBA" and result.size == (12, 8)
    assert np.asarray(result)[4, 0, 3] == 255 and np.asarray(result)[4, 11, 3] == 0


def test_fully_opaque_alpha_is_dropped():
    img, alpha = images.load_rgb(Image.new("RGBA", (4, 4), (10, 20, 30, 255)))
    assert alpha is None and img.getpixel((0, 0)) == (10, 20, 30)


def test_palette_with_transparency(tmp_path):
    p = Image.new("P", (4, 4))
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((0, 0), 1)
    p.info["transparency"] = 0  # index 0 (red) is transparent
    path = tmp_path / "palette.png"
    p.save(path, transparency=0)
    img, alpha = images.load_rgb(path)
    assert img.mode == "RGB"
    assert img.getpixel((0, 0)) == (0, 255, 0)  # opaque green
    assert img.getpixel((1, 1)) == (255, 255, 255)  # transparent red shows as white
    assert alpha is not None and alpha.getpixel((1, 1)) == 0 and alpha.getpixel((0, 0)) == 255


def test_palette_without_transparency(tmp_path):
    path = tmp_path / "palette.gif"
    Image.new("RGB", (5, 3), (0, 0, 255)).convert("P").save(path)
    img, alpha = images.load_rgb(path)
    assert img.mode == "RGB" and alpha is None and img.getpixel((2, 1)) == (0, 0, 255)


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    assert Image.open(path).mode == "CMYK"
    img, _ = images.load_rgb(path)
    r, g, b = img.getpixel((4, 4))
    assert img.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_sixteen_bit_greyscale_png(tmp_path):
    path = tmp_path / "deep.png"
    a = np.array([[0, 65535], [32768, 257 * 100]], dtype=np.uint16)
    Image.fromarray(a).save(path)
    assert Image.open(path).mode == "I;16"
    img, _ = images.load_rgb(path)
    got = np.asarray(img)[..., 0]
    assert img.mode == "RGB"
    assert got.tolist() == [[0, 255], [128, 100]]  # scaled from 16 to 8 bits, not clipped at 255


def _exif_rotated_jpeg(path: Path, orientation: int) -> None:
    # Stored landscape 4x2: left half black, right half white; the tag says how to turn it.
    a = np.zeros((20, 40, 3), dtype=np.uint8)
    a[:, 20:] = 255
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(a).save(path, exif=exif.tobytes(), quality=95)


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    _exif_rotated_jpeg(path, 6)  # 6: rotate 90 degrees clockwise to display
    assert Image.open(path).size == (40, 20)
    img, _ = images.load_rgb(path)
    assert img.size == (20, 40)  # portrait, as a viewer shows it
    a = np.asarray(img).mean(axis=(1, 2))
    assert a[:15].mean() < 40 and a[-15:].mean() > 215  # the black half went to the top


def test_exif_orientation_mirrored(tmp_path):
    path = tmp_path / "mirrored.jpg"
    _exif_rotated_jpeg(path, 2)  # 2: mirror horizontally
    img, _ = images.load_rgb(path)
    a = np.asarray(img).mean(axis=(0, 2))
    assert img.size == (40, 20) and a[:15].mean() > 215 and a[-15:].mean() < 40


@pytest.mark.parametrize(
    "array, expected",
    [
        (np.full((3, 4, 3), 200, np.uint8), 200),
        (np.full((3, 4, 3), 257 * 50, np.uint16), 50),
        (np.full((3, 4, 3), 0.5, np.float32), 128),
        (np.full((3, 4, 3), 1.0, np.float64), 255),
        (np.full((3, 4), 0.25, np.float64), 64),  # greyscale float
        (np.full((3, 5, 6), 0.5, np.float32), 128),  # CHW, as from a tensor
        (np.full((3, 4, 4), 0.5, np.float32), 191),  # HxWx4: RGBA with alpha 0.5 over white
        (np.full((3, 4, 1), 77, np.uint8), 77),  # HxWx1
    ],
)
def test_numpy_inputs(array, expected):
    img, alpha = images.load_rgb(array)
    assert img.mode == "RGB"
    assert np.asarray(img)[0, 0].tolist() == [expected] * 3


def test_float_array_in_0_255_is_not_blown_out():
    a = np.full((3, 4, 3), 100.0)
    img, _ = images.load_rgb(a)
    assert np.asarray(img)[0, 0].tolist() == [100, 100, 100]


def test_rgba_array_keeps_alpha():
    a = np.zeros((2, 2, 4), np.uint8)
    a[..., 3] = [[0, 255], [255, 255]]
    img, alpha = images.load_rgb(a)
    assert alpha is not None and alpha.getpixel((0, 0)) == 0
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_tensor_inputs():
    img, _ = images.load_rgb(torch.full((3, 5, 6), 0.5))
    assert img.size == (6, 5) and img.getpixel((0, 0)) == (128, 128, 128)
    img, _ = images.load_rgb(torch.full((1, 3, 5, 6), 1.0))  # a batch of one
    assert img.size == (6, 5) and img.getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize(
    "array, pattern",
    [
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((5, 5, 5), np.uint8), "must be HxW, HxWx3 or HxWx4"),
        (np.full((2, 2, 3), np.nan), "NaN or inf"),
        (np.zeros((2, 2, 2, 2, 2)), "must be HxW"),
    ],
)
def test_bad_arrays(array, pattern):
    with pytest.raises(ImageError, match=pattern):
        images.load_rgb(array)


# ------------------------------------------------------------------ bad inputs: one line each


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


BAD_FILES = {
    "missing": (None, "no such file"),
    "text renamed .jpg": (b"this is a shopping list, not a photo\n", "is not an image stylelab can read"),
    "empty file": (b"", "is empty"),
    "truncated jpeg": (_jpeg_bytes()[:1500], "damaged or truncated"),
    "truncated png": (_png_bytes()[:3000], "damaged or truncated"),
    "bomb png": (png_with_size(100_000, 100_000), "absurd dimensions"),
    "zero-width png": (png_with_size(0, 10), "stylelab can read"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_files_are_refused_in_one_line(tmp_path, case):
    data, pattern = BAD_FILES[case]
    path = tmp_path / "input.jpg"
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(ImageError, match=pattern) as info:
        images.load_rgb(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_bomb_png_is_small():
    assert len(png_with_size(100_000, 100_000)) < 100


def test_our_pixel_limit_applies_below_pillows(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (300, 200)).save(path)
    with pytest.raises(ImageError, match="300x200, over the limit of 50,000 pixels"):
        images.load_rgb(path, max_pixels=50_000)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder"):
        images.load_rgb(tmp_path)


def test_bad_bytes_upload():
    with pytest.raises(ImageError, match="uploaded image is damaged or truncated"):
        images.load_rgb(_jpeg_bytes()[:1000])


# ------------------------------------------------------------------ sizes and tensors


def test_fit_caps_the_longest_side():
    img = Image.new("RGB", (400, 100))
    assert images.fit(img, 200).size == (200, 50)
    assert images.fit(Image.new("RGB", (100, 400)), 200).size == (50, 200)
    assert images.fit(img, 400) is img


def test_tensor_round_trip():
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 255, (5, 7, 3), dtype=np.uint8))
    x = images.to_tensor(img)
    assert x.shape == (1, 3, 5, 7) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(np.asarray(images.to_pil(x)), np.asarray(img))
    # Out-of-range values are clamped, NaN never wraps around into colours.
    assert images.to_pil(torch.full((3, 2, 2), 7.0)).getpixel((0, 0)) == (255, 255, 255)
    assert images.to_pil(torch.full((3, 2, 2), -3.0)).getpixel((0, 0)) == (0, 0, 0)


# ------------------------------------------------------------------ writing


def test_save_png_carries_text_metadata(tmp_path):
    path = images.save_png(Image.new("RGB", (3, 3)), tmp_path / "sub" / "out.png", {"stylelab": '{"ünï": 1}'})
    assert images.read_png_text(path)["stylelab"] == '{"ünï": 1}'


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "result.png"

    def interrupted(fd):
        raise KeyboardInterrupt  # Ctrl-C in the middle of the write

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        images.save_png(Image.new("RGB", (64, 64)), target)
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temp file


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "result.png"
    images.save_png(Image.new("RGB", (8, 8), "red"), target)
    before = target.read_bytes()

    class DiskFull(OSError):
        pass

    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode):
        fh = real_fdopen(fd, mode)

        class Half:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def write(self, data):
                fh.write(data[: len(data) // 2])
                raise DiskFull("No space left on device")

        return Half()

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    with pytest.raises(DiskFull):
        images.save_png(Image.new("RGB", (8, 8), "blue"), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["result.png"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = images.save_png(Image.new("RGB", (2, 2)), tmp_path / "shared.png")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644  # readable by others, like any file the user makes
