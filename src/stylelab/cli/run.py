"""Commands about one picture: run, info, layers, recipes, demo."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import StylelabError
from ..recipes import Recipe, load_recipe
from .app import OUTPUT, PAINT, app, check_print_every, err, out, recipe_overrides, with_recipe_options


def _default_output(content: str) -> Path:
    return Path(Path(content).stem + "-stylised.png")


@app.command("run", no_args_is_help=True)
@with_recipe_options
def run_command(
    content: str | None = typer.Argument(
        None, help="Content image (a photo).", show_default=False, metavar="CONTENT", rich_help_panel=PAINT
    ),
    style: list[str] | None = typer.Option(
        None, "--style", "-s", help="Style image(s); several are blended.", metavar="FILE...", rich_help_panel=PAINT
    ),
    style_blend_weights: list[float] | None = typer.Option(
        None,
        "--style-blend-weights",
        help="One weight per --style image, when several are blended (default: equal).",
        metavar="X...",
        rich_help_panel=PAINT,
    ),
    old_blend_weights: list[float] | None = typer.Option(
        None, "--style-weights", hidden=True, help="The old name of --style-blend-weights."
    ),
    masks: list[str] | None = typer.Option(
        None,
        "--masks",
        help="Regions: one mask per --style (white where it goes), or one colour-label image.",
        metavar="FILE...",
        rich_help_panel=PAINT,
    ),
    background: str | None = typer.Option(
        None,
        "--background",
        help="Regions: a style for what no mask covers (default: it keeps the content).",
        metavar="FILE",
        rich_help_panel=PAINT,
    ),
    style_masks: list[str] | None = typer.Option(
        None,
        "--style-masks",
        help="One mask per --style image: take its style only where the mask is white (none: the whole image).",
        metavar="FILE...",
        rich_help_panel=PAINT,
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="Result PNG (default: CONTENT-stylised.png); it carries the settings.",
        metavar="FILE.png",
        rich_help_panel=OUTPUT,
    ),
    recipe: str | None = typer.Option(
        None,
        "--recipe",
        "-r",
        help="Preset (stylelab recipes) or recipe .toml file; the options below change its settings "
        "(default: default).",
        metavar="NAME|FILE",
        rich_help_panel=PAINT,
    ),
    from_png: Path | None = typer.Option(
        None,
        "--from",
        help="Repeat the run that made this stylelab PNG (other options change it).",
        metavar="FILE.png",
        rich_help_panel=PAINT,
    ),
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        help="Also write a run folder: settings, metrics, snapshots, process picture.",
        metavar="DIR",
        rich_help_panel=OUTPUT,
    ),
    print_every: int | None = typer.Option(
        None,
        "--print-every",
        help="A plain progress line every N steps (default: a bar in a terminal, else about 20 lines a run).",
        metavar="N",
        rich_help_panel=OUTPUT,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress.", rich_help_panel=OUTPUT),
    step_stamps: bool = typer.Option(False, "--step-stamps", hidden=True, help="Benchmark hook: a line per step."),
    **settings,
):
    """Stylise CONTENT with one or more --style images.

    \b
    Examples:
      stylelab run photo.jpg --style starry.jpg -o out.png
      stylelab run photo.jpg -s a.jpg b.jpg --style-blend-weights 0.7 0.3 -o out.png
      stylelab run photo.jpg -s starry.jpg -r gatys --steps 300 --size 384 -o out.png

    Settings left out keep the recipe's (-r) values; [default recipe: ...] shows those of the recipe named default.
    """
    from .. import folders
    from ..engines import make_engine
    from ..images import save_png
    from ..records import RunRecord, is_stylelab_png, png_metadata, read_provenance
    from ..runs import RunWriter
    from ..task import Task

    base: str | Recipe = recipe or "default"
    styles = list(style or [])
    if old_blend_weights:
        err.print("note: --style-weights is now --style-blend-weights (blend weights of the style images)")
        style_blend_weights = style_blend_weights or old_blend_weights
    task = None
    if from_png is not None:
        info = read_provenance(from_png)
        base = recipe and load_recipe(recipe) or info["resolved"]
        previous = info["resolved_task"]
        if not (content or styles or style_blend_weights or masks or background or style_masks):
            task = previous
        # What is not given again is the previous run's: its styles, blend weights, masks, background.
        before = _as_options(previous)
        content = content or info["content"]
        if not styles:
            styles, style_blend_weights = before["styles"], style_blend_weights or before["weights"]
            style_masks = style_masks or before["style_masks"]
        masks = masks or before["masks"]
        background = background or (before["background"] if masks else None)
    if not content:
        raise StylelabError("give a CONTENT image (or --from a stylelab PNG)")
    if not styles:
        raise StylelabError("give at least one --style image")
    resolved = load_recipe(base, **recipe_overrides(settings))
    if task is None:
        # Stored as absolute paths, so `run --from` repeats the run from any folder.
        absolute = [str(Path(p).expanduser().resolve()) for p in styles]
        task = Task.of(
            str(Path(content).expanduser().resolve()),
            absolute,
            weights=style_blend_weights or None,
            masks=[str(Path(m).expanduser().resolve()) for m in masks] if masks else None,
            background=str(Path(background).expanduser().resolve()) if background else None,
            image_masks=[_whole_or_path(m) for m in style_masks] if style_masks else None,
        )
    output = output or _default_output(content)
    if output.suffix.lower() != ".png":
        raise StylelabError(f"the output must be a .png file (it carries the settings), not {output}")
    folders.check_output_file(output, is_stylelab_png)
    interrupted_at = output.with_name(f"{output.stem}-interrupted.png")
    folders.check_output_file(interrupted_at, is_stylelab_png, option="the image kept on Ctrl-C,")
    if run_dir is not None:
        folders.check_folder(run_dir, protect=(output, *[str(p) for p in _inputs(task)]))
    # Every input is decoded and checked, and the memory estimated, before anything is written.
    engine = make_engine(resolved)
    plan = engine.prepare([task], resolved)
    snapshots = None
    fast = resolved.engine == "fast"  # one pass: no steps, snapshots or progress to show
    if resolved.save_every and run_dir is None and not step_stamps and not fast:
        snapshots = SnapshotFiles(output, resolved.save_every, plan_total(plan))
    callbacks = []
    if run_dir is not None:
        callbacks.append(RunWriter(run_dir))
    if snapshots is not None:
        callbacks.append(snapshots)
    if step_stamps:
        callbacks.append(_step_stamp)
    if not quiet:
        err.print(describe_run(plan, engine, output), highlight=False, markup=False)
    started = time.time()
    with progress_sink(quiet or fast, print_every, plan) as sink:
        result = engine.run(plan, [*callbacks, *([sink] if sink else [])])[0]
    record = RunRecord.from_result(result, started)
    if result.status in ("interrupted", "cancelled"):
        if result.image is not None and result.steps:
            save_png(result.image, interrupted_at, png_metadata(record.info()))
            err.print(
                f"interrupted at step {result.steps} of {plan_total(plan)}: the image so far is in {interrupted_at} "
                f"(not a finished result); nothing written to {output}"
            )
        else:
            err.print(f"interrupted before the first step: nothing written to {output}")
        raise typer.Exit(130)
    save_png(result.image, output, png_metadata(record.info()))
    losses = "  ".join(f"{k} {v:.4g}" for k, v in result.losses.items())
    if result.status == "diverged":
        err.print(f"[yellow]warning:[/] {result.message}")
        err.print(f"wrote the last good image (step {result.steps}) to {output}")
        raise typer.Exit(3)
    if not quiet:
        how = (
            f"fast engine, {result.elapsed:.2f}s" if fast else f"{result.steps} steps, {result.elapsed:.1f}s; {losses}"
        )
        err.print(f"wrote {output} ({how})", highlight=False)
        if snapshots is not None and snapshots.written:
            err.print(f"snapshots: {snapshots.pattern} ({len(snapshots.written)} files)", highlight=False)
        if run_dir is not None:
            err.print(f"run folder: {run_dir}", highlight=False)


def _whole_or_path(mask: str) -> str | None:
    """A --style-masks value: ``none`` (the whole style image) or a mask file, as an absolute path."""
    return None if mask.lower() == "none" else str(Path(mask).expanduser().resolve())


def _as_options(task) -> dict:
    """A recorded task as the options of `run` that make it again: styles, blend weights, masks
    (one per style, or the one label image), background, style-image masks."""
    from ..task import BACKGROUND, LabelMask

    sets = [s for s in task.styles if s.mask is not BACKGROUND]
    masks = None
    if any(s.mask is not None for s in sets):
        labels = list(dict.fromkeys(s.mask.source for s in sets if isinstance(s.mask, LabelMask)))
        masks = labels or [s.mask for s in sets]
    own = [m for s in sets for m in (s.image_masks or [None] * len(s.images))]
    return {
        "styles": [img for s in sets for img in s.images],
        "weights": list(sets[0].weights) if len(sets) == 1 and sets[0].weights else None,
        "masks": masks,
        "background": next((s.images[0] for s in task.styles if s.mask is BACKGROUND), None),
        "style_masks": ["none" if m is None else m for m in own] if any(m is not None for m in own) else None,
    }


def _inputs(task) -> list:
    """The files a task reads (a run folder must not replace them)."""
    found = [task.content, *task.style_images]
    for s in task.styles:
        found.append(s.mask.source if hasattr(s.mask, "source") else s.mask)
        found.extend(s.image_masks or ())
    return [f for f in found if isinstance(f, (str, Path))]


def plan_total(plan) -> int:
    return 0 if plan.recipe.engine == "fast" else plan.recipe.total_steps


def describe_run(plan, engine, output: Path) -> str:
    """The run's first line: what it paints, how, on what."""
    from ..records import machine

    r = plan.recipe
    w, h = plan.items[0].size
    if r.engine == "fast":
        return (
            f"stylelab: {w}x{h} px, fast engine (one pass of a feed-forward model, strength {r.strength:g}), "
            f"on cpu ({machine()}) with {engine.precision} -> {output}"
        )
    scales = f" over {r.scales} scales" if r.scales > 1 else ""
    where = engine.device.type if engine.device.type != "cpu" else f"cpu ({machine()})"
    return (
        f"stylelab: {w}x{h} px, {plan_total(plan)} {r.optimizer} steps{scales}, {r.style_loss} style loss, "
        f"on {where} with {engine.precision} convolutions, {r.weights} weights -> {output}"
    )


class SnapshotFiles:
    """Snapshots beside -o when there is no run folder: OUT-step000050.png every --save-every steps
    (neural-style's -save_iter). Each carries stylelab's settings, so a later run may replace it."""

    def __init__(self, output: Path, save_every: int, total: int):
        from .. import folders
        from ..records import is_stylelab_png

        self.output = output
        self.pattern = output.with_name(f"{output.stem}-stepNNNNNN.png")
        self.written: list[Path] = []
        for step in range(0, total + 1, save_every):  # refused now if any is a file of the user's
            folders.check_output_file(self.path(step), is_stylelab_png, option="a snapshot file")

    def path(self, step: int) -> Path:
        return self.output.with_name(f"{self.output.stem}-step{step:06d}.png")

    def __call__(self, event) -> None:
        from ..events import Snapshot

        if isinstance(event, Snapshot) and event.item == 0:
            from ..images import save_png
            from ..records import png_metadata

            path = self.path(event.step)
            info = {"snapshot": event.step, "of": str(self.output), "losses": dict(event.losses)}
            save_png(event.image, path, png_metadata(info))
            self.written.append(path)


@contextlib.contextmanager
def progress_sink(quiet: bool, print_every: int | None, plan):
    """The progress to show: nothing (-q), plain lines (--print-every, or when stderr is not a
    terminal: logs, CI, cluster jobs), or a bar."""
    from ..progress import LogLines, ProgressBar

    if quiet:
        yield None
    elif print_every is not None or not sys.stderr.isatty():
        check_print_every(print_every)
        yield LogLines(print_every or max(1, plan_total(plan) // 20))
    else:
        with ProgressBar() as bar:
            yield bar


def _step_stamp(event) -> None:
    # `stylelab bench` times a fresh process by these lines' arrival: "N" when
    # step N is done, and "0" at the step-0 snapshot, emitted just before step 1
    # starts (the bench passes a --save-every larger than --steps to get it).
    from ..events import Snapshot, Step

    if isinstance(event, (Step, Snapshot)) and event.item == 0 and (isinstance(event, Step) or event.step == 0):
        sys.stderr.write(f"stylelab-step {event.step}\n")
        sys.stderr.flush()


@app.command("info")
def info_command(path: Path = typer.Argument(..., help="A PNG made by stylelab, or a run folder.")):
    """Show how a stylelab PNG (or a run folder) was made."""
    from ..records import checked_provenance, read_provenance

    if path.is_dir():
        run_json = path / "run.json"
        if not run_json.is_file():
            raise StylelabError(f"{path} is a folder without run.json: give a stylelab PNG or a run folder")
        try:
            info = checked_provenance(json.loads(run_json.read_text(encoding="utf-8")), str(run_json))
        except (OSError, ValueError, RecursionError) as exc:
            raise StylelabError(f"{run_json} cannot be read: {exc}".splitlines()[0]) from None
        again = f"stylelab run --from {path / 'result.png'} -o again.png"
    else:
        info = read_provenance(path)
        again = f"stylelab run --from {path} -o again.png"
    out.print(f"[bold]{escape(str(path))}[/]  made by stylelab {escape(str(info.get('version', '?')))}")
    out.print(f"content: {info.get('content')}", highlight=False, markup=False)
    task = info["resolved_task"]
    for i, s in enumerate(task.styles, 1):
        weights = f"  (blend weights {', '.join(f'{w:g}' for w in s.weights)})" if s.weights else ""
        where = f"  region mask {s.mask}" if s.mask is not None else ""
        if hasattr(s.mask, "source"):  # a colour of a label image
            where = f"  region: colour {s.mask.index + 1} of {s.mask.source}"
        elif s.mask is not None and not isinstance(s.mask, str):
            where = "  region: what no mask covers"
        if s.image_masks:
            where += "  style-image masks " + ", ".join(str(m) if m else "none" for m in s.image_masks)
        label = "styles: " if len(task.styles) == 1 else f"style set {i}: "
        out.print(f"{label} {', '.join(map(str, s.images))}{weights}{where}", highlight=False, markup=False)
    for key in ("status", "steps", "elapsed", "device", "precision", "machine"):
        if info.get(key) not in (None, ""):
            out.print(f"{key}: {info[key]}", highlight=False, markup=False)
    if isinstance(info.get("peak_memory"), int) and info["peak_memory"]:
        out.print(f"peak memory: {info['peak_memory'] / 2**20:.0f} MiB")
    if info.get("losses"):
        out.print("losses:  " + "  ".join(f"{k} {v:.4g}" for k, v in info["losses"].items()), highlight=False)
    out.print("\n[bold]recipe[/]")
    out.print(info["resolved"].to_toml(), highlight=False, markup=False)
    out.print(f"repeat with: {again}", highlight=False, markup=False)


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
