"""Time to a finished picture: coarse-to-fine schedules against the single-scale default.

    python benchmarks/coarse_to_fine.py --size 512 --every 10 \\
        --pairs tubingen:starry_night,golden_gate:the_scream,tubingen:woman-with-hat-matisse \\
        --schedule base=1::200 --schedule s3=3:100,50:100

A schedule is NAME=SCALES:COARSE_STEPS:STEPS (the recipe's ``scales``, ``coarse_steps``,
``steps``); the first one is the baseline. Each runs the ``default`` recipe on every pair
with a snapshot every ``--every`` steps; every snapshot at the final size is scored with
``stylelab.metrics`` and the script prints, per schedule and pair, the distances by
final-scale step, the cost in full-size step-equivalents (a step at a scale costs its pixel
count over the final one's: measured 0.28 / 0.50 / 1 at 256 / 362 / 512 px), and the first
point where both distances are no larger than the baseline's result. ``--timing N`` first
measures seconds per step at each scale's size, alternating sizes in this process N times
(medians), which is what to quote on a shared machine. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from bench import shared_images  # this folder's bench.py: finds ../shared/images

from stylelab import metrics
from stylelab.engine import Engine, scale_sizes
from stylelab.events import Snapshot, Step
from stylelab.recipes import load_recipe
from stylelab.task import Task


class Collect:
    """A sink keeping one kind of event."""

    def __init__(self, kind):
        self.kind, self.events = kind, []

    def __call__(self, event) -> None:
        if isinstance(event, self.kind):
            self.events.append(event)


def step_times(engine: Engine, task: Task, sizes: list[int], rounds: int) -> dict[int, float]:
    """Median seconds per step at each size, sizes alternated ``rounds`` times (8 steps, first 2 left out)."""
    times: dict[int, list[float]] = {s: [] for s in sizes}
    for _ in range(rounds):
        for size in sizes:
            steps = Collect(Step)
            recipe = load_recipe("default", size=size, steps=8, scales=1, coarse_steps="", device="cpu")
            engine.run(engine.prepare([task], recipe), [steps])
            stamps = [e.elapsed for e in steps.events]
            times[size] += [b - a for a, b in zip(stamps[2:], stamps[3:])]
    return {s: statistics.median(v) for s, v in times.items()}


def measure(engine: Engine, content: Path, style: Path, size: int, schedule: str, every: int) -> dict:
    scales, coarse, steps = schedule.split(":")
    recipe = load_recipe("default", size=size, scales=int(scales), coarse_steps=coarse, steps=int(steps),
                         save_every=every, device="cpu")  # fmt: skip
    shots = Collect(Snapshot)
    result = engine.run(engine.prepare([Task.of(content, [style])], recipe), [shots])[0]
    final = result.image.convert("RGB")
    ref = metrics.reference(content, [style], final.size)
    sizes = scale_sizes(size, int(scales))
    per_scale = recipe.steps_per_scale()
    before = sum(per_scale[:-1])
    coarse_eq = sum(n * (s / size) ** 2 for n, s in zip(per_scale[:-1], sizes[:-1]))
    curve = []
    for shot in shots.events:
        if shot.image.size == final.size and shot.step >= before:
            d = metrics.distances_to(shot.image.convert("RGB"), ref)
            k = shot.step - before
            curve.append({"step": k, "equivalents": coarse_eq + k, "content": d.content, "style": d.style})
    return {"schedule": schedule, "elapsed": result.elapsed, "curve": curve, "image": final}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=Path, default=shared_images(), help="a folder with content/ and style/")
    p.add_argument("--pairs", default="tubingen:starry_night", help="CONTENT:STYLE,... (file stems)")
    p.add_argument("--schedule", action="append", help="NAME=SCALES:COARSE_STEPS:STEPS; the first is the baseline")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--timing", type=int, default=0, help="rounds of per-size step timing first (0: none)")
    p.add_argument("--json", type=Path)
    p.add_argument("--pictures", type=Path, help="a folder for each schedule's result PNG")
    a = p.parse_args(argv)
    schedules = dict(s.split("=", 1) for s in (a.schedule or ["base=1::200", "s3=3:100,50:100"]))
    engine = Engine("cpu", "caffe", "max", "auto")
    out: dict = {"size": a.size, "pairs": {}}
    pairs = [pair.split(":") for pair in a.pairs.split(",")]
    if a.timing:
        first = Task.of(a.images / "content" / f"{pairs[0][0]}.jpg", [a.images / "style" / f"{pairs[0][1]}.jpg"])
        out["seconds_per_step"] = step_times(engine, first, scale_sizes(a.size, 3), a.timing)
        print("seconds per step (medians):", {s: round(t, 3) for s, t in out["seconds_per_step"].items()})
    for c, s in pairs:
        content, style = a.images / "content" / f"{c}.jpg", a.images / "style" / f"{s}.jpg"
        rows = {name: measure(engine, content, style, a.size, sched, a.every) for name, sched in schedules.items()}
        base = rows[next(iter(schedules))]["curve"][-1]
        print(f"{c} / {s} at {a.size} px: baseline {base['content']:.3f} / {base['style']:.3f}")
        for name, row in rows.items():
            good = [pt for pt in row["curve"] if pt["content"] <= base["content"] and pt["style"] <= base["style"]]
            hit = good[0] if good else None
            reached = f"reached at {hit['equivalents']:.0f} step-equivalents" if hit else "not reached"
            points = " ".join(f"{pt['equivalents']:.0f}:{pt['content']:.3f}/{pt['style']:.3f}" for pt in row["curve"])
            print(f"  {name:10s} {row['schedule']:14s} {row['elapsed']:6.1f} s  {reached}; {points}")
            if a.pictures:
                a.pictures.mkdir(parents=True, exist_ok=True)
                row["image"].save(a.pictures / f"{c}-{s}-{name}-{a.size}.png")
            del row["image"]
        out["pairs"][f"{c}:{s}"] = rows
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
