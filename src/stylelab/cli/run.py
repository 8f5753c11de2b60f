"""Commands about one picture: run, info, layers, recipes, demo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from ..errors import StylelabError
from ..recipes import Recipe, load_recipe
from .app import app, err, out, recipe_overrides, with_recipe_options


def _default_output(content: str) -> Path:
    return Path(Path(content).stem + "-stylised.png")


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
    from .. import folders
    from ..images import load_rgb
    from ..runs import RunWriter, is_stylelab_png, png_metadata, provenance, read_provenance

    base: str | Recipe = recipe or "default"
    styles = list(style or [])
    if from_png is not None:
        info = read_provenance(from_png)
        base = recipe and load_recipe(recipe) or info["resolved"]
        content = content or info["content"]
        styles = styles or list(info["styles"])
    if not content:
        raise StylelabError("give a CONTENT image (or --from a stylelab PNG)")
    if not styles:
        raise StylelabError("give at least one --style image")
    resolved = load_recipe(base, **recipe_overrides(settings))
    # Every input is checked before any work starts, so a bad one costs nothing.
    load_rgb(content, what=f"content {content}")
    for i, path in enumerate(styles, 1):
        load_rgb(path, what=f"style {path}" if len(styles) == 1 else f"style {i} ({path})")
    output = output or _default_output(content)
    if output.suffix.lower() != ".png":
        raise StylelabError(f"the output must be a .png file (it carries the settings), not {output}")
    folders.check_output_file(output, is_stylelab_png)
    if run_dir is not None:
        folders.check_folder(run_dir, protect=(output, content, *styles))
    # Stored as absolute paths, so `run --from` repeats the run from any folder.
    content, styles = str(Path(content).resolve()), [str(Path(s).resolve()) for s in styles]
    callbacks = []
    if run_dir is not None:
        callbacks.append(RunWriter(run_dir, content, styles))
    if step_stamps:
        callbacks.append(_step_stamp)
    from ..engine import stylize_one
    from ..progress import ProgressBar

    if quiet:
        result = stylize_one(content, styles, resolved, callbacks=callbacks)
    else:
        with ProgressBar() as bar:
            result = stylize_one(content, styles, resolved, callbacks=[*callbacks, bar])
    if result.status == "cancelled":
        err.print(f"cancelled after {result.steps} steps: nothing written to {output}")
        raise typer.Exit(130)
    from ..images import save_png

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
    from ..events import Snapshot, Step

    if isinstance(event, (Step, Snapshot)) and event.item == 0 and (isinstance(event, Step) or event.step == 0):
        sys.stderr.write(f"stylelab-step {event.step}\n")
        sys.stderr.flush()


@app.command("info")
def info_command(png: Path = typer.Argument(..., help="A PNG made by stylelab.")):
    """Show how a stylelab PNG was made."""
    from ..runs import read_provenance

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
    out.print(info["resolved"].to_toml(), highlight=False, markup=False)
    out.print(f"repeat with: stylelab run --from {png} -o again.png")


@app.command("layers")
def layers_command(
    size: int = typer.Option(512, "--size", help="Input size for the shapes column (square)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
):
    """List VGG19's layers under every naming convention, with shapes and receptive fields."""
    from ..layers import table as layer_table
    from ..recipes import MAX_SIZE

    if not 16 <= size <= MAX_SIZE:
        raise StylelabError(f"--size must be between 16 and {MAX_SIZE} pixels, not {size}")
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
    from ..recipes import preset_names, preset_summary, recipe_source

    if name:
        text, origin = recipe_source(name)
        load_recipe(name)  # a file that is not a valid recipe is refused, not printed
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


@app.command("demo")
def demo_command(
    out_dir: Path = typer.Option(Path("stylelab-demo"), "--out", "-o", help="Where to write the demo."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
):
    """Stylise a built-in photo in several built-in styles; no files needed."""
    from ..demo import run_demo

    run_demo(out_dir, quiet=quiet)
