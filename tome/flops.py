"""Analytic multiply-accumulate counts of a (merged) ViT, from its token count per layer.

Counts follow fvcore's convention, which the paper's GFLOPs use: one multiply-add = one FLOP.
Attention in layer i runs on the tokens entering it, the MLP on the tokens left after merging
(with metric ``x_pre`` the block merges first, so attention too runs on the tokens left).
A merging layer also pays for its matching: the cosine similarities of the |A| x |B| token pairs,
each a dot product as wide as the metric (the head-averaged key is ``head_dim`` wide; the tokens
``x`` / ``x_pre`` and heads concatenated are ``dim`` wide). Every matching algorithm is charged as
bipartite matching.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch


def split_sizes(num_tokens: int, protected: int) -> tuple[int, int]:
    """|A| and |B| of the bipartite split (:mod:`tome.merge`): A holds the unprotected tokens at
    even absolute positions, B those at odd ones."""
    free = max(0, num_tokens - protected)
    num_a = len(range(protected + protected % 2, num_tokens, 2))
    return num_a, free - num_a


def matching_macs(num_tokens: int, protected: int, metric_dim: int) -> int:
    num_a, num_b = split_sizes(num_tokens, protected)
    return num_a * num_b * metric_dim


def block_macs(dim: int, mlp_hidden: int, tokens_in: int, tokens_out: int, protected: int = 1,
               merges: bool = False, metric_dim: Optional[int] = None, merge_first: bool = False) -> int:
    """MACs of one block; ``metric_dim`` is the width of the matching metric (default ``dim``);
    ``merge_first``: the block merges before attention (metric ``x_pre``)."""
    n = tokens_in
    a = tokens_out if merge_first else n  # tokens attention runs on
    attn = a * dim * 3 * dim + 2 * a * a * dim + a * dim * dim
    mlp = 2 * tokens_out * dim * mlp_hidden
    match = matching_macs(n, protected, dim if metric_dim is None else metric_dim) if merges else 0
    return attn + mlp + match


def vit_macs(dim: int, mlp_hidden: int, tokens_in: int, tokens: Sequence[int], embed_macs: int = 0,
             head_macs: int = 0, protected: int = 1, metric_dim: Optional[int] = None,
             matching: bool = True, merge_first: bool = False) -> int:
    """MACs of a ViT whose blocks leave ``tokens``; ``matching=False`` drops the matching cost
    (a model that removes the same tokens for free, e.g. the benchmark's limit)."""
    total, n = embed_macs + head_macs, tokens_in
    for out in tokens:
        total += block_macs(dim, mlp_hidden, n, out, protected, merges=matching and out < n,
                            metric_dim=metric_dim, merge_first=merge_first)
        n = out
    return total


def _dims(model: torch.nn.Module):
    if hasattr(model, "_tome_dims"):  # transformers models (tome.patch.transformers)
        return model._tome_dims()
    if hasattr(model, "blocks"):  # timm
        blk = model.blocks[0]
        proj = model.patch_embed.proj
        head = getattr(model, "head", None)
        return model.embed_dim, blk.mlp.fc1.out_features, blk.attn.num_heads, proj, head
    layer = model.encoder.layers[0]  # torchvision
    return (model.hidden_dim, layer.mlp[0].out_features, layer.self_attention.num_heads,
            model.conv_proj, model.heads[-1])


def model_gflops(model: torch.nn.Module, tokens_in: int, tokens: Sequence[int],
                 matching: bool = True) -> float:
    """GFLOPs per sample of a ViT whose blocks left ``tokens`` tokens (e.g. ``tome.trace().tokens``).

    The matching is charged at the width of the model's ``metric`` option (``k``, ``q``, ``v``:
    the head-averaged ``head_dim``; ``x``, ``x_pre`` or heads concatenated: ``dim``);
    ``matching=False`` leaves it out."""
    dim, hidden, heads, proj, head = _dims(model)
    info = getattr(model, "_tome", None)
    protected = getattr(info, "protected", 1)
    metric = getattr(info, "metric", "k")
    wide = metric in ("x", "x_pre") or getattr(info, "heads", "mean") == "concat"
    metric_dim = dim if wide else dim // heads
    embed = (tokens_in - protected) * proj.weight.numel()
    head_macs = head.weight.numel() if isinstance(head, torch.nn.Linear) else 0
    return vit_macs(dim, hidden, tokens_in, tokens, embed, head_macs, protected, metric_dim,
                    matching, merge_first=metric == "x_pre") / 1e9
