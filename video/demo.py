"""A tiny synthetic action dataset of real mp4 files, for demos and tests without Kinetics.

Each video shows a noisy textured background, a static distractor shape and one "actor" shape
(square or disc, random colours). The class is what the actor does over time: move up or down,
grow or shrink, move left or right. Start positions and sizes are drawn so that any single frame
looks the same for every class; only the motion tells them apart.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import av
import numpy as np

from launch.engine.errors import ConfigError
from launch.engine.generated import regenerate

# The first four classes survive horizontal flips, so the default 4-class set trains with the usual
# flip augmentation; move_left/move_right (classes 5 and 6) need the dataset's hflip=False.
CLASSES = ("move_up", "move_down", "grow", "shrink", "move_left", "move_right")
GENERATOR_VERSION = 2  # bumped whenever the frames change, so old demo folders are rewritten
RADIUS = (0.05, 0.2)  # the actor's radius range, in units of min(height, width), for every class


def _shape_mask(yy, xx, cy, cx, r, disc: bool) -> np.ndarray:
    """Boolean (F, H, W) mask of a shape centred at per-frame (cy, cx) with per-frame radius r.

    The frame wraps around like a torus: a shape leaving one edge re-enters at the opposite one.
    """
    h, w = yy.shape
    dy = (yy[None] - cy[:, None, None] + h / 2) % h - h / 2
    dx = (xx[None] - cx[:, None, None] + w / 2) % w - w / 2
    rr = r[:, None, None]
    if disc:
        return dy * dy + dx * dx <= rr * rr
    return (np.abs(dy) <= rr) & (np.abs(dx) <= rr)


def _colour(rng, low: int, high: int) -> np.ndarray:
    """A random colour whose brightest channel lies in [low, high)."""
    c = rng.uniform(0.0, 1.0, 3)
    return (c / c.max() * rng.uniform(low, high)).astype(np.int64)


def _render(rng: np.random.Generator, label: int, frames: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # Dark background, mid-tone distractor, bright actor: a fixed contrast sign keeps motion visible
    # to the linear tubelet embedding whatever the hues are.
    bg = _colour(rng, 30, 100)
    video = bg + rng.normal(0, 18, (1, h, w, 3))  # static texture
    video = np.repeat(video, frames, axis=0) + rng.normal(0, 6, (frames, h, w, 3))  # sensor noise

    unit = min(h, w)
    t = np.arange(frames, dtype=np.float32)
    # Static distractor: a shape that never moves, so "where is a shape" says nothing.
    dr = np.full(frames, rng.uniform(0.06, 0.12) * unit)
    dy = np.full(frames, rng.uniform(0, h))
    dx = np.full(frames, rng.uniform(0, w))
    video[_shape_mask(yy, xx, dy, dx, dr, bool(rng.integers(2)))] = _colour(rng, 110, 160)

    # Every class starts at a uniformly random position (and, for size changes, a random phase of a
    # repeating ramp), so the first frame, like any single frame, carries no label information.
    # The actor's radius in any one frame is uniform on [RADIUS[0], RADIUS[1]] * unit for every
    # class: constant for moves, and for size changes a ramp over the whole range at a uniformly
    # random phase (so each frame's radius is uniform too).
    name = CLASSES[label]
    cy = rng.uniform(0, h) + rng.uniform(-0.15, 0.15) * t
    cx = rng.uniform(0, w) + rng.uniform(-0.15, 0.15) * t
    small, big = RADIUS[0] * unit, RADIUS[1] * unit
    if name.startswith("move"):
        r = np.full(frames, rng.uniform(small, big))
        horizontal = name in ("move_right", "move_left")
        sign = 1.0 if name in ("move_right", "move_down") else -1.0
        step = sign * rng.uniform(0.5, 0.8) * (w if horizontal else h) / (frames - 1)
        if horizontal:
            cx = cx[0] + step * t
        else:
            cy = cy[0] + step * t
    else:
        ramp = (rng.uniform(0, 1) + t / (rng.uniform(1.0, 1.6) * frames)) % 1.0
        r = small + (big - small) * (ramp if name == "grow" else 1.0 - ramp)
    video[_shape_mask(yy, xx, cy, cx, r, bool(rng.integers(2)))] = _colour(rng, 190, 256)
    return np.clip(video, 0, 255).astype(np.uint8)


def _codec() -> str:
    for name in ("mpeg4", "libx264", "h264"):
        if name in av.codecs_available:
            return name
    raise RuntimeError("PyAV has no mpeg4 or h264 encoder; cannot write demo videos")


def _write_mp4(path: Path, video: np.ndarray, fps: int, codec: str) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 2_000_000  # generous for tiny frames, so compression barely blurs motion
        for frame in video:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_demo_videos(root, num_classes: int = 4, videos_per_class: Union[int, Sequence[int]] = (16, 8),
                      frames: int = 32, size: Union[int, Sequence[int]] = (64, 80), fps: int = 30,
                      seed: int = 0) -> tuple[Path, Path]:
    """Write ``root/videos/{train,val}/*.mp4`` plus Kinetics-style ``train.csv``/``val.csv`` and
    ``classes.txt``; return the two list paths.

    ``videos_per_class``: (train, val) counts, or one int for both. ``size``: (height, width) or
    one int; even numbers (yuv420p). The same seed gives the same frames. Rewritten only when the
    settings (or the generator) change (launch/engine/generated.py).
    """
    if not isinstance(num_classes, int) or not 2 <= num_classes <= len(CLASSES):
        raise ConfigError(f"demo num_classes={num_classes!r} must be an integer in 2..{len(CLASSES)}")
    counts = (videos_per_class,) * 2 if isinstance(videos_per_class, int) else tuple(videos_per_class)
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if len(counts) != 2 or min(counts) < 1:
        raise ConfigError(f"demo videos_per_class={videos_per_class!r} must be a positive int or "
                          f"(train, val) pair")
    if h % 2 or w % 2 or min(h, w) < 16:
        raise ConfigError(f"demo size={size!r} must be even and at least 16 pixels (yuv420p)")
    if frames < 2:
        raise ConfigError(f"demo frames={frames!r} must be at least 2")
    root = Path(root)
    settings = {"generator": GENERATOR_VERSION, "num_classes": num_classes, "videos_per_class": counts,
                "frames": frames, "size": [h, w], "fps": fps, "seed": seed}
    regenerate(root, settings, ("videos", "train.csv", "val.csv", "classes.txt"),
               lambda: _write_all(root, num_classes, counts, frames, h, w, fps, seed), "write_demo_videos",
               ours=r"videos/(train|val)/[a-z_]+_\d{3}\.mp4|(train|val)\.csv|classes\.txt")
    return root / "train.csv", root / "val.csv"


def _write_all(root: Path, num_classes, counts, frames, h, w, fps, seed) -> None:
    codec = _codec()
    rng = np.random.default_rng(seed)
    (root / "classes.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(CLASSES[:num_classes]) + "\n")
    for split, count in zip(("train", "val"), counts):
        folder = root / "videos" / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            for label in range(num_classes):
                rel = Path("videos") / split / f"{CLASSES[label]}_{i:03d}.mp4"
                _write_mp4(root / rel, _render(rng, label, frames, h, w), fps, codec)
                lines.append(f"{rel.as_posix()} {label}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
