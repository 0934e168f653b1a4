"""``submit.py CONFIG --print``: every run's fully resolved config as YAML, touching no data.

Each run (stages x sweep values) is one YAML document: the validated config, plus a top-level
``derived:`` mapping with what the run will compute from it on the config's own SLURM geometry:
``world_size`` (nodes x GPUs per node), ``repeated_views`` (views per sample the task counts in
the batch), ``effective_batch`` (batch x accumulation x repeated views x world size) and ``lr``
(the peak learning rate: ``train.lr``, or ``blr x effective_batch / 256``).
"""
from __future__ import annotations

import yaml

from .config import Config, load_yaml, parse_override, set_dotted
from .plan import expand
from .steps import effective_batch, peak_lr, slurm_world_size
from .tasks import get_task


def derived(cfg: Config, run_dir: str = "") -> dict:
    world = slurm_world_size(cfg.slurm)
    views = get_task(cfg.task).repeated_views(cfg)
    eff = effective_batch(cfg.train, world, views)
    out = {"world_size": world, "repeated_views": views, "effective_batch": eff,
           "lr": peak_lr(cfg.train, eff)}
    if run_dir:
        out["run_dir"] = run_dir
    return out


def resolved_runs(config_path: str, overrides=()) -> list[dict]:
    raw = load_yaml(config_path)
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
    docs = []
    for stage in expand(raw):  # validation only: nothing is prepared, generated or read
        for run in stage:
            docs.append({**run.cfg.to_dict(), "derived": derived(run.cfg, run.run_dir)})
    return docs


def resolved_yaml(config_path: str, overrides=()) -> str:
    return yaml.safe_dump_all(resolved_runs(config_path, overrides), sort_keys=False)
