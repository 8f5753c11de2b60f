"""The synthetic clip: its true motion is right, and it writes a playable video."""

from __future__ import annotations

import numpy as np

from stylelab.video.io import probe
from stylelab.video.synthetic import make_clip, write_clip


def test_clip_shape_and_motion(clip):
    assert len(clip.frames) == 12 and clip.size == (96, 64)
    assert len(clip.forward) == len(clip.backward) == len(clip.forward_valid) == 11
    assert all(f.shape == (64, 96, 2) and f.dtype == np.float32 for f in clip.forward + clip.backward)
    # The disc moves right, the picture moves (camera pan), and it is covered and uncovered.
    xs = [np.nonzero(m)[1].mean() for m in clip.object_masks]
    assert all(b > a + 1 for a, b in zip(xs, xs[1:]))
    assert all(0.6 < v.mean() < 0.98 for v in clip.forward_valid + clip.backward_valid)
    assert not np.array_equal(np.asarray(clip.frames[0]), np.asarray(clip.frames[1]))


def test_forward_and_backward_flows_are_inverse_where_valid(clip):
    from stylelab.video.flow import warp_numpy

    for t in (0, 6):
        valid = clip.forward_valid[t] > 0
        back_there = warp_numpy(clip.backward[t], clip.forward[t])
        assert np.abs(clip.forward[t] + back_there)[valid].max() < 0.05


def test_seed_changes_the_camera_path():
    a, b = make_clip(3, (48, 32), seed=1), make_clip(3, (48, 32), seed=2)
    assert not np.allclose(a.forward[0], b.forward[0])
    again = make_clip(3, (48, 32), seed=1)
    assert np.array_equal(np.asarray(a.frames[2]), np.asarray(again.frames[2]))


def test_write_clip_makes_a_video_with_a_tone(clip, tmp_path):
    path = write_clip(tmp_path / "demo.mp4", clip, 12, audio_hz=330.0)
    info = probe(path)
    assert (info.frames, info.fps, info.has_audio, info.audio_codec) == (12, 12, True, "aac")
    assert info.duration == 1.0
