"""What a clip's run tells its sinks, besides each frame's own engine events.

A clip's sinks see every frame's engine events (``events.Started``, ``Step``, ``Done``... for item
0, one run per frame) and these: ``ClipStarted`` once, ``FrameDone`` when a frame's files are
saved in the run folder, ``ClipEnded`` once, whatever happens. A sink returning True on a
``FrameDone`` stops the clip after that frame (``cancelled``), as a True on a ``Step`` cancels the
frame being painted (it is then painted again on resume).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass(frozen=True)
class ClipStarted:
    total: int  # frames in the selection
    first: int  # the frame painted first (1, or the one after those a resumed run folder holds)
    size: tuple[int, int]  # painted (width, height)
    fps: float
    first_steps: int  # steps of frame 1
    later_steps: int  # steps of each later frame
    run_dir: Path | None = None


@dataclass(frozen=True)
class FrameDone:
    frame: int  # 1-based place in the selection
    index: int  # the source video's frame number
    total: int
    image: Image.Image  # the frame as the video shows it (painted size)
    steps: int
    seconds: float  # this frame's wall time, optical flow included
    losses: Mapping[str, float] = field(default_factory=dict)
    reliable: float | None = None  # share of pixels the optical flow carried from the previous frame
    status: str = "done"  # done | diverged (the last good image was kept)
    elapsed: float = 0.0  # seconds since this run of the clip started
    eta: float | None = None  # seconds left for the remaining frames, from the pace so far


@dataclass(frozen=True)
class ClipEnded:
    status: str  # done | interrupted | cancelled | error
    frames_done: int
    total: int
    output: Path | None = None  # the video written (None until every frame is done)
    message: str = ""
    result: Any = None  # the ClipOutcome


ClipEvent = ClipStarted | FrameDone | ClipEnded
