"""Clip sampling and augmentation for video classification (MAE-ST / PySlowFast conventions).

Clips are uint8 tensors shaped (T, C, H, W) until ``normalize`` turns them into float (C, T, H, W).
Every spatial op draws its parameters once per clip, so all frames of a clip get the same crop,
flip and RandAugment ops. All randomness comes from torch's RNG, which DataLoader seeds per worker.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from launch.errors import ConfigError


def clip_indices(num_video_frames: int, num_frames: int, sampling_rate: int, clip_idx: int = -1,
                 num_clips: int = 1, fps: Optional[float] = None,
                 target_fps: Optional[float] = None) -> torch.Tensor:
    """Frame indices of one clip of ``num_frames`` frames, ``sampling_rate`` apart at ``target_fps``.

    ``clip_idx=-1`` picks a random start (training); otherwise clip ``clip_idx`` of ``num_clips``
    evenly spaced ones, first at the video start and last at its end (SlowFast's offset sampling).
    Indices past the last frame are clamped, so short videos repeat their final frame.
    """
    step = float(sampling_rate)
    if fps and target_fps:
        step = step * fps / target_fps  # same wall-clock extent whatever the source frame rate
    extent = step * (num_frames - 1) + 1
    delta = max(num_video_frames - extent, 0.0)
    if clip_idx < 0:
        start = float(torch.rand(()).item()) * delta
    elif num_clips == 1:
        start = delta / 2.0
    else:
        start = delta * clip_idx / (num_clips - 1)
    idx = start + torch.arange(num_frames, dtype=torch.float64) * step
    return idx.clamp(0, num_video_frames - 1).long()


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    new = (size, max(1, round(w * size / h))) if h <= w else (max(1, round(h * size / w)), size)
    return TF.resize(clip, list(new), interpolation=InterpolationMode.BILINEAR, antialias=True)


def uniform_crop(clip: torch.Tensor, size: int, spatial_idx: int) -> torch.Tensor:
    """Square crop: 0/1/2 = left/centre/right for landscape clips, top/centre/bottom for portrait."""
    h, w = clip.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"clip {h}x{w} is smaller than crop {size}")
    top, left = (h - size) // 2, (w - size) // 2
    if h > w:
        top = {0: 0, 1: top, 2: h - size}[spatial_idx]
    else:
        left = {0: 0, 1: left, 2: w - size}[spatial_idx]
    return clip[..., top:top + size, left:left + size]


def random_short_side_crop(clip: torch.Tensor, size: int, short_side: Sequence[int]) -> torch.Tensor:
    """SlowFast's classic jitter: short side to a random length in ``short_side``, then a random crop."""
    side = int(torch.randint(short_side[0], short_side[1] + 1, ()).item())
    clip = resize_short_side(clip, side)
    h, w = clip.shape[-2:]
    top = int(torch.randint(0, h - size + 1, ()).item())
    left = int(torch.randint(0, w - size + 1, ()).item())
    return clip[..., top:top + size, left:left + size]


def random_resized_crop(clip: torch.Tensor, size: int, scale: Sequence[float],
                        ratio: Sequence[float]) -> torch.Tensor:
    """Inception-style crop of a random area fraction and aspect ratio, resized to ``size``."""
    crop = v2.RandomResizedCrop(size, scale=tuple(scale), ratio=tuple(ratio),
                                interpolation=InterpolationMode.BILINEAR, antialias=True)
    return crop(clip)  # a plain (T, C, H, W) tensor gets one set of crop parameters for all frames


def random_hflip(clip: torch.Tensor) -> torch.Tensor:
    return clip.flip(-1) if torch.rand(()).item() < 0.5 else clip


def normalize(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 (T, C, H, W) -> float (C, T, H, W) scaled to [0, 1] then standardised per channel."""
    x = clip.permute(1, 0, 2, 3).float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1, 1)
    return x.sub_(mean_t).div_(std_t)


class ClipRandAugment:
    """RandAugment from a timm-style spec such as ``"rand-m7-n4-mstd0.5-inc1"``.

    ``m``: magnitude on timm's 0-10 scale; ``n``: ops per clip (default 2); ``mstd``: std of a
    Gaussian jitter on the magnitude, drawn once per clip (timm draws per op); ``inc``: accepted for
    compatibility, torchvision's posterize/solarize already grow stronger with magnitude.
    torchvision's RandAugment does the ops, on the whole (T, C, H, W) clip at once.
    """

    _FIELD = re.compile(r"(mstd|inc|m|n)([0-9.]+)")

    def __init__(self, spec: str):
        parts = spec.split("-") if isinstance(spec, str) else []
        if not parts or parts[0] != "rand":
            raise ConfigError(f"rand_augment {spec!r} must look like 'rand-m7-n4-mstd0.5-inc1'")
        fields = {"m": 9.0, "n": 2.0, "mstd": 0.0, "inc": 1.0}
        for part in parts[1:]:
            m = self._FIELD.fullmatch(part)
            if m is None:
                raise ConfigError(f"rand_augment {spec!r}: field {part!r} is not one of m<magnitude>, "
                                  f"n<ops>, mstd<std>, inc<0|1>")
            fields[m[1]] = float(m[2])
        if not 0 <= fields["m"] <= 10 or fields["n"] < 1 or fields["n"] != int(fields["n"]):
            raise ConfigError(f"rand_augment {spec!r}: need 0 <= m <= 10 and an integer n >= 1")
        self.magnitude, self.num_ops, self.mstd = fields["m"], int(fields["n"]), fields["mstd"]

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        mag = self.magnitude
        if self.mstd > 0:
            mag = mag + self.mstd * float(torch.randn(()).item())
        mag = min(max(mag, 0.0), 10.0)
        # 101 bins make torchvision's integer magnitude index a 0.1 step on timm's 0-10 scale.
        op = v2.RandAugment(num_ops=self.num_ops, magnitude=round(mag * 10), num_magnitude_bins=101,
                            interpolation=InterpolationMode.BILINEAR)
        return op(clip)
