"""Audio-MAE's fixed 2D sin-cos position table over the (time, frequency) patch grid."""

from __future__ import annotations

import torch

from launch.engine.errors import ConfigError


def sincos_pos_embed(embed_dim: int, grid_size: tuple[int, int], cls_token: bool = True) -> torch.Tensor:
    """Audio-MAE's fixed 2D sin-cos table, (1, [1 +] T*F, embed_dim), class row all zeros.

    As in Audio-MAE's ``get_2d_sincos_pos_embed_flexible``: the first half of the channels
    encodes the frequency index f, the second half the time index t; each half is
    [sin(p * w_i), cos(p * w_i)] with w_i = 10000 ** (-i / (D / 4)), i < D / 4.
    """
    if embed_dim % 4:
        raise ConfigError(f"embed_dim={embed_dim}; a 2D sin-cos embedding needs a multiple of 4")
    t_size, f_size = grid_size
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    t_idx, f_idx = torch.meshgrid(torch.arange(t_size, dtype=torch.float64),
                                  torch.arange(f_size, dtype=torch.float64), indexing="ij")

    def encode(pos: torch.Tensor) -> torch.Tensor:
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    table = torch.cat([encode(f_idx), encode(t_idx)], dim=1)
    if cls_token:
        table = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), table], dim=0)
    return table.float()[None]
