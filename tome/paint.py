"""Painting merged groups: the pixel work behind every ToMe picture (image, video, audio)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .merge import token_groups


def groups_on_grid(source: torch.Tensor, grid: Sequence[int], prefix: int = 1) -> torch.Tensor:
    """One sample's source map [T_out, T_in] -> the output token holding each patch, shaped ``grid``."""
    if source.dim() != 2:
        raise ValueError(f"expected one sample's source map [T_out, T_in], got shape {tuple(source.shape)}")
    owner = token_groups(source[None])[0, prefix:]
    expected = int(np.prod(grid))
    if owner.numel() != expected:
        raise ValueError(f"source map has {owner.numel()} patches but grid {tuple(grid)} holds {expected}")
    return owner.reshape(*grid)


def paint_groups(image: np.ndarray, groups: np.ndarray, border=(0, 0, 0)) -> np.ndarray:
    """Paint each group of patches with its mean colour and outline group boundaries.

    image: [..., H, W, 3] uint8; groups: [..., gh, gw] integer labels, one per patch. Leading
    dimensions (e.g. frames) share labels: a group's colour is its mean over all of them, and
    outlines are drawn within each 2-D slice.
    """
    groups = np.asarray(groups)
    gh, gw = groups.shape[-2:]
    height, width = image.shape[-3:-1]
    if height % gh or width % gw:
        raise ValueError(f"image {width}x{height} is not a multiple of the {gw}x{gh} patch grid")
    pixels = np.repeat(np.repeat(groups, height // gh, axis=-2), width // gw, axis=-1)
    flat_pixels = pixels.reshape(-1)
    flat_image = image.reshape(-1, image.shape[-1]).astype(np.float64)
    labels, inverse = np.unique(flat_pixels, return_inverse=True)
    sums = np.zeros((len(labels), image.shape[-1]))
    np.add.at(sums, inverse, flat_image)
    means = sums / np.bincount(inverse)[:, None]
    out = means[inverse].reshape(image.shape).round().astype(np.uint8)
    edge = np.zeros(pixels.shape, dtype=bool)
    edge[..., :, 1:] |= pixels[..., :, 1:] != pixels[..., :, :-1]
    edge[..., 1:, :] |= pixels[..., 1:, :] != pixels[..., :-1, :]
    out[edge] = border
    return out
