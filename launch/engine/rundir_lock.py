"""One writer per run directory: a lock file held by the job for its whole lifetime.

``<run_dir>/.lock`` is created with ``O_EXCL`` and holds one JSON line naming its holder:
``{"job": <scheduler job id>, "host": ..., "pid": ..., "time": ...}``. While the holder runs, a
background thread rewrites the file's mtime every ``HEARTBEAT_S`` seconds.

A lock that already exists is taken over only when it is certainly dead or certainly ours:
  * it names this process's scheduler job id (``SLURM_JOB_ID``, or ``<array job>_<task>`` for a job
    array): SLURM requeued this very job, possibly on another node, and the old attempt is gone
    (unless the holder's pid still runs on this host: then it is a second writer in one allocation);
  * it was written on this host and its pid is no longer alive (a job that crashed or was killed);
  * it was written on another host and its heartbeat is older than ``STALE_S`` seconds (a node
    that died: its job cannot refresh the lock any more).
Anything else is a live second writer: :class:`RunDirLocked`, one line naming the holder.

The launcher calls :func:`check_free` for every run before it submits anything, so a second
``submit.py`` of the same experiment is refused before it reaches the queue.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from typing import Optional

from .errors import ConfigError

LOCK = ".lock"
HEARTBEAT_S = 30.0
STALE_S = 300.0  # 10 missed heartbeats: the holder on another host is taken as dead


class RunDirLocked(ConfigError):
    """Another live job writes this run directory."""


def own_job_id() -> str:
    """The scheduler's id for this job: stable across a SLURM requeue, "" outside a scheduler."""
    env = os.environ
    if env.get("SUBMITIT_EXECUTOR") == "local" and env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"local:{env['SUBMITIT_LOCAL_JOB_ID']}"  # even inside a SLURM allocation
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"slurm:{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("SLURM_JOB_ID"):
        return f"slurm:{env['SLURM_JOB_ID']}"
    if env.get("SUBMITIT_LOCAL_JOB_ID"):
        return f"local:{env['SUBMITIT_LOCAL_JOB_ID']}"
    return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(run_dir: str, path: Optional[str] = None) -> Optional[dict]:
    """The holder recorded in the lock file (with its age in seconds), or None if unlocked."""
    path = path or os.path.join(run_dir, LOCK)
    try:
        with open(path) as f:
            text = f.read()
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(text)
        if not isinstance(holder, dict):
            raise ValueError
    except ValueError:  # torn or foreign file: treat as a holder we know nothing about
        holder = {}
    holder["age_s"] = age
    return holder


def describe(holder: dict) -> str:
    return (f"job {holder.get('job') or 'none'}, host {holder.get('host', '?')}, "
            f"pid {holder.get('pid', '?')}")


def stale_reason(holder: dict, job_id: str = "") -> str:
    """Why ``holder`` may be taken over ("" when it is a live other writer)."""
    host, pid = holder.get("host"), holder.get("pid")
    same_host = host == socket.gethostname() and isinstance(pid, int)
    if job_id and holder.get("job") == job_id and not (same_host and pid != os.getpid()
                                                       and _pid_alive(pid)):
        return f"it names this job ({job_id}), requeued"
    if same_host:
        if pid == os.getpid():
            return "it names this process"
        if not _pid_alive(pid):
            return f"its process {pid} is no longer running"
        return ""
    if holder.get("age_s", 0.0) > STALE_S:
        return f"its heartbeat is {holder['age_s']:.0f}s old (> {STALE_S:.0f}s)"
    return ""


def _refusal(run_dir: str, holder: dict) -> RunDirLocked:
    return RunDirLocked(f"run directory {run_dir} is in use by {describe(holder)} (lock {LOCK}, "
                        f"heartbeat {holder.get('age_s', 0.0):.0f}s ago); wait for it to end or "
                        f"stop it, or choose another launch.out_dir/name")


def check_free(run_dir: str) -> None:
    """Raise :class:`RunDirLocked` if a live job holds ``run_dir`` (read-only: for the launcher)."""
    holder = read_holder(run_dir)
    if holder is not None and not stale_reason(holder, ""):
        raise _refusal(run_dir, holder)


class RunDirLock:
    """``with RunDirLock(run_dir, log=print):`` ... held (with a heartbeat) until the block ends."""

    def __init__(self, run_dir: str, log=None, heartbeat_s: float = HEARTBEAT_S):
        self.run_dir, self.path = run_dir, os.path.join(run_dir, LOCK)
        self.log = log or (lambda message: None)
        self.heartbeat_s = heartbeat_s
        self.me = {"job": own_job_id(), "host": socket.gethostname(), "pid": os.getpid()}
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({**self.me, "time": time.time()}) + "\n")
        return True

    def acquire(self) -> "RunDirLock":
        os.makedirs(self.run_dir, exist_ok=True)
        for _ in range(3):  # a lost race with another taker: look again
            if self._create():
                break
            holder = read_holder(self.run_dir)
            if holder is None:
                continue
            reason = stale_reason(holder, self.me["job"])
            if not reason:
                raise _refusal(self.run_dir, holder)
            self.log(f"taking over the lock of {describe(holder)}: {reason}")
            # Rename, not unlink: of two takers only one wins the rename of the same file, and
            # the loser can tell (and undo it) if what it moved was a fresh lock of the winner.
            grave = f"{self.path}.stale.{os.getpid()}"
            try:
                os.rename(self.path, grave)
            except FileNotFoundError:
                continue
            moved = read_holder(self.run_dir, grave) or {}
            if {k: moved.get(k) for k in ("job", "host", "pid", "time")} != \
                    {k: holder.get(k) for k in ("job", "host", "pid", "time")}:
                with contextlib.suppress(FileExistsError):
                    os.link(grave, self.path)  # put the winner's lock back (never clobbers)
            os.unlink(grave)
        else:
            holder = read_holder(self.run_dir) or {}
            raise _refusal(self.run_dir, holder)
        self._thread = threading.Thread(target=self._beat, name="rundir-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError as err:
                if err.errno == errno.ENOENT:
                    return  # removed under us; nothing left to refresh

    def held(self) -> bool:
        holder = read_holder(self.run_dir)
        return holder is not None and holder.get("pid") == self.me["pid"] and \
            holder.get("host") == self.me["host"]

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.held():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    @classmethod
    def for_run(cls, run_dir: str, env, log=None) -> Optional["RunDirLock"]:
        """The main process takes the lock; every process of the run learns whether it got it
        (so a refusal ends all of them instead of leaving the others waiting)."""
        lock, refusal = None, None
        if env.is_main:
            try:
                lock = cls(run_dir, log).acquire()
            except RunDirLocked as err:
                refusal = err
        if env.world_size > 1:
            import torch
            from . import distributed
            flag = torch.tensor([1.0 if refusal is not None else 0.0], device=env.device)
            if distributed.all_reduce_sum(flag).item() > 0 and refusal is None:
                refusal = RunDirLocked(f"run directory {run_dir} is in use (see the main process)")
        if refusal is not None:
            raise refusal
        return lock

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
