"""Time to quality: how long stylelab takes to match pastiche's 300-step result.

pastiche runs as a user runs it (its defaults, L-BFGS, ``--size``, 300 steps,
a fixed seed); its result is scored with ``stylelab.metrics`` (content
distance at relu4_2, style distance over relu1_1..relu5_1). Its time is that
of its 300 steps: from its ``0`` line (just before step 1) to its ``300``
line, so its start-up is not counted.

stylelab runs its recipe in this process with a snapshot every
``quality_every`` steps; each snapshot at the final size is scored with the
same metric, and the clock stops at the first one whose content *and* style
distances are both no larger than pastiche's. stylelab's clock starts before
``stylize_one`` is called, so its image loading, network set-up and target
computation count; the time spent scoring snapshots is measured and
subtracted. Snapshots are 8-bit images, like pastiche's PNG.
"""

from __future__ import annotations

import time

from .. import metrics
from ..events import Snapshot
from . import procs
from .report import summary
from .sections import Context, _recipe, image_size


def _pastiche(opts, ctx: Context, r: int) -> tuple[dict, str]:
    png = opts.scratch / f"quality-pastiche-{r}.png"
    n = opts.quality_peer_steps
    cmd = procs.pastiche_command(opts.content, opts.style, png, opts.quality_size, n, opts.device)
    run = procs.run_process(cmd, procs.PASTICHE_STEP)
    run.check()
    if 0 not in run.stamps or n not in run.stamps:
        raise RuntimeError("pastiche printed no step lines:\n" + "\n".join(run.tail[-8:]))
    out = {"seconds": run.stamps[n] - run.stamps[0], "process_wall": run.wall}
    if 0 in run.cpu_stamps and n in run.cpu_stamps:
        out["cpu_seconds"] = run.cpu_stamps[n] - run.cpu_stamps[0]
    return out, str(png)


def _stylelab(opts, target: metrics.Distances) -> dict:
    from ..engine import stylize_one

    overrides = {"size": opts.quality_size, "save_every": opts.quality_every}
    if opts.quality_style_weight is not None:
        overrides["style_weight"] = opts.quality_style_weight
    recipe = _recipe(opts, **overrides)
    height, width = image_size(opts.content, recipe.size)
    final = (width, height)
    ref = metrics.reference(opts.content, [opts.style], final, device=opts.device)  # once, not per snapshot
    state = {"scoring": 0.0, "scoring_cpu": 0.0, "hit": None, "checks": []}

    def score(event):
        if not isinstance(event, Snapshot) or event.image.size != final or state["hit"]:
            return None
        t, c = time.perf_counter(), time.process_time()
        d = metrics.distances_to(event.image, ref, device=opts.device)
        elapsed, cpu = t - t0 - state["scoring"], c - c0 - state["scoring_cpu"]
        state["scoring"] += time.perf_counter() - t
        state["scoring_cpu"] += time.process_time() - c
        state["checks"].append({"step": event.step, "seconds": elapsed, "cpu_seconds": cpu, **d.as_dict()})
        if d.content <= target.content and d.style <= target.style:
            state["hit"] = state["checks"][-1]
            return True  # stop: quality reached
        return None

    t0, c0 = time.perf_counter(), time.process_time()
    result = stylize_one(opts.content, [opts.style], recipe, callbacks=[score])
    return {
        "reached": state["hit"] is not None,
        "seconds": state["hit"]["seconds"] if state["hit"] else None,
        "cpu_seconds": state["hit"]["cpu_seconds"] if state["hit"] else None,
        "step": state["hit"]["step"] if state["hit"] else None,
        "checks": state["checks"],
        "recipe": recipe.to_dict(drop_none=True),
        "total_steps": result.steps,
        "scoring_seconds": state["scoring"],
    }


def quality(opts, ctx: Context) -> dict:
    """pastiche's 300 steps against stylelab's time to the same content and style distances."""
    peer, mine = [], []
    target = None
    for r in range(opts.repeats):
        load = ctx.quiet()
        p, png = _pastiche(opts, ctx, r)
        peer.append({**p, **load})
        if target is None:
            target = metrics.distances(png, opts.content, [opts.style], device=opts.device, size=opts.quality_size)
        ctx.log(f"  quality pastiche #{r + 1}: {p['seconds']:.1f}s for {opts.quality_peer_steps} steps, {target}")
        load = ctx.quiet()
        s = _stylelab(opts, target)
        mine.append({**s, **load})
        where = f"{s['seconds']:.1f}s at step {s['step']}" if s["reached"] else "not reached"
        ctx.log(f"  quality stylelab #{r + 1}: {where}")
    reached = [x["seconds"] for x in mine if x["reached"]]
    return {
        "size": opts.quality_size,
        "peer_steps": opts.quality_peer_steps,
        "style_weight": mine[0]["recipe"]["style_weight"],
        "content_weight": mine[0]["recipe"]["content_weight"],
        "target": target.as_dict(),
        "pastiche": peer,
        "stylelab": mine,
        "pastiche_seconds": summary([x["seconds"] for x in peer]),
        "stylelab_seconds": summary(reached) if len(reached) == len(mine) else None,
        "pastiche_cpu_seconds": summary([x["cpu_seconds"] for x in peer if "cpu_seconds" in x]),
        "stylelab_cpu_seconds": summary([x["cpu_seconds"] for x in mine if x["reached"]]),
    }
