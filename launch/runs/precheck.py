"""Checks that need the whole plan or the model's shape, run at submission (``--dry-run`` too).

After each run's config is validated and its task has checked its paths (``Task.prepare``):
  * every ``tome.r`` / ``tome.eval_r`` schedule fits the model's depth. The depth comes from the
    task's own model builder on the meta device, without weights (no memory, no checkpoint read);
  * the task's positive data sizes (``Task.positive_data_fields``) are positive;
  * a ``model.checkpoint`` that does not exist yet is accepted only if an earlier stage of the
    same plan writes exactly that file (``<run_dir>/checkpoint.pth`` of a stage that trains); its
    keys and shapes are checked when that stage ends (:mod:`launch.runs.stage_check`);
  * a run that trains has at least one full batch per process per epoch (the training set is
    listed once per distinct data section; skipped in a dry run on demo data, which it does not write);
  * no live job holds a run directory of the plan (:mod:`launch.engine.rundir_lock`).
Each failure is one :class:`ConfigError` line naming the run, the bad value and what is valid.
"""
from __future__ import annotations

import copy
import json
import os

import torch

import tome

from launch.engine.checkpoint import LAST
from launch.engine.config import model_r
from launch.engine.errors import ConfigError
from launch.engine.rundir_lock import check_free
from launch.engine.tasks import get_task


def _where(run) -> str:
    return "/".join(p for p in (run.stage, run.name) if p)


def model_depth(task, cfg) -> int:
    """Number of merging layers of the run's model, built on the meta device without weights."""
    light = copy.deepcopy(cfg)
    light.model.checkpoint = None
    try:
        with torch.device("meta"):
            model = task.build_model(light)
            task.patch(model, light)
        return int(model._tome_num_layers())
    except ConfigError:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"model {getattr(cfg.model, 'name', cfg.model)!s} cannot be built: "
                          f"{type(err).__name__}: {first}") from None


def _is_local_path(path: str) -> bool:
    return "://" not in path and not path.startswith(("hf-hub:", "hf_hub:", "timm/", "hub:"))


def check_positive(task, cfg) -> None:
    for name in getattr(task, "positive_data_fields", ()):
        value = getattr(cfg.data, name, None)
        if value is not None and not value > 0:
            raise ConfigError(f"data.{name} must be a positive integer, got {value!r}")


def check_schedules(cfg, depth: int) -> None:
    for key, values in (("tome.r", [cfg.tome.r]), ("tome.eval_r", list(cfg.tome.eval_r))):
        for r in values:
            try:
                tome.parse_r(model_r(cfg.tome, r), depth)
            except ValueError as err:
                raise ConfigError(f"{key}={r!r} does not fit {cfg.model.name} ({depth} layers): "
                                  f"{err}") from None


def check_checkpoint_source(cfg, produced: set) -> None:
    path = getattr(cfg.model, "checkpoint", None)
    if not path or not isinstance(path, str) or not _is_local_path(path) or os.path.isfile(path):
        return
    if os.path.abspath(path) in produced:
        return
    earlier = ", ".join(sorted(produced)) or "none"
    raise ConfigError(f"model.checkpoint {path!r} does not exist and no earlier stage of this "
                      f"experiment writes it (earlier stages write: {earlier})")


def train_samples_per_process(task, cfg, world: int) -> tuple:
    """(samples each process draws per epoch, training set size), as the engine's sampler deals them."""
    from launch.engine.ra_sampler import train_sampler
    dataset = task.build_dataset(cfg, train=True)
    weights, epoch_samples = task.train_sampling(dataset, cfg)
    sampler = train_sampler(len(dataset), 0, world, cfg.train.seed, weights, epoch_samples,
                            task.sampler_repeats(cfg))
    return len(sampler), len(dataset)


def check_batch_fits(task, cfg, world: int, sizes: dict) -> None:
    """``train.batch_size`` x processes must not exceed what one epoch deals out (else no step runs)."""
    key = json.dumps([cfg.task, cfg.to_dict()["data"], world], sort_keys=True, default=str)
    if key not in sizes:
        sizes[key] = train_samples_per_process(task, cfg, world)
    per_process, total = sizes[key]
    if per_process < cfg.train.batch_size:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} x {world} process(es) exceeds the "
                          f"{total} training samples ({per_process} per process and epoch); set "
                          f"train.batch_size <= {per_process}")


def check_plan(plan, world_of=lambda cfg: 1, dry_run: bool = False) -> None:
    """All checks above for every run of ``plan`` (a list of stages, each a list of runs);
    ``world_of(cfg)``: the number of processes a run will have."""
    depths: dict = {}
    sizes: dict = {}
    produced: set = set()
    for stage in plan:
        for run in stage:
            cfg = run.cfg
            task = get_task(cfg.task)
            try:
                check_positive(task, cfg)
                key = json.dumps([cfg.task, cfg.to_dict()["model"], cfg.to_dict()["data"]],
                                 sort_keys=True, default=str)
                if key not in depths:
                    depths[key] = model_depth(task, cfg)
                check_schedules(cfg, depths[key])
                check_checkpoint_source(cfg, produced)
                if cfg.train.epochs > 0 and not (dry_run and getattr(cfg.data, "demo", False)):
                    check_batch_fits(task, cfg, world_of(cfg), sizes)
            except ConfigError as err:
                where = _where(run)
                raise ConfigError(f"{where}: {err}" if where else str(err)) from None
        for run in stage:
            if run.cfg.train.epochs > 0:
                produced.add(os.path.abspath(os.path.join(run.run_dir, LAST)))
    for stage in plan:
        for run in stage:
            check_free(run.run_dir)
