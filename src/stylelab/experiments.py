"""Experiments: content x styles x recipes x a parameter grid, planned as named runs.

An experiment file (TOML) says what to compare; ``stylelab sweep FILE`` runs it::

    name = "orange-study"            # folder: ./experiments/<name> (default: the file's stem)
    content = ["photos/orange.jpg"]  # one or more content images
    styles = ["paintings/", "x.jpg"] # style images, or folders of them (sorted by name)
    recipes = [                      # presets, recipe files, or inline recipes
        "default",
        "my-recipe.toml",
        { base = "seed-nst-v3", name = "seed-nst-v3-lbfgs", optimizer = "lbfgs" },
    ]
    out = "results/orange"           # optional; -o on the command line wins
    budget = 0.1                     # optional: each recipe's own steps and snapshot interval x 0.1

    [[regions]]                      # optional: styles by region, one more "style" each
    name = "halves"                  # (region_sets.py: masks, label images, a background)
    styles = ["sky.jpg", "ground.jpg"]
    masks = ["sky.png", "ground.png"]

    [set]                            # settings for every run (override the recipes')
    size = 256

    [grid]                           # every combination of these values
    style_weight = [1e4, 1e5]
    optimizer = ["adam", "lbfgs"]

Relative paths are relative to the experiment file. Each run applies, in order,
its recipe, then ``budget`` (scaling the recipe's own ``steps`` and ``save_every``, so
recipes with different budgets keep their proportions), then ``[set]``, then its grid point. A step size belongs to its
optimiser: where ``[set]`` or the grid changes a recipe's optimiser and says
nothing of ``lr``, the new optimiser runs at its own default lr. In a recipe
table, ``lr = ""`` likewise means the optimiser's default. Runs are named
``<content>__<style>__<recipe>[__<key>-<value>...]`` (only characters safe in
any file system, with a short hash when too long), so the same experiment
always gives the same folders and a second invocation finds finished runs.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ImageError, RecipeError, StylelabError
from .recipes import FIELDS, Recipe, is_recipe_file, load_recipe, recipe_values
from .region_sets import RegionSet, parse_regions

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
MAX_NAME = 120
KEYS = ("name", "content", "styles", "recipes", "out", "budget", "set", "grid", "regions")
MAX_BUDGET = 100.0


class ExperimentError(StylelabError):
    """An experiment file or sweep command that cannot be planned."""


@dataclass(frozen=True)
class RunSpec:
    """One planned run: its folder name, inputs, resolved recipe and place in the grid."""

    name: str
    content: str
    style: str
    recipe: Recipe
    point: dict[str, str] = field(compare=False)  # content, style, recipe and each grid key -> label
    regions: RegionSet | None = None  # a region layout instead of the one style image (``style`` is its first)

    @property
    def style_images(self) -> list[str]:
        return self.regions.style_images if self.regions is not None else [self.style]

    @property
    def inputs(self) -> list[str]:
        """Every file the run reads (not an init image of its recipe's)."""
        return [self.content, *(self.regions.files if self.regions is not None else [self.style])]

    def task(self, source=lambda p: p, **kwargs):
        """The run's ``Task``; ``source`` maps each path to what is read (a Ray worker's bytes);
        ``kwargs`` go to ``Task.of`` (init, label)."""
        from .task import Task

        if self.regions is not None:
            return self.regions.task(source(self.content), source, **kwargs)
        return Task.of(source(self.content), [source(self.style)], **kwargs)


@dataclass
class Experiment:
    """What to compare. ``plan()`` expands it into runs."""

    name: str
    contents: list[str]
    styles: list[str]
    recipes: list[tuple[str, Recipe]]  # (label, recipe with ``settings`` applied)
    settings: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    out: Path | None = None
    recipe_sources: list[Any] = field(default_factory=list)  # as written, for the record
    budget: float | None = None  # each recipe's own steps and save_every scaled by it
    own: dict[str, Recipe] = field(default_factory=dict)  # label -> the recipe before budget and settings
    regions: list[RegionSet] = field(default_factory=list)  # region layouts, swept beside the styles

    def plan(self) -> list[RunSpec]:
        """Every run, ordered content, recipe, grid point, style (so batches are neighbours)."""
        contents = _labels(self.contents)
        styles = [(path, label, None) for path, label in _labels(self.styles)]
        styles += [(r.styles[0], r.name, r) for r in self.regions]
        keys = list(self.grid)
        specs = []
        for content, c_label in contents:
            for r_label, recipe in self.recipes:
                for values in itertools.product(*(self.grid[k] for k in keys)):
                    point_recipe = _with_changes(recipe, dict(zip(keys, values)), self.settings)
                    point = {k: format_value(getattr(point_recipe, k)) for k in keys}
                    for style, s_label, regions in styles:
                        labels = {"content": c_label, "style": s_label, "recipe": r_label, **point}
                        name = run_name(labels, keys)
                        specs.append(RunSpec(name, content, style, point_recipe, labels, regions))
        return specs

    @property
    def varying(self) -> list[str]:
        """The dimensions with more than one value, in the order runs are named."""
        dims = {"content": self.contents, "style": [*self.styles, *self.regions], "recipe": self.recipes, **self.grid}
        return [k for k, v in dims.items() if len(v) > 1]

    def to_toml(self) -> str:
        """The experiment with absolute paths, as written into its folder."""
        import tomli_w

        data: dict[str, Any] = {
            "name": self.name,
            "content": list(self.contents),
            "styles": list(self.styles),
            "recipes": [_plain(r) for r in self.recipe_sources] or [label for label, _ in self.recipes],
        }
        if self.budget is not None:
            data["budget"] = self.budget
        if self.settings:
            data["set"] = {k: _plain(v) for k, v in self.settings.items()}
        if self.grid:
            data["grid"] = {k: [_plain(v) for v in vs] for k, vs in self.grid.items()}
        if self.regions:
            data["regions"] = [r.to_toml() for r in self.regions]
        return tomli_w.dumps(data)


def with_budget(recipe: Recipe, budget: float | None) -> Recipe:
    """``recipe`` with its own steps and snapshot interval scaled by ``budget`` (at least 1 of each)."""
    if budget is None or budget == 1:
        return recipe
    steps = max(1, round(recipe.steps * budget)) if recipe.steps else 0
    save_every = max(1, round(recipe.save_every * budget)) if recipe.save_every else 0
    return recipe.replace(steps=steps, save_every=save_every)


def check_budget(budget: Any, where: str = "--budget") -> float | None:
    """A budget as a number in (0, MAX_BUDGET], or None; anything else is an ExperimentError."""
    if budget is None:
        return None
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0 < budget <= MAX_BUDGET:
        raise ExperimentError(
            f"{where} must be a number above 0 and at most {MAX_BUDGET:g} (a share of each recipe's own steps, "
            f"e.g. 0.1), not {budget!r}"
        )
    return float(budget)


def _with_changes(recipe: Recipe, changes: dict[str, Any], settings: dict[str, Any]) -> Recipe:
    """``recipe.replace(**changes)``; a step size belongs to its optimiser, so a changed
    optimiser falls back to its own default lr unless lr is set or varied too."""
    if not changes:
        return recipe
    changed = recipe.replace(**changes)
    if changed.optimizer != recipe.optimizer and "lr" not in changes and "lr" not in settings:
        changed = changed.replace(lr=None)
    return changed


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


# ---------------------------------------------------------------- names


def slug(text: str) -> str:
    """Only letters, digits, dot, dash and underscore; never empty."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-.")
    return s or "x"


def format_value(value: Any) -> str:
    """A setting's value as it appears in run names and sheet labels: 1e6, 0.001, adam, relu1_1+relu2_1."""
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return "+".join(format_value(v) for v in value)
    if isinstance(value, float):
        text = f"{value:g}"
        return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")
    return str(value)


def run_name(labels: dict[str, str], grid_keys: list[str]) -> str:
    """``content__style__recipe[__key-value...]``; hashed at the end when over MAX_NAME characters."""
    parts = [slug(labels["content"]), slug(labels["style"]), slug(labels["recipe"])]
    parts += [f"{slug(k)}-{slug(labels[k])}" for k in grid_keys]
    name = "__".join(parts)
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = name[: MAX_NAME - 9].rstrip("-_.") + "-" + digest
    return name


def _labels(paths: list[str]) -> list[tuple[str, str]]:
    """(path, label): the file's stem, made unique with a short hash where two stems collide."""
    stems = [Path(p).stem for p in paths]
    out = []
    for p, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}-{hashlib.sha1(str(p).encode()).hexdigest()[:6]}"
        out.append((p, stem))
    return out


# ---------------------------------------------------------------- building experiments


def image_files(entries: list[str], base: Path | None = None, what: str = "style") -> list[str]:
    """Absolute paths of the images named, folders expanded to their images sorted by name."""
    found: list[str] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not inside:
                raise ImageError(f"{what} folder {entry} holds no images ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(str(p.resolve()) for p in inside)
        elif path.is_file():
            found.append(str(path.resolve()))
        else:
            raise ImageError(f"no such {what} image or folder: {entry}")
    if not found:
        raise ExperimentError(f"give at least one {what} image")
    return list(dict.fromkeys(found))


def parse_set(items: list[str] | None) -> dict[str, list[str]]:
    """``["optimizer=adam,lbfgs", "style_weight=1e4"]`` -> {"optimizer": ["adam", "lbfgs"], ...}.

    Commas separate values; in a list-valued setting (layers) ``+`` separates the
    items of one value: ``style_layers=relu1_1+relu2_1,relu3_1``.
    """
    grid: dict[str, list[str]] = {}
    for item in items or []:
        key, sep, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not values.strip():
            raise ExperimentError(f"--set needs KEY=VALUE[,VALUE...], not {item!r}")
        _check_key(key)
        grid[key] = [v.strip().replace("+", " ") for v in values.split(",") if v.strip()]
    return grid


def _check_key(key: str) -> None:
    if key in ("name", "description"):
        raise ExperimentError(f"{key} cannot be varied; it names the recipe")
    if key not in FIELDS:
        Recipe().replace(**{key: None})  # raises the did-you-mean message


def _file_or_name(entry: str, base: Path | None) -> str:
    """A recipe file as an absolute path (relative ones are relative to ``base``), a preset name as it is."""
    if not is_recipe_file(entry):
        return entry
    path = Path(entry).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    return str(path.resolve())


def _recipe_entry(entry: Any, base: Path | None) -> tuple[str, Recipe, Any]:
    """A recipe entry (a preset name, a recipe file, or an inline table like a recipe file):
    its label, its recipe, and the entry with file paths made absolute."""
    if isinstance(entry, str):
        entry = _file_or_name(entry, base)
        recipe = load_recipe(entry)
        return recipe.name, recipe, entry
    if isinstance(entry, dict):
        entry = dict(entry)
        if isinstance(entry.get("base"), str):
            entry["base"] = _file_or_name(entry["base"], base)
        resolved = recipe_values(entry, "recipes entry")
        label = entry.get("name")
        if not label:
            changes = [f"{k}-{format_value(v)}" for k, v in entry.items() if k != "base"]
            label = "+".join([Path(str(entry.get("base", "custom"))).stem, *changes])
            resolved["name"] = label
        return label, Recipe(**resolved), entry
    raise ExperimentError(f"a recipes entry must be a name, a file or a table, not {entry!r}")


def build(
    *,
    name: str,
    contents: list[str],
    styles: list[str],
    recipes: list[Any],
    settings: dict[str, Any] | None = None,
    grid: dict[str, list] | None = None,
    out: str | Path | None = None,
    base: Path | None = None,
    budget: float | None = None,
    regions: Any = None,
) -> Experiment:
    """An Experiment from its parts, every value checked (a bad one costs no run).

    ``budget`` scales each recipe's own ``steps`` and ``save_every`` (0.1: a tenth of each),
    where one ``steps`` setting would give every recipe the same number."""
    budget = check_budget(budget)
    settings = {k: v for k, v in (settings or {}).items() if v is not None}
    grid = {k.replace("-", "_"): (list(v) if isinstance(v, (list, tuple)) else [v]) for k, v in (grid or {}).items()}
    for key in [*settings, *grid]:
        _check_key(key)
    both = set(settings) & set(grid)
    if both:
        raise ExperimentError(f"{', '.join(sorted(both))} is both set and varied; keep it in one place")
    for key, values in grid.items():
        if not values:
            raise ExperimentError(f"grid {key} has no values")
    if budget is not None and ("steps" in settings or "steps" in grid):
        raise ExperimentError(
            "--budget scales each recipe's own steps; give it or a steps setting (--steps, --set steps=...), not both"
        )
    if not recipes:
        recipes = ["default"]
    resolved, sources, own = [], [], {}
    for entry in recipes:
        label, recipe, source = _recipe_entry(entry, base)
        resolved.append((label, _with_changes(with_budget(recipe, budget), settings, settings)))
        sources.append(source)
        own[label] = recipe
    labels = [label for label, _ in resolved]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ExperimentError(f"two recipes are named {dupes[0]!r}; give inline recipes distinct names")
    layouts = parse_regions(regions, base)
    style_files = image_files(styles, base, "style") if styles or not layouts else []
    clash = {label for _, label in _labels(style_files)} & {r.name for r in layouts}
    if clash:
        raise ExperimentError(f"a region layout and a style image are both named {sorted(clash)[0]!r}; rename one")
    exp = Experiment(
        name=slug(name),
        contents=image_files(contents, base, "content"),
        styles=style_files,
        recipes=resolved,
        settings=settings,
        grid=grid,
        out=Path(out) if out is not None else None,
        recipe_sources=sources,
        budget=budget,
        own=own,
        regions=layouts,
    )
    # Every grid value is checked now, not when its run comes up an hour later.
    for label, recipe in resolved:
        for values in itertools.product(*grid.values()):
            try:
                _with_changes(recipe, dict(zip(grid, values)), settings)
            except RecipeError as exc:
                raise ExperimentError(f"recipe {label}: {exc}") from None
    return exp


def _check_types(data: dict, path: Path) -> None:
    """Each key of an experiment file holds what it must (a wrong type is one line, not a traceback)."""

    def bad(key: str, wanted: str) -> ExperimentError:
        return ExperimentError(f"{path}: {key} must be {wanted}, not {type(data[key]).__name__} {data[key]!r}"[:300])

    for key in ("name", "out"):
        if key in data and not (isinstance(data[key], str) and data[key].strip()):
            raise bad(key, "a text")
    for key in ("content", "styles"):
        value = data.get(key, [])
        if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            raise bad(key, "a file or folder name, or a list of them")
    recipes = data.get("recipes", [])
    entries = recipes if isinstance(recipes, list) else [recipes]
    if not all(isinstance(r, (str, dict)) for r in entries):
        raise bad("recipes", "a preset name, a recipe file, a table, or a list of them")
    for key in ("set", "grid"):
        if key in data and not isinstance(data[key], dict):
            raise bad(key, "a table ([set] or [grid] with key = value lines)")
    if "regions" in data and not (
        isinstance(data["regions"], list) and all(isinstance(r, dict) for r in data["regions"])
    ):
        raise bad("regions", "a list of tables ([[regions]] with styles and masks)")
    for key, values in data.get("grid", {}).items():
        if isinstance(values, dict):
            raise ExperimentError(f"{path}: grid {key} must be a list of values, not a table")


def _absolute(paths) -> list[str]:
    # Paths from the command line are relative to where it runs, not to the experiment file.
    return [str(Path(p).expanduser().resolve()) for p in paths or []]


def load(path: str | Path, **changes) -> Experiment:
    """An experiment file, with ``changes`` from the command line on top: name, out,
    contents, styles and budget (replace the file's), settings and grid (merged)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ExperimentError(f"experiment file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ExperimentError(f"{path} is not valid TOML: {exc}") from None
    unknown = [k for k in data if k not in KEYS]
    if unknown:
        raise ExperimentError(f"{path}: unknown key {unknown[0]!r}; an experiment has {', '.join(KEYS)}")
    _check_types(data, path)
    as_list = lambda v: [v] if isinstance(v, (str, dict)) else list(v or [])  # noqa: E731
    base = path.parent
    out = changes.get("out") or (base / data["out"] if data.get("out") else None)
    # The command line wins: a key it sets stops being varied, a key it varies stops being set.
    cli_settings, cli_grid = changes.get("settings") or {}, changes.get("grid") or {}
    settings = {k: v for k, v in data.get("set", {}).items() if k not in cli_grid}
    grid = {k: v for k, v in data.get("grid", {}).items() if k not in cli_settings}
    return build(
        name=changes.get("name") or data.get("name") or path.stem,
        contents=_absolute(changes.get("contents")) or as_list(data.get("content")),
        styles=_absolute(changes.get("styles")) or as_list(data.get("styles")),
        recipes=as_list(data.get("recipes")),
        settings={**settings, **cli_settings},
        grid={**grid, **cli_grid},
        out=out,
        base=base,
        budget=changes["budget"]
        if changes.get("budget") is not None
        else check_budget(data.get("budget"), f"{path}: budget"),
        regions=data.get("regions"),
    )
