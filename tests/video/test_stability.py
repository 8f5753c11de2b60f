"""Lai et al.'s warping error: zero for what moves with the scene, larger for flicker."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stylelab.video.flow import warp_numpy
from stylelab.video.stability import pair_error, warping_error
from stylelab.video.synthetic import make_clip


def flicker(frames, sigma: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        np.clip(np.asarray(f, np.float32) / 255 + rng.normal(0, sigma, (f.height, f.width, 3)), 0, 1) for f in frames
    ]


def test_identical_frames_score_zero(clip):
    same = [clip.frames[4]] * 5
    assert warping_error(same, same) == 0.0


def test_outputs_that_move_exactly_with_the_scene_score_zero():
    exact = make_clip(6, (96, 64), pan=(2, 1), zoom=0.0, velocity=(3, 0))
    assert warping_error(exact.frames, exact.backward, exact.backward_valid) == 0.0
    # Any painting carried along the true flow scores zero too, however it looks.
    rng = np.random.default_rng(3)
    painted = [rng.random((64, 96, 3)).astype(np.float32)]
    for back in exact.backward:
        painted.append(warp_numpy(painted[-1], back))
    assert warping_error(painted, exact.backward, exact.backward_valid) < 1e-12


def test_flicker_scores_higher_than_a_steady_video(clip):
    frames = clip.frames[:6]
    steady = warping_error(frames, frames)  # flow estimated from the inputs themselves
    noisy = warping_error(flicker(frames, 0.05), frames)
    # Independent noise of sigma 0.05 adds 2 * sigma^2 = 0.005; measured 4.8e-4 steady, 3.9e-3 noisy.
    assert steady < 1e-3
    assert noisy > 5 * steady
    assert warping_error(flicker(frames, 0.1), frames) > 2 * noisy
    with_truth = warping_error(flicker(frames, 0.05), clip.backward[:5], clip.backward_valid[:5])
    assert with_truth == pytest.approx(2 * 0.05**2, rel=0.35)


def test_the_formula_on_one_pair_by_hand():
    current = np.zeros((8, 8, 3), np.float32)
    previous = np.zeros((8, 8, 3), np.float32)
    previous[..., 0] = 0.5  # red channel off by 0.5 everywhere
    flow = np.zeros((8, 8, 2), np.float32)
    mask = np.zeros((8, 8), np.float32)
    mask[:4] = 1
    # (0.5^2 over one of three channels) averaged over channels and the masked pixels.
    assert pair_error(current, previous, flow, mask) == pytest.approx(0.25 / 3)
    assert pair_error(current, previous, flow, np.zeros((8, 8))) is None


def test_frames_can_be_pil_arrays_or_tensors(clip):
    frames = clip.frames[:3]
    arrays = [np.asarray(f) for f in frames]
    tensors = [torch.from_numpy(np.asarray(f, np.float32) / 255).permute(2, 0, 1)[None] for f in frames]
    noisy = flicker(frames, 0.05)
    by_pil = warping_error(noisy, frames)
    assert warping_error(noisy, arrays) == pytest.approx(by_pil, rel=1e-6)
    assert warping_error(noisy, tensors) == pytest.approx(by_pil, rel=1e-6)
    assert warping_error(iter(noisy), iter(frames)) == pytest.approx(by_pil, rel=1e-6)


def test_mismatched_lengths_and_too_few_frames_are_refused(clip):
    with pytest.raises(ValueError, match="differ in length"):
        warping_error(clip.frames[:4], clip.frames[:3])
    with pytest.raises(ValueError, match="differ in length"):
        warping_error(clip.frames[:4], clip.backward[:1])
    with pytest.raises(ValueError, match="two frames"):
        warping_error(clip.frames[:1], clip.frames[:1])
    with pytest.raises(ValueError, match="one mask per flow"):
        warping_error(clip.frames[:3], clip.backward[:2], clip.backward_valid[:1])
