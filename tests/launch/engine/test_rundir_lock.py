"""The run-directory lock (launch/engine/rundir_lock.py): one writer per run directory, across requeues and dead holders."""
import json
import os
import socket
import subprocess
import textwrap
import time

import pytest

from launch import submit
from launch.engine.config import resolve
from launch.engine.loop import run
from launch.engine.rundir_lock import LOCK, RunDirLock, RunDirLocked, check_free

from tests.repo import REPO
from tests.tiny_configs import write_config
from tests.fault_helpers import PY, _wait_for  # noqa: F401,F811


HOLD = textwrap.dedent("""\
    import sys, time
    sys.path.insert(0, {repo!r})
    from launch.engine.rundir_lock import RunDirLock
    with RunDirLock({run_dir!r}):
        open({ready!r}, "w").close()
        time.sleep(600)
    """)


@pytest.fixture
def holder(tmp_path):
    """A second, real process holding the lock of tmp_path/runs/tiny (killed at the end)."""
    run_dir = tmp_path / "runs" / "tiny"
    ready = tmp_path / "ready"
    proc = subprocess.Popen([PY, "-c", HOLD.format(repo=REPO, run_dir=str(run_dir), ready=str(ready))])
    _wait_for(ready.exists, 60, "the lock holder")
    yield proc, run_dir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_second_writer_of_a_run_dir_is_refused_naming_the_holder(tmp_path, holder, capsys):
    proc, run_dir = holder
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    with pytest.raises(RunDirLocked) as err:
        run(cfg, str(run_dir))
    message = str(err.value)
    assert "\n" not in message and f"pid {proc.pid}" in message and socket.gethostname() in message
    assert not os.path.exists(run_dir / "log.jsonl") and not os.path.exists(run_dir / "config.yaml")
    # the launcher refuses before submitting anything
    code = submit.main([write_config(tmp_path), "--cluster", "local"])
    assert code == 2 and f"pid {proc.pid}" in capsys.readouterr().err
    assert not os.path.exists(run_dir / "submitit") and not os.path.exists(tmp_path / "runs" / "tiny" / "submitit")


def test_lock_of_a_killed_job_is_taken_over(tmp_path, holder):
    proc, run_dir = holder
    proc.kill()
    proc.wait()
    cfg = resolve(write_config(tmp_path), ["eval.throughput=false", "train.epochs=1", "tome.eval_r=[0]"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run(cfg, str(run_dir))
    log = open(run_dir / "log.txt").read()
    assert f"pid {proc.pid}" in log and "no longer running" in log
    assert not os.path.exists(run_dir / LOCK)  # released at the end


def _write_lock(run_dir, **holder):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, LOCK), "w") as f:
        f.write(json.dumps(holder) + "\n")


def test_lock_survives_requeue_on_another_node_and_stale_heartbeats(tmp_path, monkeypatch):
    run_dir = str(tmp_path / "r")
    # written by this very SLURM job before its requeue, on another node, heartbeat fresh
    _write_lock(run_dir, job="slurm:4242", host="other-node", pid=1)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    with pytest.raises(RunDirLocked, match="job slurm:4242, host other-node, pid 1"):
        check_free(run_dir)  # a launcher outside the job sees a live holder
    lock = RunDirLock(run_dir).acquire()
    assert json.load(open(os.path.join(run_dir, LOCK)))["pid"] == os.getpid()
    lock.release()
    assert not os.path.exists(os.path.join(run_dir, LOCK))
    # another job on another node: live while its heartbeat is fresh, dead once it is old
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    _write_lock(run_dir, job="slurm:4242", host="other-node", pid=1)
    with pytest.raises(RunDirLocked, match="in use by job slurm:4242"):
        RunDirLock(run_dir).acquire()
    old = time.time() - 3600
    os.utime(os.path.join(run_dir, LOCK), (old, old))
    notes = []
    RunDirLock(run_dir, notes.append).acquire().release()
    assert "heartbeat is 3600s old" in notes[0]


def test_heartbeat_refreshes_the_lock(tmp_path):
    run_dir = str(tmp_path / "r")
    lock = RunDirLock(run_dir, heartbeat_s=0.05).acquire()
    path = os.path.join(run_dir, LOCK)
    os.utime(path, (0, 0))
    _wait_for(lambda: os.stat(path).st_mtime > 0, 5, "a heartbeat")
    lock.release()


def test_same_slurm_job_with_a_live_process_on_this_host_is_a_second_writer(tmp_path, holder, monkeypatch):
    """Two writers inside one SLURM allocation share the job id: the live pid decides."""
    proc, run_dir = holder
    data = json.load(open(run_dir / LOCK))
    _write_lock(str(run_dir), **{**data, "job": "slurm:99"})
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    with pytest.raises(RunDirLocked, match=f"pid {proc.pid}"):
        RunDirLock(str(run_dir)).acquire()
