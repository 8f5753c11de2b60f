"""Prints (``--tile``): peak memory and time per pixel-step, tiled against untiled, and the README's 4096 px picture.

    python benchmarks/prints.py bench [--sizes 1024 2048 4096] [--steps 4] [--largest-steps 10] [--json F]
    python benchmarks/prints.py picture [--size 4096] [--scales 8] [--steps 6] [--style mosaic-large]

``bench`` runs each (size, mode) in a fresh process (peak RSS: ``ru_maxrss`` of
the child, from ``os.wait4``; the whole process, network and all): ``whole``
(``--tile none``) where its estimate fits the memory free, and ``tiled`` with
the tiles a ``--budget-gib`` print of the largest size gets from ``--tile auto``
(the same tile side at every size, so the smaller sizes show the cost of
tiling where untiled fits), the two in turns (``--repeats``) so that both see
the same minutes of a shared machine's load. Time per step: the median of the
steps after the first; per pixel-step: that over the image's pixels. The
largest size runs ``--largest-steps``, enough for L-BFGS's bounded history to
fill (a shorter run understates its memory); the others ``--steps``, which
leaves their 20 pairs mostly empty (each pair: 24 bytes a pixel). The content is
scikit-image's coffee cropped to 4:3, the style the demo's generated mosaic:
nothing from ../shared/images.

``picture`` paints coffee at ``--size`` through ``--scales`` coarse-to-fine
sizes under ``--tile auto`` within ``--budget-gib``, and writes
docs/images/print-4096.jpg (the whole result, downscaled) and
print-4096-crop.jpg (a 1:1 crop), and prints its time, peak memory and the
seam measure of tests/core/test_tiles.py on the result (mean neighbour
difference across the final scale's tile borders over that elsewhere, at the
same stride phase).

Both set the threads and the allocator as the CLI does (threads.py, allocator.py).
See benchmarks/README.md, *Prints*, for the latest figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "images"
GIB = 2**30


def _setup() -> None:
    from stylelab import allocator, threads

    threads.prefer_sleeping_threads()
    allocator.reuse_freed_memory()


def _images(style: str = "mosaic"):
    from PIL import Image, ImageOps
    from skimage import data

    from stylelab.demo import builtin_images, mosaic

    content = ImageOps.fit(Image.fromarray(data.coffee()), (800, 600), Image.Resampling.LANCZOS)
    # mosaic-large: the demo's stained glass drawn at 1024 px, so that a print's 1:1 crop shows crisp leading.
    return content, mosaic(1024, 150) if style == "mosaic-large" else builtin_images()[1][style]


def _recipe(**changes):
    from stylelab.recipes import Recipe

    return Recipe(**{"device": "cpu", **changes})


# ------------------------------------------------------------------ one measurement (a child process)


def one(size: int, tile: str, steps: int, free: int | None) -> dict:
    """A run of ``steps`` steps at ``size`` with ``--tile tile``; what it measured, as a dict."""
    _setup()
    import torch

    from stylelab.engine import Engine
    from stylelab.events import Step
    from stylelab.task import Task

    content, style = _images()
    recipe = _recipe(size=size, steps=steps, tile=tile)
    engine = Engine.for_recipe(recipe)
    t0 = time.perf_counter()
    plan = engine.prepare([Task.of(content, [style])], recipe, memory_free=free)
    stamps: list[float] = []

    def sink(event):
        if isinstance(event, Step):
            stamps.append(time.perf_counter())

    (res,) = engine.run(plan, [sink])
    tiling = plan.tilings[0]
    w, h = res.image.size
    tiles = tiling.plan(recipe, h, w) if tiling is not None else None
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    step = statistics.median(per_step) if per_step else float("nan")
    return {
        "size": size,
        "width": w,
        "height": h,
        "tile": tile,
        "tiles": 1 if tiles is None else len(tiles.tiles),
        "tile_side": None if tiles is None else tiles.tile,
        "history": None if tiling is None else tiling.history,
        "style_tile": None if tiling is None else tiling.style_tile,
        "status": res.status,
        "steps": res.steps,
        "step_s": per_step,
        "s_per_step": step,
        "ns_per_pixel_step": step / (w * h) * 1e9,
        "run_peak_bytes": res.peak_memory,
        "estimate_bytes": plan.estimate.total,
        "wall_s": time.perf_counter() - t0,
        "torch_threads": torch.get_num_threads(),
        "precision": res.precision,
    }


def _child(size: int, tile: str, steps: int, free: int | None) -> dict:
    argv = [sys.executable, __file__, "one", "--size", str(size), "--tile", tile, "--steps", str(steps)]
    if free is not None:
        argv += ["--free", str(free)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"size {size} tile {tile}: the child failed ({status})")
    row = json.loads(out.strip().splitlines()[-1])
    row["peak_rss_bytes"] = usage.ru_maxrss * 1024
    return row


# ------------------------------------------------------------------ the table


def bench(args) -> None:
    from stylelab import memory, tiles
    from stylelab.images import fitted_size

    content, style = _images()
    budget = int(args.budget_gib * GIB)
    free = int(budget / memory.USABLE_SHARE)  # what --tile auto sees: its budget is this share of the free memory
    largest = max(args.sizes)
    w, h = fitted_size(content.size, largest)
    side = args.tile_side or tiles.auto_tile(
        _recipe(size=largest, tile="auto"), h, w, budget, history=tiles.lbfgs_history(h, w, budget)
    )
    machine_free = memory.available_memory("cpu")
    rows = []
    for size in args.sizes:
        whole = memory.estimate(_recipe(size=size), content.size, [style.size]).total
        steps = args.largest_steps if size == largest else args.steps
        modes = [("tiled", str(side), free)]  # within the budget: L-BFGS's pairs as a print's
        if whole <= machine_free * memory.USABLE_SHARE:
            # Whole and tiled in turns, so that both see the machine's load of the same minutes.
            modes = [("whole", "none", None), *modes] * args.repeats
        for mode, tile, mem in modes:
            load = os.getloadavg()[0]
            row = _child(size, tile, steps, mem)
            row.update(mode=mode, load_before=load, load_after=os.getloadavg()[0], whole_estimate_bytes=whole)
            rows.append(row)
            print(_line(row), flush=True)
    result = {"budget_gib": args.budget_gib, "tile_side": side, "steps": args.steps, "rows": rows, "free": free}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print()
    print(markdown(result))


def _line(r: dict) -> str:
    return (
        f"{r['width']}x{r['height']} {r['mode']:5s} tiles {r['tiles']:3d} "
        f"peak RSS {r['peak_rss_bytes'] / GIB:5.2f} GiB "
        f"{r['s_per_step']:7.2f} s/step {r['ns_per_pixel_step']:6.0f} ns/pixel-step (load {r['load_before']:.1f})"
    )


def markdown(result: dict) -> str:
    """The README's table from ``bench``'s JSON: per size and mode, the median time over the repeats
    (and their range), the largest peak."""
    groups: dict[tuple, list[dict]] = {}
    for r in result["rows"]:
        groups.setdefault((r["size"], r["mode"]), []).append(r)
    out = [
        "| image | mode | tiles | L-BFGS pairs | steps | peak RSS | s/step | ns/pixel-step | tiled / whole | load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (size, mode), rs in groups.items():
        r = rs[0]
        ns = [x["ns_per_pixel_step"] for x in rs]
        ratio = ""
        if mode == "tiled" and (size, "whole") in groups:
            # Each tiled run against the whole run just before it (the same minutes' load).
            pairs_ = zip(groups[(size, "whole")], rs)
            ratio = " / ".join(f"{t['ns_per_pixel_step'] / w['ns_per_pixel_step']:.2f}" for w, t in pairs_)
        pairs = r["history"] if r["history"] is not None else 20
        tiles = f"{r['tiles']} of {r['tile_side']} px" if r["tiles"] > 1 else "1 (whole)"
        step = statistics.median(x["s_per_step"] for x in rs)
        peak = max(x["peak_rss_bytes"] for x in rs)
        spread = f" [{min(ns):.0f}..{max(ns):.0f}]" if len(rs) > 1 else ""
        load = [v for x in rs for v in (x["load_before"], x["load_after"])]
        loads = f"{min(load):.1f}-{max(load):.1f}"
        out.append(
            f"| {r['width']}x{r['height']} | {mode} | {tiles} | {pairs} | {r['steps']} | {peak / GIB:.2f} GiB "
            f"| {step:.1f} | {statistics.median(ns):.0f}{spread} | {ratio} | {loads} |"
        )
    return "\n".join(out)


# ------------------------------------------------------------------ the README's picture


def picture(args) -> None:
    _setup()
    import numpy as np
    from PIL import Image

    from stylelab import memory
    from stylelab.engine import Engine, scale_sizes
    from stylelab.events import Step
    from stylelab.task import Task

    content, style = _images(args.style)
    recipe = _recipe(
        size=args.size, scales=args.scales, steps=args.steps, tile="auto", style_weight=args.style_weight,
        style_scale=args.style_scale,
    )  # fmt: skip
    engine = Engine.for_recipe(recipe)
    t0 = time.perf_counter()
    free = int(args.budget_gib * GIB / memory.USABLE_SHARE)
    plan = engine.prepare([Task.of(content, [style])], recipe, memory_free=free)
    tiling = plan.tilings[0]

    def sink(event):
        if isinstance(event, Step):
            total = event.losses["total"]
            print(f"step {event.step}/{event.total_steps} scale {event.scale} {event.elapsed:7.0f} s {total:.4f}")

    for longest in scale_sizes(recipe.size, recipe.scales):
        from stylelab.images import fitted_size

        w, h = fitted_size(content.size, longest)
        tiles = None if tiling is None else tiling.plan(recipe, h, w)
        print(f"scale {w}x{h}: " + ("whole" if tiles is None else f"{len(tiles.tiles)} tiles of {tiles.tile} px"))
    (res,) = engine.run(plan, [sink])
    elapsed = time.perf_counter() - t0
    img = res.image.convert("RGB")
    DOCS.mkdir(parents=True, exist_ok=True)
    small = img.resize((1000, round(1000 * img.height / img.width)), Image.Resampling.LANCZOS)
    small.save(DOCS / "print-4096.jpg", quality=80)
    img.crop(tuple(args.crop)).save(DOCS / "print-4096-crop.jpg", quality=88)
    if args.keep:
        img.save(args.keep)
    final = tiling.plan(recipe, img.height, img.width) if tiling is not None else None
    info = {
        "size": img.size,
        "status": res.status,
        "steps": res.steps,
        "elapsed_s": elapsed,
        "run_peak_bytes": res.peak_memory,
        "tiles": None if final is None else len(final.tiles),
        "tile_side": None if final is None else final.tile,
        "history": None if tiling is None else tiling.history,
        "losses": res.losses,
    }
    if final is not None:
        x = np.asarray(img, dtype=np.float32).transpose(2, 0, 1)[None] / 255
        c = np.asarray(content.resize(img.size, Image.Resampling.LANCZOS), dtype=np.float32).transpose(2, 0, 1)[None]
        info["seam_ratios"] = seam_ratios(x - c / 255, final)
    print(json.dumps(info, default=str))


def seam_ratios(change, plan) -> list[float]:
    """tests/core/test_tiles.py's measure: mean |neighbour difference| across the tile borders (columns, rows)
    over that at the same stride phase elsewhere; 1 means no seam."""
    import numpy as np

    out = []
    for axis, cuts in ((3, {t.cols[0] for t in plan.tiles}), (2, {t.rows[0] for t in plan.tiles})):
        step = np.abs(np.diff(change, axis=axis))
        per = step.mean(axis=tuple(i for i in range(4) if i != axis))
        border = np.zeros(per.shape[0], dtype=bool)
        border[[c - 1 for c in cuts - {0}]] = True
        phase = (np.arange(per.shape[0]) % plan.stride == plan.stride - 1) & ~border
        out.append(float(per[border].mean() / per[phase].mean()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    b.add_argument("--steps", type=int, default=4)
    b.add_argument(
        "--largest-steps", type=int, default=10, help="steps at the largest size: a print's L-BFGS pairs (8) all in"
    )
    b.add_argument("--repeats", type=int, default=2, help="whole and tiled in turns, this many times each")
    b.add_argument("--budget-gib", type=float, default=6.0)
    b.add_argument("--tile-side", type=int, help="the tiled runs' --tile (default: auto's for the largest size)")
    b.add_argument("--json")
    t = sub.add_parser("table", help="the Markdown table of a bench's --json")
    t.add_argument("json")
    o = sub.add_parser("one")
    o.add_argument("--size", type=int, required=True)
    o.add_argument("--tile", required=True)
    o.add_argument("--steps", type=int, required=True)
    o.add_argument("--free", type=int)
    p = sub.add_parser("picture")
    p.add_argument("--size", type=int, default=4096)
    p.add_argument("--scales", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--style", default="mosaic-large", help="mosaic-large, or a demo style: mosaic, waves, hubble")
    p.add_argument("--style-weight", type=float, default=5.0)
    p.add_argument("--style-scale", type=float, default=0.25)
    p.add_argument("--crop", type=int, nargs=4, default=[1250, 1850, 1762, 2234], help="the 1:1 crop's box")
    p.add_argument("--keep", help="also save the full-size result here (PNG)")
    p.add_argument("--budget-gib", type=float, default=6.0)
    args = parser.parse_args()
    if args.command == "one":
        print(json.dumps(one(args.size, args.tile, args.steps, args.free)))
    elif args.command == "bench":
        bench(args)
    elif args.command == "table":
        print(markdown(json.loads(Path(args.json).read_text())))
    else:
        picture(args)


if __name__ == "__main__":
    main()
