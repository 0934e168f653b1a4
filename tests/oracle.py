"""A slow, direct ToMe forward pass for tiny timm ViTs with one class token: the test oracle.

It shares no code with ``tome``: attention is written out with an explicit softmax over
``q k^T * scale + log(size)``, the matching is the paper's pseudocode (A = even positions with the
class token barred, B = odd positions, the r best-matched A tokens merge into their B partners),
and every token keeps the Python set of input positions it holds. Sizes are the set sizes.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _attention(attn, y, sizes, prop_attn):
    batch, n, dim = y.shape
    heads = attn.num_heads
    qkv = F.linear(y, attn.qkv.weight, attn.qkv.bias).reshape(batch, n, 3, heads, dim // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    logits = (q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5
    if prop_attn:
        logits = logits + torch.log(sizes)[:, None, None, :]
    out = logits.softmax(-1) @ v
    out = F.linear(out.transpose(1, 2).reshape(batch, n, dim), attn.proj.weight, attn.proj.bias)
    return out, q, k, v


def _paper_matching(metric, r):
    """One sample's merges: a list of (a_position, b_position) for the r best-matched A tokens."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a_pos = list(range(0, metric.shape[0], 2))
    b_pos = list(range(1, metric.shape[0], 2))
    r = min(r, (metric.shape[0] - 1) // 2)
    best = []
    for a in a_pos:
        if a == 0:
            continue  # the class token never merges
        scores = [float(metric[a] @ metric[b]) for b in b_pos]
        j = max(range(len(b_pos)), key=lambda i: (scores[i], -i))
        best.append((scores[j], a, b_pos[j]))
    best.sort(key=lambda t: -t[0])
    return [(a, b) for _, a, b in best[:r]]


def _merge(tokens, groups, feats, r):
    """Merge each sample's tokens by the paper's matching on ``feats``: size-weighted averages,
    output order unmerged A then B."""
    new_tokens, new_groups = [], []
    for b in range(tokens.shape[0]):
        pairs = _paper_matching(feats[b], r)
        gone = {a for a, _ in pairs}
        count = tokens.shape[1]
        order = [p for p in range(0, count, 2) if p not in gone] + list(range(1, count, 2))
        rows, members = [], []
        for p in order:
            parts = [p] + [a for a, dst in pairs if dst == p]
            weight = torch.tensor([len(groups[b][i]) for i in parts], dtype=tokens.dtype)
            rows.append((tokens[b, parts] * weight[:, None]).sum(0) / weight.sum())
            members.append(frozenset().union(*(groups[b][i] for i in parts)))
        new_tokens.append(torch.stack(rows))
        new_groups.append(members)
    return torch.stack(new_tokens), new_groups


def direct_forward(model, x, rs, prop_attn=True, metric="k"):
    """Logits, final groups (one list of frozensets of input positions per sample) and sizes.

    ``metric``: k, q, v (head-averaged, from this layer's attention); x (the tokens after the
    attention branch, where they merge); x_pre (the block's input tokens, merged before attention).
    """
    with torch.no_grad():
        tokens = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        batch, n, _ = tokens.shape
        groups = [[frozenset([i]) for i in range(n)] for _ in range(batch)]
        for blk, r in zip(model.blocks, rs):
            if metric == "x_pre" and r > 0:
                tokens, groups = _merge(tokens, groups, tokens, r)
            sizes = torch.tensor([[float(len(g)) for g in gs] for gs in groups])
            y = blk.norm1(tokens)
            h, q, k, v = _attention(blk.attn, y, sizes, prop_attn)
            tokens = tokens + blk.ls1(h)
            if metric != "x_pre" and r > 0:
                feats = {"k": k.mean(1), "q": q.mean(1), "v": v.mean(1), "x": tokens}[metric]
                tokens, groups = _merge(tokens, groups, feats, r)
            tokens = tokens + blk.ls2(blk.mlp(blk.norm2(tokens)))
        tokens = model.norm(tokens)
        sizes = torch.tensor([[float(len(g)) for g in gs] for gs in groups])
        if model.global_pool == "avg":
            w = sizes[:, 1:, None]
            pooled = (tokens[:, 1:] * w).sum(1) / w.sum(1)
        else:
            pooled = tokens[:, 0]
        logits = model.head(model.head_drop(model.fc_norm(pooled)))
    return logits, groups, sizes


def groups_of(source):
    """A traced [B, T, T_in] source map as the oracle's groups: frozensets of input positions."""
    return [[frozenset(torch.nonzero(row).flatten().tolist()) for row in sample] for sample in source]


def paper_merge(x, metric, size, r):
    """The published algorithm (paper pseudocode, class token at position 0), as a test oracle."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    a, b = metric[:, ::2], metric[:, 1::2]
    scores = a @ b.transpose(-1, -2)
    scores[:, 0, :] = -math.inf
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx = edge_idx[:, r:].sort(dim=1).values
    src_idx = edge_idx[:, :r]
    dst_idx = node_idx[..., None].gather(1, src_idx)

    def merge(t):
        src, dst = t[:, ::2], t[:, 1::2]
        n, t1, c = src.shape
        unm = src.gather(1, unm_idx.expand(n, t1 - r, c))
        src = src.gather(1, src_idx.expand(n, r, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(n, r, c), src, reduce="sum")
        return torch.cat([unm, dst], dim=1)

    merged_size = merge(size)
    return merge(x * size) / merged_size, merged_size
