"""Building blocks for painting videos: reading and writing them, optical flow, and temporal stability.

``io`` (probe, read_frames) and ``writer`` (VideoWriter) move frames in and out with PyAV; ``flow``
estimates and applies optical flow with OpenCV and checks it for occlusions (Ruder et al. 2016);
``synthetic`` makes a short clip with known motion from a built-in photo; ``stability`` scores a
painted video by its temporal warping error (Lai et al. 2018). Nothing is imported here, so that
``import stylelab`` stays cheap: import the submodule you need.
"""
