"""From one config to the runs it asks for: stages (in order) x sweeps (in parallel).

    stages:                       # optional: runs that follow each other
      - {name: pretrain, set: {tome.r: 0, train.epochs: 8}, sweep: {}}  # a stage's own sweep
      - {name: merge_ft, set: {tome.r: 4, model.checkpoint: "${stage:pretrain}/checkpoint.pth"}}
    sweep:                        # optional: one run per value (a job array on SLURM)
      tome.r: [4, 8, 16]

Each run gets ``<launch.out_dir>/<name>/<stage>/<what differs>``, e.g. ``runs/vitl_k400/r8``.
Every run's config is validated here, before anything is submitted.
"""
from __future__ import annotations

import copy
import itertools
import os
import re
from dataclasses import dataclass

from launch.engine.config import Config, build_config, load_raw, set_dotted
from launch.engine.errors import ConfigError

_STAGE_REF = re.compile(r"\$\{stage:([A-Za-z0-9_.-]+)\}")


@dataclass
class Run:
    stage: str
    name: str          # what differs inside the stage ("" for a single run)
    run_dir: str
    cfg: Config


def _label(key: str, value) -> str:
    leaf = key.split(".")[-1]
    text = "-".join(map(str, value)) if isinstance(value, list) else str(value)
    return re.sub(r"[^A-Za-z0-9_.-]", "", f"{leaf}{text}")


def _substitute(value, stage_dirs: dict, stage: str):
    if isinstance(value, str):
        def repl(match):
            ref = match.group(1)
            if ref not in stage_dirs:
                raise ConfigError(f"stage {stage!r} refers to ${{stage:{ref}}}, which is not an "
                                  f"earlier single-run stage (earlier: {', '.join(stage_dirs) or 'none'})")
            return stage_dirs[ref]
        return _STAGE_REF.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, stage_dirs, stage) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, stage_dirs, stage) for k, v in value.items()}
    return value


def expand(raw: dict) -> list[list[Run]]:
    """Validated runs, grouped by stage (stages run one after another)."""
    base = build_config(copy.deepcopy(raw))  # validates the shared part, stages and sweep keys
    root = os.path.join(base.launch.out_dir, base.name)
    stages = base.stages or [None]
    stage_dirs: dict = {}
    plan = []
    for stage in stages:
        stage_raw = copy.deepcopy(raw)
        stage_raw.pop("stages", None)
        sweep = stage_raw.pop("sweep", None) or {}
        if stage is not None and stage.sweep is not None:
            sweep = stage.sweep
        stage_name = stage.name if stage else ""
        if stage is not None:
            if not stage.name or not re.fullmatch(r"[A-Za-z0-9_.-]+", stage.name):
                raise ConfigError(f"stage names must be non-empty words, got {stage.name!r}")
            for key, value in stage.set.items():
                set_dotted(stage_raw, key, _substitute(value, stage_dirs, stage.name))
        keys = list(sweep)
        runs = []
        for values in itertools.product(*(sweep[k] for k in keys)):
            run_raw = copy.deepcopy(stage_raw)
            for key, value in zip(keys, values):
                set_dotted(run_raw, key, value)
            label = "_".join(_label(k, v) for k, v in zip(keys, values))
            run_dir = os.path.join(root, stage_name, label).rstrip(os.sep)
            try:
                cfg = build_config(run_raw)
            except ConfigError as err:
                where = "/".join(p for p in (stage_name, label) if p) or base.name
                raise ConfigError(f"{where}: {err}") from None
            runs.append(Run(stage_name, label, run_dir, cfg))
        if stage is not None and len(runs) == 1:
            stage_dirs[stage.name] = runs[0].run_dir
        plan.append(runs)
    return plan


def checkpoint_sources(path: str, overrides=()) -> list[str]:
    """The checkpoint sources a config's runs read (skipping those an earlier stage writes)."""
    out = []
    for stage in expand(load_raw(path, overrides)):
        for run in stage:
            source = run.cfg.model.checkpoint
            produced = isinstance(source, str) and os.path.abspath(source).startswith(
                os.path.abspath(run.cfg.launch.out_dir) + os.sep)
            if source and not produced and source not in out:
                out.append(source)
    return out
