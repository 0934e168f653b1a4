"""Batch arithmetic of a run: effective batch, peak lr, gradient-accumulation windows.

The effective batch is what the official recipes scale the learning rate by. MAE-ST
(``main_finetune.py``: ``batch_size * accum_iter * world_size * repeat_aug``) counts every
repeated view of a video; a task reports those views with ``Task.repeated_views``. DeiT's
repeated augmentation (``RASampler``) puts the repeats inside the per-process batch, so they add
no factor (DeiT ``main.py``: ``lr * batch_size * world_size / 512``).
"""
from __future__ import annotations


def slurm_tasks_per_node(cfg) -> int:
    """Processes per node of a SLURM job: one per GPU, or ``launch.tasks_per_node`` for a CPU job."""
    return cfg.slurm.gpus_per_node if cfg.slurm.gpus_per_node > 0 else cfg.launch.tasks_per_node


def slurm_world_size(cfg) -> int:
    """Processes the config's own SLURM geometry starts."""
    return cfg.slurm.nodes * slurm_tasks_per_node(cfg)


def effective_batch(train_cfg, world_size: int, views: int = 1) -> int:
    """Per-process batch x accumulation x repeated views x processes."""
    return train_cfg.batch_size * train_cfg.accum_steps * views * world_size


def peak_lr(train_cfg, eff_batch: int) -> float:
    """``train.lr`` if set, else ``blr * effective batch / 256`` (the linear scaling rule)."""
    return train_cfg.lr if train_cfg.lr is not None else train_cfg.blr * eff_batch / 256


def accum_window(step: int, steps_per_epoch: int, accum_steps: int) -> int:
    """Micro-batches in the accumulation window holding ``step``: ``accum_steps``, except the last
    window of an epoch, which holds only the micro-batches left when the epoch ends."""
    start = step - step % accum_steps
    return min(accum_steps, steps_per_epoch - start)
