"""The matching algorithms of the paper's Table 2, beside bipartite soft matching.

Every algorithm returns the same :class:`tome.merge.Matching` (``keep``, ``src``, ``dst``) that
``merge_tokens`` / ``merge_source`` apply, or None when nothing merges. Several ``src`` tokens may
share one ``dst`` (``merge_tokens`` then averages the whole group, size-weighted), and ``src`` may
be empty: the tokens missing from ``keep`` are then simply dropped (pruning).

* ``bipartite``: the paper's bipartite soft matching (A/B by alternating position, or by the
  ``partition`` option: Table 1e).
* ``random``: bipartite soft matching over a random A/B partition (the older spelling of
  ``partition="random"``).
* ``greedy``: greedy pairwise matching. Among all unprotected tokens, take the most similar pair,
  merge it, and repeat with the tokens not merged yet, ``r`` times: ``r`` disjoint pairs, the
  later token of each pair merging into the earlier one. Similarities are computed once per layer.
* ``kmeans``: k-means clustering of the unprotected tokens into ``T - protected - r`` clusters;
  each cluster becomes one token (its members merge into the earliest of them). Centroids start
  at evenly spaced tokens and take ``kmeans_iters`` (default ``KMEANS_ITERS``; Table 2 tries 2
  and 5) Lloyd steps (assign each token to its most
  similar centroid under ``distance``, move each centroid to the mean of its members; with
  ``cosine`` the features are L2-normalised first). A cluster left empty takes the token least
  similar to its own centroid from a cluster of two or more, so exactly ``r`` tokens go.
* ``random_prune``: drop ``r`` uniformly random unprotected tokens (random pruning; ``mode`` has
  no effect, nothing is averaged).
* ``attn_prune``: attention-based pruning (Table 2, "prune attn-based"): drop the ``r``
  unprotected tokens the class token attends to least. The patches hand it, as ``metric``, the
  class token's attention row averaged over heads (``tome.attention.class_attention``, with the
  same log-size bias as the layer's attention), so ``metric``, ``heads`` and ``distance`` have
  no effect, nor has ``mode``.

Protected tokens (class, distillation, registers: the first ``protected``) never merge and nothing
merges into them; output order is the protected tokens, then the kept tokens in input order.
"""
from __future__ import annotations

from typing import Optional

import torch

from .distance import DISTANCES, similarity
from .merge import Matching, bipartite_soft_matching
from .schedule import clamp_r

MATCHINGS = ("bipartite", "random", "greedy", "kmeans", "random_prune", "attn_prune")
KMEANS_ITERS = 5

__all__ = ["MATCHINGS", "DISTANCES", "KMEANS_ITERS", "match", "greedy_matching", "kmeans_matching",
           "random_prune_matching", "attn_prune_matching"]


def _matching(src_pos: torch.Tensor, dst_pos: torch.Tensor, num_tokens: int) -> Matching:
    """Matching from absolute input positions: tokens ``src_pos`` [B, r] merge into ``dst_pos``
    [B, r] (kept tokens); every other token is kept, in input order."""
    batch, r = src_pos.shape
    device = src_pos.device
    gone = torch.zeros(batch, num_tokens, dtype=torch.bool, device=device)
    gone.scatter_(1, src_pos, True)
    positions = torch.arange(num_tokens, device=device).expand(batch, -1)
    keep = positions[~gone].view(batch, num_tokens - r)
    # A kept token's output position: its input position minus the removed tokens before it.
    out_pos = positions - gone.long().cumsum(dim=1)
    return Matching(keep, src_pos, out_pos.gather(1, dst_pos))


def greedy_matching(metric: torch.Tensor, r: int, protected: int = 0,
                    groups: Optional[torch.Tensor] = None, distance: str = "cosine") -> Optional[Matching]:
    batch, num_tokens, _ = metric.shape
    r = clamp_r(r, num_tokens, protected)
    if r <= 0:
        return None
    n = num_tokens - protected
    with torch.no_grad():
        x = metric[:, protected:]
        scores = similarity(x, x, distance).float()
        blocked = torch.eye(n, dtype=torch.bool, device=metric.device).expand(batch, -1, -1)
        if groups is not None:
            g = groups[:, protected:]
            blocked = blocked | (g[:, :, None] != g[:, None, :])
        scores = scores.masked_fill(blocked, -torch.inf)
        rows = torch.arange(batch, device=metric.device)
        first, second = [], []
        for _ in range(r):
            best, flat = scores.flatten(1).max(dim=1)
            if groups is not None and not torch.isfinite(best).all():
                break  # some element has no pair left inside a group: stop for all (fixed shapes)
            i, j = flat // n, flat % n
            first.append(torch.minimum(i, j))
            second.append(torch.maximum(i, j))
            for t in (i, j):  # both tokens leave the pool
                scores[rows, t, :] = -torch.inf
                scores[rows, :, t] = -torch.inf
        if not first:
            return None
        dst = torch.stack(first, dim=1) + protected
        src = torch.stack(second, dim=1) + protected
    return _matching(src, dst, num_tokens)


def kmeans_matching(metric: torch.Tensor, r: int, protected: int = 0,
                    groups: Optional[torch.Tensor] = None, distance: str = "cosine",
                    iters: int = KMEANS_ITERS) -> Optional[Matching]:
    if groups is not None:
        raise ValueError("matching='kmeans' cannot keep merges inside bands/windows (groups); "
                         "use bipartite, random or greedy with band/window")
    batch, num_tokens, channels = metric.shape
    r = clamp_r(r, num_tokens, protected)
    if r <= 0:
        return None
    n = num_tokens - protected
    k = n - r
    with torch.no_grad():
        x = metric[:, protected:].float()
        if distance == "cosine":
            x = x / x.norm(dim=-1, keepdim=True)
        seeds = torch.linspace(0, n - 1, k, device=x.device).round().long()
        centroids = x[:, seeds]
        for _ in range(iters):
            assign = similarity(x, centroids, distance).argmax(dim=-1)
            sums = torch.zeros_like(centroids).scatter_add_(1, assign[..., None].expand(-1, -1, channels), x)
            counts = torch.zeros(batch, k, device=x.device).scatter_add_(1, assign, torch.ones_like(x[..., 0]))
            centroids = torch.where(counts[..., None] > 0, sums / counts.clamp_min(1)[..., None], centroids)
        scores = similarity(x, centroids, distance)
        assign = scores.argmax(dim=-1)
        for b in range(batch):  # refill empty clusters (rare), one token each
            counts = torch.bincount(assign[b], minlength=k)
            while bool((counts == 0).any()):
                empty = int((counts == 0).nonzero()[0])
                fit = scores[b].gather(1, assign[b][:, None])[:, 0]
                fit = fit.masked_fill(counts[assign[b]] < 2, torch.inf)
                moved = int(fit.argmin())
                counts[assign[b, moved]] -= 1
                counts[empty] += 1
                assign[b, moved] = empty
        positions = torch.arange(n, device=x.device).expand(batch, -1)
        first = torch.full((batch, k), n, device=x.device, dtype=torch.long)
        first = first.scatter_reduce(1, assign, positions, reduce="amin")  # earliest member
        is_first = torch.zeros(batch, n, dtype=torch.bool, device=x.device).scatter_(1, first, True)
        src = positions[~is_first].view(batch, r)
        dst = first.gather(1, assign.gather(1, src))
    return _matching(src + protected, dst + protected, num_tokens)


def _pruning(drop: torch.Tensor, num_tokens: int) -> Matching:
    """Matching that drops the tokens at positions ``drop`` [B, r] and keeps the rest in order."""
    batch, device = drop.shape[0], drop.device
    gone = torch.zeros(batch, num_tokens, dtype=torch.bool, device=device).scatter_(1, drop, True)
    keep = torch.arange(num_tokens, device=device).expand(batch, -1)[~gone].view(batch, -1)
    empty = torch.zeros(batch, 0, dtype=torch.long, device=device)
    return Matching(keep, empty, empty)


def random_prune_matching(metric: torch.Tensor, r: int, protected: int = 0,
                          generator: Optional[torch.Generator] = None) -> Optional[Matching]:
    batch, num_tokens, _ = metric.shape
    r = clamp_r(r, num_tokens, protected)
    if r <= 0:
        return None
    n = num_tokens - protected
    drop = torch.rand(batch, n, generator=generator).argsort(dim=1)[:, :r].to(metric.device) + protected
    return _pruning(drop, num_tokens)


def attn_prune_matching(attention: torch.Tensor, r: int, protected: int = 1) -> Optional[Matching]:
    """Drop the ``r`` unprotected tokens with the lowest ``attention`` [B, T, 1] (the class token's
    attention to each token); ties go to the earlier token."""
    if protected < 1:
        raise ValueError("matching='attn_prune' ranks tokens by the class token's attention; this "
                         "model has no class token (protected=0): use random_prune or a merging")
    batch, num_tokens, _ = attention.shape
    r = clamp_r(r, num_tokens, protected)
    if r <= 0:
        return None
    with torch.no_grad():
        order = attention[:, protected:, 0].float().argsort(dim=1, stable=True)
    return _pruning(order[:, :r] + protected, num_tokens)


def match(metric: torch.Tensor, r: int, protected: int = 0, matching: str = "bipartite",
          groups: Optional[torch.Tensor] = None, distance: str = "cosine",
          generator: Optional[torch.Generator] = None, partition: str = "alternating",
          kmeans_iters: Optional[int] = None) -> Optional[Matching]:
    """One layer's matching by the named algorithm (see the module doc). ``partition`` is the
    A/B split of bipartite matching; ``kmeans_iters`` the Lloyd steps of k-means (None: the
    default ``KMEANS_ITERS``)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    if matching in ("bipartite", "random"):
        return bipartite_soft_matching(metric, r, protected, matching, groups, generator, distance=distance,
                                       partition=partition)
    if matching == "greedy":
        return greedy_matching(metric, r, protected, groups, distance)
    if matching == "kmeans":
        return kmeans_matching(metric, r, protected, groups, distance,
                               KMEANS_ITERS if kmeans_iters is None else kmeans_iters)
    if matching == "random_prune":
        return random_prune_matching(metric, r, protected, generator)
    if matching == "attn_prune":
        return attn_prune_matching(metric, r, protected)
    raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")
