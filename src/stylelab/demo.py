"""``stylelab demo``: a photo that ships with scikit-image, painted in several styles.

The styles are images that scikit-image ships and patterns generated here, so
the demo needs no files and no network.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import folders
from .engine import Engine
from .events import for_item
from .recipes import load_recipe
from .runs import RunWriter
from .task import Task

# 50 L-BFGS steps: the demo's results hardly change after that (see a run's process.png),
# and three 256-px images x 50 steps keep the whole demo under 3 minutes on 2 busy CPU cores.
DEMO_SETTINGS = {"size": 256, "steps": 50, "save_every": 10}


def mosaic(size: int = 384, cells: int = 60, seed: int = 7) -> Image.Image:
    """Stained glass: Voronoi cells in strong colours with dark leading between them."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, size, (cells, 2))
    palette = np.array([[203, 45, 62], [245, 176, 65], [38, 84, 160], [46, 139, 87], [240, 230, 200], [120, 50, 140]])
    colours = palette[rng.integers(0, len(palette), cells)] + rng.integers(-20, 20, (cells, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    d = (xx[..., None] - pts[:, 0]) ** 2 + (yy[..., None] - pts[:, 1]) ** 2
    order = np.argsort(d, axis=-1)
    nearest, second = order[..., 0], order[..., 1]
    d1 = np.take_along_axis(d, nearest[..., None], -1)[..., 0]
    d2 = np.take_along_axis(d, second[..., None], -1)[..., 0]
    img = colours[nearest].astype(np.float64)
    edge = (np.sqrt(d2) - np.sqrt(d1)) < 3.0
    img[edge] = 25
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def waves(size: int = 384) -> Image.Image:
    """A woodcut sea: crisp bands of blue and cream, outlined in ink."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    phase = np.sin(2 * np.pi * (3 * xx + 0.8 * np.sin(2 * np.pi * 2 * yy))) + 0.6 * np.sin(2 * np.pi * 11 * yy + 4 * xx)
    t = (phase - phase.min()) / (phase.max() - phase.min())
    palette = np.array([[16, 30, 72], [28, 66, 128], [62, 118, 176], [150, 190, 214], [240, 232, 206]])
    band = np.minimum((t * len(palette)).astype(int), len(palette) - 1)
    img = palette[band]
    # Hard edges carry the style (a smooth gradient gives the network little to copy): ink lines between bands.
    edge = np.zeros(band.shape, dtype=bool)
    edge[:, 1:] |= band[:, 1:] != band[:, :-1]
    edge[1:, :] |= band[1:, :] != band[:-1, :]
    edge[:, 1:] |= edge[:, :-1].copy()
    img[edge] = [12, 20, 48]
    return Image.fromarray(img.astype(np.uint8), "RGB")


STYLE_NAMES = ("hubble", "mosaic", "waves")
# What the demo writes into its folder: the only names it will replace there.
DEMO_LAYOUT = folders.Layout(
    files=r"overview\.png",
    dirs={
        "inputs": folders.Layout(files=r"(content-coffee|style-[a-z]+)\.png"),
        **{rf"{name}(\.partial)?": folders.RUN_LAYOUT for name in STYLE_NAMES},
    },
)


def is_demo_folder(folder: Path) -> bool:
    """A folder an earlier demo wrote (and nothing else wrote into)."""
    return (folder / "inputs" / "content-coffee.png").is_file() and DEMO_LAYOUT.holds_only_ours(folder)


def builtin_images() -> tuple[Image.Image, dict[str, Image.Image]]:
    from skimage import data

    content = Image.fromarray(data.coffee())
    styles = dict(zip(STYLE_NAMES, (Image.fromarray(data.hubble_deep_field()), mosaic(), waves())))
    return content, styles


def run_demo(out_dir: Path, *, quiet: bool = False, **overrides) -> list[Path]:
    """Write one run folder per style and an overview picture to ``out_dir``."""
    from .images import save_png
    from .progress import LogLines, ProgressBar
    from .sheets import figure_to_image, grid_picture

    # Only a new or empty folder, or one an earlier demo made, is written into.
    out_dir = folders.check_folder(
        out_dir, layout=DEMO_LAYOUT, recognise=is_demo_folder, what="demo folder", option="--out"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    content, styles = builtin_images()
    save_png(content, out_dir / "inputs" / "content-coffee.png")
    for name, img in styles.items():
        save_png(img, out_dir / "inputs" / f"style-{name}.png")
    recipe = load_recipe("default", **{**DEMO_SETTINGS, **overrides})
    names = list(styles)
    writers = [for_item(RunWriter(out_dir / name), i) for i, name in enumerate(names)]
    t0 = time.perf_counter()
    # The inputs as the files just written, so each run folder names them (and --from repeats it).
    content_file = str(out_dir / "inputs" / "content-coffee.png")
    tasks = [Task.of(content_file, [str(out_dir / "inputs" / f"style-{n}.png")], label=n) for n in names]
    engine = Engine.for_recipe(recipe)
    plan = engine.prepare(tasks, recipe)
    if quiet:
        results = engine.run(plan, writers)
    elif not sys.stderr.isatty():  # a log, `| cat`, CI: plain lines, not a bar's last frame
        results = engine.run(plan, [*writers, LogLines(max(1, recipe.steps // 5))])
    else:
        with ProgressBar() as bar:
            results = engine.run(plan, [*writers, bar])
    rows = [(name, [styles[name], content, res.image]) for name, res in zip(names, results)]
    fig = grid_picture(
        rows, ["style", "content", "result"], title=f"stylelab demo ({recipe.size}px, {recipe.steps} steps)"
    )
    save_png(figure_to_image(fig), out_dir / "overview.png")
    if not quiet:  # a plain line: a console would wrap it at 80 columns in a log
        where = f"{out_dir / 'overview.png'} and one run folder per style"
        print(f"demo done in {time.perf_counter() - t0:.0f}s: {where}", file=sys.stderr, flush=True)
    return [out_dir / n for n in names]
