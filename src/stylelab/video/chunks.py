"""A long clip in chunks of frames, painted side by side: here (one after the other) or as Ray tasks.

``plan_chunks`` cuts frames 1..N into chunks whose first frame is the previous chunk's last: a
chunk paints its first frame as a still (it has no previous frame of its own) and carries each
later one along the flow, and keeps its frames after the first (the first chunk keeps all of
its frames). The frame a chunk starts from so overlaps the one the previous chunk ends with:
both chains paint that frame, so each chunk starts from a frame painted to full quality rather
than mid-chain. A seam remains: the frame after it was carried from the new chain's picture of
the overlap, not from the one the video shows. Longer chunks mean fewer seams.

The run folder records finished chunks (video.json ``chunks_done``); a run going on after an
interruption paints only the others, and each chunk's frames are the same whether painted here
or on a worker, in one run or several. ``paint_chunk`` is the task; ``run_chunks`` the driver
(run_clip calls it when ``chunk_frames`` is set). Workers need not see the driver's files: the
input (the video file, or a folder's frames), the styles and masks travel with the tasks.
"""

from __future__ import annotations

import dataclasses
import functools
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import VideoError
from ..images import png_bytes
from .pipeline import ClipSpec, paint_frames, plan_clip


def plan_chunks(count: int, frames_per_chunk: int) -> list[tuple[int, int]]:
    """(first, last) frame of each chunk, 1-based and inclusive; each starts at the previous one's last."""
    if frames_per_chunk < 2:
        raise VideoError(f"--chunk-frames must be at least 2 (chunks overlap by one), not {frames_per_chunk}")
    chunks, first = [], 1
    while True:
        last = min(count, first + frames_per_chunk - 1)
        chunks.append((first, last))
        if last >= count:
            return chunks
        first = last


def kept(chunk: tuple[int, int]) -> range:
    """The frames a chunk keeps: all for the first chunk, else all but its first (the overlap)."""
    first, last = chunk
    return range(first if first == 1 else first + 1, last + 1)


@dataclass
class ChunkFrame:
    """One frame a chunk painted and keeps, as it travels back (pictures as PNG bytes)."""

    frame: int
    index: int
    image: bytes
    painted: bytes  # what the next frame carried (the same as image but under luminance preservation)
    steps: int
    seconds: float
    status: str
    reliable: float | None
    losses: dict[str, float]


@functools.cache
def _engines():
    """A worker process's engines: it paints chunk after chunk and builds the network once."""
    from ..engines import EngineCache

    return EngineCache()


def paint_chunk(spec: ClipSpec, chunk: tuple[int, int], engine=None, stop: threading.Event | None = None, plan=None):
    """Paint frames ``chunk`` = (first, last) of ``spec`` (the first as a still); returns the frames
    it keeps (``kept``) as ChunkFrames, or None when stopped midway. ``plan``: the clip's, where the
    caller has it (``plan_clip``: a Ray worker plans for itself)."""
    engine = engine or _engines().get(spec.recipe)
    plan = plan or plan_clip(spec, engine)
    first, last = chunk
    out = []
    for pf in paint_frames(plan, engine, skip=first - 1, last=last, stop=stop):
        if pf.result.status not in ("done", "diverged"):
            return None
        if pf.frame in kept(chunk):
            out.append(
                ChunkFrame(
                    pf.frame,
                    pf.index,
                    png_bytes(pf.image),
                    png_bytes(pf.painted) if plan.luminance else b"",
                    pf.result.steps,
                    pf.seconds,
                    pf.result.status,
                    pf.reliable,
                    dict(pf.result.losses),
                )
            )
    return out


# ---------------------------------------------------------------- runners: where chunks are painted

Runner = Callable[[ClipSpec, Sequence[tuple[int, int]], threading.Event], Iterator[tuple[tuple[int, int], list]]]


def local_runner(spec: ClipSpec, chunks: Sequence[tuple[int, int]], stop: threading.Event, engine=None, plan=None):
    """Chunks one after the other in this process (the same frames a Ray worker paints), all from
    one plan of the clip (``plan``, or made once here)."""
    engine = engine or _engines().get(spec.recipe)
    plan = plan or plan_clip(spec, engine)
    for chunk in chunks:
        if stop.is_set():
            return
        frames = paint_chunk(spec, chunk, engine, stop, plan)
        if frames is None:
            return
        yield chunk, frames


def _inputs(spec: ClipSpec) -> dict[str, Path]:
    """The files a chunk reads, by the name it has on the worker."""
    from .io import frame_files

    files: dict[str, Path] = {}
    source = Path(spec.source)
    if source.is_dir():
        files.update({f"source/{f.name}": f for f in frame_files(source)})
    else:
        files[f"source{source.suffix}"] = source
    for i, s in enumerate(spec.styles):
        if isinstance(s, (str, Path)):
            files[f"style_{i}{Path(s).suffix}"] = Path(s)
    for i, m in enumerate(spec.masks or ()):
        if isinstance(m, (str, Path)):
            files[f"mask_{i}{Path(m).suffix}"] = Path(m)
    if isinstance(spec.background, (str, Path)):
        files[f"background{Path(spec.background).suffix}"] = Path(spec.background)
    return files


def _local_spec(spec: ClipSpec, folder: Path, names: list[str]) -> ClipSpec:
    """``spec`` with its inputs replaced by the copies in ``folder`` (a worker's)."""

    def find(prefix: str, original):
        if not isinstance(original, (str, Path)):
            return original
        return str(folder / next(n for n in names if "/" not in n and Path(n).stem == prefix))

    source = str(folder / "source") if any(n.startswith("source/") for n in names) else find("source", spec.source)
    return dataclasses.replace(
        spec,
        source=source,
        styles=tuple(find(f"style_{i}", s) for i, s in enumerate(spec.styles)),
        masks=tuple(find(f"mask_{i}", m) for i, m in enumerate(spec.masks)) if spec.masks is not None else None,
        background=find("background", spec.background) if spec.background is not None else None,
    )


def ray_chunk(spec: ClipSpec, chunk: tuple[int, int], threads: int, names: list[str], *data: bytes):
    """A Ray task: ``paint_chunk`` with the input files ``data`` (named ``names``) in a scratch folder."""
    from ..ray_worker import own_worker

    own_worker(threads)
    with tempfile.TemporaryDirectory(prefix="stylelab-chunk-") as tmp:
        folder = Path(tmp)
        for name, blob in zip(names, data):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(blob)
        return paint_chunk(_local_spec(spec, folder, names), chunk)


def ray_runner(executor, retries: int = 2) -> Runner:
    """Chunks as Ray tasks on ``executor``'s cluster (a ``ray_executor.RayExecutor``), yielded as they finish."""

    def run(spec: ClipSpec, chunks: Sequence[tuple[int, int]], stop: threading.Event):
        from ..ray_executor import import_ray

        ray = import_ray()
        executor.connect()
        try:
            res = executor.resources(len(chunks))
            remote = ray.remote(ray_chunk).options(
                **res.options(), max_retries=retries, retry_exceptions=True, name="stylelab-video-chunk"
            )
            files = _inputs(spec)
            try:
                shipped = {name: ray.put(path.read_bytes()) for name, path in files.items()}
            except OSError as exc:
                raise VideoError(f"cannot read {exc.filename}: {exc.strerror or exc}") from None
            names = list(shipped)
            tasks = {remote.remote(spec, chunk, res.threads, names, *shipped.values()): chunk for chunk in chunks}
            try:
                while tasks and not stop.is_set():
                    ready, _ = ray.wait(list(tasks), num_returns=1, timeout=0.25)
                    for ref in ready:
                        chunk = tasks.pop(ref)
                        frames = ray.get(ref)
                        if frames is not None:
                            yield chunk, frames
            finally:
                for ref in tasks:
                    ray.cancel(ref)
        finally:
            executor.close()

    return run
