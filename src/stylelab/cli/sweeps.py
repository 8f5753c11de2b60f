"""Commands that compare: sweep (local or Ray), report, metrics."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from ..errors import StylelabError
from .app import app, err, out, recipe_overrides, with_recipe_options


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
    from .. import experiments, sweep

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
        # The same planning and checks as the real run, so the two agree on what would happen.
        todo = sweep.pending(specs, folder / "runs", redo)
        batches = sweep.sweep_batches(todo, batch)
        sweep.check_sweep(folder, batches, local=executor == "local")
        out.print(f"{folder}: {len(specs)} runs, {len(specs) - len(todo)} finished, {len(batches)} batches to run")
        for b in batches:
            out.print(f"  batch of {len(b.runs)}: " + ", ".join(spec.name for spec in b.runs), highlight=False)
        return
    from ..progress import SweepProgress

    todo = sweep.pending(specs, folder / "runs", redo)
    runner = _sweep_executor(executor, address, shared_dir, num_cpus, cpus_per_task, gpus_per_task, retries, folder)
    if runner is not None and todo:
        runner.connect()  # before the experiment folder is written: an unreachable cluster costs nothing
        if not quiet:
            from ..ray_executor import describe

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
        from ..report import write_report

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
    content: str = typer.Option(..., "--content", "-c", help="The content image."),
    style: list[str] = typer.Option(..., "--style", "-s", help="The style image(s)."),
    style_weights: list[float] | None = typer.Option(None, "--style-weights", help="Blend weights of the styles."),
    size: int | None = typer.Option(
        None,
        "--size",
        help="Measure with the longest side at N px (default: the run's size for a stylelab PNG, else 512).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Content and style distance of IMAGE, by stylelab's own yardstick (metrics.py)."""
    from ..metrics import DEFAULT_SIZE, distances
    from ..records import is_stylelab_png, read_provenance

    if style_weights and len(style_weights) != len(style):
        raise StylelabError(f"--style-weights has {len(style_weights)} values for {len(style)} styles")
    if size is None:
        size = read_provenance(image)["resolved"].size if is_stylelab_png(image) else DEFAULT_SIZE
    d = distances(image, content, style, style_weights or None, size=size)
    if as_json:
        out.print_json(json.dumps(d.as_dict()))
    else:
        out.print(f"content distance {d.content:.4f}  style distance {d.style:.4f}", highlight=False)
