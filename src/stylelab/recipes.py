"""The Recipe: every knob of a run, validated, with presets stored as TOML files.

A Recipe is frozen; a variation is ``recipe.replace(style_weight=1e4)``. The CLI's
options, the sweep's ``--set`` keys and the studio's form are all derived from
the fields below, so each default lives here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import layers as layer_names
from .errors import RecipeError

ENGINES = ("optimise", "fast")  # the optimiser (every knob), or the feed-forward model (a preview in a second)
OPTIMIZERS = ("lbfgs", "adam", "sgd")
# Each optimiser's own step size, used when a recipe leaves ``lr`` empty (optimizers.py).
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "sgd": 0.005}
# Loss conventions; losses.py holds their formulas.
NORMALIZATIONS = ("stylelab", "family-a", "family-b", "jcjohnson")
STYLE_LOSSES = ("gram", "moments", "swd")  # style_losses.py holds their formulas
INITS = ("content", "style", "noise", "fast")  # fast: the fast engine's picture (fast/engine.py)
POOLINGS = ("max", "avg")
PRESERVE_COLOR = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "fp32", "bf16")
MAX_SIZE = 8192
TILES = ("none", "auto")  # besides a tile side in pixels (``tile``: tiles.py)
MIN_TILE = 16  # the network's stride at relu5_1: no tile side can be smaller
MAX_SEED = 2**63 - 1  # what torch's and numpy's generators all take
MAX_STYLE_SCALE = 10.0
MAX_LAYERS = 64  # VGG19 has 37 named stages; more than this is a mistake (or an attack on the parser)
# Device names torch knows that stylelab runs on; availability is checked when a run starts.
DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d{1,2})?")
MAX_RECIPE_BYTES = 1_000_000  # a recipe is a few hundred bytes; anything near this is not one


def _f(default, help: str, **meta):
    if isinstance(default, (list, tuple)):
        return field(default=tuple(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class Recipe:
    """Every setting of a style-transfer run. See ``stylelab recipes default``."""

    name: str = _f("custom", "Name of the recipe (presets: stylelab recipes).", cli=False)
    description: str = _f("", "One line saying what the recipe is for.", cli=False)
    engine: str = _f(
        "optimise",
        "optimise (the optimiser: every setting below) or fast (a feed-forward model: a picture in about a "
        "second; size, strength and colour settings apply, the optimiser's settings are ignored).",
        choices=ENGINES,
    )
    strength: float = _f(
        1.0, "fast engine and --init fast: how much of the style (0: the content's own look, 1: the style's)."
    )
    steps: int = _f(200, "Optimisation steps at the final scale (one step = one forward/backward pass).")
    optimizer: str = _f("lbfgs", "Optimiser: lbfgs, adam or sgd.", choices=OPTIMIZERS)
    lr: float | None = _f(
        None,
        "Step size; empty means the optimiser's own default ("
        + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items())
        + ").",
    )
    content_weight: float = _f(1.0, "Weight of the content term.")
    style_weight: float = _f(5.0, "Weight of the style term.")
    tv_weight: float = _f(0.0, "Weight of the total-variation (smoothness) term.")
    temporal_weight: float = _f(
        0.0, "Video: weight of the temporal term (frames kept where the optical flow carries them; 0: none)."
    )
    content_layers: tuple[str, ...] = _f(
        ("relu4_2",), "Content layers, in any naming (conv4_2, relu_10, block4_conv2)."
    )
    style_layers: tuple[str, ...] = _f(
        ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "Style layers, in any naming."
    )
    content_layer_weights: tuple[float, ...] | None = _f(None, "One weight per content layer (default: equal).")
    style_layer_weights: tuple[float, ...] | None = _f(None, "One weight per style layer (default: equal).")
    style_scale: float = _f(1.0, "Size of the style images relative to the output's longest side.")
    style_loss: str = _f(
        "gram",
        "Style loss: gram (Gatys' Gram matrices), moments (per-channel mean and std), swd (sliced Wasserstein).",
        choices=STYLE_LOSSES,
    )
    swd_directions: int = _f(0, "swd: random directions per layer and step (0: as many as the layer's channels).")
    init: str = _f(
        "content",
        "Start image: content, style (the first style image, centre-cropped to the output's proportions, never "
        "stretched), noise (grey with faint noise from --seed), fast (the fast engine's picture), or an image path "
        "(cropped the same way).",
    )
    size: int = _f(512, "Longest side of the output in pixels.")
    save_every: int = _f(0, "Save a snapshot every N steps (0: only start and end).")
    seed: int = _f(0, "Random seed; the same seed repeats a CPU run bit for bit.")
    device: str = _f("auto", "Device: auto, cpu, cuda, cuda:1, mps.")
    weights: str = _f("caffe", "VGG19 weights: caffe (bundled), torchvision, or a state-dict file.")
    pooling: str = _f("max", "Pooling in VGG19: max or avg.", choices=POOLINGS)
    preserve_color: str = _f(
        "none", "Keep the content's colours: none, luminance or histogram.", choices=PRESERVE_COLOR
    )
    scales: int = _f(1, "Coarse-to-fine: run N sizes, each about sqrt(2) larger, ending at --size.")
    coarse_steps: tuple[int, ...] | None = _f(
        None,
        "Coarse-to-fine: steps at each scale before the last, coarse first (one number for all of them, or one "
        "per scale); empty: --steps at every scale.",
    )
    tile: str = _f(
        "none",
        "Prints larger than memory: optimise the image in overlapping tiles, the same optimisation as untiled "
        "(whole-image style statistics). none; auto (the largest tiles that fit the memory free, the image whole "
        "where it fits: coarse scales run whole); or N (tiles of N px).",
        number=True,
    )
    normalization: str = _f(
        "stylelab", "Loss convention: stylelab, family-a, family-b or jcjohnson (losses.py).", choices=NORMALIZATIONS
    )
    precision: str = _f(
        "auto",
        "Convolution precision: fp32, bf16, or auto (bf16 where measured to pay at equal quality: CPUs with bf16 "
        "instructions; fp32 elsewhere). Grams and losses are always float32.",
        choices=PRECISIONS,
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f, getattr(self, f.name)))
        _validate(self)

    def replace(self, **changes) -> Recipe:
        unknown = [k for k in changes if k not in FIELDS]
        if unknown:
            raise RecipeError(_unknown_key_message(unknown[0]))
        return dataclasses.replace(self, **changes)

    def to_dict(self, *, drop_none: bool = False) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and drop_none:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict(drop_none=True))

    def diff(self, other: Recipe) -> dict[str, tuple[Any, Any]]:
        """Settings whose values differ: name -> (self's, other's)."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if a[k] != b[k] and k not in ("name", "description")}

    def steps_per_scale(self) -> tuple[int, ...]:
        """Steps at each scale the run makes, coarse to fine: ``coarse_steps`` (or ``steps``) for
        the scales before the last, ``steps`` for the last. Scales that come out the same size
        (``plan.scale_sizes``: never below 64 px) run once, so the run drops the coarsest counts."""
        from .plan import scale_sizes

        count = len(scale_sizes(self.size, self.scales))
        coarse = self.coarse_steps or (self.steps,)
        coarse = coarse * (self.scales - 1) if len(coarse) == 1 else coarse
        return (*coarse[len(coarse) - (count - 1) :], self.steps) if count > 1 else (self.steps,)

    @property
    def total_steps(self) -> int:
        """Steps over all scales: what progress counts to."""
        return sum(self.steps_per_scale())

    @property
    def resolved_content_layers(self) -> tuple[str, ...]:
        return layer_names.resolve_all(self.content_layers)

    @property
    def resolved_style_layers(self) -> tuple[str, ...]:
        return layer_names.resolve_all(self.style_layers)

    @property
    def network_layers(self) -> tuple[str, ...]:
        """Every layer the network serves, content first (canonical names; one may appear twice)."""
        return (*self.resolved_content_layers, *self.resolved_style_layers)

    def style_longest(self, longest: int | None = None) -> int:
        """The style images' longest side at a scale whose content's longest side is ``longest``
        (default: ``size``): one rule for the run, its memory estimate and its checks."""
        return max(16, round((self.size if longest is None else longest) * self.style_scale))


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Recipe)}


def type_name(f: dataclasses.Field) -> str:
    """A Recipe field's type as text without spaces, e.g. ``tuple[str,...]|None``."""
    return str(f.type).replace(" ", "")


def _coerce(f: dataclasses.Field, value):
    """Turn TOML, CLI or JSON values into the field's type, or explain why not."""
    t = type_name(f)
    if isinstance(value, str) and not value.strip() and "None" in t:
        value = None  # TOML has no null: an empty string means "unset" (e.g. lr = "")
    if value is None:
        if "None" in t:
            return None
        raise RecipeError(f"{f.name} needs a value")
    try:
        if t.startswith("tuple[str"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return tuple(str(v) for v in value)
        if t.startswith("tuple[int"):
            items = value
            if isinstance(items, str):
                items = [v for v in items.replace(",", " ").split() if v]
            if isinstance(items, (int, float)):
                items = [items]
            out = []
            for v in items:
                if isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()):
                    raise ValueError
                out.append(int(v))
            return tuple(out) or None  # an empty list, like an empty string, leaves it unset
        if t.startswith("tuple[float"):
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            if isinstance(value, (int, float)):
                value = [value]
            return tuple(float(v) for v in value)
        if t.startswith("int"):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if t.startswith("float"):
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if t.startswith("str"):
            if f.metadata.get("number") and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # tile = 1024 in TOML: a number of pixels, kept as text beside "auto"
            if not isinstance(value, (str, Path)):
                raise ValueError
            return str(value)
    except (TypeError, ValueError, OverflowError):
        raise RecipeError(f"{f.name} = {value!r} is not a valid {t.split('|')[0]}") from None
    return value


def _default_text(values: tuple) -> str:
    return " ".join(str(v) for v in values)


def _closest(value: str, options) -> str:
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _validate(r: Recipe) -> None:
    for name in ("engine", "optimizer", "pooling", "preserve_color", "normalization", "precision", "style_loss"):
        options = FIELDS[name].metadata["choices"]
        value = getattr(r, name)
        if value not in options:
            raise RecipeError(f"unknown {name} {value!r}{_closest(value, options)}; choose from {', '.join(options)}")
    for name in ("content_weight", "style_weight", "tv_weight", "temporal_weight", "style_scale"):
        value = getattr(r, name)
        if not value >= 0 or value == float("inf"):
            raise RecipeError(f"{name} must be a finite number >= 0, not {value}")
    if not 0 <= r.strength <= 1:
        raise RecipeError(f"strength must be between 0 and 1, not {r.strength}")
    if r.style_scale <= 0:
        raise RecipeError("style_scale must be > 0")
    if r.lr is not None and not (0 < r.lr < float("inf")):
        raise RecipeError(f"lr must be > 0, not {r.lr}")
    if r.style_scale > MAX_STYLE_SCALE:
        raise RecipeError(f"style_scale must be at most {MAX_STYLE_SCALE:g}, not {r.style_scale:g}")
    if r.steps < 0:
        raise RecipeError(f"steps must be >= 0, not {r.steps}")
    if not 0 <= r.seed <= MAX_SEED:
        raise RecipeError(f"seed must be between 0 and {MAX_SEED} (2**63 - 1), not {r.seed}")
    if not DEVICE.fullmatch(r.device):
        raise RecipeError(f"unknown device {r.device!r}; use auto, cpu, cuda, cuda:N or mps")
    if not 16 <= r.size <= MAX_SIZE:
        raise RecipeError(f"size must be between 16 and {MAX_SIZE} pixels, not {r.size}")
    if r.size * r.style_scale > MAX_SIZE:
        raise RecipeError(
            f"style_scale {r.style_scale:g} at size {r.size} makes the style images {r.size * r.style_scale:.0f} px, "
            f"over the limit of {MAX_SIZE}; lower --style-scale or --size"
        )
    if r.save_every < 0:
        raise RecipeError("save_every must be >= 0")
    if not 0 <= r.swd_directions <= 4096:
        raise RecipeError(f"swd_directions must be between 0 and 4096, not {r.swd_directions}")
    if not 1 <= r.scales <= 8:
        raise RecipeError(f"scales must be between 1 and 8, not {r.scales}")
    if r.coarse_steps is not None and any(n < 0 for n in r.coarse_steps):
        raise RecipeError(f"coarse_steps must be >= 0, not {_default_text(r.coarse_steps)}")
    if r.coarse_steps is not None and len(r.coarse_steps) > 1 and len(r.coarse_steps) != r.scales - 1:
        raise RecipeError(
            f"coarse_steps has {len(r.coarse_steps)} values for the {r.scales - 1} scale(s) before the last "
            f"(scales = {r.scales}): give one value for all, or one per scale"
        )
    _check_tile(r.tile)
    if not r.style_layers and not r.content_layers:
        raise RecipeError("at least one content or style layer is needed")
    if len(r.style_layers) + len(r.content_layers) > MAX_LAYERS:
        raise RecipeError(
            f"at most {MAX_LAYERS} content and style layers in all, not {len(r.style_layers) + len(r.content_layers)}"
        )
    layer_names.resolve_all(r.content_layers)
    layer_names.resolve_all(r.style_layers)
    for weights, layers, what in (
        (r.content_layer_weights, r.content_layers, "content"),
        (r.style_layer_weights, r.style_layers, "style"),
    ):
        if weights is None:
            continue
        if len(weights) != len(layers):
            raise RecipeError(f"{what}_layer_weights has {len(weights)} values for {len(layers)} {what} layers")
        if any(not w >= 0 for w in weights) or not sum(weights) > 0:
            raise RecipeError(f"{what}_layer_weights must be >= 0 with a positive sum")
    if r.init not in INITS and not r.init.strip():
        raise RecipeError(f"init must be {', '.join(INITS)} or an image path")
    if r.init not in INITS:
        _check_init_word(r.init)


def _check_tile(value: str) -> None:
    if value in TILES or (value.isascii() and value.isdigit() and MIN_TILE <= int(value) <= MAX_SIZE):
        return
    raise RecipeError(
        f"tile must be none, auto or a tile side in pixels from {MIN_TILE} to {MAX_SIZE}, not {value!r}"
        + _closest(value, TILES)
    )


def tile_side(recipe: Recipe) -> int | None:
    """``recipe.tile`` as a number of pixels, or None for ``none`` and ``auto``."""
    return int(recipe.tile) if recipe.tile not in TILES else None


def _check_init_word(value: str) -> None:
    """A start image that is no file but looks like a misspelt kind (``nosie``, ``Style``) is
    refused with the nearest kind, rather than later as a missing file."""
    close = difflib.get_close_matches(value.lower(), INITS, n=1, cutoff=0.6)
    if close and not Path(value).suffix and "/" not in value and not Path(value).expanduser().exists():
        raise RecipeError(
            f"init {value!r} is no file; did you mean {close[0]!r}? init is {', '.join(INITS)} or an image path"
        )


def _unknown_key_message(key: str) -> str:
    return f"unknown setting {key!r}{_closest(key, FIELDS)}; `stylelab recipes default` lists them"


# ---------------------------------------------------------------- presets and files


def _preset_dir():
    return importlib.resources.files("stylelab") / "presets"


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".toml"))


def _read_toml(text: str, origin: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{origin} is not valid TOML: {exc}") from None


def is_recipe_file(name_or_path: str | Path) -> bool:
    """Recipe files end in .toml; anything else names a preset (so no other file is ever read as one)."""
    return str(name_or_path).lower().endswith(".toml")


def recipe_source(name_or_path: str | Path) -> tuple[str, str]:
    """(TOML text, origin) of a preset name or a recipe file (a path ending in .toml)."""
    key = str(name_or_path)
    if is_recipe_file(key):
        path = Path(key).expanduser()
        if not path.is_file():
            raise RecipeError(f"recipe file not found: {key}")
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{key} is {path.stat().st_size:,} bytes: too large to be a recipe file")
        try:
            return path.read_bytes().decode("utf-8"), str(path)
        except UnicodeDecodeError:
            raise RecipeError(f"{key} is not a recipe file: it is not UTF-8 text") from None
        except OSError as exc:
            raise RecipeError(f"cannot read recipe file {key}: {exc.strerror or exc}") from None
    preset = _preset_dir() / f"{key}.toml"
    if not re.fullmatch(r"[\w.-]+", key) or not preset.is_file():
        raise RecipeError(
            f"unknown recipe {key!r}{_closest(key, preset_names())}; presets: {', '.join(preset_names())} "
            "(recipe files end in .toml)"
        )
    return preset.read_text(encoding="utf-8"), f"preset {key}"


def recipe_values(data: dict, origin: str = "recipe", _chain: tuple[str, ...] = ()) -> dict:
    """Recipe fields from a parsed TOML table, following ``base = "other"`` chains (cycles refused)."""
    data = dict(data)
    base = data.pop("base", None)
    values = {}
    if base is not None:
        if not isinstance(base, str) or not base.strip():
            raise RecipeError(f"{origin}: base must be a preset name or a recipe file, not {base!r}")
        key = str(Path(base).expanduser().resolve()) if is_recipe_file(base) else base
        if key in _chain:
            raise RecipeError(f"{origin}: base {base!r} leads back to itself ({' -> '.join([*_chain, key])})")
        text, base_origin = recipe_source(base)
        values = recipe_values(_read_toml(text, base_origin), base_origin, (*_chain, key))
        values.pop("name", None)  # a recipe built on "default" is not itself "default"
    for key, value in data.items():
        if key not in FIELDS:
            raise RecipeError(f"{origin}: {_unknown_key_message(key)}")
        values[key] = value
    return values


def load_recipe(name_or_path: str | Path | Recipe = "default", **overrides) -> Recipe:
    """A preset by name, a recipe TOML file, or a Recipe, with ``overrides`` applied.

    ``None`` overrides are ignored, so CLI options left unset keep the recipe's values.
    """
    if isinstance(name_or_path, Recipe):
        base = name_or_path
    else:
        text, origin = recipe_source(name_or_path)
        own = str(Path(str(name_or_path)).expanduser().resolve()) if is_recipe_file(name_or_path) else str(name_or_path)
        values = recipe_values(_read_toml(text, origin), origin, (own,))
        if "name" not in values:
            values["name"] = Path(str(name_or_path)).stem
        base = Recipe(**values)
    changes = {k: v for k, v in overrides.items() if v is not None}
    return with_changes(base, **changes) if changes else base


CHANGED = "changed: "  # what a description says after the preset's own words when a run changed it


def _shown(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return "+".join(_shown(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def with_changes(base: Recipe, **changes) -> Recipe:
    """``base.replace(**changes)`` with a description that says what changed (``Balanced, fast:
    L-BFGS, ...; changed: optimizer=adam``): a preset's own words are not left alone to describe
    a run they no longer fit. The name stays (what the run started from); a second change
    updates the list."""
    changed = base.replace(**changes)
    diff = base.diff(changed)
    if "description" in changes or not diff:
        return changed
    own, _, earlier = (
        base.description.rpartition(CHANGED) if CHANGED in base.description else (base.description, "", "")
    )
    listed = dict(item.partition("=")[::2] for item in earlier.split(", ") if "=" in item)
    listed.update({key: _shown(new) for key, (_, new) in diff.items()})
    own = own.rstrip().rstrip(";").rstrip().rstrip(".")
    words = CHANGED + ", ".join(f"{k}={v}" for k, v in listed.items())
    return dataclasses.replace(changed, description=f"{own}; {words}" if own else words)


def recipe_from_toml(text: str, origin: str = "recipe") -> Recipe:
    """A Recipe from a fully resolved TOML text (a run folder's recipe.toml): no ``base`` is followed."""
    return recipe_from_dict(_read_toml(text, origin), origin)


# Settings that were recipe fields once and are read (and dropped) from older files: blend
# weights belong to the task now (task.StyleSet.weights).
MOVED = ("style_weights",)


def recipe_from_dict(values: Any, origin: str = "recipe") -> Recipe:
    """A Recipe from stored values (run.json, PNG settings, the studio's job file), checked:
    anything but a table of known settings is a RecipeError naming ``origin``."""
    if not isinstance(values, dict):
        raise RecipeError(f"{origin}: the recipe is {type(values).__name__}, not a table of settings")
    values = {k: v for k, v in values.items() if k not in MOVED}
    unknown = [k for k in values if k not in FIELDS]
    if unknown:
        raise RecipeError(f"{origin}: {_unknown_key_message(str(unknown[0]))}")
    try:
        return Recipe(**values)
    except RecipeError as exc:
        raise RecipeError(f"{origin}: {exc}") from None


def preset_summary(name: str) -> dict:
    """A preset's name, description, one-line settings and all its values (loaded once)."""
    r = load_recipe(name)
    return {
        "name": name,
        "description": r.description,
        "settings": f"{r.optimizer} {r.steps} steps, {r.size}px, content {r.content_weight:g}, "
        f"style {r.style_weight:g}, tv {r.tv_weight:g}, {r.normalization}",
        "values": r.to_dict(),
    }
