"""``stylelab video`` end to end, with the stand-in network: what it writes, what it keeps, what it refuses."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylelab.cli import main
from stylelab.video.io import probe, read_frames
from stylelab.video.output import is_stylelab_video

from .conftest import FPS, TINY_FRAMES

TINY = ["--weights", "standin", "--device", "cpu", "--size", "64", "--steps", "6", "--frame-steps", "2"]


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def audio_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return float(s.duration * s.time_base)


def test_video_in_video_out_keeps_rate_size_and_audio(capsys, tiny_mp4, stripes, tmp_path):
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "video", tiny_mp4, "--style", stripes, "-o", out, *TINY)
    assert code == 0, err
    info = probe(out)
    assert (info.fps, info.width, info.height, info.frames, info.has_audio) == (FPS, 64, 48, TINY_FRAMES, True)
    assert audio_seconds(out) == pytest.approx(TINY_FRAMES / FPS, abs=0.03)
    run = tmp_path / "out-run"  # the default run folder, beside the output
    names = sorted(p.name for p in run.iterdir())
    assert names == ["frames", "frames.csv", "recipe.toml", "video.json"]
    assert len(list((run / "frames").glob("frame_*.png"))) == TINY_FRAMES
    video = json.loads((run / "video.json").read_text())
    # The video command's own temporal weight, since the default recipe has none.
    assert video["settings"]["recipe"]["temporal_weight"] > 0 and video["settings"]["frame_steps"] == 2
    # Progress, not a terminal here: a line per frame with the clip's ETA, and the closing line.
    assert err.count("frame ") >= TINY_FRAMES and "clip eta" in err and f"wrote {out}" in err
    # The same command again: every frame is kept, the video assembled again.
    code, err = run_cli(capsys, "video", tiny_mp4, "--style", stripes, "-o", out, *TINY)
    assert code == 0, err
    assert f"frames 1-{TINY_FRAMES} kept" in err and "0 painted" in err


def test_a_painted_video_is_painted_differently_with_the_temporal_weight_zero(capsys, tiny_mp4, stripes, tmp_path):
    code, err = run_cli(
        capsys, "video", tiny_mp4, "-s", stripes, "-o", tmp_path / "plain.mp4", *TINY, "--temporal-weight", 0, "-q"
    )
    assert code == 0, err
    rows = (tmp_path / "plain-run" / "frames.csv").read_text().splitlines()[1:]
    assert [r.split(",")[2] for r in rows] == ["6"] * TINY_FRAMES  # every frame its full steps


def test_start_end_and_max_frames_paint_a_piece(capsys, tiny_mp4, stripes, tmp_path):
    out = tmp_path / "piece.mp4"
    # At 24 fps, [0.1, 0.25) holds frames 3, 4 and 5.
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "--start", 0.1, "--end", 0.25, "-q")
    assert code == 0, err
    rows = (tmp_path / "piece-run" / "frames.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[1]) for r in rows] == [3, 4, 5]
    assert probe(out).frames == 3 and audio_seconds(out) == pytest.approx(3 / FPS, abs=0.03)
    out2 = tmp_path / "two.mp4"
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out2, *TINY, "--max-frames", 2, "-q")
    assert code == 0, err
    assert probe(out2).frames == 2


def test_folder_of_frames_in_and_out(capsys, tiny_clip, stripes, tmp_path):
    src = tmp_path / "frames-in"
    src.mkdir()
    for i, frame in enumerate(tiny_clip.frames[:4], 1):
        frame.save(src / f"shot{i}.png")
    out = tmp_path / "painted"
    code, err = run_cli(capsys, "video", src, "-s", stripes, "-o", out, *TINY, "--fps", 12, "-q")
    assert code == 0, err
    files = sorted(out.iterdir())
    assert [p.name for p in files] == [f"frame_{i:06d}.png" for i in range(1, 5)]
    assert all(Image.open(p).size == (64, 48) for p in files)
    assert is_stylelab_video(out)
    assert json.loads((tmp_path / "painted-run" / "video.json").read_text())["fps"] == "12"
    # Painted again with other settings in a new run folder: the folder of frames is stylelab's, so it is replaced.
    code, err = run_cli(
        capsys, "video", src, "-s", stripes, "-o", out, *TINY, "--run-dir", tmp_path / "r2", "--style-weight", 9, "-q"
    )
    assert code == 0, err
    assert len(list(out.iterdir())) == 4


def test_a_file_or_folder_of_the_users_is_never_replaced(capsys, tiny_mp4, tiny_clip, stripes, tmp_path):
    theirs = tmp_path / "holiday.mp4"
    theirs.write_bytes(tiny_mp4.read_bytes())  # a real video, not stylelab's
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", theirs, *TINY, "-q")
    assert code == 2 and "already exists and was not made by stylelab" in err
    assert theirs.read_bytes() == tiny_mp4.read_bytes()
    frames = tmp_path / "their-frames"
    frames.mkdir()
    tiny_clip.frames[0].save(frames / "frame_000001.png")  # named like ours, but not ours
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", frames, *TINY, "-q")
    assert code == 2 and "did not write" in err
    assert [p.name for p in frames.iterdir()] == ["frame_000001.png"]
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", tmp_path / "x.mp4", "--run-dir", notes, *TINY)
    assert code == 2 and "stylelab did not write" in err
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "holiday-run").exists()


@pytest.mark.parametrize(
    "args, says",
    [
        (["{missing}"], "no such file or folder"),
        (["{notvideo}"], "not a video stylelab can read"),
        (["{clip}", "--flow", "optical"], "unknown --flow"),
        (["{clip}", "--start", "5"], "past the end"),
        (["{clip}", "--start", "0.2", "--end", "0.1"], "--end must be"),
        (["{clip}", "--max-frames", "0"], "--max-frames must be 1 or more"),
        (["{clip}", "--frame-steps", "0"], "--frame-steps must be 1 or more"),
        (["{clip}", "-o", "{tmp}/out.avi"], "name the output .mp4"),
        (["{clip}", "-o", "{clip}"], "is the input"),
        (["{clip}", "--engine", "fast"], "painted by the optimiser"),
        (["{clip}", "--size", "8"], "size must be between"),
        (["{clip}", "--style-blend-weights", "1", "--style-blend-weights", "2"], "blend weights"),
    ],
)
def test_bad_inputs_are_one_line_and_write_nothing(capsys, tiny_mp4, stripes, tmp_path, args, says):
    (tmp_path / "notes.mp4").write_text("not a video")
    fill = {"missing": tmp_path / "nope.mp4", "notvideo": tmp_path / "notes.mp4", "clip": tiny_mp4, "tmp": tmp_path}
    argv = [a.format(**fill) for a in args]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.mp4")]
    before = sorted(os.listdir(tmp_path))
    code, err = run_cli(capsys, "video", "-s", stripes, *TINY, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and says in lines[0], err
    assert sorted(os.listdir(tmp_path)) == before


def test_no_style_or_no_source_is_one_line(capsys, tiny_mp4, tmp_path):
    code, err = run_cli(capsys, "video", tiny_mp4, "-o", tmp_path / "o.mp4")
    assert code == 2 and "--style" in err
    code, err = run_cli(capsys, "video", "-s", "x.png")
    assert code == 2 and "SOURCE" in err


def test_ctrl_c_stops_after_the_saved_frames_and_says_how_to_go_on(capsys, tiny_mp4, stripes, tmp_path, monkeypatch):
    import stylelab.video.pipeline as pipeline

    real, calls = pipeline.carry, []

    def carry_then_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # while frame 4 is being prepared
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    out = tmp_path / "out.mp4"
    monkeypatch.setattr(pipeline, "carry", carry_then_ctrl_c)
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "-q")
    assert code == 130
    assert "after frame 3 of 6" in err and "run the same command again to go on from frame 4" in err
    assert not out.exists()
    monkeypatch.setattr(pipeline, "carry", real)
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY)
    assert code == 0, err
    assert "frames 1-3 kept" in err and probe(out).frames == TINY_FRAMES


def test_the_demo_needs_no_files(capsys, tmp_path):
    out = tmp_path / "demo.mp4"
    code, err = run_cli(capsys, "video", "--demo", "-o", out, *TINY, "--max-frames", 3, "-q")
    assert code == 0, err
    assert probe(out).frames == 3 and probe(out).has_audio
    frames = [np.asarray(f) for _, f in read_frames(tmp_path / "demo-run" / "inputs" / "clip.mp4", max_frames=3)]
    assert len(frames) == 3 and frames[0].shape == (128, 192, 3)


def test_chunks_from_the_command_line(capsys, tiny_mp4, stripes, tmp_path):
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "--chunk-frames", 4, "-q")
    assert code == 0, err
    assert json.loads((tmp_path / "out-run" / "video.json").read_text())["chunks_done"] == [[1, 4], [4, 6]]
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "--address", "auto")
    assert code == 2 and "--address goes with --executor ray" in err
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "--chunk-frames", 1)
    assert code == 2 and "--chunk-frames must be at least 2" in err


@pytest.mark.parametrize("extra", [["--preserve-color", "histogram"], ["--masks", "{mask}", "--background", "{style}"]])
def test_still_options_apply_to_every_frame(capsys, tiny_mp4, stripes, tmp_path, extra):
    mask = tmp_path / "left.png"
    a = np.zeros((48, 64), np.uint8)
    a[:, :32] = 255
    Image.fromarray(a).save(mask)
    args = [x.format(mask=mask, style=stripes) for x in extra]
    out = tmp_path / "out.mp4"
    code, err = run_cli(capsys, "video", tiny_mp4, "-s", stripes, "-o", out, *TINY, "--max-frames", 3, *args, "-q")
    assert code == 0, err
    settings = json.loads((tmp_path / "out-run" / "video.json").read_text())["settings"]
    if "--masks" in extra:
        assert settings["masks"][0]["name"] == str(mask) and settings["background"]["name"] == str(stripes)
    else:
        assert settings["recipe"]["preserve_color"] == "histogram"
    assert probe(out).frames == 3
