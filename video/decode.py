"""Read chosen frames of a video file: decord first, PyAV when decord cannot.

decord 0.6.0 rejects some valid files: e.g. any mp4 whose width is 16, 24, 48 or 72 pixels fails in
``get_batch`` with "DECORDArrayCopyFromTo: The size must exactly match". Such files are decoded with
PyAV instead, so only files neither library can read count as unreadable.
"""
from __future__ import annotations

import logging
from typing import Callable

import av
import decord
import numpy as np
import torch

log = logging.getLogger(__name__)

# Given (frame count, fps), return the frame indices wanted.
IndexFn = Callable[[int, float], torch.Tensor]


def _with_decord(path: str, pick: IndexFn) -> tuple[torch.Tensor, np.ndarray]:
    reader = decord.VideoReader(path, num_threads=1)
    n = len(reader)
    if n < 1:
        raise RuntimeError("video has no frames")
    wanted = pick(n, reader.get_avg_fps())
    return wanted, reader.get_batch(wanted.tolist()).asnumpy()


def _with_pyav(path: str, pick: IndexFn) -> tuple[torch.Tensor, np.ndarray]:
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        # Frame counts in headers can be missing or wrong, so decode once to count and keep all.
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise RuntimeError("video has no frames")
    wanted = pick(len(frames), fps)
    return wanted, np.stack([frames[i] for i in wanted.tolist()])


def read_frames(path: str, pick: IndexFn) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sorted unique frame indices, uint8 frames (N, C, H, W)) for ``pick``'s choice.

    ``pick`` may return repeated or unsorted indices; each distinct frame is decoded once.
    """
    unique = lambda n, fps: torch.unique(pick(n, fps))  # noqa: E731
    try:
        wanted, frames = _with_decord(path, unique)
    except Exception as err:  # decord raises its own and RuntimeError types
        log.debug("decord failed on %s (%s); trying PyAV", path, err)
        wanted, frames = _with_pyav(path, unique)
    return wanted, torch.from_numpy(frames).permute(0, 3, 1, 2)
