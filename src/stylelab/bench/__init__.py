"""``stylelab bench``: stylelab measured beside pastiche, in one run, on one machine.

Sections (``BenchOptions.sections``), each explained in benchmarks/README.md:

* ``startup``: fresh process to the first optimisation step (``sections.startup``);
* ``steps``: seconds per step and the efficiency ratio (``sections.steps``, ``flops``);
* ``quality``: time to pastiche's 300-step quality (``quality.quality``);
* ``batch``: four styles batched against one by one (``sections.batch``);
* ``memory``: peak resident memory of a fresh process (``sections.memory``).

Library code: progress goes to the ``log`` callable, results come back as a
JSON-ready dict; the CLI prints and writes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import StylelabError
from . import machine
from .report import summary

SECTIONS = ("startup", "steps", "quality", "batch", "memory")
CONTENT = "content/tubingen.jpg"
STYLE = "style/starry_night.jpg"


@dataclass
class BenchOptions:
    """Every knob of a benchmark run; ``quick()`` gives the short variant."""

    content: Path
    style: Path
    styles: tuple[Path, ...]  # the batch section's styles
    scratch: Path  # outputs of the runs (images), kept for inspection
    sections: tuple[str, ...] = SECTIONS
    device: str = "cpu"
    recipe: str = "default"
    repeats: int = 3
    peer: bool = True  # also run pastiche
    max_busy: float = 0.5  # wait while others keep more cores than this busy...
    max_wait: float = 60.0  # ...but no longer than this before each measurement
    startup_size: int = 512
    step_sizes: tuple[int, ...] = (256, 512)
    optimizers: tuple[str, ...] = ("lbfgs", "adam")
    steps_per_run: int = 8
    warmup: int = 2  # steps left out of each step-time run
    conv_min_time: float = 0.05  # seconds each convolution is timed for per direction, layout and round...
    conv_batch_time: float = 0.005  # ...in batches this long, the best counting (flops.time_batches)
    quality_size: int = 256
    quality_peer_steps: int = 300
    quality_style_weight: float | None = None
    quality_every: int = 10
    batch_size: int = 256
    batch_steps: int = 20
    memory_sizes: tuple[int, ...] = (512, 1024)
    peer_memory_sizes: tuple[int, ...] = (512, 1024)

    @property
    def tools(self) -> tuple[str, ...]:
        return ("stylelab", "pastiche") if self.peer else ("stylelab",)

    def quick(self) -> BenchOptions:
        """Minutes instead of half an hour: one repeat, small sizes, no 1024 px pastiche."""
        return dataclasses.replace(
            self,
            repeats=1,
            step_sizes=(256,),
            steps_per_run=5,
            batch_steps=8,
            memory_sizes=(512,),
            peer_memory_sizes=(512,),
            sections=tuple(s for s in self.sections if s != "quality"),
        )


def find_images(images_dir: Path, content=None, style=None) -> tuple[Path, Path, tuple[Path, ...]]:
    """The content, the style and the batch styles; StylelabError naming what is missing."""
    images_dir = Path(images_dir)
    content = Path(content) if content else images_dir / CONTENT
    style = Path(style) if style else images_dir / STYLE
    missing = [str(p) for p in (content, style) if not p.is_file()]
    if missing:
        raise StylelabError(
            f"benchmark image(s) not found: {', '.join(missing)}; give --images DIR holding {CONTENT} "
            f"and {STYLE}, or --content/--style"
        )
    style_dir = style.parent
    styles = tuple(sorted(p for p in style_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")))[:4]
    return content, style, styles


def run(opts: BenchOptions, command: str = "", log: Callable[[str], None] = lambda _: None) -> dict:
    """Run the chosen sections; returns everything measured, JSON-ready."""
    import torch

    from ..engine import resolve_device
    from . import quality, sections

    unknown = [s for s in opts.sections if s not in SECTIONS]
    if unknown:
        raise StylelabError(f"unknown benchmark section {unknown[0]!r}; choose from {', '.join(SECTIONS)}")
    if opts.peer and importlib.util.find_spec("pastiche") is None:
        raise StylelabError("pastiche is not installed: pip install pastiche, or run with --no-peer")
    if "batch" in opts.sections and len(opts.styles) < 2:
        raise StylelabError(f"the batch section needs several styles next to {opts.style}")
    device = resolve_device(opts.device)
    opts = dataclasses.replace(opts, device=str(device))
    opts.scratch.mkdir(parents=True, exist_ok=True)
    loads: list[dict] = []

    def quiet() -> dict:
        load = machine.wait_quiet(opts.max_busy, opts.max_wait, log)
        loads.append(load)
        return load

    ctx = sections.Context(log, quiet)
    results = {
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine.describe(torch.device(device)),
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()},
        "sections": {},
    }
    runners = {
        "startup": sections.startup,
        "steps": sections.steps,
        "quality": quality.quality,
        "batch": sections.batch,
        "memory": sections.memory,
    }
    t0 = time.perf_counter()
    for name in SECTIONS:
        if name in opts.sections:
            log(f"{name}:")
            results["sections"][name] = runners[name](opts, ctx)
    results["elapsed"] = time.perf_counter() - t0
    results["load"] = summary([x["load1"] for x in loads])
    results["busy_cores"] = summary([x["busy_cores"] for x in loads])
    return results
