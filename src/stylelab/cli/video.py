"""``stylelab video``: paint a clip in one style, stable from frame to frame."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer

from ..errors import StylelabError
from ..recipes import Recipe, load_recipe
from .app import OUTPUT, PAINT, app, check_print_every, err, recipe_overrides, with_recipe_options

VIDEO = "Video"
RAY_CHUNK_FRAMES = 48  # 2 s at 24 fps: a seam every 2 s, and a chunk is minutes of work a task


def _default_output(source: str) -> Path:
    path = Path(source.rstrip("/\\"))
    return Path(f"{path.stem if path.suffix else path.name}-stylised.mp4")


def _video_defaults(func):
    """The generated --temporal-weight option says the video command's own default."""
    from ..video.defaults import VIDEO_TEMPORAL_WEIGHT

    option = func.__signature__.parameters["temporal_weight"].default
    option.help = (
        f"Weight of the temporal term (the previous frame carried along the flow); 0 paints every frame on its "
        f"own. [default: {VIDEO_TEMPORAL_WEIGHT:g}, or the recipe's when it sets one]"
    )
    return func


@app.command("video")
@_video_defaults
@with_recipe_options
def video_command(
    source: str | None = typer.Argument(
        None, help="A video (.mp4, .mov, .mkv, anything FFmpeg reads) or a folder of frames.", show_default=False
    ),
    style: list[str] | None = typer.Option(
        None, "--style", "-s", help="Style image(s); several are blended.", rich_help_panel=PAINT
    ),
    style_blend_weights: list[float] | None = typer.Option(
        None, "--style-blend-weights", help="One weight per --style image (default: equal).", rich_help_panel=PAINT
    ),
    masks: list[str] | None = typer.Option(
        None,
        "--masks",
        help="Regions: one mask per --style (white where it goes), or one colour-label image, for every frame.",
        rich_help_panel=PAINT,
    ),
    background: str | None = typer.Option(
        None, "--background", help="Regions: a style for what no mask covers.", rich_help_panel=PAINT
    ),
    recipe: str | None = typer.Option(
        None, "--recipe", "-r", help="Preset name or recipe .toml (default: default).", rich_help_panel=PAINT
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-o",
        help="The painted video (.mp4, .mov, .mkv) or a folder of frames (a name without suffix); "
        "default: SOURCE-stylised.mp4. Replaced only if stylelab video wrote it.",
        rich_help_panel=OUTPUT,
    ),
    run_dir: Path | None = typer.Option(
        None,
        "--run-dir",
        help="The run folder: frames as they finish, frames.csv, video.json; the same command goes on from "
        "where a stopped run got to. Default: OUTPUT-run beside the output.",
        rich_help_panel=OUTPUT,
    ),
    restart: bool = typer.Option(
        False,
        "--restart",
        help="Paint afresh a run folder that holds frames of other settings.",
        rich_help_panel=OUTPUT,
    ),
    frame_steps: int | None = typer.Option(
        None,
        "--frame-steps",
        help="Steps for each frame after the first, which starts from the previous one carried along the flow "
        "(default: 40% of --steps, measured to reach per-frame stylisation's quality).",
        rich_help_panel=VIDEO,
    ),
    flow: str = typer.Option("dis", "--flow", help="Optical flow: dis or farneback.", rich_help_panel=VIDEO),
    start: float | None = typer.Option(None, "--start", help="Start at this time (seconds).", rich_help_panel=VIDEO),
    end: float | None = typer.Option(None, "--end", help="Stop before this time (seconds).", rich_help_panel=VIDEO),
    max_frames: int | None = typer.Option(
        None, "--max-frames", help="Paint at most this many frames (try a piece first).", rich_help_panel=VIDEO
    ),
    fps: float | None = typer.Option(
        None, "--fps", help="Frame rate of a folder of frames (default 24).", rich_help_panel=VIDEO
    ),
    chunk_frames: int | None = typer.Option(
        None,
        "--chunk-frames",
        help="Paint in chunks of N frames, each starting at the previous chunk's last frame (a fresh start, "
        "so a seam there); with --executor ray they are painted side by side (default there: 48).",
        rich_help_panel=VIDEO,
    ),
    executor: str = typer.Option(
        "local", "--executor", help="local (here) or ray (chunks as Ray tasks; docs/ray.md).", rich_help_panel=VIDEO
    ),
    address: str | None = typer.Option(
        None,
        "--address",
        help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray instance).",
        rich_help_panel=VIDEO,
    ),
    cpus_per_task: int | None = typer.Option(
        None, "--cpus-per-task", help="Ray: CPUs (and torch threads) per chunk task.", rich_help_panel=VIDEO
    ),
    demo: bool = typer.Option(
        False,
        "--demo",
        help="Paint a clip made from a built-in photo (no SOURCE, no --style needed).",
        rich_help_panel=VIDEO,
    ),
    print_every: int | None = typer.Option(
        None,
        "--print-every",
        help="Plain progress lines, and one every N steps (default: bars in a terminal, else a line per frame).",
        rich_help_panel=OUTPUT,
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress.", rich_help_panel=OUTPUT),
    **settings,
):
    """Paint a video (or a folder of frames) with --style, each frame carried from the last along the
    optical flow, with a temporal loss (Ruder et al. 2016). --temporal-weight 0 paints every frame on
    its own, for comparison.

    Example: stylelab video clip.mp4 --style starry.jpg --size 384 -o painted.mp4
    """
    from ..video.clip_run import default_run_dir, paint_into, prepare_clip
    from ..video.pipeline import VIDEO_TEMPORAL_WEIGHT, ClipSpec

    check_print_every(print_every)
    styles = list(style or [])
    if demo:
        if source:
            raise StylelabError("--demo paints a generated clip: give no SOURCE with it")
        output = output or Path("stylelab-video-demo.mp4")
    elif not source:
        raise StylelabError("give a SOURCE video or folder of frames (or --demo)")
    if not styles and not demo:
        raise StylelabError("give at least one --style image")
    runner = _runner(executor, address, cpus_per_task)
    if runner is not None and chunk_frames is None:
        chunk_frames = RAY_CHUNK_FRAMES
    overrides = recipe_overrides(settings)
    base: str | Recipe = recipe or "default"
    resolved = load_recipe(base, **overrides)
    if "temporal_weight" not in overrides and resolved.temporal_weight == 0:
        # A still's recipe has no temporal term; a video gets the measured weight unless told
        # otherwise (--temporal-weight 0: every frame on its own).
        resolved = resolved.replace(temporal_weight=VIDEO_TEMPORAL_WEIGHT)
    output = output or _default_output(source)
    run_dir = run_dir or default_run_dir(output)
    if demo:
        source, styles = _demo_inputs(run_dir, styles)
    spec = ClipSpec(
        str(Path(source).expanduser().resolve()),
        tuple(str(Path(s).expanduser().resolve()) for s in styles),
        resolved,
        blend_weights=tuple(style_blend_weights) if style_blend_weights else None,
        masks=tuple(str(Path(m).expanduser().resolve()) for m in masks) if masks else None,
        background=str(Path(background).expanduser().resolve()) if background else None,
        start=start,
        end=end,
        max_frames=max_frames,
        fps=fps,
        frame_steps=frame_steps,
        flow=flow,
        chunk_frames=chunk_frames,
    )
    engine, plan, run, output, k, info = prepare_clip(spec, run_dir, output, restart=restart, own_inputs=demo)
    if not quiet:
        err.print(_describe(plan, engine, output, run.folder, k), highlight=False, markup=False)
    with _progress(quiet, print_every) as sink:
        outcome = paint_into(
            engine, plan, run, output, k, info, sinks=[sink] if sink else [], restart=restart, runner=runner
        )
    for note in outcome.notes:
        err.print(f"note: {note}", highlight=False, markup=False)
    if outcome.status in ("interrupted", "cancelled"):
        left = f"frames 1-{outcome.frames_done} are" if outcome.frames_done else "no frame is"
        then = (
            "to write the video"
            if outcome.frames_done >= outcome.total
            else f"to go on from frame {outcome.frames_done + 1}"
        )
        err.print(
            f"{outcome.status} after frame {outcome.frames_done} of {outcome.total}: {left} saved in {run.folder}; "
            f"run the same command again {then}",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(130)
    if not quiet:
        err.print(
            f"wrote {outcome.output} ({outcome.total} frames; {outcome.painted} painted in {outcome.seconds:.0f}s"
            f"{f', {outcome.resumed_from} kept from the run folder' if outcome.resumed_from else ''}); "
            f"run folder: {run.folder}",
            highlight=False,
            markup=False,
        )
    if outcome.diverged:
        err.print(
            f"[yellow]warning:[/] frame(s) {', '.join(map(str, outcome.diverged[:10]))} diverged (the last good "
            "image was kept); lower --lr or --style-weight"
        )
        raise typer.Exit(3)


def _describe(plan, engine, output: Path, folder: Path, kept: int) -> str:
    spec = plan.spec
    w, h = plan.size
    fw, fh = plan.frame_size
    how = (
        f"frame 1: {spec.steps_for(1)} steps, later frames: {spec.later_steps} steps from the last one carried by "
        f"{spec.flow} optical flow, temporal weight {spec.recipe.temporal_weight:g}"
        if spec.temporal
        else f"every frame on its own: {spec.recipe.steps} steps (temporal weight 0)"
    )
    again = f"; frames 1-{kept} kept from the run folder" if kept else ""
    return (
        f"stylelab video: {plan.count} frames at {float(plan.fps):g} fps, {fw}x{fh} painted at {w}x{h}; {how}; "
        f"{spec.recipe.optimizer} on {engine.device.type} -> {output} (run folder {folder}{again})"
    )


def _runner(executor: str, address: str | None, cpus_per_task: int | None):
    """None (paint here) or a Ray runner; Ray's options without --executor ray are a mistake."""
    if executor == "local":
        given = {"--address": address, "--cpus-per-task": cpus_per_task}
        if any(v is not None for v in given.values()):
            raise StylelabError(f"{next(k for k, v in given.items() if v is not None)} goes with --executor ray")
        return None
    if executor != "ray":
        raise StylelabError(f"--executor is local or ray, not {executor!r}")
    from ..ray_executor import RayExecutor
    from ..video.chunks import ray_runner

    return ray_runner(RayExecutor(address, cpus_per_task=cpus_per_task))


@contextlib.contextmanager
def _progress(quiet: bool, print_every: int | None):
    from ..video.progress import ClipBar, ClipLines

    if quiet:
        yield None
    elif print_every is not None or not sys.stderr.isatty():
        yield ClipLines(print_every)
    else:
        with ClipBar() as bar:
            yield bar


def _demo_inputs(run_dir: Path, styles: list[str]) -> tuple[str, list[str]]:
    """The demo's clip (``synthetic.make_clip``: a camera move over a built-in photo, with a tone) and,
    unless --style is given, a built-in style, written once into the run folder's inputs/."""
    from .. import folders
    from ..video.run_folder import DEMO_CLIP, DEMO_STYLE, VIDEO_LAYOUT, is_video_folder

    folder = folders.check_folder(
        run_dir, layout=VIDEO_LAYOUT, recognise=is_video_folder, what="video run folder", option="--run-dir"
    )
    clip_path, style_path = folder / "inputs" / DEMO_CLIP, folder / "inputs" / DEMO_STYLE
    if not clip_path.exists():
        from ..video.synthetic import make_clip, write_clip

        clip_path.parent.mkdir(parents=True, exist_ok=True)
        write_clip(clip_path, make_clip(24, (192, 128), seed=0), 24, audio_hz=440.0)
    if not styles:
        if not style_path.exists():
            from ..demo import waves
            from ..images import save_png

            save_png(waves(256), style_path)
        styles = [str(style_path)]
    return str(clip_path), styles
