"""How similar two sets of tokens are: the distance axis of the paper's Table 1.

``similarity(a, b, distance)`` returns ``[B, Na, Nb]`` scores, higher = more alike:

* ``cosine``: dot product of L2-normalised features (the paper's choice);
* ``dot``: plain dot product;
* ``euclidean``: minus the L2 distance.
"""
from __future__ import annotations

import torch

DISTANCES = ("cosine", "euclidean", "dot")


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
    raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
