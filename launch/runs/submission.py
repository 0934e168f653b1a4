"""Submitting a config's runs through submitit: SLURM (stages chained by ``afterok``, sweeps as
job arrays) or this machine (one run after another, logs streamed, signals forwarded).

``launch/submit.py`` is the command; this module is what it does.
"""
from __future__ import annotations

import os
import shutil
import time

from launch.engine.config import load_raw
from launch.engine.tasks import get_task
from launch.runs.job import Job
from launch.runs.local_jobs import LauncherStopped, SignalForwarder
from launch.runs.plan import expand
from launch.runs.precheck import check_plan
from launch.runs.stage_check import job_results, loaders_of


def pick_cluster(requested: str) -> str:
    if requested != "auto":
        return requested
    return "slurm" if shutil.which("sbatch") and shutil.which("srun") else "local"


def make_executor(cfg, cluster: str, folder: str, array_size: int = 1):
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
    if cluster == "slurm":
        s = cfg.slurm
        params = dict(nodes=s.nodes, tasks_per_node=max(s.gpus_per_node, 1), gpus_per_node=s.gpus_per_node,
                      cpus_per_task=s.cpus_per_task, timeout_min=s.timeout_min, name=cfg.name,
                      slurm_array_parallelism=min(s.max_parallel, array_size),
                      slurm_signal_delay_s=120)
        for key in ("partition", "account", "qos", "constraint"):
            if getattr(s, key):
                params[f"slurm_{key}"] = getattr(s, key)
        if s.mem_gb:
            params["mem_gb"] = s.mem_gb
        executor.update_parameters(**params)
    elif cluster == "local":
        params = dict(timeout_min=cfg.slurm.timeout_min, name=cfg.name,
                      tasks_per_node=cfg.launch.tasks_per_node)
        if cfg.launch.device == "cpu":
            params["gpus_per_node"] = 0  # keep the job off any local GPU
        executor.update_parameters(**params)
    return executor


def _stream(job, poll: float = 1.0) -> None:
    """Print a local job's log as it grows, until the job ends; raise if it failed."""
    seen = 0
    path = str(job.paths.stdout)
    while True:
        finished = job.done()
        if os.path.exists(path):
            with open(path) as f:
                f.seek(seen)
                chunk = f.read()
                seen += len(chunk)
            if chunk:
                try:
                    print(chunk, end="", flush=True)
                except OSError:  # the terminal closed: keep following the job
                    pass
        if finished:
            break
        time.sleep(poll)
    job_results(job)  # re-raises the error of any task (a stage checkpoint mismatch: its line)


def _run_local(executor, run, loaders=()):
    """One local job, streamed; SIGINT/SIGTERM/SIGHUP stop it at its next checkpoint first."""
    with SignalForwarder(run.run_dir) as forwarder:
        job = forwarder.submit(executor, Job(), run.cfg.to_dict(), run.run_dir, loaders)
        print(f"=== {run.run_dir} (job {job.job_id})", flush=True)
        try:
            _stream(job)
        except Exception:
            if not forwarder.stopped:
                raise
        if forwarder.stopped:
            raise LauncherStopped(forwarder.signum)
    return job


def build_plan(config_path: str, overrides, dry_run: bool = False):
    """Every run of the config, validated, its data prepared (a dry run writes nothing) and
    checked as a whole (``precheck``), before anything is submitted."""
    plan = expand(load_raw(config_path, overrides))
    for stage in plan:
        for run in stage:
            get_task(run.cfg.task).prepare(run.cfg, dry_run=dry_run)
    check_plan(plan)
    return plan


def submit(config_path: str, overrides=(), cluster: str = None, dry_run: bool = False,
           compare: bool = True) -> list:
    plan = build_plan(config_path, overrides, dry_run)
    first = plan[0][0].cfg
    cluster = pick_cluster(cluster or first.launch.cluster)
    root = os.path.join(first.launch.out_dir, first.name)
    total = sum(len(s) for s in plan)
    print(f"{first.name}: {total} run(s) in {len(plan)} stage(s) under {root} ({cluster})")
    for stage in plan:
        for run in stage:
            print(f"  {run.run_dir}")
    if dry_run:
        return []
    folder = os.path.join(root, "submitit", "%j")
    jobs, previous = [], []
    for stage in plan:
        runs = stage
        if cluster == "slurm":
            executor = make_executor(runs[0].cfg, cluster, folder, len(runs))
            if previous:
                executor.update_parameters(
                    slurm_additional_parameters={"dependency": "afterok:" + ":".join(j.job_id for j in previous)})
            with executor.batch():
                stage_jobs = [executor.submit(Job(), r.cfg.to_dict(), r.run_dir, loaders_of(plan, r))
                              for r in runs]
            for r, j in zip(runs, stage_jobs):
                print(f"submitted {j.job_id}: {r.run_dir}\n  log: {j.paths.stdout}")
            previous = stage_jobs
            jobs += stage_jobs
            continue
        for r in runs:  # local / debug: one run at a time on this machine
            executor = make_executor(r.cfg, cluster, folder)
            if cluster == "debug":
                job = executor.submit(Job(), r.cfg.to_dict(), r.run_dir, loaders_of(plan, r))
                print(f"=== {r.run_dir} (job {job.job_id})", flush=True)
                job.result()
            else:
                job = _run_local(executor, r, loaders_of(plan, r))
            jobs.append(job)
    if cluster != "slurm" and compare:
        from launch.runs.report import write_report
        report = write_report([root], os.path.join(root, "compare"))
        print(report["markdown"])
        print(f"comparison written to {report['paths']}")
    return jobs
