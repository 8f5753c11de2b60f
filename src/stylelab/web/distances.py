"""The distances a sweep measured for its runs, as the studio shows them on a run's page and in compare.

``sweep.execute_batch`` writes them into run.json as ``distances`` (``metrics.Distances.record``):
the content distance, the style distance (Gram) and the style distance under each style loss
(gram, moments, swd). Runs the studio or the CLI made have none: nothing is measured for them.
"""

from __future__ import annotations

import math

from ..runs import Run

# run.json's distances (metrics.Distances.record: a sweep measures its runs), in the order shown;
# "gram" is the style distance again, shown only where "style" is absent.
DISTANCES = (
    ("content", "content distance"),
    ("style", "style distance (Gram)"),
    ("gram", "style distance (Gram)"),
    ("moments", "style distance (moments)"),
    ("swd", "style distance (SWD)"),
)


def distances(info: dict) -> list[dict]:
    """The distances run.json records (a sweep's runs), as ``[{key, name, value}]`` in ``DISTANCES`` order."""
    recorded = info.get("distances")
    if not isinstance(recorded, dict):
        return []
    out = []
    for key, name in DISTANCES:
        value = recorded.get(key)
        if key == "gram" and "style" in recorded:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append({"key": key, "name": name, "value": float(value)})
    return out


def distance_rows(chosen: list[Run]) -> list[dict]:
    """One row per distance any of the runs recorded: its name, each run's value (None: not measured),
    and which run is lowest (``best``, None where fewer than two runs have it)."""
    measured = [{d["key"]: d for d in distances(r.info)} for r in chosen]
    rows = []
    for key, name in DISTANCES:
        values = [m[key]["value"] if key in m else None for m in measured]
        if all(v is None for v in values):
            continue
        known = [(v, i) for i, v in enumerate(values) if v is not None]
        rows.append({"key": key, "name": name, "values": values, "best": min(known)[1] if len(known) > 1 else None})
    return rows
