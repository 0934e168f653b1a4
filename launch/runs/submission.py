"""Submitting a config's runs through submitit: SLURM (stages chained by ``afterok``, sweeps as
job arrays) or this machine (one run after another, logs streamed, signals forwarded).

``launch/submit.py`` is the command; this module is what it does.
"""
from __future__ import annotations

import os
import shutil
import time

from launch.engine.config import load_raw
from launch.engine.errors import ConfigError
from launch.engine.tasks import get_task
from launch.runs.job import Job
from launch.runs.local_jobs import LauncherStopped, SignalForwarder
from launch.runs.plan import expand
from launch.runs.precheck import check_plan
from launch.runs.slurm_cluster import check_cluster, tasks_per_node
from launch.runs.stage_check import job_results, loaders_of


def pick_cluster(requested: str) -> str:
    """``auto``: SLURM where its commands are installed, this machine otherwise. Whether the
    controller answers is checked with the rest of the cluster (``slurm_cluster.check_cluster``)."""
    if requested != "auto":
        return requested
    return "slurm" if shutil.which("sbatch") and shutil.which("srun") else "local"


def make_executor(cfg, cluster: str, folder: str, array_size: int = 1):
    import submitit

    # time-limit requeues before the job fails (submitit counts them; preemptions: launch/runs/requeue.py)
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=cfg.slurm.max_timeouts)
    if cluster == "slurm":
        s = cfg.slurm
        params = dict(nodes=s.nodes, tasks_per_node=tasks_per_node(cfg), gpus_per_node=s.gpus_per_node,
                      cpus_per_task=s.cpus_per_task, timeout_min=s.timeout_min, name=cfg.name,
                      slurm_array_parallelism=min(s.max_parallel, array_size),
                      slurm_signal_delay_s=s.signal_delay_s)
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


def world_size(cfg, cluster: str) -> int:
    """Processes a run of ``cfg`` will have on ``cluster`` (the batch-size check needs it)."""
    if cluster == "slurm":
        return cfg.slurm.nodes * tasks_per_node(cfg)
    if cluster == "local":
        return cfg.launch.tasks_per_node
    return int(os.environ.get("WORLD_SIZE", 1))  # debug: this process (under torchrun: all of them)


def build_plan(config_path: str, overrides, dry_run: bool = False, cluster: str = None):
    """Every run of the config, validated; on SLURM checked against the live cluster; then its
    data prepared (a dry run writes nothing) and checked as a whole (``precheck``), before
    anything is submitted. Returns (plan, cluster)."""
    plan = expand(load_raw(config_path, overrides))
    cluster = pick_cluster(cluster or plan[0][0].cfg.launch.cluster)
    if cluster == "slurm":  # before anything is generated or written
        check_cluster([run.cfg for stage in plan for run in stage])
    for stage in plan:
        for run in stage:
            get_task(run.cfg.task).prepare(run.cfg, dry_run=dry_run)
    check_plan(plan, lambda cfg: world_size(cfg, cluster), dry_run)
    return plan, cluster


def _submit_stage(executor, stage, plan, submitted: list) -> list:
    """One stage's jobs (an array when it has several runs); sbatch's refusal is one ConfigError
    line, and the jobs of earlier stages, which would run without their followers, are cancelled."""
    import contextlib
    import io
    from submitit.core.utils import FailedJobError
    try:  # submitit prints sbatch's stderr before raising: it is in the error line instead
        with contextlib.redirect_stderr(io.StringIO()), executor.batch():
            return [executor.submit(Job(), r.cfg.to_dict(), r.run_dir, loaders_of(plan, r)) for r in stage]
    except FailedJobError as err:
        lines = [l.strip() for l in str(err).splitlines() if l.strip()]
        reason = next((l for l in lines if "error" in l.lower() and "sbatch" in l.lower()),
                      lines[-1] if lines else "no reason given")
        cancelled = ""
        if submitted:
            import subprocess
            ids = [j.job_id for j in submitted]
            subprocess.run(["scancel", *ids], capture_output=True, timeout=60)
            cancelled = f"; cancelled the jobs already submitted ({', '.join(ids)})"
        raise ConfigError(f"sbatch refused the job of {stage[0].run_dir}: {reason}{cancelled}") from None


def submit(config_path: str, overrides=(), cluster: str = None, dry_run: bool = False,
           compare: bool = True) -> list:
    plan, cluster = build_plan(config_path, overrides, dry_run, cluster)
    first = plan[0][0].cfg
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
            stage_jobs = _submit_stage(executor, runs, plan, jobs)
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
