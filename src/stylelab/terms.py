"""The loss terms a run reports, declared once.

Each term has a name and the Recipe field holding its weight. Everything that
shows or stores losses (progress lines, metrics.csv, process pictures, reports,
the studio) reads the names from the run's events (``Started.terms``,
``Step.losses``) or from metrics.csv's header, so a new term is added here
(and computed in objective.py) and nowhere else. ``total`` is the weighted sum,
always last.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str
    weight: str  # the Recipe field holding the term's weight
    help: str


TERMS = (
    Term("content", "content_weight", "how far the features are from the content's"),
    Term("style", "style_weight", "how far the feature statistics are from the style's"),
    Term("tv", "tv_weight", "total variation: how much neighbouring pixels differ"),
    Term("temporal", "temporal_weight", "video: how far the frame is from the previous one carried along the flow"),
)
TOTAL = "total"
BY_NAME = {t.name: t for t in TERMS}


def term_names(temporal: bool = False) -> tuple[str, ...]:
    """The terms a run reports, in order, ``total`` last (temporal only for video frames)."""
    return (*(t.name for t in TERMS if t.name != "temporal" or temporal), TOTAL)
