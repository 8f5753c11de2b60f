"""Painting a clip frame by frame, each frame starting from the last one carried along the flow.

Ruder, Dosovitskiy and Brox, "Artistic style transfer for videos" (GCPR 2016). For frame t > 1:

- the optical flow is computed on the INPUT frames, backward (t -> t-1) and forward (t-1 -> t);
- the previous painted frame is warped into frame t along the backward flow;
- the start image is that warped frame, resampled with a Lanczos kernel: bilinear resampling
  averages neighbouring pixels at every sub-pixel shift and washes the painted texture out
  (measured at 256 px on a frame at style distance 0.169: 0.30 carried bilinearly, 0.20
  bicubically, 0.19 with Lanczos, before any step). Where the frame shows what the previous
  one did not (disocclusions), the start image keeps what the warp puts there (the texture
  next to it, stretched), as Ruder et al. do: filling those pixels from the content frame
  instead was measured worse on both counts (``fill="content"``: style distance 0.1747 vs 0.1721
  and warping error 0.00108 vs 0.00091 on a 6-frame 256-px clip, benchmarks/README.md);
- the temporal term pulls the frame towards the warped one, weighted per pixel by the full
  consistency mask (0 at occlusions, motion boundaries and outside the picture).

Frame 1 is painted as a still (the recipe's start image and steps). ``temporal_weight == 0``
paints every frame that way: plain per-frame stylisation, for comparison.

One Engine paints the whole clip: the network is built once and the style statistics are
cached (``engine.styles``), so a frame costs its steps and nothing else. Colour handling is
done here, once, against the first frame of the selection (histogram matching, or the
luminance of the styles), so the style targets stay the same from frame to frame and do not
flicker with each frame's colours; under ``luminance`` the engine paints grey frames, which are
what the next frame carries along the flow, and each is recombined with its frame's colours.

The engine reseeds its random generators from ``recipe.seed`` at every frame, so a frame's
result depends only on its inputs, the settings and the previous painted frame: a clip resumed
from a saved frame gives the same pictures as one painted without a break.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import StylelabError, VideoError
from ..recipes import Recipe
from .defaults import FRAME_STEP_FRACTION, VIDEO_TEMPORAL_WEIGHT

FILLS = ("content", "warp")  # what the start image holds where the previous frame was not visible
INTERPOLATIONS = ("lanczos", "cubic", "linear")  # how the previous painted frame is resampled along the flow
__all__ = [
    "FRAME_STEP_FRACTION",
    "VIDEO_TEMPORAL_WEIGHT",
    "Carried",
    "ClipPlan",
    "ClipSpec",
    "PaintedFrame",
    "carry",
    "default_frame_steps",
    "paint_frames",
    "plan_clip",
]


def default_frame_steps(recipe: Recipe) -> int:
    """Steps for a frame after the first: ``FRAME_STEP_FRACTION`` of the recipe's (at least 1)."""
    return max(1, math.ceil(recipe.steps * FRAME_STEP_FRACTION))


# ---------------------------------------------------------------- what to paint


@dataclass(frozen=True)
class ClipSpec:
    """A clip to paint: the input, the styles (as ``Task.of`` takes them) and how.

    ``source`` is a video file or a folder of frames; ``start``/``end`` (seconds) and
    ``max_frames`` choose a piece; ``fps`` is a folder's frame rate. ``frame_steps`` is the
    budget of each frame after the first (None: ``default_frame_steps``); the recipe's
    ``temporal_weight`` weighs the temporal term (0: plain per-frame stylisation, every frame
    with the recipe's steps from its own start image). ``flow`` is ``"dis"`` or ``"farneback"``;
    ``fill`` and ``interpolation``: how the previous frame is carried (``carry``). ``chunk_frames``
    paints the clip in chunks of that many frames, each overlapping the next by one (chunks.py).
    """

    source: str | Path
    styles: tuple[Any, ...]
    recipe: Recipe
    blend_weights: tuple[float, ...] | None = None
    masks: tuple[Any, ...] | None = None
    background: Any = None
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None
    fps: float | None = None
    frame_steps: int | None = None
    flow: str = "dis"
    fill: str = "warp"
    interpolation: str = "lanczos"
    chunk_frames: int | None = None

    def __post_init__(self):
        from .flow import METHODS

        styles = (self.styles,) if isinstance(self.styles, (str, Path)) else tuple(self.styles)
        object.__setattr__(self, "styles", styles)
        if self.masks is not None:
            masks = (self.masks,) if isinstance(self.masks, (str, Path)) else tuple(self.masks)
            object.__setattr__(self, "masks", masks)
        if self.blend_weights is not None:
            object.__setattr__(self, "blend_weights", tuple(float(w) for w in self.blend_weights))
        if not styles:
            raise StylelabError("give at least one --style image")
        if self.flow not in METHODS:
            raise VideoError(f"unknown --flow {self.flow!r}; choose one of {', '.join(METHODS)}")
        if self.fill not in FILLS:
            raise VideoError(f"unknown fill {self.fill!r}; choose one of {', '.join(FILLS)}")
        if self.interpolation not in INTERPOLATIONS:
            raise VideoError(f"unknown interpolation {self.interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
        if self.chunk_frames is not None and self.chunk_frames < 2:
            raise VideoError(f"--chunk-frames must be at least 2 (chunks overlap by one), not {self.chunk_frames}")
        if self.frame_steps is not None and self.frame_steps < 1:
            raise VideoError(f"--frame-steps must be 1 or more, not {self.frame_steps}")
        if self.recipe.engine != "optimise":
            raise VideoError("video frames are painted by the optimiser: use --engine optimise")

    @property
    def temporal(self) -> bool:
        """Whether frames after the first are carried along the flow (``temporal_weight > 0``)."""
        return self.recipe.temporal_weight > 0

    @property
    def later_steps(self) -> int:
        """Steps of every frame after the first."""
        if not self.temporal:
            return self.recipe.steps
        return self.frame_steps if self.frame_steps is not None else default_frame_steps(self.recipe)

    def steps_for(self, frame: int) -> int:
        """Steps of frame ``frame`` (1-based) at each scale."""
        return self.recipe.steps if frame == 1 else self.later_steps

    def settings(self) -> dict[str, Any]:
        """Everything that decides the painted frames, as JSON: two runs with equal settings paint
        the same frames (a run folder is resumed only under equal settings)."""
        from ..task import describe

        def names(values):
            return None if values is None else [describe(v) for v in values]

        return {
            "input": source_identity(self.source),
            "selection": {"start": self.start, "end": self.end, "max_frames": self.max_frames, "fps": self.fps},
            "styles": names(self.styles),
            "blend_weights": list(self.blend_weights) if self.blend_weights is not None else None,
            "masks": names(self.masks),
            "background": describe(self.background) if self.background is not None else None,
            "recipe": self.recipe.to_dict(),
            "frame_steps": self.later_steps,
            "flow": self.flow,
            "fill": self.fill,
            "interpolation": self.interpolation,
            "chunk_frames": self.chunk_frames,
        }


def source_identity(source: str | Path) -> dict[str, Any]:
    """A video file or folder by name, size and modification time (hashing gigabytes to recognise
    a file is not worth it: a file written again gets a new time)."""
    import hashlib

    path = Path(source).expanduser().resolve()
    if path.is_dir():
        from .io import frame_files

        h = hashlib.sha256()
        files = frame_files(path)
        for f in files:
            st = f.stat()
            h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return {"name": str(path), "frames": len(files), "digest": h.hexdigest()}
    st = path.stat()
    return {"name": str(path), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------- carrying a frame along the flow


@dataclass
class Carried:
    """The previous painted frame carried into this one: the start image, the temporal target
    and how much of the frame the flow could follow."""

    init: Image.Image
    warped: Image.Image
    weights: np.ndarray  # (H, W) float32: 1 reliable, 0 not (Ruder et al.'s consistency)
    reliable: float  # the share of pixels with weight 1

    def temporal(self):
        """The engine's temporal target (task.Temporal)."""
        import torch

        from ..images import to_tensor
        from ..task import Temporal

        return Temporal(to_tensor(self.warped), torch.from_numpy(self.weights)[None, None])


def carry(
    previous: Image.Image,
    frame_before: Image.Image,
    frame: Image.Image,
    *,
    method: str = "dis",
    fill: str = "warp",
    fill_from: Image.Image | None = None,
    interpolation: str = "lanczos",
) -> Carried:
    """Carry ``previous`` (the painted ``frame_before``) into ``frame`` along the input's optical flow.

    The start image is the warp, as Ruder et al. start (``fill="warp"``); ``fill="content"`` puts
    ``fill_from`` (default: ``frame``) where the previous frame was not visible instead (measured
    worse; see the module's docstring). All three images are the painted size.
    """
    from .flow import consistency, optical_flow

    if previous.size != frame.size or frame_before.size != frame.size:
        raise ValueError(f"frames differ in size: {previous.size}, {frame_before.size}, {frame.size}")
    back = optical_flow(frame, frame_before, method)  # t -> t-1: where each pixel of t was in t-1
    fwd = optical_flow(frame_before, frame, method)  # t-1 -> t: only for the consistency check
    weights = consistency(back, fwd)
    warped = _warp(np.asarray(previous.convert("RGB")), back, interpolation)
    init = warped
    if fill == "content":
        visible = consistency(back, fwd, motion_boundaries=False) > 0
        source = np.asarray((fill_from or frame).convert("RGB"))
        init = np.where(visible[..., None], warped, source)
    return Carried(Image.fromarray(init, "RGB"), Image.fromarray(warped, "RGB"), weights, float(weights.mean()))


def _warp(image: np.ndarray, flow: np.ndarray, interpolation: str) -> np.ndarray:
    """``flow.warp_numpy`` with a choice of resampling (see the module's docstring for why not bilinear)."""
    import cv2

    from .flow import _sample_maps, warp_numpy

    if interpolation == "linear":
        return warp_numpy(image, flow)
    modes = {"cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
    if interpolation not in modes:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
    mx, my = _sample_maps(np.asarray(flow, np.float32))
    out = cv2.remap(image.astype(np.float32), mx, my, modes[interpolation], borderMode=cv2.BORDER_REPLICATE)
    return np.clip(out, 0, 255).round().astype(np.uint8)


# ---------------------------------------------------------------- the clip, checked


@dataclass
class ClipPlan:
    """A clip checked and ready: its frames' count and sizes, the styles after colour handling."""

    spec: ClipSpec
    info: Any  # io.VideoInfo
    count: int  # frames in the selection (an upper bound when the file misstates its length)
    first_index: int  # the source frame number of frame 1
    size: tuple[int, int]  # painted (width, height)
    frame_size: tuple[int, int]  # the input's (upright) frame size, which the output keeps
    fps: Fraction
    styles: list[Image.Image]  # after colour handling against the first frame
    recipe: Recipe  # the engine's: colour handling already done here
    luminance: bool  # the engine paints luminance; each frame gets its colours back
    first_frame: Image.Image  # at the painted size
    background: Image.Image | None = None  # the background style (regions), after colour handling

    @property
    def duration(self) -> float:
        return self.count / float(self.fps)

    def frames(self, skip: int = 0) -> Iterator[tuple[int, int, Image.Image]]:
        """``(frame, source index, image at the painted size)`` for the selection, from frame ``skip + 1``
        (the frames before are decoded and passed over, as a video must be, but not converted or resized)."""
        from .io import read_frames

        s = self.spec
        it = read_frames(s.source, s.start, s.end, s.max_frames, self.size, fps=s.fps, skip=skip)
        for n, (index, img) in enumerate(it, skip + 1):
            yield n, index, img

    def content_of(self, frame: Image.Image) -> Image.Image:
        """What the engine paints for ``frame`` (its luminance under luminance preservation)."""
        if self.luminance:
            from ..color import luminance_image

            return luminance_image(frame)
        return frame

    def finish(self, painted: Image.Image, frame: Image.Image) -> Image.Image:
        """The frame as shown: the painted image, with the frame's colours under luminance preservation."""
        if self.luminance:
            from ..color import recombine

            return recombine(painted, frame)
        return painted

    def task(self, frame: Image.Image, carried: Carried | None = None, label: str = "", content=None):
        """The engine's task for one frame; ``content``: ``content_of(frame)`` where the caller has it."""
        from ..task import Task

        s = self.spec
        task = Task.of(
            self.content_of(frame) if content is None else content,
            list(self.styles),
            weights=s.blend_weights,
            masks=list(s.masks) if s.masks is not None else None,
            init=carried.init if carried is not None else None,
            label=label,
            background=self.background,
        )
        if carried is None:
            return task
        import dataclasses

        return dataclasses.replace(task, temporal=carried.temporal())

    def recipe_for(self, frame: int, *, fresh: bool = False) -> Recipe:
        """The engine's recipe for ``frame``; ``fresh``: painted as a still (frame 1, a chunk's first)."""
        return self.recipe if fresh or frame == 1 else self.recipe.replace(steps=self.spec.steps_for(frame))


def plan_clip(spec: ClipSpec, engine=None) -> ClipPlan:
    """Check a clip before anything is painted or written: the input and the selection, the styles,
    masks and settings (the first frame's task goes through ``engine.prepare``, which refuses what
    a still would refuse). Raises VideoError / StylelabError with one line."""
    from .. import color, images
    from .io import MAX_FRAMES, _selection, probe, read_frames

    info = probe(spec.source, fps=spec.fps)
    _, _, count = _selection(spec.start, spec.end, spec.max_frames, info.fps, info.duration, info.frames, MAX_FRAMES)
    first_index, first = next(iter(read_frames(spec.source, spec.start, spec.end, 1, fps=spec.fps)))
    size = images.fitted_size(first.size, spec.recipe.size)
    painted_first = first if first.size == size else first.resize(size, Image.Resampling.LANCZOS)
    styles = [
        images.load_rgb(s, what="style" if len(spec.styles) == 1 else f"style {i + 1}")[0]
        for i, s in enumerate(spec.styles)
    ]
    background = images.load_rgb(spec.background, what="background style")[0] if spec.background is not None else None
    mode = spec.recipe.preserve_color
    if mode == "histogram":
        styles = [color.match_histogram(s, painted_first) for s in styles]
        background = color.match_histogram(background, painted_first) if background is not None else None
    elif mode == "luminance":
        styles = [color.luminance_image(s, painted_first) for s in styles]
        background = color.luminance_image(background, painted_first) if background is not None else None
    recipe = spec.recipe.replace(preserve_color="none")
    plan = ClipPlan(
        spec,
        info,
        count,
        first_index,
        size,
        first.size,
        info.fps,
        styles,
        recipe,
        mode == "luminance",
        painted_first,
        background,
    )
    if engine is not None:
        engine.prepare([plan.task(painted_first)], recipe)
        if count > 1 and spec.temporal:
            # A later frame's task too: a start image and a temporal target of the frame's size.
            fake = Carried(painted_first, painted_first, np.ones(size[::-1], np.float32), 1.0)
            engine.prepare([plan.task(painted_first, fake)], plan.recipe_for(2))
    return plan


# ---------------------------------------------------------------- painting


@dataclass
class PaintedFrame:
    """One frame painted: ``painted`` is what the next frame carries along the flow, ``image`` what is shown."""

    frame: int  # 1-based place in the selection
    index: int  # the source frame number
    painted: Image.Image
    image: Image.Image
    result: Any  # engine.Result
    seconds: float
    reliable: float | None  # share of pixels the flow carried (None for a frame painted from scratch)


def paint_frames(
    plan: ClipPlan,
    engine,
    *,
    skip: int = 0,
    previous: tuple[Image.Image, Image.Image] | None = None,
    last: int | None = None,
    sinks: Sequence = (),
    stop: threading.Event | None = None,
) -> Iterator[PaintedFrame]:
    """Paint the clip's frames ``skip + 1`` to ``last`` (default: the end), yielding each as it is done.

    ``previous`` is (the input frame ``skip``, its painted image) to go on from; without it, frame
    ``skip + 1`` is painted as a still, as frame 1 is (the first frame of a chunk). The engine's
    events for each frame go to ``sinks`` (item 0). The generator stops at the first frame that
    does not end ``done`` or ``diverged`` (cancelled, interrupted: that frame is yielded with its
    status, and not painted further).
    """
    spec = plan.spec
    before = previous
    for n, index, frame in plan.frames(skip):
        if last is not None and n > last:
            return
        t0 = time.perf_counter()
        carried = None
        fresh = before is None
        content = plan.content_of(frame)  # once: the start's fill and the task paint the same
        if spec.temporal and not fresh:
            frame_before, painted_before = before
            carried = carry(
                painted_before,
                frame_before,
                frame,
                method=spec.flow,
                fill=spec.fill,
                fill_from=content,
                interpolation=spec.interpolation,
            )
        recipe = plan.recipe_for(n, fresh=fresh)
        run_plan = engine.prepare([plan.task(frame, carried, label=f"frame {n}", content=content)], recipe)
        result = engine.run(run_plan, sinks, stop)[0]
        seconds = time.perf_counter() - t0
        if result.status not in ("done", "diverged") or result.image is None:
            yield PaintedFrame(n, index, result.image, result.image, result, seconds, None)
            return
        painted = result.image.convert("RGB")
        yield PaintedFrame(
            n, index, painted, plan.finish(painted, frame), result, seconds, carried.reliable if carried else None
        )
        before = (frame, painted)
