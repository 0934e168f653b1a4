"""Class-balanced sampling for multi-label AudioSet training.

Audio-MAE fine-tunes on the unbalanced AudioSet-2M with a weighted sampler whose per-clip weight
is the sum, over the clip's labels, of ``1000 / (label count + 0.01)`` (its
``dataset/audioset/gen_weight.py``), so clips carrying rare labels are drawn more often.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from launch.errors import ConfigError


def class_balanced_weights(items: Sequence[tuple[str, list[int]]], num_classes: int) -> torch.Tensor:
    """Per-clip sampling weights (float64, length N): sum of 1000 / (count + 0.01) over its labels."""
    if num_classes <= 0:
        raise ConfigError(f"num_classes={num_classes}; must be positive")
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for _, labels in items:
        for k in labels:
            if not 0 <= k < num_classes:
                raise ConfigError(f"label index {k} outside 0..{num_classes - 1}")
            counts[k] += 1
    # The 0.01 only keeps unused classes finite; scale is irrelevant to multinomial sampling.
    label_weight = 1000.0 / (counts + 0.01)
    weights = torch.tensor([float(label_weight[list(labels)].sum()) for _, labels in items],
                           dtype=torch.float64)
    if len(weights) and (weights <= 0).any():
        # A clip with no labels would otherwise never be drawn; treat it like a singleton class.
        weights[weights <= 0] = 1000.0 / (1 + 0.01)
    return weights


def _default_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class DistributedWeightedSampler(Sampler[int]):
    """Weighted sampling with replacement, sharded across DDP ranks.

    Every rank draws the same global sequence (seeded by ``seed + epoch``) and keeps every
    ``num_replicas``-th index from its ``rank``, so ranks see disjoint slices of one weighted draw.
    Call ``set_epoch(epoch)`` each epoch for a fresh draw. ``num_samples`` is the epoch length
    over all ranks (default: the number of weights); each rank yields ceil(num_samples / replicas).
    """

    def __init__(self, weights, num_samples: int | None = None, num_replicas: int | None = None,
                 rank: int | None = None, seed: int = 0):
        weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
        if weights.numel() == 0 or not torch.isfinite(weights).all() or (weights < 0).any() \
                or weights.sum() <= 0:
            raise ConfigError("sampler weights must be a non-empty list of finite, non-negative "
                              f"numbers with a positive sum (got {weights.numel()} weights)")
        world, this_rank = _default_world()
        num_replicas = world if num_replicas is None else num_replicas
        rank = this_rank if rank is None else rank
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ConfigError(f"rank={rank}, num_replicas={num_replicas}; need 0 <= rank < num_replicas")
        num_samples = len(weights) if num_samples is None else num_samples
        if num_samples < 1:
            raise ConfigError(f"num_samples={num_samples}; must be at least 1")
        self.weights = weights
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.per_rank = math.ceil(num_samples / num_replicas)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        drawn = torch.multinomial(self.weights, self.per_rank * self.num_replicas,
                                  replacement=True, generator=g)
        return iter(drawn[self.rank::self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.per_rank
