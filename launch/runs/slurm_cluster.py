"""What the live SLURM cluster offers, checked before anything is submitted or written.

``check_cluster(cfg)`` raises a one-line :class:`ConfigError` when the controller does not answer,
or when the config asks for a partition, CPUs, GPUs, memory, nodes or a time limit that no node of
the partition can give (sbatch would refuse the job, or accept it and leave it pending forever).
It reads ``scontrol show node`` and ``scontrol show partition``, which every user may run.
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from launch.engine.errors import ConfigError
from launch.engine.steps import slurm_tasks_per_node
from launch.runs.requeue import slurm_duration_s

TIMEOUT_S = 30


@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int
    partitions: tuple


def _fields(line: str) -> dict:
    return dict(re.findall(r"(\w+)=(\S*)", line))


def _scontrol(*args) -> str:
    """``scontrol`` output; ConfigError naming the controller when it does not answer."""
    try:
        done = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=TIMEOUT_S)
    except FileNotFoundError:
        raise ConfigError("SLURM asked for (launch.cluster or --cluster slurm) but scontrol is not "
                          "installed here; use --cluster local") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the SLURM controller did not answer within {TIMEOUT_S} s "
                          f"(scontrol {' '.join(args)}); is slurmctld up? Or use --cluster local") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"the SLURM controller is unreachable (scontrol {' '.join(args)}: {reason}); "
                          f"is slurmctld up? Or use --cluster local")
    return done.stdout


def gpu_count(gres: str) -> int:
    """GPUs in a node's Gres field: ``gpu:2``, ``gpu:a100:8(S:0-1)``, ``gpu:a100:4,gpu:v100:2``, ``(null)``."""
    total = 0
    for entry in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = entry.split(":")
        if parts[0] == "gpu" and len(parts) >= 2 and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def read_nodes() -> list:
    nodes = []
    for line in _scontrol("show", "node", "-o").splitlines():
        f = _fields(line)
        if "NodeName" not in f:
            continue
        nodes.append(Node(f["NodeName"], int(f.get("CPUTot", 0) or 0), int(f.get("RealMemory", 0) or 0),
                          gpu_count(f.get("Gres", "")), tuple(p for p in f.get("Partitions", "").split(",") if p)))
    return nodes


def read_partitions() -> dict:
    """name -> its fields (``Default``, ``MaxTime``, ...)."""
    return {f["PartitionName"]: f for f in map(_fields, _scontrol("show", "partition", "-o").splitlines())
            if "PartitionName" in f}


tasks_per_node = slurm_tasks_per_node  # one per GPU, or launch.tasks_per_node for a CPU job


def check_request(cfg, nodes: list, partitions: dict) -> None:
    """ConfigError when no ``slurm.nodes`` nodes of the job's partition can run ``cfg``'s job."""
    s = cfg.slurm
    if s.partition:
        name = s.partition
        if name not in partitions:
            raise ConfigError(f"slurm.partition {name!r} does not exist on this cluster "
                              f"(partitions: {', '.join(partitions) or 'none'})")
    else:
        name = next((p for p, f in partitions.items() if f.get("Default") == "YES"), None)
        if name is None:
            raise ConfigError(f"slurm.partition is empty and this cluster has no default partition; "
                              f"set one of: {', '.join(partitions) or 'none'}")
    where = f"partition {name}"
    pool = [n for n in nodes if name in n.partitions]
    if not pool:
        raise ConfigError(f"{where} has no nodes")
    max_time = slurm_duration_s(partitions[name].get("MaxTime", "UNLIMITED"))
    if max_time is not None and s.timeout_min * 60 > max_time:
        raise ConfigError(f"slurm.timeout_min={s.timeout_min} exceeds the {max_time // 60} min time limit "
                          f"of {where}; set slurm.timeout_min <= {max_time // 60} (a longer run is requeued, "
                          f"up to slurm.max_timeouts times)")
    if not any(n.gpus >= s.gpus_per_node for n in pool):
        raise ConfigError(f"slurm.gpus_per_node={s.gpus_per_node} but the nodes of {where} have at most "
                          f"{max(n.gpus for n in pool)} GPUs (slurm.gpus_per_node=0 runs on CPUs, "
                          f"launch.tasks_per_node processes per node)")
    tasks = tasks_per_node(cfg)
    cpus = s.cpus_per_task * tasks
    if not any(n.cpus >= cpus for n in pool):
        raise ConfigError(f"slurm.cpus_per_task={s.cpus_per_task} x {tasks} task(s) per node needs {cpus} CPUs "
                          f"per node; the largest node of {where} has {max(n.cpus for n in pool)}")
    if s.mem_gb and not any(n.mem_mb >= s.mem_gb * 1024 for n in pool):
        raise ConfigError(f"slurm.mem_gb={s.mem_gb} but the nodes of {where} have at most "
                          f"{max(n.mem_mb for n in pool) // 1024} GB")
    fit = [n for n in pool if n.cpus >= cpus and n.gpus >= s.gpus_per_node
           and n.mem_mb >= s.mem_gb * 1024]
    if len(fit) < s.nodes:
        raise ConfigError(f"slurm.nodes={s.nodes} but {where} has {len(fit)} node(s) with {cpus} CPUs, "
                          f"{s.gpus_per_node} GPUs and {s.mem_gb or 'any'} GB")


def controller_answers() -> bool:
    """Whether a SLURM controller answers here (what ``launch.cluster=auto`` picks SLURM by)."""
    try:
        _scontrol("ping")
    except ConfigError:
        return False
    return True


def check_cluster(cfgs) -> None:
    """Every distinct SLURM request of ``cfgs`` against the live cluster (read once)."""
    nodes, partitions = read_nodes(), read_partitions()
    seen = set()
    for cfg in cfgs:
        key = (repr(cfg.slurm), cfg.launch.tasks_per_node)
        if key not in seen:
            seen.add(key)
            check_request(cfg, nodes, partitions)
