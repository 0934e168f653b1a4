"""The local launcher's jobs never outlive it: SIGINT / SIGTERM / SIGHUP reach them as a stop.

submitit's local executor runs each job as a controller process (``submitit.local._local``) that
starts the task processes and forwards SIGTERM to them. Jobs are started with SIGINT and SIGHUP
ignored, so a Ctrl-C or a closing terminal reaches only the launcher. The launcher then sends
SIGTERM to each running job's controller; the tasks stop at their next checkpoint
(:mod:`launch.engine.stop`) and exit, the controller ends with them, and the launcher waits for that
before it exits itself (with 128 + the signal number). A second signal is forwarded too: the tasks
then stop at once.
"""
from __future__ import annotations

import os
import signal
import sys

from launch.engine.stop import STOP_FILE

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LauncherStopped(RuntimeError):
    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped on {signal.Signals(signum).name}: the running job saved a "
                         f"checkpoint and exited; rerun the same command to resume")


class SignalForwarder:
    """``with SignalForwarder(run_dir) as fw: job = fw.submit(executor, fn, *args)`` ..."""

    def __init__(self, run_dir: str = None):
        self.jobs, self.signum = [], None
        self.run_dir = run_dir
        self._previous = {}

    def submit(self, executor, *args):
        ignored = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGHUP)}
        try:  # the job's processes inherit the ignored dispositions across exec
            job = executor.submit(*args)
        finally:
            for sig, handler in ignored.items():
                signal.signal(sig, handler)
        self.jobs.append(job)
        if self.signum is not None:  # a signal came while submitting
            self._forward(job)
        return job

    @staticmethod
    def _forward(job) -> None:
        process = getattr(job, "_process", None)
        if process is not None and process.poll() is None:
            try:
                process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _handle(self, signum, frame) -> None:
        first = self.signum is None
        self.signum = self.signum or signum
        try:
            print(f"launcher: {signal.Signals(signum).name} received; "
                  + ("asking the running job to checkpoint and stop, waiting for it"
                     if first else "asking the job to stop at once"), file=sys.stderr, flush=True)
        except OSError:  # the terminal is gone
            pass
        if first and self.run_dir:
            try:  # seen by a job that was still starting and missed the signal (launch/engine/stop.py)
                os.makedirs(self.run_dir, exist_ok=True)
                open(os.path.join(self.run_dir, STOP_FILE), "w").close()
            except OSError:
                pass
        for job in self.jobs:
            self._forward(job)

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> "SignalForwarder":
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
        if self.run_dir:
            try:
                os.unlink(os.path.join(self.run_dir, STOP_FILE))
            except OSError:
                pass
