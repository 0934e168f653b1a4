"""Reading what a SLURM cluster offers (launch/runs/slurm_cluster.py) and telling a time limit
from a preemption (launch/runs/requeue.py), on scontrol/squeue output written out by hand."""
import pytest

from launch.engine.config import resolve
from launch.engine.errors import ConfigError
from launch.runs.requeue import is_time_limit, slurm_duration_s
from launch.runs.slurm_cluster import Node, check_request, gpu_count, tasks_per_node

from tests.tiny_configs import write_config


@pytest.mark.parametrize("gres, gpus", [
    ("gpu:2", 2), ("gpu:a100:8(S:0-1)", 8), ("gpu:a100:4,gpu:v100:2", 6), ("(null)", 0),
    ("mps:100,gpu:tesla:1", 1), ("", 0),
])
def test_gpu_count_reads_every_gres_spelling(gres, gpus):
    assert gpu_count(gres) == gpus


@pytest.mark.parametrize("text, seconds", [
    ("0:39", 39), ("1:00:00", 3600), ("3-00:00:00", 3 * 86400), ("2-01:02:03", 2 * 86400 + 3723),
    ("30", 1800), ("UNLIMITED", None), ("INVALID", None), ("NOT_SET", None),
])
def test_slurm_durations(text, seconds):
    assert slurm_duration_s(text) == seconds


def test_a_usr2_is_a_time_limit_only_near_the_end():
    # --signal=USR2@120: at the limit ~120 s are left (SLURM may send it up to a minute early)
    assert is_time_limit(120, 120) and is_time_limit(175, 120)
    assert not is_time_limit(9 * 60, 120)  # a preemption nine minutes before a 10-minute limit ends


NODES = [Node("a", 64, 512_000, 8, ("gpu", "all")), Node("b", 64, 512_000, 8, ("gpu", "all")),
         Node("c", 16, 64_000, 0, ("cpu", "all"))]
PARTITIONS = {"gpu": {"Default": "NO", "MaxTime": "3-00:00:00"}, "cpu": {"Default": "YES", "MaxTime": "1-00:00:00"},
              "all": {"Default": "NO", "MaxTime": "UNLIMITED"}}


def _cfg(tmp_path, *overrides):
    return resolve(write_config(tmp_path), list(overrides))


@pytest.mark.parametrize("overrides", [
    ["slurm.partition=gpu", "slurm.nodes=2", "slurm.gpus_per_node=8", "slurm.cpus_per_task=8", "slurm.mem_gb=400"],
    ["slurm.gpus_per_node=0", "slurm.cpus_per_task=4", "launch.tasks_per_node=4", "slurm.timeout_min=1440"],
])
def test_requests_the_cluster_can_run_pass(tmp_path, overrides):
    check_request(_cfg(tmp_path, *overrides), NODES, PARTITIONS)


@pytest.mark.parametrize("overrides, message", [
    (["slurm.partition=gpus"], "slurm.partition 'gpus' does not exist on this cluster (partitions: gpu, cpu, all)"),
    (["slurm.gpus_per_node=8"], "slurm.gpus_per_node=8 but the nodes of partition cpu have at most 0 GPUs"),
    (["slurm.gpus_per_node=0", "launch.tasks_per_node=4", "slurm.cpus_per_task=8"],
     "slurm.cpus_per_task=8 x 4 task(s) per node needs 32 CPUs per node; the largest node of partition cpu has 16"),
    (["slurm.gpus_per_node=0", "slurm.cpus_per_task=1", "slurm.mem_gb=100"],
     "slurm.mem_gb=100 but the nodes of partition cpu have at most 62 GB"),
    (["slurm.partition=gpu", "slurm.nodes=3", "slurm.cpus_per_task=1"],
     "slurm.nodes=3 but partition gpu has 2 node(s) with 1 CPUs, 0 GPUs and any GB"),
    (["slurm.partition=gpu", "slurm.timeout_min=4321", "slurm.cpus_per_task=1"],
     "slurm.timeout_min=4321 exceeds the 4320 min time limit of partition gpu"),
])
def test_requests_no_node_can_run_are_one_line_errors_naming_the_value_and_the_offer(tmp_path, overrides, message):
    with pytest.raises(ConfigError) as err:
        check_request(_cfg(tmp_path, "slurm.timeout_min=60", *overrides), NODES, PARTITIONS)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_cpu_job_runs_launch_tasks_per_node_processes_a_gpu_job_one_per_gpu(tmp_path):
    assert tasks_per_node(_cfg(tmp_path, "slurm.gpus_per_node=0", "launch.tasks_per_node=3")) == 3
    assert tasks_per_node(_cfg(tmp_path, "slurm.gpus_per_node=4", "launch.tasks_per_node=3")) == 4
