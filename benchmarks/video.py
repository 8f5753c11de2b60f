"""Video: temporal stability, style distance and seconds per frame, carried frames against per-frame painting.

    python benchmarks/video.py                       # 2 clips x 8 frames at 256 px: ~10 min on 2 busy cores
    python benchmarks/video.py --frames 12 --json out.json --strip docs/images/video-strip.png

For each clip the frames are painted twice with one Engine: per frame (temporal weight 0: every
frame its recipe's steps from its own content) and carried (``stylelab video``'s defaults: each
later frame starts from the previous one carried along the optical flow, with the temporal term
and the frame budget). Frame 1 is the same picture in both (painted as a still) and is painted
once. Figures:

- warping error (Lai et al. 2018, ``video.stability``) of each painted clip;
- content and style distance (``stylelab.metrics`` at the frame size), mean over the frames;
- seconds per later frame (optical flow included);
- steps to quality: for each carried frame, the first snapshot (every 5 steps) at which its style
  and content distances are no worse than per-frame painting's mean over the clip.

Clips: the generated one (``synthetic.make_clip``: a camera move over scikit-image's coffee with a
disc sliding across), and a camera move (pan, zoom and a slow turn) over a photo from
``../shared/images`` (tubingen.jpg), each with its own style from there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import shared_images  # noqa: E402


def camera_clip(photo: Path, frames: int, size: tuple[int, int]) -> list[Image.Image]:
    """A camera move over ``photo``: a pan right and down, a 1 % zoom and 0.3 degrees of turn a frame."""
    import cv2

    src = np.asarray(Image.open(photo).convert("RGB"), np.float32)
    h0, w0 = src.shape[:2]
    w, h = size
    out = []
    for t in range(frames):
        scale = 1.6 * w / w0 * (1.01**t)  # the photo a little larger than the frame, closer each frame
        centre = (w0 * (0.45 + 0.006 * t), h0 * (0.5 + 0.004 * t))
        m = cv2.getRotationMatrix2D(centre, 0.3 * t, scale)
        m[0, 2] += w / 2 - centre[0]
        m[1, 2] += h / 2 - centre[1]
        img = cv2.warpAffine(src, m, (w, h), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REFLECT)
        out.append(Image.fromarray(np.clip(img, 0, 255).round().astype(np.uint8), "RGB"))
    return out


def write_frames(frames: list[Image.Image], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames, 1):
        f.save(folder / f"frame_{i:06d}.png")
    return folder


class Yardstick:
    """Distances of painted frames to their input frame and the style, targets made once per frame."""

    def __init__(self, style: Path):
        self.style = style
        self.refs: dict[bytes, object] = {}

    def __call__(self, image: Image.Image, frame: Image.Image):
        from stylelab import metrics

        key = frame.tobytes()
        if key not in self.refs:
            self.refs[key] = metrics.reference(frame, [self.style], image.size)
        return metrics.distances_to(image, self.refs[key])


def paint(plan, engine, snapshots_every: int = 0, skip: int = 0, previous=None):
    from stylelab.events import Snapshot
    from stylelab.video.pipeline import paint_frames

    snaps: dict[int, list] = {}
    current = [skip + 1]

    def sink(event):
        if isinstance(event, Snapshot):
            snaps.setdefault(current[0], []).append((event.step, event.image.copy()))

    out = []
    for pf in paint_frames(plan, engine, skip=skip, previous=previous, sinks=[sink] if snapshots_every else []):
        if pf.result.status != "done":
            raise SystemExit(f"frame {pf.frame} ended {pf.result.status}: {pf.result.message}")
        out.append(pf)
        current[0] = pf.frame + 1
    return out, snaps


def run_clip_bench(name: str, source: Path, style: Path, args, engine) -> dict:
    from stylelab.recipes import load_recipe
    from stylelab.video.pipeline import VIDEO_TEMPORAL_WEIGHT, ClipSpec, plan_clip
    from stylelab.video.stability import warping_error

    base = load_recipe("default", size=args.size, steps=args.steps, device=args.device)
    measure = Yardstick(style)
    plain_spec = ClipSpec(str(source), (str(style),), base.replace(temporal_weight=0.0))
    plan = plan_clip(plain_spec, engine)
    inputs = [f for _, _, f in plan.frames()]
    t0 = time.perf_counter()
    plain, _ = paint(plan, engine)
    print(f"{name}: per-frame painted in {time.perf_counter() - t0:.0f}s", flush=True)
    weight = args.temporal_weight if args.temporal_weight is not None else VIDEO_TEMPORAL_WEIGHT
    recipe = base.replace(temporal_weight=weight, save_every=5)
    spec = ClipSpec(str(source), (str(style),), recipe, frame_steps=args.frame_steps)
    tplan = plan_clip(spec, engine)
    t0 = time.perf_counter()
    carried, snaps = paint(tplan, engine, snapshots_every=5, skip=1, previous=(inputs[0], plain[0].painted))
    print(f"{name}: carried painted in {time.perf_counter() - t0:.0f}s", flush=True)
    plain_imgs = [pf.image for pf in plain]
    carried_imgs = [plain_imgs[0], *[pf.image for pf in carried]]
    dp = [measure(img, f) for img, f in zip(plain_imgs, inputs)]
    dc = [measure(img, f) for img, f in zip(carried_imgs, inputs)]
    mean_style = float(np.mean([d.style for d in dp]))
    mean_content = float(np.mean([d.content for d in dp]))
    reach = []
    for frame, shots in sorted(snaps.items()):
        hit = next(
            (
                step
                for step, img in shots
                if (d := measure(img, inputs[frame - 1])).style <= mean_style and d.content <= mean_content
            ),
            None,
        )
        reach.append(hit)
    result = {
        "clip": name,
        "frames": len(inputs),
        "size": list(plan.size),
        "style": style.name,
        "steps": args.steps,
        "frame_steps": spec.later_steps,
        "temporal_weight": weight,
        "warping_error": {
            "per_frame": warping_error(plain_imgs, inputs),
            "carried": warping_error(carried_imgs, inputs),
        },
        "style_distance": {"per_frame": mean_style, "carried": float(np.mean([d.style for d in dc]))},
        "content_distance": {"per_frame": mean_content, "carried": float(np.mean([d.content for d in dc]))},
        "seconds_per_frame": {
            "per_frame": float(np.mean([pf.seconds for pf in plain[1:]])),
            "carried": float(np.mean([pf.seconds for pf in carried])),
            "first": plain[0].seconds,
        },
        "steps_to_quality": reach,
        "reliable": [pf.reliable for pf in carried],
    }
    result["ratio"] = result["warping_error"]["carried"] / result["warping_error"]["per_frame"]
    result["_images"] = (inputs, plain_imgs, carried_imgs)
    return result


def strip(results: list[dict], path: Path, columns: int = 4) -> None:
    """Rows: input, per-frame, carried, for frames 2.. of each clip; labels carry the warping errors."""
    from stylelab.images import save_png
    from stylelab.sheets import figure_to_image, grid_picture

    rows = []
    for r in results:
        inputs, plain, carried = r["_images"]
        pick = list(range(1, min(len(inputs), columns + 1)))
        we = r["warping_error"]
        rows += [
            (f"{r['clip']}: input", [inputs[i] for i in pick]),
            (f"per frame (Ew {we['per_frame']:.4f})", [plain[i] for i in pick]),
            (f"carried (Ew {we['carried']:.4f})", [carried[i] for i in pick]),
        ]
    labels = [f"frame {i + 1}" for i in range(1, columns + 1)]
    fig = grid_picture(rows, labels, title="stylelab video: per-frame painting vs carried frames", cell=1.6)
    img = figure_to_image(fig).convert("RGB")
    if img.width > 800:
        img = img.resize((800, round(img.height * 800 / img.width)), Image.Resampling.LANCZOS)
    # 256 colours, dithered: a third of the bytes of the full-colour picture, for the README.
    save_png(img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG), path)


def table(results: list[dict]) -> str:
    lines = [
        "| clip | frames | warping error: per frame / carried (ratio) | style distance | content distance | "
        "s/frame: per frame / carried | steps to per-frame quality |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        we, sd, cd, sp = r["warping_error"], r["style_distance"], r["content_distance"], r["seconds_per_frame"]
        reach = ", ".join("-" if s is None else str(s) for s in r["steps_to_quality"])
        lines.append(
            f"| {r['clip']} ({r['size'][0]}x{r['size'][1]}, {r['style']}) | {r['frames']} | "
            f"{we['per_frame']:.5f} / {we['carried']:.5f} ({r['ratio']:.2f}) | "
            f"{sd['per_frame']:.4f} / {sd['carried']:.4f} | {cd['per_frame']:.4f} / {cd['carried']:.4f} | "
            f"{sp['per_frame']:.2f} / {sp['carried']:.2f} | {reach} (of {r['frame_steps']}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=100, help="steps of a still (frame 1, and per-frame painting)")
    parser.add_argument("--frame-steps", type=int, default=None, help="default: stylelab video's")
    parser.add_argument("--temporal-weight", type=float, default=None, help="default: stylelab video's")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=Path, default=shared_images())
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/stylelab-video-bench"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--strip", type=Path, default=None, help="write the strip of frames (PNG) here")
    args = parser.parse_args(argv)
    if args.images is None or not (args.images / "content" / "tubingen.jpg").is_file():
        parser.error("--images must be the folder holding content/tubingen.jpg and style/*.jpg")

    from stylelab import threads

    threads.prefer_sleeping_threads()
    import torch

    torch.set_num_threads(args.threads)
    from stylelab.engine import Engine
    from stylelab.recipes import load_recipe
    from stylelab.video.synthetic import make_clip

    w = args.size
    h = 2 * math.ceil(w * 2 / 3 / 2)
    clips = {
        "generated": write_frames(make_clip(args.frames, (w, h), seed=0).frames, args.scratch / "generated"),
        "camera move": write_frames(
            camera_clip(args.images / "content" / "tubingen.jpg", args.frames, (w, h)), args.scratch / "camera"
        ),
    }
    styles = {
        "generated": args.images / "style" / "starry_night.jpg",
        "camera move": args.images / "style" / "the_scream.jpg",
    }
    engine = Engine.for_recipe(load_recipe("default", device=args.device))
    results = [run_clip_bench(name, src, styles[name], args, engine) for name, src in clips.items()]
    print(table(results))
    print(
        f"engine: network built {engine.builds} time(s); style cache {engine.styles.hits} hits, "
        f"{engine.styles.misses} misses"
    )
    if args.strip is not None:
        strip(results, args.strip)
    if args.json is not None:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "_images"} for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
