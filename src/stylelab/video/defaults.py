"""The video command's measured defaults, apart so that the command line reads them without numpy."""

# Measured (benchmarks/video.py; the figures in benchmarks/README.md, "Video"): at 256 px, with
# the default recipe's 100 steps for a still (its plateau at that size), a frame started from the
# previous one carried along the flow reaches per-frame stylisation's content and style distance
# after 25-40 steps; 40 % of the recipe's steps is the default budget of a later frame.
FRAME_STEP_FRACTION = 0.4
# Measured the same way (6 frames, 40 steps each; per-frame stylisation: warping error 0.0162,
# style distance 0.1692): temporal weight 0 (the warm start alone) 0.0019 / 0.1676, 5: 0.0015 /
# 0.1686, 20: 0.0011 / 0.1707. The term trades style for steadiness (its target, the previous
# frame resampled, is a little smoother than a painted frame; at weight 100 the style distance
# was 0.176); 5 is the largest weight measured that keeps it no worse than per-frame stylisation's.
VIDEO_TEMPORAL_WEIGHT = 5.0
