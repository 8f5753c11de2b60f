"""``stylelab sheet``: any images, stylelab's or other tools', in one effect picture with their metrics."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import StylelabError
from .app import app, out

SUFFIXES = (".png", ".pdf")


def _resolve(entry: str) -> Path:
    """An image path; a run folder stands for its result.png."""
    path = Path(entry).expanduser()
    if path.is_dir():
        if not (path / "result.png").is_file():
            raise StylelabError(f"{entry} is a folder without a result.png (give an image or a run folder)")
        return path / "result.png"
    return path


def default_labels(paths: list[Path]) -> list[str]:
    """File names without suffix; a run's result.png by its run folder; clashes with their folder in front."""
    labels = [p.parent.name if p.name == "result.png" and p.parent.name else p.stem for p in paths]
    return [f"{p.parent.name}/{label}" if labels.count(label) > 1 else label for p, label in zip(paths, labels)]


@app.command("sheet", no_args_is_help=True)
def sheet_command(
    images: list[str] = typer.Argument(..., help="Images to compare (any tool's results), or run folders."),
    content: str | None = typer.Option(None, "--content", "-c", help="The content image they started from."),
    style: list[str] | None = typer.Option(None, "--style", "-s", help="The style image(s); several: their blend."),
    style_weights: list[float] | None = typer.Option(None, "--style-weights", help="Blend weights of the styles."),
    label: list[str] | None = typer.Option(None, "--label", "-l", help="A column label per image, in order."),
    out_path: Path = typer.Option(Path("effect.png"), "--out", "-o", help="The picture to write: .png or .pdf."),
    title: str = typer.Option("", "--title", help="A title above the picture."),
    metrics: bool = typer.Option(True, "--metrics/--no-metrics", help="Measure content and style distance."),
    size: int = typer.Option(512, "--size", help="Measure and show each image with its longest side at N px."),
):
    """Put IMAGES side by side as an effect picture, each with its content and style distance."""
    from .. import images as imaging
    from ..figures import PDF_DPI
    from ..metrics import measured_image
    from ..sheets import SCREEN_DPI, compare_picture, save_figure

    # Checked here rather than by typer's required options: one line, like every other mistake.
    if not content or not style:
        raise StylelabError(f"give {'--content' if not content else '--style'}: the image the results are compared to")
    if out_path.suffix.lower() not in SUFFIXES:
        raise StylelabError(f"--out must end in .png or .pdf, not {out_path.name!r}")
    if label and len(label) != len(images):
        raise StylelabError(f"--label given {len(label)} times for {len(images)} images; give one per image")
    if style_weights and len(style_weights) != len(style):
        raise StylelabError(f"--style-weights has {len(style_weights)} values for {len(style)} styles")
    paths = [_resolve(entry) for entry in images]
    # Every input read before anything is measured: a typo costs nothing.
    # At one bounded size, as `stylelab metrics` measures: never by an input's raw size.
    pictures = [measured_image(p, size) for p in paths]
    content_img = imaging.load_rgb(content)[0]
    style_imgs = [imaging.load_rgb(s)[0] for s in style]
    labels = list(label) if label else default_labels(paths)
    measured: list[dict | None] = [None] * len(pictures)
    if metrics:
        from ..metrics import distances_to, reference

        refs = {}
        for i, (name, pic) in enumerate(zip(labels, pictures)):
            if pic.size not in refs:  # one reference per image size: the content's features, the styles' Grams
                # Only the Gram distance is shown: the other losses' yardsticks (swd sorts every pixel) are not made.
                refs[pic.size] = reference(content_img, style_imgs, pic.size, style_weights or None, kinds=("gram",))
            d = distances_to(pic, refs[pic.size])
            measured[i] = {"content": d.content, "style": d.style}
            out.print(f"{name}: content distance {d.content:.4f}  style distance {d.style:.4f}", highlight=False)
    pdf = out_path.suffix.lower() == ".pdf"
    fig = compare_picture(
        list(zip(labels, pictures, measured)),
        content_img,
        style_imgs[0],
        content_label=Path(content).stem,
        style_label=" + ".join(Path(s).stem for s in style),
        title=title,
        dpi=PDF_DPI if pdf else SCREEN_DPI,
    )
    written = save_figure(fig, pdf=out_path if pdf else None, png=None if pdf else out_path)
    out.print(str(written[0]), highlight=False)
