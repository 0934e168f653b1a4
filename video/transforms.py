"""Clip sampling and augmentation for video classification (MAE-ST / PySlowFast conventions).

Clips are uint8 tensors shaped (T, C, H, W) until ``normalize`` turns them into float (C, T, H, W).
Every spatial op draws its parameters once per clip, so all frames of a clip get the same crop,
flip and RandAugment ops. Randomness comes from torch's RNG, and for RandAugment (timm's) from
python's and numpy's; ``launch.engine.data.SeededDataset`` seeds all three per sample.
"""
from __future__ import annotations

import math
import re
from typing import Optional, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from launch.engine.errors import ConfigError


def clip_indices(num_video_frames: int, num_frames: int, sampling_rate: int, clip_idx: int = -1,
                 num_clips: int = 1, fps: Optional[float] = None,
                 target_fps: Optional[float] = None) -> torch.Tensor:
    """Frame indices of one clip of ``num_frames`` frames spanning ``num_frames * sampling_rate``
    frames at ``target_fps`` (MAE-ST ``util/decoder/decoder.py``, offset sampling).

    The clip spans ``span = sampling_rate * num_frames * fps / target_fps`` source frames (just
    ``sampling_rate * num_frames`` without frame rates) and ``delta = max(frames - span, 0)``.
    Its first frame is uniform in [0, delta] for ``clip_idx=-1`` (training), ``floor(delta / 2)``
    for a single test clip, else ``clip_idx * floor(delta / (num_clips - 1))``. The frames are
    ``linspace(start, start + span - 1, num_frames)`` in float32, clamped to the video and
    truncated to integers, exactly as ``get_start_end_idx`` + ``temporal_sampling`` compute them.
    Short videos therefore repeat their final frame.

    MAE-ST decodes test clips selectively (the pts range of the clip, then the centre clip of what
    was decoded), which lands on the same frames up to container timestamp rounding; decord
    gives exact frame counts, so the indices are taken on the whole video here.
    """
    span = float(sampling_rate * num_frames)
    if fps and target_fps:
        span = span * fps / target_fps  # same wall-clock extent whatever the source frame rate
    delta = max(num_video_frames - span, 0.0)
    if clip_idx < 0:
        start = float(torch.rand(()).item()) * delta
    elif num_clips == 1:
        start = float(math.floor(delta / 2))
    else:
        start = float(clip_idx * math.floor(delta / (num_clips - 1)))
    idx = torch.linspace(start, start + span - 1, num_frames)
    return idx.clamp(0, num_video_frames - 1).long()


def short_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side at ``size``, the long side floored (MAE-ST / PySlowFast
    ``random_short_side_scale_jitter``: ``floor(long / short * size)``)."""
    if w < h:
        return int(math.floor(h / w * size)), size
    return size, int(math.floor(w / h * size))


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (T, C, H, W) clip with its short side at ``size`` (long side floored), antialiased."""
    h, w = clip.shape[-2:]
    if min(h, w) == size:
        return clip
    new = short_side_shape(h, w, size)
    return TF.resize(clip, list(new), interpolation=InterpolationMode.BILINEAR, antialias=True)


def decoded_short_side_shape(h: int, w: int, size: int) -> tuple[int, int]:
    """(height, width) with the short side at ``size`` and the long side rounded half up, as the
    frames of MAE-ST's test views come out of its decoder.

    MAE-ST resizes test frames while decoding (``util/decoder/decoder.py`` ``decode`` passes
    ``max_spatial_scale`` as torchvision's ``video_min_dimension``), and torchvision's decoder sizes
    them in ``csrc/io/decoder/util.cpp`` ``setFormatDimensions``: ``round(long * size / short)``.
    The later ``random_short_side_scale_jitter`` of ``spatial_sampling`` then finds the short side
    already at ``size`` and leaves the frames alone. Landscape means width > height; a square
    frame goes to ``size`` x ``size``. 340 x 256 at 224: 297.5 -> 298; 320 x 240: 298.67 -> 299.
    """
    if w > h:
        return size, int(math.floor(w * size / h + 0.5))
    return int(math.floor(h * size / w + 0.5)), size


def resize_short_side_float(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Float (T, C, H, W) copy of ``clip`` with its short side at ``size`` and MAE-ST's test-view
    frame size (:func:`decoded_short_side_shape`), skipped when the short side already has that
    length. The pixels are resampled by bilinear ``F.interpolate`` (align_corners=False, no
    antialiasing); MAE-ST's decoder resamples with swscale's area filter while converting to RGB,
    so sizes and crop offsets match it exactly and pixel values only closely."""
    x = clip.float()
    h, w = x.shape[-2:]
    if min(h, w) == size:
        return x
    return torch.nn.functional.interpolate(x, size=decoded_short_side_shape(h, w, size), mode="bilinear",
                                           align_corners=False)


def uniform_crop(clip: torch.Tensor, size: int, spatial_idx: int) -> torch.Tensor:
    """Square crop: 0/1/2 = left/centre/right for landscape clips, top/centre/bottom for portrait.

    The centre offset is ``ceil((side - size) / 2)``, as in MAE-ST ``util/decoder/transform.py``
    ``uniform_crop``, so an odd margin puts the extra pixel on the left/top.
    """
    h, w = clip.shape[-2:]
    if min(h, w) < size:
        raise ValueError(f"clip {h}x{w} is smaller than crop {size}")
    top, left = math.ceil((h - size) / 2), math.ceil((w - size) / 2)
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
    """timm RandAugment from a spec such as ``"rand-m7-mstd0.5-inc1"``, with one draw per clip.

    As MAE-ST fine-tuning does it (``util/kinetics.py`` ``_aug_frame``,
    ``util/decoder/transform.py`` ``create_random_augment``, ``util/decoder/rand_augment.py``, a
    copy of timm's): timm's ``rand_augment_transform`` with bicubic resampling and grey (128) fill.
    Per clip, ``n`` ops (default 2) are drawn with replacement from timm's 15 ops (the
    "increasing" set with ``inc1``); each is applied with probability 0.5 at magnitude ``m`` on
    the 0-10 scale, jittered by N(0, ``mstd``) and clipped to [0, 10]. MAE-ST hands the op a list
    of frames, so every frame gets the same ops and parameters; here each frame is transformed
    with the random state rewound to the clip's start, which draws the same ops and parameters
    (timm's draws never depend on the image). Randomness: python's ``random`` and numpy's
    generator, both seeded per sample by ``launch.engine.data.SeededDataset``.
    """

    _FIELD = re.compile(r"(mstd|inc|m|n)([0-9.]+)")

    def __init__(self, spec: str):
        parts = spec.split("-") if isinstance(spec, str) else []
        if not parts or parts[0] != "rand":
            raise ConfigError(f"rand_augment {spec!r} must look like 'rand-m7-mstd0.5-inc1'")
        fields = {"m": 10.0, "n": 2.0, "mstd": 0.0, "inc": 0.0}
        for part in parts[1:]:
            m = self._FIELD.fullmatch(part)
            if m is None:
                raise ConfigError(f"rand_augment {spec!r}: field {part!r} is not one of m<magnitude>, "
                                  f"n<ops>, mstd<std>, inc<0|1>")
            fields[m[1]] = float(m[2])
        if not 0 <= fields["m"] <= 10 or fields["n"] < 1 or fields["n"] != int(fields["n"]):
            raise ConfigError(f"rand_augment {spec!r}: need 0 <= m <= 10 and an integer n >= 1")
        self.spec = spec
        self.magnitude, self.num_ops, self.mstd = fields["m"], int(fields["n"]), fields["mstd"]

    def transform(self, height: int, width: int):
        """timm's RandAugment as MAE-ST builds it for frames of this size."""
        from PIL import Image
        from timm.data.auto_augment import rand_augment_transform
        hparams = {"translate_const": int(min(height, width) * 0.45), "interpolation": Image.BICUBIC}
        return rand_augment_transform(self.spec, hparams)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        """uint8 (T, C, H, W) -> uint8 (T, C, H, W), the same ops on every frame."""
        import random

        import numpy as np
        from PIL import Image
        augment = self.transform(*clip.shape[-2:])
        start = random.getstate(), np.random.get_state()
        frames = []
        for frame in clip.permute(0, 2, 3, 1).numpy():
            random.setstate(start[0])
            np.random.set_state(start[1])
            frames.append(np.asarray(augment(Image.fromarray(frame))))
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


class ClipRandomErasing:
    """Random erasing of one box through every frame of a normalised (C, T, H, W) clip.

    MAE-ST fine-tuning (``util/kinetics.py`` ``_aug_frame``, ``util/decoder/random_erasing.py``,
    ``cube=True``): with probability ``prob`` one box is chosen for the whole clip, of area
    U(``min_area``, ``max_area``) of a frame and aspect ratio log-uniform in
    [``min_aspect``, 1 / ``min_aspect``] (``h = round(sqrt(area * aspect))``,
    ``w = round(sqrt(area / aspect))``, up to 100 tries for a box strictly smaller than the frame),
    and every frame's box is refilled: ``pixel`` with fresh standard-normal noise per pixel and
    frame, ``rand`` with one normal colour per channel and frame, ``const`` with zeros. The clip
    is already normalised, so noise ~ N(0, 1) is in normalised units. Draws use torch's RNG.
    """

    MODES = ("pixel", "rand", "const")

    def __init__(self, prob: float, mode: str = "pixel", min_area: float = 0.02,
                 max_area: float = 1 / 3, min_aspect: float = 0.3, count: int = 1):
        if not 0 <= prob <= 1:
            raise ConfigError(f"random_erase={prob!r} must be a probability in [0, 1]")
        if mode not in self.MODES:
            raise ConfigError(f"random_erase_mode={mode!r} must be one of {', '.join(self.MODES)}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError(f"random_erase_count={count!r} must be a positive integer")
        self.prob, self.mode, self.count = float(prob), mode, count
        self.min_area, self.max_area = min_area, max_area
        self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

    def _uniform(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand(()).item())

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(()).item()) >= self.prob:
            return clip
        c, t, height, width = clip.shape
        # One random box count per clip, as max_count > 1 does in the official code.
        count = self.count if self.count == 1 else int(torch.randint(1, self.count + 1, ()).item())
        for _ in range(count):
            for _ in range(100):
                area = self._uniform(self.min_area, self.max_area) * height * width / count
                aspect = math.exp(self._uniform(*self.log_aspect))
                h, w = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
                if w < width and h < height:
                    top = int(torch.randint(0, height - h + 1, ()).item())
                    left = int(torch.randint(0, width - w + 1, ()).item())
                    if self.mode == "pixel":
                        fill = torch.randn(t, c, h, w, dtype=clip.dtype).transpose(0, 1)
                    elif self.mode == "rand":
                        fill = torch.randn(t, c, 1, 1, dtype=clip.dtype).transpose(0, 1)
                    else:
                        fill = torch.zeros((), dtype=clip.dtype)
                    clip[:, :, top:top + h, left:left + w] = fill
                    break
        return clip
