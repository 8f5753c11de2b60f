"""Runs side by side: what differs between them, inputs included, and the grid picture of their results.

A difference is a setting (``Recipe.diff``) or an input (``labels.input_rows``:
content, style images, blend weights, masks, start image, told apart by their
content hashes). Steps show what each run did where it stopped short of what
it asked for (a cancelled run: "37 of 400"). The distances a sweep measured (run.json's
``distances``: content, and style under each style loss) are compared too, lowest marked.
"""

from __future__ import annotations

from PIL import Image

from .. import images
from ..errors import StylelabError
from ..recipes import FIELDS
from ..runs import Run
from .distances import distance_rows, distances
from .gallery import Gallery, RunNotFound, painted, thin
from .labels import human, input_rows, labels, shown_value

MAX_COMPARE = 12


def steps_shown(run: Run) -> str:
    """A run's steps: the recipe's, or "done of asked" where the run stopped early."""
    asked = run.recipe.total_steps  # every scale's steps, coarse_steps included
    done = run.info.get("steps")
    if not isinstance(done, int) or done == asked:
        return shown_value(run.recipe.steps)
    return f"{done} of {asked}"


def _chosen(gallery: Gallery, keys: list[str]) -> list[Run]:
    if not 1 <= len(keys) <= MAX_COMPARE:
        raise StylelabError(f"compare between 1 and {MAX_COMPARE} runs, not {len(keys)}")
    return [gallery.run(k) for k in keys]


def _rows(chosen: list[Run]) -> list[dict]:
    """Every row of the comparison, inputs first: name, values, shown, differs, help."""
    differs: set[str] = set()
    for other in chosen[1:]:
        differs.update(chosen[0].recipe.diff(other.recipe))
    rows = input_rows([r.info for r in chosen])
    values = [r.recipe.to_dict() for r in chosen]
    for name, f in FIELDS.items():
        if not f.metadata.get("cli", True):
            continue
        shown = [shown_value(v[name]) for v in values]
        if name == "steps":
            shown = [steps_shown(r) for r in chosen]
        rows.append(
            {
                "name": name,
                "input": False,
                "values": [v[name] for v in values],
                "shown": shown,
                "differs": name in differs or len(set(shown)) > 1,
                "help": f.metadata["help"],
            }
        )
    return rows


def compare(gallery: Gallery, keys: list[str]) -> dict:
    """Runs side by side: every input and setting, with the ones that differ marked."""
    chosen = _chosen(gallery, keys)
    rows = _rows(chosen)
    titles = labels([painted(r) for r in chosen])
    return {
        "runs": [
            gallery.summary(r) | {"title": t, "metrics": thin(gallery.metrics(r), 300), "terms": gallery.terms(r)}
            for r, t in zip(chosen, titles)
        ],
        "fields": rows,
        "differs": [f["name"] for f in rows if f["differs"]],
        "distances": distance_rows(chosen),
    }


def compare_picture(gallery: Gallery, keys: list[str]) -> Image.Image:
    """The compared results as one labelled grid picture (``sheets.grid_picture``)."""
    from ..sheets import figure_to_image, grid_picture

    chosen = _chosen(gallery, keys)
    rows = [r for r in _rows(chosen) if r["differs"]]
    pictures, captions = [], []
    for i, (run, title) in enumerate(zip(chosen, labels([painted(r) for r in chosen]))):
        result = gallery.file(run, "result.png")
        if result is None:
            continue
        pictures.append(images.load_rgb(result)[0])
        named = [f"{r['name'] if r['input'] else human(r['name'])}: {r['shown'][i]}" for r in rows][:4]
        measured = " · ".join(f"{d['key']} {d['value']:.3g}" for d in distances(run.info))
        captions.append("\n".join([title, *named, *([measured] if measured else [])]))
    if not pictures:
        raise RunNotFound("none of these runs has a result image")
    return figure_to_image(grid_picture([("", pictures)], captions))
