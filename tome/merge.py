"""Bipartite soft matching and token merging.

Tokens are ``[batch, tokens, channels]``. The first ``protected`` tokens (class, distillation,
register tokens) are never merged and nothing merges into them. The rest are split into two sets
by *absolute* position: A = even positions, B = odd positions (the ``alternating`` partition; the
paper's Table 1e also tries ``sequential``, the first half against the second, and ``random``).
Each A token picks its most similar
B token (cosine similarity of the metric), and the ``r`` A tokens with the best matches merge into
their partners. The output is ``[protected, unmerged A in order, all of B in order]``; with a single
class token this is exactly the published layout, so merging decisions match token for token.

A matching is described by three index tensors (see :class:`Matching`), and every merge is one
gather of the kept tokens plus a scatter of the ``r`` merged ones, so a layer costs one pass over
its tokens whatever the merge mode.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch

from .distance import similarity
from .schedule import clamp_r
from .threads import calling_thread, whole_team

MERGE_MODES = ("wavg", "mean", "max", "keep")
MATCHINGS = ("bipartite", "random")
PARTITIONS = ("alternating", "sequential", "random")


class Matching(NamedTuple):
    """Where every output token comes from.

    keep: [B, T - r] input position of each output token (protected, unmerged A, B);
    src:  [B, r] input position of each merged-away A token;
    dst:  [B, r] output position of the B token it merges into.
    """
    keep: torch.Tensor
    src: torch.Tensor
    dst: torch.Tensor


def _split_positions(num_tokens: int, protected: int, partition: str, device,
                     generator: Optional[torch.Generator] = None):
    """Absolute positions of the A and B sets among the unprotected tokens.

    Every partition gives A and B the sizes of the alternating one (Table 1e compares only where
    the tokens go)."""
    if partition == "alternating":
        first_even = protected + (protected % 2)
        first_odd = protected + 1 - (protected % 2)
        a = torch.arange(first_even, num_tokens, 2, device=device)
        b = torch.arange(first_odd, num_tokens, 2, device=device)
        return a, b
    num_a = len(range(protected + (protected % 2), num_tokens, 2))
    if partition == "sequential":
        # A = the first unprotected tokens in token order, B = the rest
        return (torch.arange(protected, protected + num_a, device=device),
                torch.arange(protected + num_a, num_tokens, device=device))
    if partition == "random":
        # Random partition of the same sizes (ablation): A/B no longer follow position.
        n = num_tokens - protected
        perm = torch.randperm(n, generator=generator).to(device) + protected
        return perm[:num_a].sort().values, perm[num_a:].sort().values
    raise ValueError(f"partition must be one of {PARTITIONS}, got {partition!r}")


def bipartite_soft_matching(metric: torch.Tensor, r: int, protected: int = 0,
                            matching: str = "bipartite",
                            groups: Optional[torch.Tensor] = None,
                            generator: Optional[torch.Generator] = None,
                            distance: str = "cosine",
                            partition: str = "alternating") -> Optional[Matching]:
    """Decide which tokens merge. Returns ``None`` when nothing merges.

    partition: how the unprotected tokens split into A and B (``alternating``, ``sequential``,
        ``random``); ``matching="random"`` is the older spelling of ``partition="random"``.

    metric: [B, T, C] features compared by cosine similarity (the head-averaged keys by default),
        or by ``distance`` (see ``tome.distance``).
    groups: optional [B, T] integer labels; tokens only merge within the same label (used to keep
        merges inside a frequency band or time window). ``r`` is then lowered, if needed, so that
        every merge stays inside a group for every batch element.
    """
    batch, num_tokens, _ = metric.shape
    r = clamp_r(r, num_tokens, protected)
    if r <= 0:
        return None
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
    if matching == "random":
        partition = "random"
    a_pos, b_pos = _split_positions(num_tokens, protected, partition, metric.device, generator)
    if partition == "alternating":  # strided views instead of index copies
        a_sel = slice(protected + protected % 2, None, 2)
        b_sel = slice(protected + 1 - protected % 2, None, 2)
    else:
        a_sel, b_sel = a_pos, b_pos
    with torch.no_grad():
        if distance == "cosine":
            metric = metric / metric.norm(dim=-1, keepdim=True)
        with whole_team(batch * a_pos.numel() * b_pos.numel()):  # [B, A, B] scores: large for video
            if distance == "cosine":
                scores = metric[:, a_sel] @ metric[:, b_sel].transpose(-1, -2)
            else:
                scores = similarity(metric[:, a_sel], metric[:, b_sel], distance)
            if groups is not None:
                same = groups[:, a_pos, None] == groups[:, None, b_pos]
                scores = scores.masked_fill(~same, -torch.inf)
            # Best score of every A token, without its index: on the CPU a max with indices costs
            # about ten times a plain max. Only the r merging A tokens need their partner.
            node_max = scores.amax(dim=-1)
        if groups is not None:
            # Data-dependent cap: only A tokens with a partner in their group may merge.
            r = min(r, int((node_max > -torch.inf).sum(dim=-1).min()))
            if r <= 0:
                return None
        edge_idx = node_max.argsort(dim=-1, descending=True)
        src_idx = edge_idx[:, :r]
        unm_idx = edge_idx[:, r:].sort(dim=-1).values  # unmerged A keep their order
        # the first best B of each merging A token, as max(dim=-1) would give it
        dst_idx = _rows(scores, src_idx).argmax(dim=-1)

        num_unm = a_pos.numel() - r
        keep = torch.cat([
            torch.arange(protected, device=metric.device).expand(batch, protected),
            a_pos[unm_idx],
            b_pos.expand(batch, -1),
        ], dim=1)
        src = a_pos[src_idx]
        dst = protected + num_unm + dst_idx
    return Matching(keep, src, dst)


def _rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Gather whole token rows: x [B, T, C], idx [B, K] -> [B, K, C].

    A row copy (index_select on the flattened batch) rather than an element-wise gather."""
    batch, tokens = x.shape[:2]
    offsets = torch.arange(batch, device=idx.device)[:, None] * tokens
    flat = x.reshape(batch * tokens, *x.shape[2:]).index_select(0, (idx + offsets).flatten())
    return flat.view(batch, idx.shape[1], *x.shape[2:])


def merge_tokens(m: Matching, x: torch.Tensor, size: Optional[torch.Tensor],
                 mode: str = "wavg") -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a matching to tokens ``x`` [B, T, C] with sizes [B, T, 1] (None = all ones).

    wavg: size-weighted average (the paper); mean: plain average of the merged tokens;
    max: element-wise max; keep: the B token is kept unchanged and the A token dropped (pruning).
    Returns the merged tokens and their sizes (sizes add up, except for pruning). Sizes are fp32
    (fp64 if given so); merge weights are computed from them in that precision, then cast.
    """
    batch, tokens = x.shape[:2]
    kept, r = m.keep.shape[1], m.src.shape[1]
    row = x.shape[2:]
    if size is not None and size.dtype != torch.float64:
        size = size.float()  # counts stay exact whatever the activation dtype (bf16: only to 256)
    # Row indices into the batch-flattened input [B*T] and output [B*kept], each built once.
    first = torch.arange(batch, device=x.device)[:, None]
    keep_rows = (m.keep + first * tokens).flatten()
    with whole_team(m.keep.numel() * row.numel()):  # the one full pass over the tokens
        out = x.reshape(batch * tokens, *row).index_select(0, keep_rows).view(batch, kept, *row)
    ones = size is None  # the first merge: every size is one, nothing to gather
    if ones:
        new_size = torch.ones(batch, kept, 1, device=x.device, dtype=torch.float32)
    else:
        new_size = size.reshape(batch * tokens, 1).index_select(0, keep_rows).view(batch, kept, 1)
    if mode == "keep":
        return out, new_size
    src_rows = (m.src + first * tokens).flatten()
    if ones:
        src_size = torch.ones(batch, r, 1, device=x.device, dtype=torch.float32)
    else:
        src_size = size.reshape(batch * tokens, 1).index_select(0, src_rows).view(batch, r, 1)
    x_src = x.reshape(batch * tokens, *row).index_select(0, src_rows)  # [B*r, C]
    if mode == "max":
        out = out.scatter_reduce(1, m.dst[..., None].expand(-1, -1, x.shape[-1]),
                                 x_src.view(batch, r, *row), reduce="amax", include_self=True)
        return out, new_size.scatter_add(1, m.dst[..., None], src_size)
    if mode not in ("wavg", "mean"):
        raise ValueError(f"merge mode must be one of {MERGE_MODES}, got {mode!r}")
    dst_rows = (m.dst + first * kept).flatten()
    # out and new_size are fresh copies: update them in place (no second pass over the tokens)
    merged_size = new_size.scatter_add_(1, m.dst[..., None], src_size)
    # x_new = x_dst + sum_i w_i (x_i - x_dst), w_i = s_i / s_new, is the weighted average but only
    # touches the r merged rows, and never multiplies activations by large sizes (fp16-safe).
    if mode == "wavg":
        weight = src_size.view(batch * r, 1) / merged_size.view(batch * kept, 1).index_select(0, dst_rows)
    else:
        counts = merged_size if ones else \
            torch.ones_like(new_size).scatter_add(1, m.dst[..., None], torch.ones_like(src_size))
        weight = 1.0 / counts.view(batch * kept, 1).index_select(0, dst_rows)
    # x_dst is read from out (out[dst] = x[keep[dst]], not yet changed); then one row-wise add.
    flat_out = out.view(batch * kept, *row)
    weight = weight.to(x.dtype).view(batch * r, *([1] * len(row)))
    delta = x_src.sub_(flat_out.index_select(0, dst_rows)).mul_(weight)
    flat_out.index_add_(0, dst_rows, delta)
    return out, merged_size


def merge_source(m: Matching, source: torch.Tensor, mode: str = "wavg") -> torch.Tensor:
    """Track which input tokens each output token holds: source [B, T, T_in] of 0/1."""
    out = _rows(source, m.keep)
    if mode == "keep":
        return out
    return out.scatter_reduce(1, m.dst[..., None].expand(-1, -1, source.shape[-1]),
                              _rows(source, m.src), reduce="amax", include_self=True)


def merge_groups(m: Matching, groups: torch.Tensor) -> torch.Tensor:
    """Group labels follow their tokens (merges never cross groups, so the B label stands)."""
    return groups.gather(1, m.keep)


def unmerge(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """Spread merged tokens back to the input layout: [B, T, C] -> [B, T_in, C].

    Each input token receives the output token that holds it (zeros for pruned tokens).
    """
    return source.transpose(1, 2).to(x.dtype) @ x


def token_groups(source: torch.Tensor) -> torch.Tensor:
    """[B, T, T_in] source map -> [B, T_in] index of the output token holding each input."""
    return source.argmax(dim=1)


def merge_step(x: torch.Tensor, metric: torch.Tensor, r: int, size: Optional[torch.Tensor],
               source: Optional[torch.Tensor], groups: Optional[torch.Tensor], *, protected: int,
               mode: str = "wavg", matching: str = "bipartite", distance: str = "cosine",
               partition: str = "alternating", kmeans_iters: Optional[int] = None):
    """One layer's merge, shared by every patched block: returns (x, size, source, groups)."""
    from .matching import match  # matching.py builds on this module
    with calling_thread(x):  # small ops: no OpenMP barriers (tome/threads.py)
        m = match(metric, r, protected, matching, groups, distance, partition=partition,
                  kmeans_iters=kmeans_iters)
        if m is None:
            return x, size, source, groups
        all_ones = size is None
        x, size = merge_tokens(m, x, size, mode)
        if all_ones and (mode == "keep" or m.src.shape[1] == 0):
            size = None  # pruning leaves every size at one: later layers need no size bias
        if source is not None:
            source = merge_source(m, source, mode)
        if groups is not None:
            groups = merge_groups(m, groups)
    return x, size, source, groups
