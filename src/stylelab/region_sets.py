"""Region layouts as a sweepable input: styles by region, swept like style images.

In an experiment file each ``[[regions]]`` table is one more value of the style
dimension: its runs paint each style where its mask is white (or one colour
per style of a label image), and what no mask covers keeps the content or
takes the ``background`` style::

    [[regions]]
    name = "halves"                            # the runs' style label (default: the masks' names)
    styles = ["mosaic.jpg", "waves.jpg"]
    masks = ["sky.png", "ground.png"]          # one per style, or one colour-label image
    background = "hubble.jpg"                  # optional

    [[regions]]                                # several mask sets for the same styles:
    name = "edge"                              # one layout each, named edge-<first mask's name>
    styles = ["mosaic.jpg", "waves.jpg"]
    masks = [["hard-sky.png", "hard-ground.png"], ["soft-sky.png", "soft-ground.png"]]

Paths are relative to the experiment file. A layout is checked when the
experiment is built (counts, files) and again against the content before the
sweep writes anything (``plan.decode_sets``: black masks, label colours).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StylelabError

ENTRY_KEYS = ("name", "styles", "masks", "background")


class RegionsError(StylelabError):
    """A ``[[regions]]`` entry of an experiment that cannot be planned."""


@dataclass(frozen=True)
class RegionSet:
    """One region layout: a style per mask (or one colour-label image), and an optional background style."""

    name: str
    styles: tuple[str, ...]
    masks: tuple[str, ...]
    background: str | None = None

    @property
    def style_images(self) -> list[str]:
        """The layout's style images, the background's last."""
        return [*self.styles, *([self.background] if self.background else [])]

    @property
    def files(self) -> list[str]:
        """Every file the layout reads: style images and masks."""
        return [*self.style_images, *self.masks]

    def task(self, content: Any, source: Callable[[str], Any] = lambda p: p, **kwargs):
        """The ``Task`` painting ``content`` with this layout; ``source`` maps each path to what is read
        (a Ray worker's bytes); ``kwargs`` go to ``Task.of`` (init, label)."""
        from .task import Task

        return Task.of(
            content,
            [source(s) for s in self.styles],
            masks=[source(m) for m in self.masks],
            background=source(self.background) if self.background else None,
            **kwargs,
        )

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "styles": list(self.styles), "masks": list(self.masks)}
        if self.background:
            out["background"] = self.background
        return out


def parse_regions(entries: Any, base: Path | None = None, origin: str = "regions") -> list[RegionSet]:
    """``[[regions]]`` tables (or RegionSets) as RegionSets with absolute paths, every value checked."""
    if entries is None:
        return []
    if isinstance(entries, (dict, RegionSet)):
        entries = [entries]
    if not isinstance(entries, list):
        raise RegionsError(f"{origin} must be a list of tables ([[regions]]), not {type(entries).__name__}")
    found: list[RegionSet] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, RegionSet):
            found.append(entry)
            continue
        found.extend(_entry(entry, base, f"{origin} entry {i + 1}"))
    names = [r.name for r in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RegionsError(f"two region layouts are named {dupes[0]!r}; give each [[regions]] entry its own name")
    return found


def _entry(entry: Any, base: Path | None, where: str) -> list[RegionSet]:
    from .experiments import image_files, slug

    if not isinstance(entry, dict):
        raise RegionsError(f"{where} must be a table with styles and masks, not {entry!r}"[:200])
    unknown = [k for k in entry if k not in ENTRY_KEYS]
    if unknown:
        raise RegionsError(f"{where}: unknown key {unknown[0]!r}; a [[regions]] entry has {', '.join(ENTRY_KEYS)}")
    styles, masks = entry.get("styles"), entry.get("masks")
    if isinstance(styles, str):
        styles = [styles]
    if not (isinstance(styles, list) and styles and all(isinstance(s, str) for s in styles)):
        raise RegionsError(f"{where}: styles must be a list of style images, one per mask")
    if isinstance(masks, str):
        masks = [masks]
    if not (isinstance(masks, list) and masks):
        raise RegionsError(f"{where}: masks must be a list of mask images (one per style) or one label image")
    mask_sets = masks if all(isinstance(m, list) for m in masks) else [masks]
    if not all(isinstance(m, str) for ms in mask_sets for m in ms) or not all(mask_sets):
        raise RegionsError(f"{where}: masks must be file names, or lists of them (one mask set each)")
    background = entry.get("background")
    if background is not None and not (isinstance(background, str) and background):
        raise RegionsError(f"{where}: background must be a style image")
    name = entry.get("name")
    if name is not None and not (isinstance(name, str) and name.strip()):
        raise RegionsError(f"{where}: name must be a text")
    style_paths = tuple(image_files(styles, base, "style"))
    bg = image_files([background], base, "background style")[0] if background else None
    out = []
    for ms in mask_sets:
        mask_paths = tuple(image_files(ms, base, "mask"))
        if len(mask_paths) != 1 and len(mask_paths) != len(style_paths):
            raise RegionsError(
                f"{where}: {len(mask_paths)} masks for {len(style_paths)} styles; "
                "give one mask per style, or one colour-label image"
            )
        label = "-".join(Path(m).stem for m in mask_paths)
        if name:
            label = name if len(mask_sets) == 1 else f"{name}-{Path(mask_paths[0]).stem}"
        out.append(RegionSet(slug(label), style_paths, mask_paths, bg))
    return out
