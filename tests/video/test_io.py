"""Reading and writing videos and folders of frames: what is kept, what is refused, what is left behind."""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from stylelab.errors import StylelabError, VideoError
from stylelab.video.io import VideoWriter, probe, read_frames
from stylelab.video.synthetic import write_sine
from stylelab.video.writer import pick_codec

from .conftest import FPS, FRAMES, psnr


def streams(path):
    with av.open(str(path)) as c:
        return {
            s.type: (s.codec_context.name, float(s.duration * s.time_base) if s.duration else c.duration / 1e6)
            for s in c.streams
        }


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text, text
    return text


def test_libx264_is_in_the_wheel_and_used():
    assert pick_codec() == "libx264"


def test_roundtrip_keeps_rate_count_size_and_content(clip, clip_mp4):
    info = probe(clip_mp4)
    assert (info.fps, info.frames, info.width, info.height) == (Fraction(FPS), FRAMES, 96, 64)
    assert info.codec == "h264" and info.has_audio and info.audio_codec == "aac"
    assert info.duration == pytest.approx(FRAMES / FPS, abs=0.01)
    frames = list(read_frames(clip_mp4))
    assert [i for i, _ in frames] == list(range(FRAMES))
    for (_, got), want in zip(frames, clip.frames):
        assert got.mode == "RGB" and got.size == (96, 64)
        # crf 18 on 96x64 frames with 4:2:0 chroma measured 30.7-31.8 dB.
        assert psnr(got, want) > 28


def test_audio_is_copied_for_the_same_span(clip_mp4, tmp_path):
    out = tmp_path / "out.mp4"
    info = probe(clip_mp4)
    with VideoWriter(out, info.fps, (96, 64), audio_from=clip_mp4) as w:
        for _, frame in read_frames(clip_mp4):
            w.write(frame)
    s = streams(out)
    assert s["video"][0] == "h264" and s["audio"][0] == "aac"
    assert s["audio"][1] == pytest.approx(FRAMES / FPS, abs=0.05)


def test_audio_follows_start_and_max_frames(clip_mp4, tmp_path):
    out = tmp_path / "piece.mp4"
    with VideoWriter(out, FPS, (96, 64), audio_from=clip_mp4, start=0.125) as w:
        for _, frame in read_frames(clip_mp4, start=0.125, max_frames=6):
            w.write(frame)
    s = streams(out)
    assert s["video"][1] == pytest.approx(0.25, abs=0.01)
    assert s["audio"][1] == pytest.approx(0.25, abs=0.05)


@pytest.mark.parametrize("rate", [44100, 37800])  # 37800 Hz is no AAC rate: resampled to 48 kHz
def test_audio_a_container_cannot_hold_is_reencoded(clip, tmp_path, rate):
    tone = write_sine(tmp_path / "tone.wav", 0.5, codec="pcm_s16le", sample_rate=rate)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, FPS, (96, 64), audio_from=tone) as w:
        for frame in clip.frames:
            w.write(frame)
    s = streams(out)
    assert s["audio"][0] == "aac"
    assert s["audio"][1] == pytest.approx(0.5, abs=0.05)


def test_start_end_and_max_frames_select_frames(clip, clip_mp4):
    assert [i for i, _ in read_frames(clip_mp4, start=0.25)] == list(range(6, 12))
    assert [i for i, _ in read_frames(clip_mp4, end=0.125)] == [0, 1, 2]
    assert [i for i, _ in read_frames(clip_mp4, start=0.125, end=0.25)] == [3, 4, 5]
    picked = list(read_frames(clip_mp4, start=0.1, max_frames=2))
    assert [i for i, _ in picked] == [3, 4]
    # The frames are the right ones, not just the right numbers: each is closest to its original.
    for i, img in picked:
        scores = [psnr(img, f) for f in clip.frames]
        assert int(np.argmax(scores)) == i


def test_start_seeks_across_keyframes(tmp_path):
    path = tmp_path / "grey.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt, s.gop_size = 32, 32, "yuv420p", 5  # a keyframe every 5 frames
        for i in range(30):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 8 * i, np.uint8), format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    got = [(i, np.asarray(img, np.float64).mean()) for i, img in read_frames(path, start=0.5, end=0.75)]
    assert [i for i, _ in got] == list(range(12, 18))
    assert all(abs(level - 8 * i) < 3 for i, level in got), got


def test_size_resizes_every_frame(clip_mp4):
    assert {img.size for _, img in read_frames(clip_mp4, size=48)} == {(48, 32)}
    assert {img.size for _, img in read_frames(clip_mp4, size=(40, 30), max_frames=2)} == {(40, 30)}


def test_folder_in_and_out(clip, tmp_path):
    out = tmp_path / "frames"
    with VideoWriter(out, FPS, (96, 64)) as w:
        for frame in clip.frames[:5]:
            w.write(frame)
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:06d}.png" for i in range(1, 6)]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]
    info = probe(out, fps=10)
    assert (info.is_folder, info.frames, info.fps, info.width, info.has_audio) == (True, 5, 10, 96, False)
    back = list(read_frames(out))
    assert [i for i, _ in back] == [0, 1, 2, 3, 4]
    assert all(np.array_equal(np.asarray(img), np.asarray(f)) for (_, img), f in zip(back, clip.frames))
    assert [i for i, _ in read_frames(out, fps=10, start=0.2, end=0.4)] == [2, 3]


def test_folder_order_is_natural_and_ignores_other_files(tmp_path):
    for k in (1, 2, 10):
        Image.new("RGB", (20, 10), (k, k, k)).save(tmp_path / f"f{k}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    got = [img.getpixel((0, 0))[0] for _, img in read_frames(tmp_path)]
    assert got == [1, 2, 10]


def test_odd_sizes_are_padded_and_said(clip, tmp_path):
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, FPS, (95, 63)) as w:
        for frame in clip.frames[:4]:
            w.write(frame.crop((0, 0, 95, 63)))
    assert w.output_size == (96, 64)
    assert any("95x63" in note and "96x64" in note for note in w.notes)
    info = probe(out)
    assert (info.width, info.height, info.frames) == (96, 64, 4)
    first = next(read_frames(out))[1]
    assert psnr(first.crop((0, 0, 95, 63)), clip.frames[0].crop((0, 0, 95, 63))) > 28


def test_mpeg4_fallback_writes_a_readable_video(clip, tmp_path):
    out = tmp_path / "m.mp4"
    with VideoWriter(out, FPS, (96, 64), codec="mpeg4") as w:
        for frame in clip.frames[:4]:
            w.write(frame)
    assert probe(out).codec == "mpeg4"
    assert psnr(next(read_frames(out))[1], clip.frames[0]) > 28


def test_rotated_video_comes_upright(tmp_path):
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        a = np.zeros((32, 64, 3), np.uint8)
        a[:, :16] = 255  # the left quarter white
        for i in range(2):
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    _, img = next(read_frames(path))
    assert img.size == (32, 64)
    # 90 degrees counter-clockwise: the left quarter becomes the bottom quarter.
    g = np.asarray(img.convert("L"), np.float64)
    assert g[-12:].mean() > 200 and g[:40].mean() < 50


@pytest.mark.parametrize(
    "name, content, says",
    [
        ("missing.mp4", None, "no such file"),
        ("empty.mp4", b"", "empty"),
        ("notes.txt", b"hello\nthis is text\n", "not a video"),
        ("text.mp4", b"hello\nthis is text\n" * 50, "not a video"),
        ("noise.mp4", bytes(np.random.default_rng(0).integers(0, 256, 20000, dtype=np.uint8)), "not a video"),
    ],
)
def test_bad_files_give_one_line(tmp_path, name, content, says):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(VideoError) as exc:
        list(read_frames(path))
    assert says in one_line(exc) and issubclass(exc.type, StylelabError)


def test_truncated_and_damaged_files_give_one_line(clip_mp4, tmp_path):
    data = clip_mp4.read_bytes()
    (tmp_path / "head.mp4").write_bytes(data[:300])
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    damaged = bytearray(data)
    for k in range(len(data) // 3, len(data) // 3 + 2000):
        damaged[k] = (damaged[k] * 7 + 13) % 256
    (tmp_path / "damaged.mp4").write_bytes(bytes(damaged))
    for name in ("head.mp4", "half.mp4", "damaged.mp4"):
        with pytest.raises(VideoError) as exc:
            list(read_frames(tmp_path / name))
        assert name in one_line(exc)


def test_still_image_is_not_a_video(tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "still.jpg")
    with pytest.raises(VideoError, match="still image"):
        probe(tmp_path / "still.jpg")


def test_frames_over_the_pixel_limit_are_refused_before_decoding(clip_mp4, tmp_path):
    with pytest.raises(VideoError) as exc:
        read_frames(clip_mp4, max_pixels=5000)
    assert "96x64" in one_line(exc) and "limit" in str(exc.value)
    Image.new("RGB", (96, 64)).save(tmp_path / "f1.png")
    with pytest.raises(VideoError, match="limit"):
        read_frames(tmp_path, max_pixels=5000)
    with pytest.raises(VideoError, match="at most"):
        VideoWriter(tmp_path / "big.mp4", 24, (100_000, 100_000))


def test_selections_over_the_frame_limit_or_outside_the_video_are_refused(clip_mp4):
    with pytest.raises(VideoError, match="--max-frames"):
        read_frames(clip_mp4, limit=5)
    assert len(list(read_frames(clip_mp4, max_frames=5, limit=5))) == 5
    with pytest.raises(VideoError, match="past the end"):
        read_frames(clip_mp4, start=3.0)
    with pytest.raises(VideoError, match="--end"):
        read_frames(clip_mp4, start=0.3, end=0.2)
    with pytest.raises(VideoError, match="--start"):
        read_frames(clip_mp4, start=-1)
    with pytest.raises(VideoError, match="no frame falls"):
        read_frames(clip_mp4, start=0.1, end=0.12)  # frame 2 is at 0.083 s, frame 3 at 0.125 s


def test_writer_leaves_nothing_behind_on_an_exception(clip, clip_mp4, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="painting failed"):
        # With audio the file starts at once (the encoder holds the first video frames back).
        with VideoWriter(out, FPS, (96, 64), audio_from=clip_mp4) as w:
            for frame in clip.frames[:6]:
                w.write(frame)
            (tmp,) = tmp_path.iterdir()  # the temporary, hidden, while writing
            assert tmp.name.startswith(".out.mp4.") and tmp.stat().st_size > 0
            raise RuntimeError("painting failed")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path / "frames", FPS, (96, 64)) as w:
            w.write(clip.frames[0])
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_a_wrong_frame_and_an_empty_video(clip, tmp_path):
    with pytest.raises(VideoError, match="48x32"):
        with VideoWriter(tmp_path / "out.mp4", FPS, (96, 64)) as w:
            w.write(clip.frames[0].resize((48, 32)))
    with pytest.raises(VideoError, match="no frames"):
        with VideoWriter(tmp_path / "out.mp4", FPS, (96, 64)):
            pass
    assert list(tmp_path.iterdir()) == []


def test_writer_never_overwrites_unless_asked(clip, tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    with pytest.raises(VideoError) as exc:
        VideoWriter(out, FPS, (96, 64))
    assert "--overwrite" in one_line(exc)
    assert out.read_bytes() == b"precious"
    with VideoWriter(out, FPS, (96, 64), overwrite=True) as w:
        w.write(clip.frames[0])
    assert probe(out).frames == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_refuses_a_name_taken_while_it_wrote(clip, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(VideoError, match="appeared"):
        with VideoWriter(out, FPS, (96, 64)) as w:
            w.write(clip.frames[0])
            out.write_bytes(b"someone else's")
    assert out.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_folder_output_keeps_foreign_files_and_replaces_only_its_frames(clip, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"not ours")
    for overwrite in (False, True):
        with pytest.raises(VideoError):
            VideoWriter(mine, FPS, (96, 64), overwrite=overwrite)
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]
    frames = tmp_path / "frames"
    for count in (4, 2):
        with VideoWriter(frames, FPS, (96, 64), overwrite=True) as w:
            for f in clip.frames[:count]:
                w.write(f)
    assert sorted(p.name for p in frames.iterdir()) == ["frame_000001.png", "frame_000002.png"]
    with pytest.raises(VideoError, match="--overwrite"):
        VideoWriter(frames, FPS, (96, 64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "mine"]


def test_output_that_is_the_input_is_refused(clip_mp4):
    with pytest.raises(VideoError, match="is the input"):
        VideoWriter(clip_mp4, FPS, (96, 64), audio_from=clip_mp4, overwrite=True)


def test_unknown_output_format_is_refused(tmp_path):
    with pytest.raises(VideoError, match=".avi"):
        VideoWriter(tmp_path / "out.avi", FPS, (96, 64))


def test_float_frames_mkv_files_and_ordinary_permissions(clip, tmp_path):
    out = tmp_path / "out.mkv"
    with VideoWriter(out, FPS, (96, 64)) as w:
        w.write(np.asarray(clip.frames[0], np.float32) / 255)
    assert psnr(next(read_frames(out))[1], clip.frames[0]) > 28
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    assert probe(out).frames in (1, None)


@pytest.mark.parametrize("size", [None, 48, (40, 30)])
def test_skipped_frames_are_the_same_frames_unconverted(clip, clip_mp4, tmp_path, monkeypatch, size):
    """``skip`` gives what the whole read gives from there on, in a file and in a folder, without
    converting the frames passed over (a chunk deep in a long clip no longer pays for them)."""
    folder = tmp_path / "frames"
    with VideoWriter(folder, FPS, (96, 64)) as w:
        for frame in clip.frames[:6]:
            w.write(frame)
    for source, kw in ((clip_mp4, {"start": 0.05, "max_frames": 8}), (folder, {"fps": FPS, "start": 0.05})):
        whole = [(i, np.asarray(img)) for i, img in read_frames(source, size=size, **kw)]
        converted: list[int] = []

        def counted(frame, *args, _real=av.VideoFrame.to_image, _seen=converted, **kwargs):
            _seen.append(1)
            return _real(frame, *args, **kwargs)

        monkeypatch.setattr(av.VideoFrame, "to_image", counted)
        part = [(i, np.asarray(img)) for i, img in read_frames(source, size=size, skip=3, **kw)]
        monkeypatch.undo()
        assert [i for i, _ in part] == [i for i, _ in whole[3:]], source
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(part, whole[3:])), source
        if source == clip_mp4:
            assert len(converted) == len(whole) - 3  # only the frames yielded were made images
