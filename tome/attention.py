"""Proportional attention: ``softmax(q k^T / sqrt(d) + log s)`` where ``s`` is each key's size.

A key that stands for ``s`` merged tokens then gets the attention weight those ``s`` tokens would
have had together. The log-size bias goes to the fused ``scaled_dot_product_attention`` kernel as an
additive mask, so merged models keep the fused attention path of the unpatched model.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

METRICS = ("x", "q", "k", "v")


def size_bias(size: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """[B, T, 1] sizes -> [B, 1, 1, T] additive attention bias (None when nothing merged yet).

    The log is taken in fp32 (sizes are fp32 counts), then cast to the attention dtype."""
    if size is None:
        return None
    return size.float().log().to(dtype)[:, None, None, :, 0]


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
           dropout_p: float = 0.0, fused: bool = True, scale: Optional[float] = None) -> torch.Tensor:
    """Multi-head attention on [B, H, T, D] tensors with an optional additive bias."""
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p,
                                              scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    attn = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


def pick_metric(name: str, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                v: torch.Tensor) -> torch.Tensor:
    """The feature compared by the matching: the block input or q/k/v averaged over heads."""
    if name == "k":
        return k.mean(1)
    if name == "x":
        return x
    if name == "q":
        return q.mean(1)
    if name == "v":
        return v.mean(1)
    raise ValueError(f"metric must be one of {METRICS}, got {name!r}")
