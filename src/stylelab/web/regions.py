"""A colour-label image as the studio shows and checks it: its colours, in the order they go to the styles.

The engine reads a label image with ``guides.masks_from_labels``: its flat colours, in order of
first appearance (left to right, top to bottom), one per style. The page draws the image over
the content with a legend of those colours and the styles they go to, and a job with fewer
colours than styles is refused when it is submitted, not when it runs.
"""

from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=64)
def _colours(path: str, mtime_ns: int) -> tuple[str, ...]:
    import numpy as np

    from .. import guides, images

    masks = guides.masks_from_labels(path)  # ImageError (one line) for what is no label image
    rgb = np.asarray(images.load_rgb(path)[0], dtype=np.float64)
    out = []
    for m in masks[:, 0].numpy() > 0.5:
        r, g, b = (int(round(v)) for v in rgb[m].mean(axis=0))
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return tuple(out)


def label_colours(path: str | Path) -> list[str]:
    """The label colours of the image at ``path`` as ``#rrggbb``, in the order they go to the styles.

    Raises:
        ImageError: not a label image (no flat colours, or too many of them).
    """
    path = Path(path)
    return list(_colours(str(path), path.stat().st_mtime_ns))


def too_few_colours(colours: list[str], styles: int) -> str | None:
    """Why a label image cannot give ``styles`` styles a colour each, or None."""
    if len(colours) >= styles:
        return None
    return (
        f"the label image has {len(colours)} colour{'s' if len(colours) != 1 else ''} for {styles} styles: paint a"
        " flat colour per style (in the order of the styles, left to right, top to bottom)"
    )
