"""What one studio job may ask for, checked when it is submitted, before anything is allocated.

Uploads are bounded in bytes and pixels (``uploads``); these bound the work a
job's settings ask for. The Recipe's own limits suit a command someone runs on
their own machine (size up to 8192 px, any number of steps); a studio takes
requests from a page, so it holds them to its own, smaller bounds, each a
``stylelab serve`` option:

- ``size`` at most ``--max-size`` (default 2048 px), and the style images at
  most as large (``size × style_scale``), since a 4096 px style image costs as
  much memory as a 4096 px output;
- ``steps`` at most ``--max-steps`` (default 10000), counted over all scales
  (``Recipe.total_steps``: ``steps`` at the last scale, ``coarse_steps`` or ``steps`` before it);
- at most ``--max-queue`` jobs waiting (default 20), answered with HTTP 429;
- ``seed`` within what torch accepts, and ``device`` one of auto, cpu, cuda,
  cuda:N, mps (``meta`` would "run" without computing anything, ``xpu`` and
  others fail inside the job).

Messages name settings as the form labels them and say which option raises a bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import StylelabError
from ..recipes import MAX_SIZE, Recipe

DEFAULT_MAX_SIZE = 2048
DEFAULT_MAX_STEPS = 10_000
DEFAULT_MAX_QUEUE = 20
MAX_SEED = 2**63 - 1  # torch.manual_seed takes up to 2**64 - 1; a signed 64-bit value is portable everywhere
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,3})?")
DEVICES = "auto, cpu, cuda, cuda:N or mps"


class SettingTooLarge(StylelabError):
    """A job setting beyond the studio's bounds (HTTP 400)."""


class QueueFull(StylelabError):
    """The queue holds as many waiting jobs as the studio takes (HTTP 429)."""


def _number(value: Any) -> float | None:
    """A form value as a number, or None where it is not one (the Recipe then says why)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _shown(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Limits:
    """The studio's bounds; each comes from a ``stylelab serve`` option of the same name."""

    max_size: int = DEFAULT_MAX_SIZE
    max_steps: int = DEFAULT_MAX_STEPS
    max_queue: int = DEFAULT_MAX_QUEUE

    def __post_init__(self):
        for name, low, high, unit in (
            ("max_size", 16, MAX_SIZE, " pixels"),
            ("max_steps", 1, None, ""),
            ("max_queue", 1, None, " jobs"),
        ):
            value = getattr(self, name)
            flag = "--" + name.replace("_", "-")
            if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
                bounds = f"between {low} and {high}{unit}" if high else f"at least {low}"
                raise StylelabError(f"{flag} must be a whole number {bounds}, not {value!r}")

    def public(self) -> dict[str, int]:
        return {"max_size": self.max_size, "max_steps": self.max_steps, "max_queue": self.max_queue}

    def _size(self, size: float) -> None:
        if not 16 <= size <= self.max_size:
            raise SettingTooLarge(
                f"size must be between 16 and {self.max_size} pixels in this studio, not {_shown(size)}"
                " (stylelab serve --max-size sets the limit)"
            )

    def _steps(self, steps: float) -> None:
        if not 0 <= steps <= self.max_steps:
            raise SettingTooLarge(
                f"steps must be between 0 and {self.max_steps} in this studio, not {_shown(steps)}"
                " (stylelab serve --max-steps sets the limit)"
            )

    @staticmethod
    def _seed(seed: float) -> None:
        if not 0 <= seed <= MAX_SEED:
            raise SettingTooLarge(f"seed must be between 0 and {MAX_SEED}, not {_shown(seed)}")

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Refuse form values over the bounds before a Recipe is built from them (its own limits are wider)."""
        for name, check in (("size", self._size), ("steps", self._steps), ("seed", self._seed)):
            number = _number(settings.get(name))
            if number is not None:
                check(number)

    def check(self, recipe: Recipe) -> None:
        """Refuse a Recipe that asks for more than this studio allows: a one-line StylelabError.

        Called at submit (a preset's own values are checked too, not only what
        the form changed), and again when the worker starts a job, which may
        have been queued by an earlier server with other bounds.
        """
        if not DEVICE.fullmatch(recipe.device):
            raise SettingTooLarge(f"unknown device {recipe.device!r}; the studio runs on {DEVICES}")
        self._size(recipe.size)
        self._steps(recipe.steps)
        if recipe.total_steps > self.max_steps:  # every scale's steps, --coarse-steps included
            raise SettingTooLarge(
                f"steps over all scales (steps × scales, or coarse steps) is {recipe.total_steps}: this studio runs"
                f" at most {self.max_steps} steps in all (fewer steps or scales, or stylelab serve --max-steps)"
            )
        style_side = round(recipe.size * recipe.style_scale)
        if style_side > self.max_size:
            largest = math.floor(self.max_size / recipe.size * 100) / 100
            raise SettingTooLarge(
                f"style scale {recipe.style_scale:g} at size {recipe.size} makes style images of {style_side} pixels,"
                f" over this studio's {self.max_size}: use a style scale of at most {largest:g}"
            )
        self._seed(recipe.seed)
