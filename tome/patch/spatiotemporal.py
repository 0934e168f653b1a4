"""Token merging over space-time tokens of video ViTs (Spatiotemporal MAE and friends).

Video ViTs embed a clip into ``T' x H' x W'`` tubelet tokens (8 x 14 x 14 = 1568 for 16 frames at
224 px) plus a class token. Merging runs over all of them at once, as in the paper: a group may
span frames, which is where most of the redundancy of video lies. The patch is the timm patch (video
models here are timm ``VisionTransformer`` subclasses with a 3-D patch embedding); this module adds
what is video-specific: the (frame, row, column) view of the source map and its pictures.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .timm_vit import patch_timm
from ..paint import groups_on_grid, paint_groups


def patch_video(model, trace_source: bool = False, prop_attn: bool = True, **options):
    """Patch a video ViT (3-D patch embedding with ``grid_size == (T', H', W')``)."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is None or len(grid) != 3:
        raise ValueError(f"tome.patch.video expects a patch embedding with a (frames, rows, cols) "
                         f"grid_size, got {grid!r}")
    return patch_timm(model, trace_source=trace_source, prop_attn=prop_attn, **options)


def video_groups(source: torch.Tensor, grid: Sequence[int], prefix: int = 1) -> torch.Tensor:
    """One clip's source map [T_out, T_in] -> [T', H', W'] index of the token holding each tubelet."""
    if len(grid) != 3:
        raise ValueError(f"grid must be (frames, rows, cols), got {tuple(grid)}")
    return groups_on_grid(source, grid, prefix)


def paint_video(frames: np.ndarray, groups: torch.Tensor) -> list[np.ndarray]:
    """Paint merged groups on a clip: frames [T, H, W, 3] uint8, groups [T', H', W'].

    Tubelets span ``T / T'`` frames; a group is painted with its mean colour over all the frames it
    covers, so a group that follows an object across time shows as one colour in every frame.
    """
    groups = np.asarray(groups)
    t_tok = groups.shape[0]
    if frames.shape[0] % t_tok:
        raise ValueError(f"{frames.shape[0]} frames do not split into {t_tok} tubelet steps")
    tubelet = frames.shape[0] // t_tok
    per_frame = np.repeat(groups, tubelet, axis=0)  # [T, gh, gw]
    return list(paint_groups(frames, per_frame))


def save_video_groups(painted: list[np.ndarray], path: str, columns: int = 8,
                      duration_ms: int = 120) -> str:
    """Write painted frames as an animated GIF (``.gif``) or a grid of frames (``.png``)."""
    images = [Image.fromarray(f) for f in painted]
    if path.endswith(".gif"):
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
        return path
    h, w = painted[0].shape[:2]
    rows = (len(images) + columns - 1) // columns
    canvas = Image.new("RGB", (columns * (w + 2), rows * (h + 2)), (255, 255, 255))
    for i, img in enumerate(images):
        canvas.paste(img, ((i % columns) * (w + 2), (i // columns) * (h + 2)))
    canvas.save(path)
    return path
