"""Analytic multiply-accumulate counts of a (merged) ViT, from its token count per layer.

Counts follow fvcore's convention, which the paper's GFLOPs use: one multiply-add = one FLOP.
Attention in layer i runs on the tokens entering it, the MLP on the tokens left after merging.
"""
from __future__ import annotations

from typing import Sequence

import torch


def block_macs(dim: int, mlp_hidden: int, tokens_in: int, tokens_out: int, protected: int = 1,
               merges: bool = False) -> int:
    n = tokens_in
    attn = n * dim * 3 * dim + 2 * n * n * dim + n * dim * dim
    mlp = 2 * tokens_out * dim * mlp_hidden
    match = ((n - protected) // 2) ** 2 * dim if merges else 0  # A x B cosine similarities
    return attn + mlp + match


def vit_macs(dim: int, mlp_hidden: int, tokens_in: int, tokens: Sequence[int], embed_macs: int = 0,
             head_macs: int = 0, protected: int = 1) -> int:
    total, n = embed_macs + head_macs, tokens_in
    for out in tokens:
        total += block_macs(dim, mlp_hidden, n, out, protected, merges=out < n)
        n = out
    return total


def _dims(model: torch.nn.Module):
    if hasattr(model, "_tome_dims"):  # transformers models (tome.patch.transformers)
        return model._tome_dims()
    if hasattr(model, "blocks"):  # timm
        blk = model.blocks[0]
        proj = model.patch_embed.proj
        head = getattr(model, "head", None)
        return model.embed_dim, blk.mlp.fc1.out_features, proj, head
    layer = model.encoder.layers[0]  # torchvision
    return model.hidden_dim, layer.mlp[0].out_features, model.conv_proj, model.heads[-1]


def model_gflops(model: torch.nn.Module, tokens_in: int, tokens: Sequence[int]) -> float:
    """GFLOPs per sample of a ViT whose blocks left ``tokens`` tokens (e.g. ``model._tome.tokens``)."""
    dim, hidden, proj, head = _dims(model)
    protected = getattr(getattr(model, "_tome", None), "protected", 1)
    embed = (tokens_in - protected) * proj.weight.numel()
    head_macs = head.weight.numel() if isinstance(head, torch.nn.Linear) else 0
    return vit_macs(dim, hidden, tokens_in, tokens, embed, head_macs, protected) / 1e9
