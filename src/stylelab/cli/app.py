"""The ``stylelab`` command: the Typer app, recipe options and the entry point.

Options that set recipe values are generated from the Recipe's fields, so a new
setting appears here, in ``--help`` and in recipe files at once. Library code
raises ``StylelabError``; ``main`` alone turns it into one line on stderr and
exit code 2. The commands live beside this module, grouped by what they do.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from pathlib import Path
from typing import Any, Optional  # noqa: UP035 - typer reads these annotations

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand

try:  # typer >= 0.20 carries its own copy of click, whose exceptions are not click's classes
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover - an older typer uses click itself
    from click import exceptions as _click_exceptions

from .. import __version__
from ..errors import StylelabError
from ..recipes import FIELDS, INITS, Recipe, type_name

# ---------------------------------------------------------------- help

# Help sections, in the order --help shows them. Options name theirs with rich_help_panel;
# typer draws those only in rich mode, and rich mode would read the "[default: ...]" of
# every help text as markup, so ``Command`` below writes them as plain click sections.
PAINT = "What to paint"
COMPARE = "What to compare"
IMAGE = "Image"
LOSSES = "Loss weights"
LAYERS = "Layers"
OPTIMISER = "Optimiser"
NETWORK = "Network and device"
OUTPUT = "Output and progress"
RUNNING = "Running the sweep"
CLUSTER = "Ray cluster"
SECTIONS = (PAINT, COMPARE, IMAGE, LOSSES, LAYERS, OPTIMISER, NETWORK, OUTPUT, RUNNING, CLUSTER)
# The section of each recipe setting's option; tests/core/test_cli_help.py checks every
# setting has one, so a new field cannot land in "Other options" unnoticed.
RECIPE_SECTIONS = {
    OPTIMISER: ("engine", "strength", "steps", "optimizer", "lr"),
    LOSSES: (
        "content_weight",
        "style_weight",
        "tv_weight",
        "temporal_weight",
        "normalization",
        "style_loss",
        "swd_directions",
    ),
    LAYERS: ("content_layers", "style_layers", "content_layer_weights", "style_layer_weights"),
    IMAGE: ("size", "init", "style_scale", "scales", "coarse_steps", "tile", "preserve_color", "seed"),
    NETWORK: ("weights", "pooling", "device", "precision"),
    OUTPUT: ("save_every",),
}
SECTION_OF = {name: section for section, names in RECIPE_SECTIONS.items() for name in names}
OTHER = "Other options"


def placeholder(param) -> str | None:
    """A value's name in words (FILE, N, X, TEXT...), for options that name none themselves:
    typer's own reads like Python types (``<list[str]>``, ``<int range>``)."""
    if param.param_type_name == "argument":
        return param.name.upper()
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    desc = getattr(param, "type_descriptor", None)  # typer's view of the annotation (None: an older typer)
    if desc is None:
        return None
    if getattr(desc, "is_choice", False) and desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    annotation = desc.annotation
    several = getattr(desc, "is_list", False)
    if several and getattr(annotation, "__args__", None):
        annotation = annotation.__args__[0]
    word = {int: "N", float: "X", Path: "PATH", str: "TEXT"}.get(annotation, "VALUE")
    return word + ("..." if several else "")


class Command(TyperCommand):
    """A command whose --help shows its options in sections (their ``rich_help_panel``) with
    their values named in words, the same in a terminal and in a pipe."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None:
                param.metavar = placeholder(param)

    def format_options(self, ctx, formatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                if param.param_type_name == "argument":  # its name alone: typer adds a type like <str>
                    record = (param.metavar or param.name.upper(), record[1])
                default = "Arguments" if param.param_type_name == "argument" else OTHER
                sections.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(record)
        order = ("Arguments", *SECTIONS)
        for title in sorted(sections, key=lambda t: order.index(t) if t in order else len(order)):
            with formatter.section(title):
                formatter.write_dl(sections[title])


class App(typer.Typer):
    """The Typer app whose commands are ``Command``s (sectioned help) unless they say otherwise."""

    def command(self, *args, cls=None, **kwargs):
        return super().command(*args, cls=cls or Command, **kwargs)


app = App(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="stylelab: neural style transfer for people who explore it.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# Options that take several values: `--style a.jpg b.jpg` is rewritten to
# `--style a.jpg --style b.jpg` before click (which has no variable nargs) sees it.
MULTI_VALUE = {
    "--style",
    "-s",
    "--styles",
    "--style-weights",
    "--style-blend-weights",
    "--masks",
    "--style-masks",
    "--content-layers",
    "--style-layers",
    "--content-layer-weights",
    "--style-layer-weights",
    "--recipes",
    "--set",
}
_NUMBER = re.compile(r"^-?\d+(\.\d*)?([eE][-+]?\d+)?$")


def expand_multi_values(argv: list[str]) -> list[str]:
    out_args: list[str] = []
    current = None
    for arg in argv:
        if arg == "--":
            current = None
            out_args.append(arg)
            continue
        is_option = arg.startswith("-") and not _NUMBER.match(arg)
        if is_option:
            current = arg if arg in MULTI_VALUE else None
            out_args.append(arg)
            continue
        if current is not None and out_args and out_args[-1] != current:
            out_args.append(current)
        out_args.append(arg)
    return out_args


# ---------------------------------------------------------------- recipe options


def _option_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _default_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


# Text settings without a fixed list of choices: what they take, in the help's words.
METAVARS = {
    "init": "|".join(INITS) + "|FILE",
    "device": "auto|cpu|cuda[:N]|mps",
    "weights": "caffe|torchvision|FILE",
    "tile": "none|auto|N",
}


def recipe_parameters(defaults: str | None = "default recipe") -> list[inspect.Parameter]:
    """One typer option per Recipe field, all defaulting to None (= keep the recipe's value).

    ``defaults``: the words before each setting's value in the default recipe in --help
    (``[default recipe: 200]``), or None to show none (a sweep keeps each recipe's own)."""
    params = []
    for f in dataclasses.fields(Recipe):
        if not f.metadata.get("cli", True):
            continue
        t = type_name(f)
        if t.startswith("tuple[str"):
            annotation, metavar = Optional[list[str]], "NAME..."
        elif t.startswith("tuple[float"):
            annotation, metavar = Optional[list[float]], "X..."
        elif t.startswith("tuple[int"):  # given as one value, N or N,N,... (the recipe splits it)
            annotation, metavar = Optional[str], "N[,N...]"
        elif t.startswith("int"):
            annotation, metavar = Optional[int], "N"
        elif t.startswith("float"):
            annotation, metavar = Optional[float], "X"
        else:
            annotation, metavar = Optional[str], "|".join(f.metadata.get("choices", ())) or METAVARS.get(f.name, "TEXT")
        shown = defaults and f.default is not None
        option = typer.Option(
            None,
            _option_name(f.name),
            help=f.metadata["help"] + (f" [{defaults}: {_default_text(f.default)}]" if shown else ""),
            metavar=metavar,
            rich_help_panel=SECTION_OF.get(f.name, OTHER),
        )
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return params


def recipe_overrides(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in FIELDS and v not in (None, [])
    }


def with_recipe_options(func=None, *, defaults: str | None = "default recipe"):
    """Give ``func(**kwargs)`` its own parameters plus one option per recipe field
    (``defaults``: see ``recipe_parameters``). Use bare or with arguments."""

    def wrap(func):
        own = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(func).parameters.values()
            if p.kind != inspect.Parameter.VAR_KEYWORD
        ]
        func.__signature__ = inspect.Signature(own + recipe_parameters(defaults))
        return func

    return wrap(func) if func is not None else wrap


def _version_callback(value: bool):
    if value:
        out.print(f"stylelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
):
    """stylelab: neural style transfer for people who explore it."""


# ---------------------------------------------------------------- entry point


def _error(message: str) -> None:
    # Escaped: paths and layer names may contain [brackets] that rich would read as markup.
    err.print(f"[red]error:[/] {escape(' '.join(message.splitlines()))}", highlight=False)


# What the command's parser raises, by the classes it really uses (see the import above);
# tests/core/test_cli.py checks these against what a bad command line raises.
USAGE_ERROR = _click_exceptions.UsageError
CLICK_ERROR = _click_exceptions.ClickException
NO_ARGS_IS_HELP = getattr(_click_exceptions, "NoArgsIsHelpError", ())
EXIT = (typer.Exit, getattr(_click_exceptions, "Exit", typer.Exit))
ABORT = (typer.Abort, getattr(_click_exceptions, "Abort", typer.Abort))


HELP_ONLY = frozenset({"--help", "-h", "--version"})


def check_print_every(print_every: int | None) -> None:
    """``--print-every``, where a command takes it: None (its default) or a step count of at least 1."""
    if print_every is not None and print_every < 1:
        raise StylelabError(f"--print-every must be at least 1, not {print_every}")


def _tune_process(args: list[str]) -> None:
    """The command owns its process: how OpenMP threads wait (threads.py, before torch loads:
    a short spin on a quiet machine, asleep on a busy one or in the long-lived studio) and a
    heap that keeps freed activations for the next step (allocator.py)."""
    from .. import allocator, threads

    if args[:1] == ["serve"]:
        threads.prefer_sleeping_threads()
    elif args and not HELP_ONLY & set(args):  # help and the version load no torch: no sample needed
        threads.choose_wait_policy()
    allocator.reuse_freed_memory()


def _invoke(args: list[str]) -> int:
    """Parse and run one command line, raising what goes wrong (``main`` says it in one line)."""
    command = typer.main.get_command(app)
    # make_context and invoke, not command.main: main would turn Ctrl-C into a silent exit
    # code and print usage errors itself.
    with command.make_context("stylelab", args) as ctx:
        returned = command.invoke(ctx)
    return returned if isinstance(returned, int) else 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    try:
        args = list(sys.argv[1:] if argv is None else argv)
        _tune_process(args)
        code = _invoke(expand_multi_values(args))
    except StylelabError as exc:
        _error(str(exc))
        code = 2
    except EXIT as exc:
        code = exc.exit_code
    except NO_ARGS_IS_HELP as exc:
        # `stylelab run` alone: the command's help is the answer, but nothing ran.
        out.print(exc.ctx.get_help() if exc.ctx else "", highlight=False, markup=False)
        code = 2
    except USAGE_ERROR as exc:
        # One line like every other bad input; `--help` has the full usage.
        command_path = exc.ctx.command_path if exc.ctx else "stylelab"
        _error(f"{exc.format_message()} (see: {command_path} --help)")
        code = 2
    except CLICK_ERROR as exc:
        _error(exc.format_message())
        code = exc.exit_code if isinstance(exc.exit_code, int) and exc.exit_code else 2
    except MemoryError:
        _error("out of memory: lower --size (or --style-scale, --batch)")
        code = 2
    except OSError as exc:  # a disk that filled up or went away mid-run: say so, no traceback
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        code = 2
    except (*ABORT, KeyboardInterrupt):
        err.print("interrupted")
        code = 130
    if argv is None:
        sys.exit(code)
    return code
