"""DeiT's repeated augmentation (deit ``samplers.py`` ``RASampler``, on by default in deit
``main.py``: ``--repeated-aug``, ``num_repeats=3``), in this engine's seeded, resumable form.

Each epoch: a seeded permutation of the ``N`` samples, each index repeated ``repeats`` times in a
row, padded to a multiple of the process count, dealt round-robin (``indices[rank::world]``), so
the copies of one image land on different processes; each process then keeps its first
``floor(N // 256 * 256 / world)`` indices, i.e. one epoch still visits about ``N`` samples in all.
Every position has its own sample seed, so the copies are augmented differently.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .data import EpochSampler, _mix
from .errors import ConfigError


class RepeatedAugSampler(EpochSampler):
    """Yields ``(index, sample_seed)`` like :class:`launch.engine.data.EpochSampler`, whose iteration,
    resume and length it shares; only the epoch's order differs."""

    def __init__(self, size: int, rank: int = 0, world: int = 1, seed: int = 0, repeats: int = 3):
        if repeats < 1:
            raise ConfigError(f"repeated augmentation needs repeats >= 1, got {repeats}")
        super().__init__(size, rank, world, seed)
        self.repeats = repeats
        self.total = int(math.ceil(size * repeats / world)) * world
        self.per_rank = int(math.floor(size // 256 * 256 / world))
        if self.per_rank == 0:  # fewer than 256 samples: DeiT's rule would leave an empty epoch
            self.per_rank = self.total // world

    def _order(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        order = torch.randperm(self.size, generator=g).repeat_interleave(self.repeats)
        if self.total > order.numel():
            order = torch.cat([order, order[:self.total - order.numel()]])
        return order[self.rank::self.world][:self.per_rank]


def train_sampler(size: int, rank: int, world: int, seed: int, weights=None,
                  num_samples: Optional[int] = None, repeats: int = 1):
    """The training sampler a task asks for: repeated augmentation, weighted, or plain."""
    if repeats > 1:
        if weights is not None:
            raise ConfigError("repeated augmentation cannot be combined with weighted sampling")
        return RepeatedAugSampler(size, rank, world, seed, repeats)
    return EpochSampler(size, rank, world, seed, weights=weights, num_samples=num_samples)
