"""Deterministic, resumable data order for every modality.

Each training sample is drawn with its own seed, a function of (run seed, epoch, position), and
the dataset wrapper seeds the random generators from it before building the sample. The data and
the augmentation of every step are then fixed by the config alone: a run resumed from a mid-epoch
checkpoint sees exactly the batches the uninterrupted run would have seen, whatever the number of
loader workers.
"""
from __future__ import annotations

import logging
import random
import signal
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .errors import DataError


def _mix(*values: int) -> int:
    return int(np.random.SeedSequence([v & 0xFFFFFFFF for v in values]).generate_state(1)[0])


class EpochSampler(Sampler):
    """Yields ``(index, sample_seed)``; shards over processes; can start mid-epoch.

    ``weights`` (optional) switches to weighted sampling with replacement (class balancing): one
    ``torch.multinomial`` draw of ``num_samples`` per epoch, strided over ranks. This is Audio-MAE's
    AS-2M sampler (``dataset.py`` DistributedSamplerWrapper around WeightedRandomSampler): its
    script passes ``--replacement False``, but that flag is argparse ``type=bool`` and
    ``bool("False")`` is True, so the official runs drew with replacement too.
    """

    def __init__(self, size: int, rank: int = 0, world: int = 1, seed: int = 0, shuffle: bool = True,
                 weights: Optional[torch.Tensor] = None, num_samples: Optional[int] = None):
        self.size, self.rank, self.world, self.seed, self.shuffle = size, rank, world, seed, shuffle
        if weights is not None:
            weights = torch.as_tensor(weights, dtype=torch.float64).flatten()
            if (weights.numel() != size or not torch.isfinite(weights).all() or (weights < 0).any()
                    or weights.sum() <= 0):
                raise DataError(f"sampling weights must be {size} finite, non-negative numbers with a "
                                  f"positive sum (got {weights.numel()})")
        self.weights = weights
        total = num_samples or size
        self.per_rank = total // world if shuffle else len(range(rank, size, world))
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def _order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.rank, self.size, self.world)
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch))
        total = self.per_rank * self.world
        if self.weights is not None:
            order = torch.multinomial(self.weights, total, replacement=True, generator=g)
        else:
            order = torch.randperm(self.size, generator=g)[:total]
        return order[self.rank::self.world]

    def __iter__(self):
        order = self._order()
        for pos in range(self.start, len(order)):
            yield int(order[pos]), _mix(self.seed, self.epoch, self.rank, pos)

    def __len__(self) -> int:
        return self.per_rank - self.start


class SeededDataset(Dataset):
    """Seeds python, numpy and torch from the sampler's per-sample seed, then builds the sample."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, key)
        random.seed(seed)
        np.random.seed(seed % (2 ** 32))
        torch.manual_seed(seed)
        return self.dataset[index]


# Signals that belong to the job's main process: SLURM sends them to every process of the job
# (USR2 before the time limit or on preemption, TERM on requeue or cancel). A worker that handled
# them would requeue the job a second time (submitit's handler is inherited through fork) or die
# and take the run down with "DataLoader worker killed"; the main process checkpoints, requeues and
# shuts its workers down.
JOB_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)


def ignore_job_signals(worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: the worker ignores the job's preemption and stop signals."""
    for sig in JOB_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """Seed for the model's own randomness (dropout, drop path, mixup) at one training step."""
    return _mix(seed, epoch, step, rank, 7)


def load_with_standins(load: Callable[[int], object], path_of: Callable[[int], str], index: int,
                       standin: Callable[[int, int], int], max_retries: int, what: str,
                       log: logging.Logger, error=DataError):
    """``load(index)``; when the file behind it cannot be read, log it and load a stand-in.

    ``standin(index, attempt)`` picks the next index to try. Returns ``(result, index, failures)``
    where ``failures`` lists ``(index, path, reason)`` of the unreadable files passed over (empty
    when the first read worked). Items carry them as ``launch.engine.skips.skip_fields(failures)``; the
    engine counts distinct files over workers and processes into ``skipped_files``, so a long run
    reports bad files instead of dying on one. After ``max_retries`` stand-ins in a row fail,
    ``error`` is raised.
    """
    failures = []
    for attempt in range(max_retries + 1):
        try:
            return load(index), index, failures
        except Exception as err:  # decoders raise assorted types; one bad file must not end a run
            last = path_of(index)
            detail = str(err).splitlines()[0][:200] if str(err) else ""
            reason = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
            failures.append((index, str(last), reason))
            log.warning("skipping unreadable %s %s (%s)", what, last, reason)
            index = standin(index, attempt)
    raise error(f"{max_retries + 1} {what} files in a row could not be read (last: {last}); "
                f"check the files and the data list")
