"""The Audio-MAE encoder (fine-tuning form) as a plain timm VisionTransformer.

Audio-MAE's fine-tuned classifier is a timm ViT with a one-channel 16x16 patch embedding over the
(time=1024, freq=128) fbank, fixed 2D sin-cos position embeddings, a class token (kept, though
not used for the prediction) and global average pooling of the patch tokens followed by
``fc_norm``. timm's own ``global_pool='avg'`` does exactly that (``norm`` becomes Identity,
``fc_norm`` a LayerNorm after the pool), so only the input geometry and the frozen position
table differ from a stock ViT. Because ``forward_features`` / ``forward_head`` are inherited
unchanged, code that patches timm's Block/Attention and
re-implements ``forward_features`` (e.g. token merging) runs on this model as on any timm ViT.

Tokens are ordered row-major over (time, frequency): token ``1 + t * F + f`` is the patch at
time step t and mel band f, with ``patch_embed.grid_size == (T, F) == (64, 8)`` for AudioSet.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from timm.models.vision_transformer import VisionTransformer

from launch.engine.errors import ConfigError

from .checkpoint import load_audiomae_checkpoint
from .pos_embed import sincos_pos_embed

__all__ = ["AudioViT", "VARIANTS", "build_audio_vit", "load_audiomae_checkpoint", "sincos_pos_embed"]

# name -> (width, depth, heads); "b" is the published Audio-MAE ViT-B/16.
VARIANTS = {
    "micro": (64, 2, 2),
    "tiny": (192, 4, 3),
    "s": (384, 12, 6),
    "b": (768, 12, 12),
    "l": (1024, 24, 16),
}


class AudioViT(VisionTransformer):
    """timm ViT over (B, 1, target_length, mel_bins) fbanks with Audio-MAE's fixed sin-cos table."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, num_classes: int = 527,
                 target_length: int = 1024, mel_bins: int = 128, patch: int = 16, drop_path: float = 0.1):
        super().__init__(
            img_size=(target_length, mel_bins), patch_size=patch, in_chans=1, num_classes=num_classes,
            global_pool="avg", embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=4.0,
            qkv_bias=True, class_token=True, drop_path_rate=drop_path,
            norm_layer=partial(nn.LayerNorm, eps=1e-6))
        # Fixed, not learned: Audio-MAE keeps it a frozen Parameter so checkpoints carry it.
        self.pos_embed = nn.Parameter(sincos_pos_embed(embed_dim, self.patch_embed.grid_size),
                                      requires_grad=False)


class SpectrogramTokenMasking(torch.nn.Module):
    """Audio-MAE's fine-tuning regulariser: drop whole time rows and frequency columns of patch
    tokens (fractions ``time_prob`` and ``freq_prob``) while training; identity in evaluation.

    Sits in timm's ``patch_drop`` slot (after position embeddings, prefix tokens kept). Kept tokens
    stay in (time, freq) order, so the bipartite split of token merging still sees neighbours.
    """

    def __init__(self, grid, prefix: int, time_prob: float, freq_prob: float):
        super().__init__()
        for name, value in (("mask_t_prob", time_prob), ("mask_f_prob", freq_prob)):
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name}={value}; valid range is [0, 1)")
        self.grid, self.prefix = tuple(grid), prefix
        self.time_prob, self.freq_prob = time_prob, freq_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.time_prob == 0 and self.freq_prob == 0):
            return x
        batch, _, dim = x.shape
        n_time, n_freq = self.grid
        keep_t = max(1, int(n_time * (1 - self.time_prob)))
        keep_f = max(1, int(n_freq * (1 - self.freq_prob)))
        rows = torch.rand(batch, n_time, device=x.device).argsort(dim=1)[:, :keep_t].sort(dim=1).values
        cols = torch.rand(batch, n_freq, device=x.device).argsort(dim=1)[:, :keep_f].sort(dim=1).values
        index = (rows[:, :, None] * n_freq + cols[:, None, :]).flatten(1)  # (time, freq) order
        patches = x[:, self.prefix:].gather(1, index[..., None].expand(-1, -1, dim))
        return torch.cat([x[:, :self.prefix], patches], dim=1)


def build_audio_vit(variant: str, num_classes: int = 527, target_length: int = 1024, mel_bins: int = 128,
                    patch: int = 16, drop_path: float = 0.1, mask_t_prob: float = 0.0,
                    mask_f_prob: float = 0.0) -> AudioViT:
    """Audio-MAE ViT of a named width/depth ("micro", "tiny", "s", "b", "l"); ``mask_t_prob`` /
    ``mask_f_prob`` drop that fraction of time rows / frequency columns of tokens while training."""
    if variant not in VARIANTS:
        raise ConfigError(f"audio model variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if patch <= 0 or target_length % patch or mel_bins % patch:
        raise ConfigError(f"target_length={target_length} and mel_bins={mel_bins} must be positive "
                          f"multiples of patch={patch}")
    if num_classes < 0:
        raise ConfigError(f"num_classes={num_classes}; must be >= 0 (0 gives features only)")
    if not 0.0 <= drop_path < 1.0:
        raise ConfigError(f"drop_path={drop_path}; valid range is [0, 1)")
    width, depth, heads = VARIANTS[variant]
    model = AudioViT(width, depth, heads, num_classes=num_classes, target_length=target_length,
                     mel_bins=mel_bins, patch=patch, drop_path=drop_path)
    if mask_t_prob or mask_f_prob:
        model.patch_drop = SpectrogramTokenMasking(model.patch_embed.grid_size, model.num_prefix_tokens,
                                                   mask_t_prob, mask_f_prob)
    return model

