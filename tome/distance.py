"""How similar two sets of tokens are: the distance axis of the paper's Table 1.

``similarity(a, b, distance)`` returns ``[B, Na, Nb]`` scores, higher = more alike:

* ``cosine``: dot product of L2-normalised features (the paper's choice);
* ``dot``: plain dot product;
* ``euclidean``: minus the L2 distance;
* ``softmax``: the dot product scaled by ``1/sqrt(C)`` and normalised by a softmax over the
  second set (each row of ``a`` gets a distribution over the rows of ``b``, as attention gives a
  query over the keys). The paper lists "softmax" in Table 1b without a formula; this is our
  reading of it. Its argmax within a row is the dot product's, but the best score of one row
  compares differently with another row's, so bipartite matching ranks the A tokens differently.
"""
from __future__ import annotations

import torch

DISTANCES = ("cosine", "euclidean", "dot", "softmax")


def similarity(a: torch.Tensor, b: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """Scores between every row of ``a`` [B, Na, C] and of ``b`` [B, Nb, C]."""
    if distance == "cosine":
        return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).transpose(-1, -2)
    if distance == "dot":
        return a @ b.transpose(-1, -2)
    if distance == "euclidean":
        # In fp32: the expanded square a^2 + b^2 - 2ab cancels badly in half precision.
        a32, b32 = a.float(), b.float()
        sq = (a32 * a32).sum(-1)[..., :, None] + (b32 * b32).sum(-1)[..., None, :] \
            - 2 * a32 @ b32.transpose(-1, -2)
        return -sq.clamp_min(0).sqrt()
    if distance == "softmax":
        logits = a.float() @ b.float().transpose(-1, -2) * a.shape[-1] ** -0.5
        return logits.softmax(dim=-1)
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
