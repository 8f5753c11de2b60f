"""A clip in chunks that overlap by one frame: here, or as Ray tasks; resumable by chunk."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from stylelab.errors import VideoError
from stylelab.video.chunks import kept, plan_chunks, ray_runner
from stylelab.video.clip_run import run_clip
from stylelab.video.events import FrameDone

from .conftest import TINY_FRAMES
from .test_clip_run import FRAME_STEPS, csv_rows, frames_of, spec_for


def test_chunks_overlap_by_one_frame_and_keep_the_rest():
    assert plan_chunks(6, 3) == [(1, 3), (3, 5), (5, 6)]
    assert plan_chunks(3, 5) == [(1, 3)] and plan_chunks(1, 4) == [(1, 1)]
    assert [list(kept(c)) for c in plan_chunks(6, 3)] == [[1, 2, 3], [4, 5], [6]]
    chunks = plan_chunks(100, 7)
    assert sorted(n for c in chunks for n in kept(c)) == list(range(1, 101))
    with pytest.raises(VideoError, match="at least 2"):
        plan_chunks(6, 1)


def test_a_chunked_clip_starts_each_chunk_afresh(tiny_mp4, stripes, tmp_path):
    whole = run_clip(spec_for(tiny_mp4, stripes), tmp_path / "whole")
    out = run_clip(spec_for(tiny_mp4, stripes, chunk_frames=3), tmp_path / "chunked")
    assert whole.ok and out.ok and out.frames_done == TINY_FRAMES
    info = json.loads((tmp_path / "chunked" / "video.json").read_text())
    assert info["chunks_done"] == [[1, 3], [3, 5], [5, 6]] and info["settings"]["chunk_frames"] == 3
    # Each frame after a chunk's first is carried (the overlap frame was painted as a still, not kept).
    assert [int(r["steps"]) for r in csv_rows(tmp_path / "chunked")] == [8] + [FRAME_STEPS] * (TINY_FRAMES - 1)
    a, b = frames_of(tmp_path / "whole"), frames_of(tmp_path / "chunked")
    assert all(np.array_equal(x, y) for x, y in zip(a[:3], b[:3]))  # the first chunk is the clip's own start
    assert not np.array_equal(a[3], b[3])  # frame 4 comes from chunk 2's own picture of frame 3


def test_a_chunked_clip_goes_on_after_its_finished_chunks(tiny_mp4, stripes, tmp_path):
    spec = spec_for(tiny_mp4, stripes, chunk_frames=3)

    def ctrl_c_after_chunk_one(event):
        if isinstance(event, FrameDone) and event.frame == 3:
            raise KeyboardInterrupt

    first = run_clip(spec, tmp_path / "run", sinks=[ctrl_c_after_chunk_one])
    assert first.status == "interrupted" and first.output is None
    assert json.loads((tmp_path / "run" / "video.json").read_text())["chunks_done"] == [[1, 3]]
    again = run_clip(spec, tmp_path / "run")
    assert again.ok and again.resumed_from == 3 and again.painted == 3
    assert run_clip(spec, tmp_path / "whole").ok
    assert all(np.array_equal(x, y) for x, y in zip(frames_of(tmp_path / "run"), frames_of(tmp_path / "whole")))


@pytest.mark.slow
def test_ray_workers_paint_the_same_chunks(tiny_mp4, stripes, tmp_path):
    import ray
    from stylelab.ray_executor import RayExecutor

    spec = spec_for(tiny_mp4, stripes, chunk_frames=3)
    assert run_clip(spec, tmp_path / "here").ok
    started = not ray.is_initialized()  # tests/ray may have one running for the session: use it as it is
    if started:
        # The workers import this checkout's stylelab (the installed one may be another).
        src = str(Path(__file__).resolve().parents[2] / "src")
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": src}},
        )
    try:
        out = run_clip(spec, tmp_path / "ray", runner=ray_runner(RayExecutor(cpus_per_task=1)))
    finally:
        if started:
            ray.shutdown()
    assert out.ok and out.frames_done == TINY_FRAMES
    assert all(np.array_equal(x, y) for x, y in zip(frames_of(tmp_path / "here"), frames_of(tmp_path / "ray")))
