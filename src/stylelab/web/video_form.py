"""A video job's part of the form: the clip's settings, checked with the rest (``job_form.check_job``).

A job is a video job when its content upload is a video (``uploads``: ``kind = "video"``).
Its own fields, each tied to its form key: ``frame_steps`` (steps of each frame after the
first, which starts from the previous one carried along the flow), ``clip_start`` and
``clip_end`` (seconds: the piece painted) and ``max_frames``. The recipe's temporal weight
applies; a recipe without one (a still's) gets the video command's measured default,
``VIDEO_TEMPORAL_WEIGHT``, unless the form sets it (0: every frame painted on its own).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..recipes import Recipe
from ..video.defaults import FRAME_STEP_FRACTION, VIDEO_TEMPORAL_WEIGHT
from .limits import Limits

__all__ = ["FRAME_STEP_FRACTION", "VIDEO_TEMPORAL_WEIGHT", "VideoIn", "check_video", "video_defaults"]


class VideoIn(BaseModel):
    frame_steps: int | None = None
    start: float | None = Field(None, allow_inf_nan=False)
    end: float | None = Field(None, allow_inf_nan=False)
    max_frames: int | None = None


def video_defaults(max_frames: int) -> dict[str, Any]:
    """What the form shows of a video job's defaults (``/api/info``)."""
    return {
        "temporal_weight": VIDEO_TEMPORAL_WEIGHT,
        "frame_step_fraction": FRAME_STEP_FRACTION,
        "max_frames": max_frames,
    }


def check_video(
    video: VideoIn | None,
    clip: dict,
    recipe: Recipe | None,
    settings: dict[str, Any],
    limits: Limits,
    max_frames: int,
    errors: dict[str, str],
) -> tuple[Recipe | None, dict[str, Any]]:
    """The recipe a video job paints with, and its clip settings; mistakes go to ``errors`` by field.

    ``clip`` is the video upload's description (frames, fps, duration); ``settings`` the form's
    own settings (to tell a temporal weight the form set from the preset's)."""
    video = video or VideoIn()
    if recipe is not None:
        if recipe.engine != "optimise":
            errors["engine"] = "video frames are painted by the optimiser: set engine to optimise"
        if settings.get("temporal_weight") in (None, "") and recipe.temporal_weight == 0:
            recipe = recipe.replace(temporal_weight=VIDEO_TEMPORAL_WEIGHT)
    scales = recipe.scales if recipe is not None else 1
    if video.frame_steps is not None and not 1 <= video.frame_steps * scales <= limits.max_steps:
        errors["frame_steps"] = (
            f"frame steps must be between 1 and {limits.max_steps // max(1, scales)} in this studio"
            f" (× {scales} scales), not {video.frame_steps} (stylelab serve --max-steps sets the limit)"
        )
    duration = clip.get("duration")
    start, end = video.start, video.end
    if start is not None and start < 0:
        errors["clip_start"] = f"from must be a time in seconds, 0 or more, not {start:g}"
    elif start is not None and duration and start >= duration:
        errors["clip_start"] = f"from {start:g} s is past the end of the video ({duration:g} s)"
    if end is not None and end <= (start or 0):
        errors["clip_end"] = f"to must be a time after from ({start or 0:g} s), not {end:g}"
    if video.max_frames is not None and not 1 <= video.max_frames <= max_frames:
        errors["max_frames"] = (
            f"max frames must be between 1 and {max_frames} in this studio, not {video.max_frames}"
            " (stylelab serve --max-video-frames sets the limit)"
        )
    chosen = video.model_dump()
    if chosen["max_frames"] is None and clip.get("frames"):
        # At most the frames the upload was counted to hold, whatever its header says when painted.
        chosen["max_frames"] = int(clip["frames"])
    return recipe, chosen
