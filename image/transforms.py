"""Image preprocessing: evaluation transforms per model family and the fine-tuning train transform.

Each family reproduces the preprocessing its published checkpoints were evaluated with, because
ToMe accuracy numbers are only comparable when the baseline sees the same pixels.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from launch.engine.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

INTERPOLATIONS = {
    "bicubic": InterpolationMode.BICUBIC,
    "bilinear": InterpolationMode.BILINEAR,
    "nearest": InterpolationMode.NEAREST,
}

# family -> (crop_pct or None when it depends on img_size, interpolation, mean, std)
FAMILIES = {
    # timm AugReg ViTs (Steiner et al.): inception-style 0.5 normalisation.
    "augreg": (None, "bicubic", HALF, HALF),
    # DeiT and MAE fine-tuning repos resize to 256 for a 224 crop.
    "deit": (0.875, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
    "mae": (0.875, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
    # torchvision SWAG E2E weights: resize straight to the crop size (ImageClassification preset
    # with resize_size == crop_size, bicubic).
    "swag": (1.0, "bicubic", IMAGENET_MEAN, IMAGENET_STD),
    # Synthetic demo images are generated at the model's size; nothing to crop away.
    "demo": (1.0, "bilinear", HALF, HALF),
}


def _check_size(img_size) -> int:
    if isinstance(img_size, bool) or not isinstance(img_size, int) or img_size <= 0:
        raise ConfigError(f"img_size={img_size!r} is not valid; expected a positive integer such as 224")
    return img_size


def _interpolation(name: str) -> InterpolationMode:
    if name not in INTERPOLATIONS:
        raise ConfigError(f"interpolation={name!r} is not valid; expected one of {sorted(INTERPOLATIONS)}")
    return INTERPOLATIONS[name]


def _check_stats(name: str, values) -> Tuple[float, ...]:
    if values is None or len(values) != 3:
        raise ConfigError(f"{name}={values!r} is not valid; expected three per-channel numbers")
    return tuple(float(v) for v in values)


def augreg_crop_pct(img_size: int) -> float:
    """timm's AugReg configs centre-crop 90% at 224 but evaluate the full image at 384 and above."""
    return 1.0 if img_size >= 384 else 0.9


def eval_settings(family: str, img_size: int, crop_pct: Optional[float] = None,
                  interpolation: Optional[str] = None, mean: Optional[Sequence[float]] = None,
                  std: Optional[Sequence[float]] = None) -> dict:
    """The resolved evaluation settings for a family, with any explicit overrides applied."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown image model family {family!r}; expected one of {sorted(FAMILIES)}")
    img_size = _check_size(img_size)
    default_pct, default_interp, default_mean, default_std = FAMILIES[family]
    if crop_pct is None:
        crop_pct = default_pct if default_pct is not None else augreg_crop_pct(img_size)
    if not isinstance(crop_pct, (int, float)) or not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f"crop_pct={crop_pct!r} is not valid; expected a number in (0, 1]")
    interpolation = interpolation or default_interp
    _interpolation(interpolation)
    return {
        "img_size": img_size,
        "crop_pct": float(crop_pct),
        # floor matches timm and DeiT/MAE (224 / 0.875 = 256 exactly).
        "resize": math.floor(img_size / crop_pct),
        "interpolation": interpolation,
        "mean": _check_stats("mean", default_mean if mean is None else mean),
        "std": _check_stats("std", default_std if std is None else std),
    }


def eval_transform(family: str, img_size: int, crop_pct: Optional[float] = None,
                   interpolation: Optional[str] = None, mean: Optional[Sequence[float]] = None,
                   std: Optional[Sequence[float]] = None) -> T.Compose:
    """Resize the shorter side to img_size / crop_pct, centre-crop img_size, normalise."""
    s = eval_settings(family, img_size, crop_pct, interpolation, mean, std)
    return T.Compose([
        T.Resize(s["resize"], interpolation=_interpolation(s["interpolation"])),
        T.CenterCrop(s["img_size"]),
        T.ToTensor(),
        T.Normalize(s["mean"], s["std"]),
    ])


def train_transform(img_size: int, rand_augment: Optional[str] = "rand-m9-mstd0.5-inc1",
                    re_prob: float = 0.25, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD, scale: Tuple[float, float] = (0.08, 1.0),
                    hflip: float = 0.5, interpolation: str = "bicubic"):
    """The MAE/DeiT fine-tuning recipe: random-resized crop, flip, RandAugment, random erasing."""
    from timm.data import create_transform  # timm import is slow; only training needs it

    img_size = _check_size(img_size)
    if rand_augment is not None and rand_augment != "" and not str(rand_augment).startswith("rand"):
        raise ConfigError(f"rand_augment={rand_augment!r} is not valid; expected a timm RandAugment "
                          "string such as 'rand-m9-mstd0.5-inc1', or None to disable it")
    if not isinstance(re_prob, (int, float)) or not 0.0 <= re_prob <= 1.0:
        raise ConfigError(f"re_prob={re_prob!r} is not valid; expected a probability in [0, 1]")
    if (len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0):
        raise ConfigError(f"scale={tuple(scale)!r} is not valid; expected (low, high) with 0 < low <= high <= 1")
    _interpolation(interpolation)
    return create_transform(
        input_size=img_size,
        is_training=True,
        scale=tuple(scale),
        hflip=hflip,
        # MAE passes no colour jitter; DeiT's is switched off by timm whenever RandAugment is on.
        color_jitter=None,
        auto_augment=rand_augment or None,
        interpolation=interpolation,
        mean=_check_stats("mean", mean),
        std=_check_stats("std", std),
        re_prob=float(re_prob),
        re_mode="pixel",
        re_count=1,
    )
