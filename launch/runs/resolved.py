"""``submit.py CONFIG --print``: every run's fully resolved config as YAML, touching no data.

Each run (stages x sweep values) is one YAML document: the validated config, plus a top-level
``derived:`` mapping with what the run will compute from it on the config's own SLURM geometry:
``world_size`` (nodes x processes per node: one per GPU, or ``launch.tasks_per_node``), ``repeated_views`` (views per sample the task counts in
the batch), ``effective_batch`` (batch x accumulation x repeated views x world size) and ``lr``
(the peak learning rate: ``train.lr``, or ``blr x effective_batch / 256``).
"""
from __future__ import annotations

import yaml

from launch.engine.config import Config, load_raw
from launch.runs.plan import expand
from launch.engine.steps import effective_batch, peak_lr, slurm_world_size
from launch.engine.tasks import get_task


def derived(cfg: Config, run_dir: str = "") -> dict:
    world = slurm_world_size(cfg)
    views = get_task(cfg.task).repeated_views(cfg)
    eff = effective_batch(cfg.train, world, views)
    out = {"world_size": world, "repeated_views": views, "effective_batch": eff,
           "lr": peak_lr(cfg.train, eff)}
    if run_dir:
        out["run_dir"] = run_dir
    return out


def resolved_runs(config_path: str, overrides=()) -> list[dict]:
    docs = []
    for stage in expand(load_raw(config_path, overrides)):  # validation only: nothing is prepared, generated or read
        for run in stage:
            docs.append({**run.cfg.to_dict(), "derived": derived(run.cfg, run.run_dir)})
    return docs


def resolved_yaml(config_path: str, overrides=()) -> str:
    return yaml.safe_dump_all(resolved_runs(config_path, overrides), sort_keys=False)
