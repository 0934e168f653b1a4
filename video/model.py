"""Spatiotemporal MAE ViT (MAE-ST, Feichtenhofer et al. 2022) as a timm VisionTransformer subclass.

Only the embedding differs from an image ViT: a Conv3d "tubelet" patch embedding and separate
spatial / temporal / class position embeddings. Everything after ``_pos_embed`` is timm's, so the
repo's ToMe patch (which swaps timm ``Block``/``Attention`` and re-implements ``forward_features``)
applies unchanged. Classification follows MAE-ST fine-tuning: mean of the non-class tokens, then
LayerNorm (timm ``fc_norm``), dropout, linear head.
"""
from __future__ import annotations

from functools import partial
from typing import Tuple

import torch
import torch.nn as nn
from timm.layers import trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from launch.engine.errors import ConfigError, DataError

# width, depth, heads. MAE-ST's ViT-H is named "patch14" in models_vit.py but is built with
# patch_size=16 there, and the published ViT-H checkpoints are 2x16x16 tubelets, so H uses 16 too.
VARIANTS = {
    "micro": (64, 2, 2),
    "tiny": (192, 4, 3),
    "b": (768, 12, 12),
    "l": (1024, 24, 16),
    "h": (1280, 32, 16),
}


def _pair(v) -> Tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


class PatchEmbed3D(nn.Module):
    """(B, C, T, H, W) video -> (B, T'*H'*W', D) tokens, ordered time-major then row then column."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, embed_dim=768, num_frames=16,
                 tubelet=2, bias=True, **_ignored):
        # **_ignored swallows timm's image-only embed kwargs (dynamic_img_pad, device, dtype, ...).
        super().__init__()
        self.img_size = _pair(img_size)
        self.patch_size = _pair(patch_size)
        self.num_frames = int(num_frames)
        self.tubelet = int(tubelet)
        for name, size, step in (("num_frames", self.num_frames, self.tubelet),
                                 ("img_size[0]", self.img_size[0], self.patch_size[0]),
                                 ("img_size[1]", self.img_size[1], self.patch_size[1])):
            if size <= 0 or step <= 0 or size % step:
                raise ConfigError(f"video ViT {name}={size} must be a positive multiple of its patch "
                                  f"size {step}")
        self.grid_size = (self.num_frames // self.tubelet,
                          self.img_size[0] // self.patch_size[0],
                          self.img_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        kernel = (self.tubelet, *self.patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.num_frames, *self.img_size)
        if x.ndim != 5 or tuple(x.shape[2:]) != expected:
            raise DataError(f"video ViT input shape {tuple(x.shape)} must be (B, C, "
                              f"{expected[0]}, {expected[1]}, {expected[2]})")
        return self.proj(x).flatten(2).transpose(1, 2)


class VideoViT(VisionTransformer):
    """timm ViT with a tubelet embedding and MAE-ST's separable position embeddings."""

    def __init__(self, num_frames: int = 16, tubelet: int = 2, **kwargs):
        kwargs.setdefault("global_pool", "avg")
        kwargs.setdefault("fc_norm", True)
        kwargs["class_token"] = True
        kwargs["pos_embed"] = "none"  # replaced by the three embeddings below
        kwargs["embed_layer"] = partial(PatchEmbed3D, num_frames=num_frames, tubelet=tubelet)
        super().__init__(**kwargs)
        t, h, w = self.patch_embed.grid_size
        dim = self.embed_dim
        self.pos_embed_spatial = nn.Parameter(torch.zeros(1, h * w, dim))
        self.pos_embed_temporal = nn.Parameter(torch.zeros(1, t, dim))
        self.pos_embed_class = nn.Parameter(torch.zeros(1, 1, dim))
        for p in (self.pos_embed_spatial, self.pos_embed_temporal, self.pos_embed_class, self.cls_token):
            trunc_normal_(p, std=0.02)

    @property
    def grid_size(self) -> Tuple[int, int, int]:
        return self.patch_embed.grid_size

    def _pos_embed(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = self.patch_embed.grid_size
        # Every frame shares the spatial table; every position in a frame shares the temporal entry.
        pos = self.pos_embed_spatial.repeat(1, t, 1) + \
            self.pos_embed_temporal.repeat_interleave(h * w, dim=1)
        x = x + pos
        cls = (self.cls_token + self.pos_embed_class).expand(x.shape[0], -1, -1)
        return self.pos_drop(torch.cat([cls, x], dim=1))

    @torch.jit.ignore
    def no_weight_decay(self):
        return {"cls_token", "pos_embed_spatial", "pos_embed_temporal", "pos_embed_class"}


def build_video_vit(variant: str, num_classes: int, num_frames: int = 16, img_size=224, tubelet: int = 2,
                    patch: int = 16, drop_path: float = 0.0, head_drop: float = 0.5) -> VideoViT:
    """MAE-ST video ViT: ``variant`` in VARIANTS ("micro", "tiny", "b", "l", "h")."""
    if variant not in VARIANTS:
        raise ConfigError(f"video ViT variant {variant!r} is unknown; valid: {sorted(VARIANTS)}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes={num_classes!r} must be a positive integer")
    if not 0.0 <= drop_path < 1.0 or not 0.0 <= head_drop < 1.0:
        raise ConfigError(f"drop_path={drop_path} and head_drop={head_drop} must be in [0, 1)")
    width, depth, heads = VARIANTS[variant]
    return VideoViT(
        num_frames=num_frames, tubelet=tubelet, img_size=img_size, patch_size=patch,
        num_classes=num_classes, embed_dim=width, depth=depth, num_heads=heads, mlp_ratio=4.0,
        qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6),
        drop_rate=head_drop, drop_path_rate=drop_path,
    )


from .checkpoint import load_mae_st_checkpoint  # noqa: E402,F401  (re-exported: the model's loader)
