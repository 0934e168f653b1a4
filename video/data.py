"""Kinetics-style video classification data: the clip dataset, multi-view aggregation, demo data.

Public API: ``load_video_list``, ``VideoClipDataset``, ``aggregate_views``, ``write_demo_videos``.
CLI: ``python -m video.data demo ROOT [--seed N] [--num-classes K]`` writes the demo dataset.
"""
from __future__ import annotations

import argparse
import logging
from typing import Optional, Sequence, Union

import torch
from torch.utils.data import Dataset

from launch.engine.data import load_with_standins
from launch.engine.tasks import Sample, make_sample
from launch.engine.errors import ConfigError, DataError

from . import transforms as T
from .decode import read_frames
from .demo import CLASSES, write_demo_videos
from .lists import load_video_list

__all__ = ["load_video_list", "VideoClipDataset", "aggregate_views", "write_demo_videos", "CLASSES"]

log = logging.getLogger(__name__)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer")
    return value


class VideoClipDataset(Dataset):
    """Clips from a Kinetics-style list, decoded with decord (PyAV for files decord rejects).

    Training (``train=True``): one item per video; a random clip of ``num_frames`` frames spaced
    ``sampling_rate`` apart (at ``target_fps``; None = source frames), a random resized crop
    (``scale``/``aspect``; ``scale=None`` switches to short-side jitter in ``short_side`` plus a random
    crop), a horizontal flip (``hflip=False`` for direction-sensitive labels), optional RandAugment
    (``rand_augment``: a timm string such as ``"rand-m7-mstd0.5-inc1"``, timm's ops with the same
    draw for every frame of a clip, applied before the crop as MAE-ST does), then normalisation, then optional random erasing
    (``random_erase``: probability of one box through all frames, ``random_erase_mode`` pixel /
    rand / const, ``random_erase_count`` boxes at most; MAE-ST uses 0.25, pixel, 1).
    ``repeat_aug=k`` returns k independently sampled and augmented clips of the video, stacked.
    Evaluation ignores repeat_aug.

    Evaluation: ``num_temporal_clips * num_spatial_crops`` items (views) per video: evenly spaced
    clips; with 3 crops the short side is resized to ``crop_size`` and left/centre/right (top/centre/
    bottom for portrait) squares are taken, with 1 crop the short side goes to ``short_side`` and the
    centre is cropped (the PySlowFast / MAE-ST test convention).

    ``short_side`` defaults to Kinetics' ratios of ``crop_size``: (256, 320) train / 256 eval for 224.

    Items: :class:`launch.engine.tasks.Sample`: ``"input"`` float (C, T, H, W) or (k, C, T, H, W),
    ``"target"`` int, ``"index"`` the item (one view of one video in evaluation), ``"group"`` the
    video (row of the list) it was decoded from, which the task's metrics average views over,
    ``"skipped"`` how many unreadable files were replaced before this one decoded. An unreadable
    video is logged and replaced by another (random in training, a fixed choice per view in
    evaluation, whose own label and video are returned as target and group); after
    ``max_retries`` replacements fail, DataError.
    """

    def __init__(self, list_path, root, train: bool, num_frames: int = 16, sampling_rate: int = 4,
                 crop_size: int = 224, short_side: Union[int, Sequence[int], None] = None,
                 num_temporal_clips: int = 1, num_spatial_crops: int = 1,
                 rand_augment: Optional[str] = None, repeat_aug: int = 1,
                 mean: Sequence[float] = (0.45, 0.45, 0.45), std: Sequence[float] = (0.225, 0.225, 0.225),
                 max_retries: int = 10, scale: Optional[Sequence[float]] = (0.08, 1.0),
                 aspect: Sequence[float] = (0.75, 4 / 3), hflip: bool = True,
                 target_fps: Optional[float] = 30.0, random_erase: float = 0.0,
                 random_erase_mode: str = "pixel", random_erase_count: int = 1):
        self.videos = load_video_list(list_path, root)
        self.list_path = str(list_path)
        self.train = bool(train)
        self.num_frames = _positive_int("num_frames", num_frames)
        self.sampling_rate = _positive_int("sampling_rate", sampling_rate)
        self.crop_size = _positive_int("crop_size", crop_size)
        self.num_temporal_clips = _positive_int("num_temporal_clips", num_temporal_clips)
        if num_spatial_crops not in (1, 3):
            raise ConfigError(f"num_spatial_crops={num_spatial_crops!r} must be 1 or 3")
        self.num_spatial_crops = num_spatial_crops
        self.repeat_aug = _positive_int("repeat_aug", repeat_aug) if self.train else 1
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"max_retries={max_retries!r} must be a non-negative integer")
        self.max_retries = max_retries
        self.short_side = self._short_side(short_side)
        if scale is not None and not (len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1):
            raise ConfigError(f"scale={scale!r} must be (low, high) with 0 < low <= high <= 1, or None")
        if not (len(aspect) == 2 and 0 < aspect[0] <= aspect[1]):
            raise ConfigError(f"aspect={aspect!r} must be (low, high) with 0 < low <= high")
        self.scale, self.aspect = scale, aspect
        self.hflip = bool(hflip)
        for name, v in (("mean", mean), ("std", std)):
            if len(v) != 3 or (name == "std" and min(v) <= 0):
                raise ConfigError(f"{name}={v!r} must be three numbers (one per RGB channel)"
                                  + (", all positive" if name == "std" else ""))
        self.mean, self.std = tuple(mean), tuple(std)
        self.rand_augment = T.ClipRandAugment(rand_augment) if (rand_augment and self.train) else None
        erase = T.ClipRandomErasing(random_erase, random_erase_mode, count=random_erase_count)
        self.random_erase = erase if (self.train and random_erase > 0) else None
        if target_fps is not None and target_fps <= 0:
            raise ConfigError(f"target_fps={target_fps!r} must be positive or None")
        self.target_fps = target_fps

    def _short_side(self, short_side):
        if short_side is None:
            lo, hi = round(self.crop_size * 8 / 7), round(self.crop_size * 10 / 7)
            return (lo, hi) if self.train else lo
        sides = (short_side,) * 2 if isinstance(short_side, int) else tuple(short_side)
        if len(sides) != 2 or not all(isinstance(s, int) for s in sides) or not \
                self.crop_size <= sides[0] <= sides[1]:
            raise ConfigError(f"short_side={short_side!r} must be an int or (low, high) ints with "
                              f"crop_size={self.crop_size} <= low <= high")
        return sides if self.train else sides[0]

    @property
    def views_per_video(self) -> int:
        return 1 if self.train else self.num_temporal_clips * self.num_spatial_crops

    def __len__(self) -> int:
        return len(self.videos) * self.views_per_video

    # -- decoding -----------------------------------------------------------------------------

    def _decode(self, path: str, temporal_idx: int, count: int) -> list[torch.Tensor]:
        """``count`` clips (uint8 T, C, H, W) from one file; raises on any decoding problem."""
        clips = []

        def pick(n: int, fps: float) -> torch.Tensor:
            clips[:] = [T.clip_indices(n, self.num_frames, self.sampling_rate, temporal_idx,
                                       self.num_temporal_clips, fps, self.target_fps)
                        for _ in range(count)]
            return torch.cat(clips)

        # Each distinct frame is decoded once; repeated-augmentation clips often overlap.
        wanted, frames = read_frames(path, pick)
        return [frames[torch.searchsorted(wanted, clip)] for clip in clips]

    def _replacement(self, item: int, video: int, attempt: int) -> int:
        n = len(self.videos)
        if n == 1:
            return video
        if self.train:
            pick = int(torch.randint(n - 1, ()).item())
        else:  # fixed per (view, attempt) so evaluation is repeatable
            gen = torch.Generator().manual_seed(item * 1_000_003 + attempt)
            pick = int(torch.randint(n - 1, (), generator=gen).item())
        return pick + (pick >= video)  # never the video that just failed

    # -- augmentation -------------------------------------------------------------------------

    def _train_view(self, clip: torch.Tensor) -> torch.Tensor:
        if self.rand_augment is not None:  # on the decoded frames, before the crop (MAE-ST order)
            clip = self.rand_augment(clip)
        if self.scale is not None:
            clip = T.random_resized_crop(clip, self.crop_size, self.scale, self.aspect)
        else:
            clip = T.random_short_side_crop(clip, self.crop_size, self.short_side)
        if self.hflip:
            clip = T.random_hflip(clip)
        clip = T.normalize(clip, self.mean, self.std)
        if self.random_erase is not None:  # after normalisation, as MAE-ST erases
            clip = self.random_erase(clip)
        return clip

    def _eval_view(self, clip: torch.Tensor, spatial_idx: int) -> torch.Tensor:
        # MAE-ST's test views: short side to the view's scale with the long side rounded half up
        # (its decoder's frame size), centre offsets ceiled (util/decoder/transform.py). Resizing
        # before normalising equals resizing after (both are affine per channel), up to float rounding.
        if self.num_spatial_crops == 1:
            clip = T.uniform_crop(T.resize_short_side_float(clip, self.short_side), self.crop_size, 1)
        else:
            clip = T.uniform_crop(T.resize_short_side_float(clip, self.crop_size), self.crop_size,
                                  spatial_idx)
        return T.normalize(clip, self.mean, self.std)

    def __getitem__(self, item: int) -> Sample:
        if not 0 <= item < len(self):
            raise IndexError(f"item {item} out of range for {len(self)} items")
        video, view = divmod(item, self.views_per_video)
        temporal_idx, spatial_idx = divmod(view, self.num_spatial_crops)
        if self.train:
            temporal_idx = -1
        clips, video, failures = load_with_standins(
            lambda v: self._decode(self.videos[v][0], temporal_idx, self.repeat_aug),
            lambda v: self.videos[v][0], video, lambda v, a: self._replacement(item, v, a),
            self.max_retries, "video", log)
        label = self.videos[video][1]
        if self.train:
            views = [self._train_view(c) for c in clips]
        else:
            views = [self._eval_view(clips[0], spatial_idx)]
        x = views[0] if len(views) == 1 else torch.stack(views)
        return make_sample(x, label, item, video, failures)


def aggregate_views(scores: torch.Tensor, video_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average softmax scores over each video's views.

    ``scores`` [N, K] logits of N views, ``video_index`` [N] the video each view came from. Returns
    ([V, K] mean probabilities, [V] video ids), videos in ascending id order.
    """
    if scores.ndim != 2 or video_index.ndim != 1 or scores.shape[0] != video_index.shape[0]:
        raise DataError(f"aggregate_views needs scores [N, K] and video_index [N], got "
                          f"{tuple(scores.shape)} and {tuple(video_index.shape)}")
    ids, inverse = torch.unique(video_index, sorted=True, return_inverse=True)
    probs = scores.float().softmax(dim=-1)
    total = torch.zeros(len(ids), scores.shape[1], dtype=probs.dtype, device=probs.device)
    total.index_add_(0, inverse, probs)
    counts = torch.bincount(inverse, minlength=len(ids)).to(probs.dtype).unsqueeze(1)
    return total / counts, ids


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m video.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic demo video dataset")
    demo.add_argument("root", help="folder to write videos/, train.csv, val.csv, classes.txt into")
    demo.add_argument("--num-classes", type=int, default=4, help=f"2..{len(CLASSES)}")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_csv, val_csv = write_demo_videos(args.root, num_classes=args.num_classes, seed=args.seed)
    print(f"wrote {train_csv} and {val_csv}")


if __name__ == "__main__":
    main()
