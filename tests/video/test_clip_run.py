"""Painting a clip into a run folder: the frames, what the folder holds, resuming, the engine reused."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from stylelab.engine import Engine
from stylelab.errors import StylelabError
from stylelab.recipes import load_recipe
from stylelab.video.clip_run import VIDEO_LAYOUT, is_stylelab_video, is_video_folder, run_clip
from stylelab.video.events import ClipEnded, ClipStarted, FrameDone
from stylelab.video.io import probe, read_frames
from stylelab.video.pipeline import ClipSpec, carry

from .conftest import FPS, TINY_FRAMES, psnr

FRAME_STEPS = 3


def recipe(**changes):
    settings = {"weights": "standin", "device": "cpu", "size": 64, "steps": 8, "temporal_weight": 200.0}
    return load_recipe("default", **{**settings, **changes})


def spec_for(source, style, **changes) -> ClipSpec:
    r = recipe(**changes.pop("recipe", {}))
    return ClipSpec(str(source), (str(style),), r, frame_steps=changes.pop("frame_steps", FRAME_STEPS), **changes)


def frames_of(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted((folder / "frames").glob("frame_*.png"))]


def csv_rows(folder) -> list[dict]:
    with open(folder / "frames.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_a_clip_is_painted_into_its_run_folder_and_the_video(tiny_mp4, stripes, tmp_path):
    spec = spec_for(tiny_mp4, stripes)
    seen = []
    out = run_clip(spec, tmp_path / "run", tmp_path / "out.mp4", sinks=[seen.append])
    assert out.ok and out.frames_done == out.total == TINY_FRAMES and out.resumed_from == 0
    run = tmp_path / "run"
    assert is_video_folder(run) and VIDEO_LAYOUT.holds_only_ours(run)
    assert len(frames_of(run)) == TINY_FRAMES
    rows = csv_rows(run)
    assert [int(r["frame"]) for r in rows] == list(range(1, TINY_FRAMES + 1))
    assert [int(r["index"]) for r in rows] == list(range(TINY_FRAMES))
    # Frame 1 is painted as a still (no temporal term), the later ones with the frame budget and the term.
    assert int(rows[0]["steps"]) == 8 and rows[0]["temporal"] == "" and rows[0]["reliable"] == ""
    assert all(int(r["steps"]) == FRAME_STEPS and r["temporal"] != "" for r in rows[1:])
    assert all(0.3 < float(r["reliable"]) <= 1 for r in rows[1:])
    info = json.loads((run / "video.json").read_text())
    assert info["status"] == "done" and info["frames_done"] == TINY_FRAMES and info["fps"] == "24"
    # One network, and the style's statistics built once for the whole clip.
    assert info["engine"] == {"network_builds": 1, "style_cache_hits": TINY_FRAMES - 1, "style_cache_misses": 1}
    video = probe(tmp_path / "out.mp4")
    assert (video.fps, video.width, video.height, video.frames, video.has_audio) == (FPS, 64, 48, TINY_FRAMES, True)
    assert is_stylelab_video(tmp_path / "out.mp4") and not is_stylelab_video(tiny_mp4)
    # The video shows the saved frames (H.264 at crf 18, 4:2:0, on painted 64x48 frames: 26-31 dB measured;
    # another frame of the clip scores under 20).
    for (_, got), want in zip(read_frames(tmp_path / "out.mp4"), frames_of(run)):
        assert psnr(got, want) > 23
    kinds = [type(e).__name__ for e in seen if isinstance(e, (ClipStarted, FrameDone, ClipEnded))]
    assert kinds == ["ClipStarted", *["FrameDone"] * TINY_FRAMES, "ClipEnded"]
    done = [e for e in seen if isinstance(e, FrameDone)]
    assert done[-1].eta == 0.0 and all(e.eta is not None and e.eta >= 0 for e in done)


def test_without_an_output_the_video_stays_in_the_run_folder(tiny_mp4, stripes, tmp_path):
    out = run_clip(spec_for(tiny_mp4, stripes, max_frames=2), tmp_path / "run")
    assert out.output == tmp_path / "run" / "video.mp4" and probe(out.output).frames == 2
    assert is_video_folder(tmp_path / "run")


class StopAfter:
    """A sink that presses Ctrl-C once frame ``n`` is saved."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, event):
        if isinstance(event, FrameDone) and event.frame == self.n:
            raise KeyboardInterrupt


@pytest.mark.parametrize("preserve", ["none", "luminance"])
def test_a_resumed_clip_equals_an_uninterrupted_one_bit_for_bit(tiny_mp4, stripes, tmp_path, preserve):
    spec = spec_for(tiny_mp4, stripes, recipe={"preserve_color": preserve})
    whole = run_clip(spec, tmp_path / "whole", tmp_path / "whole.mp4")
    assert whole.ok
    first = run_clip(spec, tmp_path / "broken", tmp_path / "broken.mp4", sinks=[StopAfter(3)])
    assert (first.status, first.frames_done, first.output) == ("interrupted", 3, None)
    assert not (tmp_path / "broken.mp4").exists()
    info = json.loads((tmp_path / "broken" / "video.json").read_text())
    assert (info["status"], info["frames_done"]) == ("interrupted", 3)
    # Going on needs a fresh engine, as a new process has.
    engine = Engine.for_recipe(spec.recipe)
    again = run_clip(spec, tmp_path / "broken", tmp_path / "broken.mp4", engine=engine)
    assert again.ok and again.resumed_from == 3 and again.painted == TINY_FRAMES - 3
    a, b = frames_of(tmp_path / "whole"), frames_of(tmp_path / "broken")
    assert len(a) == len(b) == TINY_FRAMES
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    assert [r["steps"] for r in csv_rows(tmp_path / "broken")] == [r["steps"] for r in csv_rows(tmp_path / "whole")]
    if preserve == "luminance":
        assert len(list((tmp_path / "broken" / "luminance").glob("frame_*.png"))) == TINY_FRAMES


def test_a_frame_stopped_midway_is_painted_again_on_resume(tiny_mp4, stripes, tmp_path):
    from stylelab.events import Step

    class StopInFrame:
        def __init__(self):
            self.frames = 0

        def __call__(self, event):
            self.frames += isinstance(event, FrameDone)
            return self.frames == 2 and isinstance(event, Step) and event.step == 2  # cancels frame 3

    spec = spec_for(tiny_mp4, stripes)
    out = run_clip(spec, tmp_path / "run", tmp_path / "out.mp4", sinks=[StopInFrame()])
    assert (out.status, out.frames_done) == ("cancelled", 2)
    assert len(frames_of(tmp_path / "run")) == 2 and len(csv_rows(tmp_path / "run")) == 2
    again = run_clip(spec, tmp_path / "run", tmp_path / "out.mp4")
    assert again.ok and again.resumed_from == 2
    assert run_clip(spec, tmp_path / "whole").ok
    for x, y in zip(frames_of(tmp_path / "run"), frames_of(tmp_path / "whole")):
        assert np.array_equal(x, y)


def test_other_settings_are_refused_unless_restarted(tiny_mp4, stripes, tmp_path):
    run_clip(spec_for(tiny_mp4, stripes, max_frames=2), tmp_path / "run")
    other = spec_for(tiny_mp4, stripes, max_frames=2, recipe={"style_weight": 9.0})
    with pytest.raises(StylelabError, match="other settings .*style_weight 5.0 -> 9.0.*--restart"):
        run_clip(other, tmp_path / "run")
    out = run_clip(other, tmp_path / "run", restart=True)
    assert out.ok and out.resumed_from == 0
    info = json.loads((tmp_path / "run" / "video.json").read_text())
    assert info["settings"]["recipe"]["style_weight"] == 9.0


def test_temporal_weight_zero_paints_every_frame_on_its_own(tiny_mp4, stripes, tmp_path):
    spec = spec_for(tiny_mp4, stripes, max_frames=3, recipe={"temporal_weight": 0.0})
    assert not spec.temporal and spec.later_steps == 8
    run_clip(spec, tmp_path / "run")
    rows = csv_rows(tmp_path / "run")
    assert [int(r["steps"]) for r in rows] == [8, 8, 8] and all(r["temporal"] == "" for r in rows)


def test_carrying_the_input_frame_along_the_flow_gives_the_next_frame(tiny_clip):
    a, b = tiny_clip.frames[2], tiny_clip.frames[3]
    c = carry(a, a, b, fill="content")  # the "painted" frame is the input: carried, it must match frame b
    reliable = c.weights > 0
    assert 0.5 < c.reliable < 1 and c.weights.shape == (48, 64)
    diff = np.abs(np.asarray(c.warped, np.float32) - np.asarray(b, np.float32))[reliable]
    assert diff.mean() < 6  # DIS on 64x48 frames: a pixel or less of error where reliable
    # Where frame b shows what frame a did not, the start image is frame b itself; elsewhere the warp.
    init, warped = np.asarray(c.init), np.asarray(c.warped)
    hidden = ~np.all(init == warped, -1)
    assert hidden.any() and np.array_equal(init[hidden], np.asarray(b)[hidden])
    assert np.array_equal(np.asarray(carry(a, a, b).init), warped)  # by default, the warp everywhere
    linear = carry(a, a, b, interpolation="linear")
    assert np.abs(np.asarray(linear.warped, np.float32) - np.asarray(b, np.float32))[reliable].mean() < 6
    t = c.temporal()
    assert tuple(t.image.shape) == (1, 3, 48, 64) and tuple(t.weights.shape) == (1, 1, 48, 64)


def test_progress_lines_and_bars(tiny_mp4, stripes, tmp_path):
    import io

    from rich.console import Console

    from stylelab.video.progress import ClipBar, ClipLines

    lines: list[str] = []
    buf = io.StringIO()
    with ClipBar(Console(file=buf, force_terminal=True, width=120)) as bar:
        run_clip(spec_for(tiny_mp4, stripes, max_frames=3), tmp_path / "run", sinks=[ClipLines(4, lines.append), bar])
    assert lines[0].startswith("clip: 3 frames at 64x48, 8 steps for frame 1 and 3 for each later one")
    frames = [line for line in lines if line.startswith("frame")]
    assert [line.split(":")[0] for line in frames] == ["frame 1/3", "frame 2/3", "frame 3/3"]
    assert "clip eta" in frames[0] and "carried" in frames[1] and "clip eta" not in frames[2]
    assert any(line.startswith("  4/8 ") for line in lines)
    assert lines[-1] == "clip done: 3/3 frames"
    shown = buf.getvalue()
    assert "clip" in shown and "3/3" in shown and "frame 3" in shown


def test_the_stop_event_ends_the_clip_after_the_frame_being_painted(tiny_mp4, stripes, tmp_path):
    import threading

    stop = threading.Event()

    def press_stop(event):
        if isinstance(event, FrameDone) and event.frame == 2:
            stop.set()

    ended = []
    out = run_clip(spec_for(tiny_mp4, stripes), tmp_path / "run", sinks=[press_stop, ended.append], stop=stop)
    assert (out.status, out.frames_done, out.output) == ("cancelled", 2, None)
    last = [e for e in ended if isinstance(e, ClipEnded)]
    assert len(last) == 1 and last[0].status == "cancelled" and last[0].frames_done == 2
    assert json.loads((tmp_path / "run" / "video.json").read_text())["status"] == "cancelled"
