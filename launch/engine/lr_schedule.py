"""Learning-rate schedules of the official recipes.

- ``half_cosine`` (MAE, MAE-ST, Audio-MAE ``util/lr_sched.py``): set before every optimizer
  step from the fractional epoch; linear warm-up from 0 over ``warmup_epochs``, then a half-cycle
  cosine from the peak lr to ``min_lr`` over the remaining ``epochs - warmup_epochs``.
- ``timm_epoch_cosine`` (DeiT ``main.py``: timm 0.3.2 ``CosineLRScheduler`` built by
  ``create_scheduler`` with ``t_initial=epochs``, ``warmup_t=warmup_epochs``,
  ``warmup_lr_init=warmup_lr``, ``lr_min=min_lr``, ``cycle_limit=1``, ``warmup_prefix`` off):
  constant within an epoch. The scheduler sets ``warmup_lr`` at construction and DeiT calls
  ``lr_scheduler.step(epoch)`` after epoch ``epoch``, so epoch 0 trains at ``warmup_lr`` and
  epoch ``e >= 1`` at the scheduler's value for ``t = e - 1``:
  ``warmup_lr + t * (lr - warmup_lr) / warmup_epochs`` while ``t < warmup_epochs``, else
  ``min_lr + (lr - min_lr) * (1 + cos(pi * t / epochs)) / 2`` (the cosine counts from epoch 0,
  not from the end of warm-up), and ``min_lr`` from ``t >= epochs`` (one cycle).
"""
from __future__ import annotations

import math


def half_cosine(epoch_float: float, peak_lr: float, min_lr: float, warmup: float, epochs: int) -> float:
    """MAE ``adjust_learning_rate`` at a fractional epoch."""
    if epoch_float < warmup:
        return peak_lr * epoch_float / warmup
    progress = (epoch_float - warmup) / max(epochs - warmup, 1e-8)
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def timm_cosine_value(t: int, peak_lr: float, min_lr: float, warmup: float, warmup_lr: float,
                      epochs: int) -> float:
    """timm 0.3.2 ``CosineLRScheduler._get_lr(t)`` for the DeiT arguments (one cycle, t_mul 1)."""
    if t < warmup:
        return warmup_lr + t * (peak_lr - warmup_lr) / warmup
    if t >= epochs:  # cycle_limit=1: past the first cycle the scheduler returns lr_min
        return min_lr
    return min_lr + 0.5 * (peak_lr - min_lr) * (1.0 + math.cos(math.pi * t / epochs))


def timm_epoch_cosine(epoch: int, peak_lr: float, min_lr: float, warmup: float, warmup_lr: float,
                      epochs: int) -> float:
    """The lr DeiT trains epoch ``epoch`` (0-based) with: stepped once, after each epoch."""
    if epoch == 0:
        return warmup_lr if warmup else timm_cosine_value(0, peak_lr, min_lr, warmup, warmup_lr, epochs)
    return timm_cosine_value(epoch - 1, peak_lr, min_lr, warmup, warmup_lr, epochs)


def lr_at_step(train_cfg, epoch: int, step: int, steps_per_epoch: int, peak_lr: float) -> float:
    """The lr for micro-batch ``step`` of ``epoch`` under ``train.lr_schedule``."""
    t = train_cfg
    if t.lr_schedule == "timm_epoch_cosine":
        return timm_epoch_cosine(epoch, peak_lr, t.min_lr, t.warmup_epochs, t.warmup_lr, t.epochs)
    if t.lr_schedule == "half_cosine":
        return half_cosine(epoch + step / steps_per_epoch, peak_lr, t.min_lr, t.warmup_epochs, t.epochs)
    raise ValueError(f"train.lr_schedule {t.lr_schedule!r} is not one of half_cosine, timm_epoch_cosine")
