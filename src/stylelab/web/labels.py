"""How the studio names runs and jobs, and what it counts as a difference between runs.

A label says what was painted, ``"starry_night on tubingen"`` (the style images,
then the content), and then what sets the run apart from the others painted
from the same images: ``"starry_night on tubingen · style weight 20"``. Runs from
different images need nothing more; runs from the same ones show the settings
in which they differ, in the form's words. The queue labels its jobs among
each other, the gallery its runs, and compare the runs compared.

Compare also counts the inputs (``input_rows``): two runs with the same
settings and different style images differ.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from ..recipes import FIELDS

MOST_SHOWN = 3  # settings named in a label; more become "+N"
SKIPPED = ("name", "description")  # the preset's name is shown on its own, first


def human(name: str) -> str:
    """A setting's name as the studio's form labels it."""
    return "start from" if name == "init" else name.replace("_", " ")


def shown_value(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        return " ".join(shown_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def stem(name: str) -> str:
    """A file name without folder or extension, as labels show it."""
    return PurePath(str(name)).stem or str(name)


@dataclass
class Painted:
    """What a label is made from: the inputs' names and the settings of one run or job."""

    content: str
    styles: tuple[str, ...]
    values: dict[str, Any]  # the recipe's values
    blend: tuple[float, ...] | None = None
    masks: tuple[str | None, ...] | None = None
    start: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # anything else that sets it apart, already in words

    @property
    def what(self) -> str:
        styles = " + ".join(stem(s) for s in self.styles) or "?"
        regions = " (regions)" if self.masks and any(self.masks) else ""
        return f"{styles}{regions} on {stem(self.content) or '?'}"

    def aspects(self) -> dict[str, str]:
        """Everything a label may name, each in words: the preset, the settings, blend weights, the start."""
        out = {"recipe": str(self.values.get("name") or "custom")}
        for name in FIELDS:
            if name not in SKIPPED:
                out[name] = f"{human(name)} {shown_value(self.values.get(name))}"
        out["blend"] = "blend " + (" : ".join(f"{w:g}" for w in self.blend) if self.blend else "equal")
        out["masks"] = "masks " + " ".join(stem(m) if m else "–" for m in (self.masks or ()))
        out["start"] = f"start {stem(self.start)}" if self.start else "no start image"
        return out | self.extra


def labels(items: Sequence[Painted], most: int = MOST_SHOWN) -> list[str]:
    """One label per item: what it painted, then what sets it apart from the others painted from the same images."""
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[(item.content, item.styles)].append(i)
    out = [item.what for item in items]
    for members in groups.values():
        if len(members) < 2:
            continue
        aspects = [items[i].aspects() for i in members]
        differ = [k for k in aspects[0] if len({a.get(k) for a in aspects}) > 1]
        for i, a in zip(members, aspects):
            named = [a[k] for k in differ[:most]]
            if len(differ) > most:
                named.append(f"+{len(differ) - most}")
            if named:
                out[i] = f"{out[i]} · {', '.join(named)}"
    return out


# ---------------------------------------------------------------- inputs as differences


def _entry(entry: Any) -> tuple[str, str]:
    """(name shown, identity) of a recorded input: the name it was uploaded under, its content hash."""
    if isinstance(entry, dict):
        name = str(entry.get("upload") or PurePath(str(entry.get("name", ""))).name)
        return name, str(entry.get("sha256") or entry.get("name", ""))
    return PurePath(str(entry)).name, str(entry)


def recorded_inputs(info: dict) -> dict[str, list[tuple[str, str]]]:
    """A run's inputs from its run.json, by kind: content, styles, blend weights, masks (a label image's
    colour k as "labels.png colour k"), parts (style-image masks, "–" for a whole painting), start."""
    task = info.get("task") if isinstance(info.get("task"), dict) else None
    if task is None:  # older runs: names only
        styles = [_entry(s) for s in info.get("styles") or []]
        content = [_entry(info.get("content", ""))]
        return {"content": content, "styles": styles, "blend": [], "masks": [], "parts": [], "start": []}
    sets = [s for s in task.get("styles") or [] if isinstance(s, dict)]
    styles = [_entry(img) for s in sets for img in s.get("images") or []]
    blend = [(f"{w:g}", f"{w:g}") for s in sets for w in s.get("weights") or []]
    masks = []
    for s in sets:
        mask = s.get("mask")
        if mask == "background":
            masks.append(("the rest", "background"))
        elif isinstance(mask, dict) and "labels" in mask:
            index = mask.get("index")
            shown = f"{_entry(mask['labels'])[0]} colour {index + 1 if isinstance(index, int) else '?'}"
            masks.append((shown, f"{_entry(mask['labels'])[1]}#{index}"))
        elif mask is not None:
            masks.append(_entry(mask))
    parts = []  # one per style image, in order: "–" where the whole painting is used
    for s in sets:
        own = s.get("image_masks") or [None] * len(s.get("images") or [])
        parts += [_entry(m) if m is not None else ("–", "") for m in own]
    if not any(identity for _, identity in parts):
        parts = []
    start = [_entry(task["init"])] if task.get("init") is not None else []
    return {
        "content": [_entry(task.get("content", ""))],
        "styles": styles,
        "blend": blend,
        "masks": masks,
        "parts": parts,
        "start": start,
    }


INPUT_ROWS = (
    ("content", "content image", " + "),
    ("styles", "style images", " + "),
    ("blend", "blend weights", " : "),
    ("masks", "region masks", " + "),
    ("parts", "style-image masks", " + "),
    ("start", "start image", ""),
)


def input_rows(infos: Sequence[dict]) -> list[dict]:
    """Compare's rows for the inputs of the runs compared: the name shown, and whether they differ
    (by content hash where recorded, so a renamed copy of the same image is the same input)."""
    recorded = [recorded_inputs(info) for info in infos]
    rows = []
    for kind, title, joiner in INPUT_ROWS:
        entries = [r[kind] for r in recorded]
        if kind != "content" and kind != "styles" and not any(entries):
            continue  # no run has any: not worth a row
        shown = [joiner.join(name for name, _ in e) if e else "–" for e in entries]
        identity = {tuple(i for _, i in e) for e in entries}
        rows.append(
            {
                "name": title,
                "input": True,
                "values": shown,
                "shown": shown,
                "differs": len(identity) > 1,
                "help": f"the {title} each run painted from",
            }
        )
    return rows
