"""Commands that compare: sweep (local or Ray), report, metrics."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.markup import escape

from ..errors import StylelabError
from .app import (
    CLUSTER,
    COMPARE,
    OPTIMISER,
    OUTPUT,
    RUNNING,
    app,
    check_print_every,
    err,
    out,
    recipe_overrides,
    with_recipe_options,
)


@app.command("sweep", no_args_is_help=True)
@with_recipe_options(defaults=None)
def sweep_command(
    source: str = typer.Argument(
        ..., help="An experiment .toml file, or a CONTENT image.", metavar="FILE.toml|CONTENT", rich_help_panel=COMPARE
    ),
    styles: list[str] | None = typer.Option(
        None,
        "--styles",
        help="Style images or folders (replace the file's).",
        metavar="FILE|DIR...",
        rich_help_panel=COMPARE,
    ),
    content: list[str] | None = typer.Option(
        None, "--content", help="Content image(s), replacing the file's.", metavar="FILE...", rich_help_panel=COMPARE
    ),
    recipes: list[str] | None = typer.Option(
        None, "--recipes", help="Presets or recipe files to compare.", metavar="NAME|FILE...", rich_help_panel=COMPARE
    ),
    set_: list[str] | None = typer.Option(
        None,
        "--set",
        help="Vary a setting: KEY=V1,V2 (several --set: every combination; one value: set it for every run).",
        metavar="KEY=V1,V2...",
        rich_help_panel=COMPARE,
    ),
    budget: float | None = typer.Option(
        None,
        "--budget",
        help="Scale each recipe's own steps and snapshot interval (0.1: a tenth of each), where --steps gives "
        "every recipe the same number.",
        metavar="X",
        rich_help_panel=OPTIMISER,
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Experiment folder (default ./experiments/NAME).",
        metavar="DIR",
        rich_help_panel=OUTPUT,
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Experiment name (default: the file's or content's name).",
        metavar="NAME",
        rich_help_panel=OUTPUT,
    ),
    report: bool = typer.Option(
        False, "--report", help="Write report.html and report.pdf at the end.", rich_help_panel=OUTPUT
    ),
    print_every: int | None = typer.Option(
        None,
        "--print-every",
        help="Plain lines: one per finished run, and one every N steps of each run (default: bars in a terminal, "
        "else a line per finished run).",
        metavar="N",
        rich_help_panel=OUTPUT,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress.", rich_help_panel=OUTPUT),
    batch: int | None = typer.Option(
        None, "--batch", min=1, help="At most N styles optimised together.", metavar="N", rich_help_panel=RUNNING
    ),
    redo: bool = typer.Option(
        False, "--redo", help="Run again finished runs whose settings changed.", rich_help_panel=RUNNING
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="List the runs and batches, with the real run's checks; run nothing.",
        rich_help_panel=RUNNING,
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="local (here, batch after batch) or ray (docs/ray.md).",
        metavar="local|ray",
        rich_help_panel=CLUSTER,
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray instance).",
        metavar="ADDRESS",
        rich_help_panel=CLUSTER,
    ),
    shared_dir: bool = typer.Option(
        False,
        "--shared-dir",
        help="Ray workers write run folders themselves (the folder is on a file system all nodes mount).",
        rich_help_panel=CLUSTER,
    ),
    num_cpus: int | None = typer.Option(
        None,
        "--num-cpus",
        min=1,
        help="CPUs of the local Ray instance (default: all).",
        metavar="N",
        rich_help_panel=CLUSTER,
    ),
    cpus_per_task: int | None = typer.Option(
        None,
        "--cpus-per-task",
        min=1,
        help="CPUs and torch threads per Ray task without a GPU (default: the CPUs shared among the tasks).",
        metavar="N",
        rich_help_panel=CLUSTER,
    ),
    gpus_per_task: float | None = typer.Option(
        None,
        "--gpus-per-task",
        min=0,
        help="GPUs per Ray task (default 1 where the cluster has GPUs; 0: CPUs only).",
        metavar="X",
        rich_help_panel=CLUSTER,
    ),
    retries: int = typer.Option(
        2, "--retries", min=0, help="Times a failed Ray task is tried again.", metavar="N", rich_help_panel=CLUSTER
    ),
    **settings,
):
    """Run content x styles x recipes x --set values into one experiment folder (resumable).

    \b
    Examples:
      stylelab sweep photo.jpg --styles paintings/ --recipes default gatys --set style_weight=2,10
      stylelab sweep examples/seed-study.toml --size 128 --budget 0.1 --report
      stylelab sweep study.toml --dry-run

    Settings left out keep each recipe's own values; a setting given here applies to every run.
    """
    from .. import experiments, sweep

    check_print_every(print_every)
    overrides = recipe_overrides(settings)
    grid = experiments.parse_set(set_)
    # One value is a setting for every run, not a dimension (so it does not lengthen the names).
    overrides.update({k: v[0] for k, v in grid.items() if len(v) == 1})
    grid = {k: v for k, v in grid.items() if len(v) > 1}
    if source.endswith(".toml"):
        exp = experiments.load(
            source,
            name=name,
            out=out_dir,
            settings=overrides,
            grid=grid,
            contents=content,
            styles=styles,
            budget=budget,
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
            budget=budget,
        )
    folder = sweep.experiment_folder(exp, out_dir)
    specs = exp.plan()
    runner = _sweep_executor(executor, address, shared_dir, num_cpus, cpus_per_task, gpus_per_task, retries, folder)
    todo = sweep.pending(specs, folder / "runs", redo)
    if dry_run:
        # The real run's planning and checks (run_sweep: pending, sweep_batches, check_sweep), so
        # the two agree; a cluster's batches need its memory, so they are planned without it here.
        batches = sweep.sweep_batches(todo, batch)
        sweep.check_sweep(folder, batches, local=runner is None)
        _note_unusual(exp)
        out.print(f"{folder}: {len(specs)} runs, {len(specs) - len(todo)} finished, {len(batches)} batches to run")
        for b in batches:
            r = b.recipe
            out.print(
                f"  batch of {len(b.runs)} ({r.steps} steps, {r.size} px): " + ", ".join(spec.name for spec in b.runs),
                highlight=False,
            )
        return
    if not todo:
        err.print(f"{folder}: all {len(specs)} runs are finished; nothing to run", highlight=False)
        _next(folder, report, quiet)
        return
    if runner is not None:
        runner.connect()  # before the experiment folder is written: an unreachable cluster costs nothing
        if not quiet:
            from ..ray_executor import describe

            err.print(describe(runner), highlight=False)
    if not quiet:
        _note_unusual(exp)
    options = dict(out=folder, max_batch=batch, redo=redo, executor=runner)
    if quiet:
        summary = sweep.run_sweep(exp, **options)
    else:
        from ..progress import SweepProgress

        lines = print_every is not None or not sys.stderr.isatty()
        with SweepProgress(
            todo, description=f"{exp.name}: {len(todo)} runs", lines=lines, print_every=print_every
        ) as progress:
            summary = sweep.run_sweep(
                exp, **options, events=progress, on_run=progress.run_finished, on_failed=progress.run_failed
            )
    done = len(summary.written)
    err.print(
        f"{folder}: {done} run(s) written in {summary.elapsed:.0f}s, {summary.skipped} already done"
        + (f", {len(summary.diverged)} diverged (see their run.json)" if summary.diverged else ""),
        highlight=False,
    )
    if summary.interrupted:
        err.print(f"stopped with {summary.remaining} run(s) left; the same command continues")
        raise typer.Exit(130)
    for run_name, why in summary.failed:
        err.print(f"[red]failed:[/] {run_name}: {escape(why)}", highlight=False)
    if summary.failed:
        err.print(f"{len(summary.failed)} run(s) failed; the same command tries them again")
        raise typer.Exit(1)
    _next(folder, report, quiet)


def _next(folder: Path, report: bool, quiet: bool) -> None:
    if report:
        from ..report import write_report

        paths = write_report(folder)
        err.print("report: " + ", ".join(str(p) for p in paths), highlight=False)
    elif not quiet:
        err.print(f"next: stylelab report {folder}", highlight=False)


def _note_unusual(exp) -> None:
    """Say which runs got a weight or step size far from their recipe's own (unusual.py)."""
    from ..unusual import FACTOR, unusual_values

    found = unusual_values(exp)
    if found:
        err.print(
            f"note: {len(found)} value(s) more than {FACTOR:g}x from the recipe's own, in units that differ "
            "by the recipe's loss convention: " + "; ".join(map(str, found)) + ". To compare like with like, "
            "give each recipe its own value (inline recipes in an experiment file).",
            highlight=False,
            markup=False,
        )


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
    from ..ray_executor import RayExecutor

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
    from ..report import write_report

    paths = write_report(folder)
    for p in paths:
        out.print(str(p), highlight=False)


@app.command("metrics", no_args_is_help=True)
def metrics_command(
    image: str = typer.Argument(..., help="The image to measure (any tool's output)."),
    content: str | None = typer.Option(
        None, "--content", "-c", help="The content image (default: a stylelab PNG's own)."
    ),
    style: list[str] | None = typer.Option(
        None, "--style", "-s", help="The style image(s) (default: a stylelab PNG's own, with its regions)."
    ),
    style_weights: list[float] | None = typer.Option(None, "--style-weights", help="Blend weights of the styles."),
    masks: list[str] | None = typer.Option(
        None, "--masks", help="Regions: one mask per --style, or one colour-label image; each measured by its style."
    ),
    background: str | None = typer.Option(None, "--background", help="Regions: the style of what no mask covers."),
    size: int | None = typer.Option(
        None,
        "--size",
        help="Measure with the longest side at N px (default: the run's size for a stylelab PNG, else 512).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Content distance of IMAGE and its style distance under each style loss (gram, moments, swd), by
    stylelab's own yardstick (metrics.py); regions each by their own style."""
    from ..metrics import DEFAULT_SIZE, task_distances
    from ..records import is_stylelab_png, read_provenance
    from ..task import Task

    info = read_provenance(image) if is_stylelab_png(image) else None
    if style_weights and style and len(style_weights) != len(style):
        raise StylelabError(f"--style-weights has {len(style_weights)} values for {len(style)} styles")
    if info is not None and not (style or masks or background or style_weights):
        task = info["resolved_task"]  # the run's own inputs: its blend weights and regions too
        task = Task(content, task.styles) if content else task
    else:
        content = content or (info["content"] if info is not None else None)
        if not content or not style:
            raise StylelabError("give --content and --style (or measure a stylelab PNG, which names its own)")
        weights = list(style_weights) if style_weights and len(style) > 1 else None
        task = Task.of(content, list(style), weights=weights, masks=masks or None, background=background)
    if size is None:
        size = info["resolved"].size if info is not None else DEFAULT_SIZE
    d = task_distances(image, task, size=size)
    if as_json:
        out.print_json(json.dumps(d.as_dict()))
    else:
        by_loss = "  ".join(f"{kind} {v:.4f}" for kind, v in d.by_loss.items())
        out.print(f"content distance {d.content:.4f}  style distance {d.style:.4f}  ({by_loss})", highlight=False)
