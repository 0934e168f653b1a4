"""The launcher on a real SLURM cluster (this machine as its node; ``sudo bash scripts/slurm_up.sh``):
job arrays and afterok stages, requeue and USR2 preemption resuming to the uninterrupted result,
time limits, CPU DDP, and the checks against the live cluster before anything is submitted.

Jobs are submitted through launch/submit.py as a user would; each test cancels its jobs when it
ends. The whole module skips, in one line, where no SLURM controller with this machine as a node
answers. The fake-sbatch tests (test_submit_runs.py) cover what one CPU node cannot show.
"""
import json
import math
import os
import pickle
import re
import socket
import subprocess
import textwrap
import time

import pytest
import torch

from launch import compare, submit
from launch.engine import checkpoint as ckpt

from tests.repo import REPO
from tests.run_helpers import _weights
from tests.tiny_configs import write_config


def _cluster_missing() -> str:
    """Why the tier cannot run here ('' when it can): it needs a controller that answers and
    this machine as one of its nodes (the jobs read and write this machine's temporary files)."""
    host = socket.gethostname().split(".")[0]
    try:
        out = subprocess.run(["sinfo", "-h", "-n", host, "-o", "%t"], capture_output=True, text=True,
                             timeout=20)
    except FileNotFoundError:
        return "sinfo is not installed"
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 20 s"
    state = out.stdout.strip()
    if out.returncode != 0:
        return f"sinfo failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    if not state:
        return f"this machine ({host}) is not a node of the cluster sinfo answers for"
    if not re.match(r"(idle|mix|alloc|comp)", state):
        return f"node {host} is {state}"
    return ""


MISSING = _cluster_missing()
if MISSING:  # one skip line for the whole tier
    pytest.skip(f"no one-node SLURM cluster here ({MISSING}); start one with: sudo bash scripts/slurm_up.sh",
                allow_module_level=True)

WAIT_S = 240  # a bound on any one wait; the machine may be busy with other work
ON_SLURM = "slurm: {gpus_per_node: 0, cpus_per_task: 1, timeout_min: 10, signal_delay_s: 30}\n"
# no throughput timing (records comparable); one loader worker, as real runs have
PLAIN = ["eval.throughput=false", "launch.num_workers=1"]
# 96 training images at batch 4: 24 steps per epoch, a checkpoint every 4 steps. The model is large
# enough (64 px, 8 blocks of width 256: a few seconds an epoch on one idle core) that the tests can
# see a checkpoint inside an epoch and signal the job before the epoch ends.
LONGER = PLAIN + ["data.demo_train_per_class=48", "train.epochs=3", "train.checkpoint_every=4",
          "train.eval_every=0", "tome.eval_r=[0]", "data.img_size=64", "data.demo_size=64",
          "model.kwargs={patch_size: 8, embed_dim: 256, depth: 8, num_heads: 4}"]


def job_fields(job_id: str) -> dict:
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True,
                         timeout=60).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def state(job_id: str) -> str:
    return job_fields(job_id).get("JobState", "?")


# Jobs started for later tests (the reference and the time-limited run): every wait releases
# them when they wait after a requeue, so they go on while other tests run.
BACKGROUND = set()


def wait_until(predicate, what: str, timeout: float = WAIT_S, poll: float = 0.5):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        for job_id in list(BACKGROUND):
            f = job_fields(job_id)
            if f.get("JobState") == "PENDING" and f.get("Reason") == "BeginTime":
                release(job_id)
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def settled(job_id: str):
    """The job's state once it has left RUNNING (and its requeue's transient states), else None."""
    s = state(job_id)
    return None if s in ("RUNNING", "REQUEUED", "COMPLETING", "REQUEUE_HOLD", "REQUEUE_FED") else s


def release(job_id: str) -> None:
    """A requeued job waits ~2 minutes (its EligibleTime); start it now."""
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True,
                   timeout=60)


def run_to_end(job_id: str, timeout: float = WAIT_S) -> dict:
    """Wait until the job has ended, releasing it whenever it waits after a requeue; its fields."""
    def ended():
        f = job_fields(job_id)
        if f.get("JobState") == "PENDING" and f.get("Reason") == "BeginTime":
            release(job_id)
        return f if f.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                          "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE") else None
    return wait_until(ended, f"job {job_id} to end", timeout)


def mid_epoch_checkpoint(run_dir: str, epoch: int):
    """True once the run has saved a checkpoint inside epoch ``epoch`` (0-based)."""
    path = os.path.join(run_dir, ckpt.LAST)
    if not os.path.exists(path):
        return False
    try:
        s = torch.load(path, weights_only=True, map_location="cpu")
    except Exception:  # replaced while being read
        return False
    return s["epoch"] == epoch and s["step"] > 0 and not s["train_done"]


def result_of(job) -> tuple:
    """submitit's result file of a job: ('success', rows) or ('error', traceback)."""
    with open(job.paths.result_pickle, "rb") as f:
        return pickle.load(f)


def records(run_dir: str, name: str, drop=("epoch_seconds",)) -> list:
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in open(os.path.join(run_dir, name))]


def same_run(a: str, b: str) -> None:
    """Bit-identical weights and records (but the wall-clock time), every epoch recorded once."""
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert records(a, "results.jsonl") == records(b, "results.jsonl")
    la, lb = records(a, "log.jsonl"), records(b, "log.jsonl")
    assert [e["epoch"] for e in la] == [e["epoch"] for e in lb] == [1, 2, 3]
    assert la == lb


@pytest.fixture
def jobs():
    """Job ids a test submits; cancelled when it ends, whatever happened."""
    ids = []
    yield ids
    if ids:
        subprocess.run(["scancel", *[str(i).split("_")[0] for i in ids]], capture_output=True, timeout=60)


def submit_jobs(path: str, overrides, jobs: list) -> list:
    submitted = submit.submit(path, PLAIN + list(overrides), cluster="slurm")
    jobs.extend(j.job_id for j in submitted)
    return submitted


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The LONGER run straight through on the cluster (submitted once, waited for by its users)."""
    tmp = tmp_path_factory.mktemp("reference")
    job = submit.submit(write_config(tmp, ON_SLURM, name="straight"), LONGER, cluster="slurm")[0]
    BACKGROUND.add(job.job_id)
    yield job, str(tmp / "runs" / "straight")
    subprocess.run(["scancel", job.job_id], capture_output=True, timeout=60)


def _clock_s(hms: str) -> int:
    h, m, sec = map(int, hms.split(":"))
    return h * 3600 + m * 60 + sec


def startup_s(job_id: str, run_dir: str) -> int:
    """Seconds from the job's start to the engine's first log line (interpreter, imports, model)."""
    started = job_fields(job_id)["StartTime"].split("T")[1]
    first = open(os.path.join(run_dir, "log.txt")).readline()[1:9]
    return (_clock_s(first) - _clock_s(started)) % 86400


@pytest.fixture(scope="module")
def limited(tmp_path_factory, reference):
    """A run longer than its time limit, sized once the reference has measured this machine's speed
    now. USR2 comes at most limit - 10 s after an attempt starts (SLURM may send it up to a minute
    early), so 1.2 x that much training cannot fit in one attempt. One-minute attempts, or two where
    starting a job takes so long that a one-minute attempt would leave almost no time to train."""
    ref_dir = finished(reference)
    seconds = [e["epoch_seconds"] for e in map(json.loads, open(os.path.join(ref_dir, "log.jsonl")))]
    limit_min = 1 if startup_s(reference[0].job_id, ref_dir) <= 12 else 2
    epochs = max(2, math.ceil(1.2 * (limit_min * 60 - 10) / min(seconds)))
    tmp = tmp_path_factory.mktemp("limited")
    job = submit.submit(write_config(tmp, ON_SLURM, name="limited"),
                        LONGER + [f"train.epochs={epochs}", f"slurm.timeout_min={limit_min}",
                                  "slurm.signal_delay_s=10", "train.checkpoint_every=2"], cluster="slurm")[0]
    BACKGROUND.add(job.job_id)
    yield job, str(tmp / "runs" / "limited"), epochs
    subprocess.run(["scancel", job.job_id], capture_output=True, timeout=60)


def finished(reference) -> str:
    job, run_dir = reference
    assert run_to_end(job.job_id)["JobState"] == "COMPLETED"
    return run_dir


def test_cpu_ddp_runs_launch_tasks_per_node_processes_over_gloo(tmp_path, jobs):
    job = submit_jobs(write_config(tmp_path, ON_SLURM, name="ddp"),
                      ["train.epochs=1", "tome.eval_r=[0]", "launch.tasks_per_node=2"], jobs)[0]
    assert run_to_end(job.job_id)["JobState"] == "COMPLETED"
    assert job_fields(job.job_id)["NumTasks"] == "2"
    log = open(tmp_path / "runs" / "ddp" / "log.txt").read()
    # 16 training images, 2 processes x batch 4: 2 steps each
    assert "x 2:" in log and "2 steps" in log


@pytest.mark.parametrize("override, message", [
    ("slurm.gpus_per_node=8", r"slurm.gpus_per_node=8 but the nodes of partition \S+ have at most 2 GPUs"),
    ("slurm.cpus_per_task=4096", r"slurm.cpus_per_task=4096 x 1 task\(s\) per node needs 4096 CPUs per node; "
                                 r"the largest node of partition \S+ has \d+"),
    ("slurm.mem_gb=100000", r"slurm.mem_gb=100000 but the nodes of partition \S+ have at most \d+ GB"),
    ("slurm.partition=nowhere", r"slurm.partition 'nowhere' does not exist on this cluster \(partitions: "),
    ("slurm.constraint=nosuchfeature", r"sbatch refused the job of \S+: sbatch: error: .*Invalid feature specification"),
    ("train.batch_size=64", r"train.batch_size=64 x 1 process\(es\) exceeds the 16 training samples"),
])
def test_what_the_cluster_cannot_run_fails_in_one_line_before_anything_is_written(
        tmp_path, capsys, jobs, override, message):
    data = tmp_path / "data"
    code = submit.main([write_config(tmp_path, ON_SLURM), "--cluster", "slurm", override, *PLAIN])
    err = capsys.readouterr().err
    assert code == 2 and re.search(message, err) and err.count("\n") == 1, err
    if override.startswith("slurm.") and "constraint" not in override:
        assert not data.exists()  # nothing generated: the cluster is checked first
    if "constraint" not in override:
        assert not (tmp_path / "runs").exists()


def test_an_unreachable_controller_fails_in_one_line_before_anything_is_written(tmp_path, capsys, monkeypatch):
    # the same cluster's configuration, pointing at a port where no controller listens
    conf = tmp_path / "slurm.conf"
    text = open("/etc/slurm/slurm.conf").read() if os.path.exists("/etc/slurm/slurm.conf") else ""
    conf.write_text(re.sub(r"(?m)^SlurmctldPort=.*\n", "", text) + "SlurmctldPort=9\nMessageTimeout=2\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    code = submit.main([write_config(tmp_path, ON_SLURM), "--cluster", "slurm", *PLAIN])
    err = capsys.readouterr().err
    assert code == 2 and "the SLURM controller is unreachable" in err and err.count("\n") == 1, err
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


# The jobs below share the node: the reference run starts beside the sweep's first job, the
# time-limited run beside the interrupted one. The DDP job above needs both CPUs.
def test_sweep_runs_as_a_job_array_after_its_stage_and_writes_results_and_compare(tmp_path, jobs, capsys,
                                                                                   reference):
    # (``reference`` is started here only to run beside this test's first job)
    path = write_config(tmp_path, ON_SLURM + textwrap.dedent("""\
        stages:
          - {name: pre, set: {tome.r: 0}, sweep: {}}
          - {name: ft, set: {model.checkpoint: "${stage:pre}/checkpoint.pth"}}
        sweep:
          tome.r: [1, 2]
        """))
    assert submit.main([path, "--cluster", "slurm", "train.epochs=1", "tome.eval_r=[0,1]", *PLAIN]) == 0
    out = capsys.readouterr().out
    ids = re.findall(r"submitted (\S+): ", out)
    jobs.extend(ids)
    pre, ft = ids[0], ids[1:]
    assert re.fullmatch(r"\d+", pre) and [i.split("_")[1] for i in ft] == ["0", "1"]
    ft_fields = job_fields(ft[0])
    assert ft_fields["ArrayJobId"] == ft[0].split("_")[0]
    assert f"afterok:{pre}" in ft_fields.get("Dependency", "") or state(pre) == "COMPLETED"
    ends = {i: run_to_end(i) for i in ids}
    assert {i: f["JobState"] for i, f in ends.items()} == {i: "COMPLETED" for i in ids}
    # afterok: the fine-tuning started only once the pretraining had ended
    assert all(ends[i]["StartTime"] >= ends[pre]["EndTime"] for i in ft)
    root = tmp_path / "runs" / "tiny"
    for run in ("pre", "ft/r1", "ft/r2"):
        assert [r["r"] for r in map(json.loads, open(root / run / "results.jsonl"))] == [0, 1]
    assert compare.main([str(root)]) == 0
    table = (root / "compare.md").read_text()
    assert all(name in table for name in ("pre", "r1", "r2"))


def test_requeue_then_usr2_preemption_mid_epoch_resume_to_the_uninterrupted_result(
        tmp_path, jobs, reference, request):
    # slurm.max_timeouts=0 with a 10-minute limit: submitit alone counts every USR2 as a timeout
    # there, so the preemption would end the job ("timed-out too many times")
    job = submit_jobs(write_config(tmp_path, ON_SLURM, name="interrupted"),
                      LONGER + ["slurm.max_timeouts=0"], jobs)[0]
    run_dir = str(tmp_path / "runs" / "interrupted")

    # 1. scontrol requeue inside the second epoch: SIGTERM to every process of the job
    wait_until(lambda: mid_epoch_checkpoint(run_dir, 1), "a checkpoint inside the second epoch")
    subprocess.run(["scontrol", "requeue", job.job_id], check=True, timeout=60)
    assert wait_until(lambda: settled(job.job_id), "the requeued job to wait") == "PENDING"
    # the interrupted attempt left no error behind (its loader worker was not killed by the SIGTERM)
    assert not os.path.exists(job.paths.result_pickle) or result_of(job)[0] != "error", result_of(job)
    assert "killed by signal" not in open(job.paths.stderr).read()
    release(job.job_id)

    # 2. USR2 (a preemption) inside the third epoch: to the main process and its loader worker
    wait_until(lambda: mid_epoch_checkpoint(run_dir, 2), "a checkpoint inside the third epoch")
    subprocess.run(["scancel", "--signal=USR2", job.job_id], check=True, timeout=60)
    assert wait_until(lambda: settled(job.job_id), "the preempted job to be requeued") == "PENDING"
    assert not os.path.exists(job.paths.result_pickle) or result_of(job)[0] != "error", result_of(job)
    # one handler ran, the main process's: the worker ignored the signal
    assert open(job.paths.stderr).read().count("Caught signal SIGUSR2") == 1
    assert "a preemption, not counted as a timeout" in open(job.paths.stdout).read()

    request.getfixturevalue("limited")  # the next test's job, beside this one's last attempt
    fields = run_to_end(job.job_id)
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "2", fields
    assert result_of(job)[0] == "success"
    log = open(os.path.join(run_dir, "log.txt")).read()
    resumes = [(int(e), int(st)) for e, st in re.findall(r"resumed from epoch (\d+) step (\d+)", log)]
    # the requeued attempt runs on for KillWait seconds, and may reach the second epoch's end;
    # the preempted one stops at once, so the last attempt starts inside the third epoch
    assert len(resumes) == 2 and resumes[0] >= (1, 1) and resumes[1][0] == 2 and resumes[1][1] > 0, resumes
    same_run(finished(reference), run_dir)


def test_a_time_limit_shorter_than_the_run_requeues_it_until_it_completes(limited):
    job, run_dir, epochs = limited
    fields = run_to_end(job.job_id, timeout=900)  # attempts of a minute or two; a busy machine needs more
    assert fields["JobState"] == "COMPLETED", fields
    assert int(fields["Restarts"]) >= 1
    assert result_of(job)[0] == "success"
    assert [e["epoch"] for e in records(run_dir, "log.jsonl")] == list(range(1, epochs + 1))
    assert open(job.paths.stdout).read().count("a time limit") == int(fields["Restarts"])
