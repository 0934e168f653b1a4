"""Stop on SIGTERM / SIGINT at the next safe point: checkpoint, release the run directory, exit.

The local launcher forwards SIGINT/SIGTERM to its job (through submitit's controller, which
forwards SIGTERM to every task). Inside the job, :class:`GracefulStop` turns the first such signal
into a request: the training loop saves a checkpoint at the next optimizer step and raises
:class:`Stopped`; the evaluation sweep stops between two ``r`` values (finished rows are kept). A
second signal stops at once. Under submitit on SLURM the handlers are left alone: there SIGTERM
belongs to submitit (preemption goes through its USR2 checkpoint-and-requeue handler).

A signal that arrives before the engine installs its handlers (while the job starts) would be lost
to submitit's handler, so the launcher also leaves ``<run_dir>/.stop`` (:data:`STOP_FILE`); a job
that finds it when it starts stops at its first safe point.
"""
from __future__ import annotations

import os
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_FILE = ".stop"


class Stopped(RuntimeError):
    """The run stopped on a signal after saving what it had; rerunning the same command resumes."""


class GracefulStop:
    def __init__(self, log=None, run_dir: str = None):
        self.log = log or (lambda message: None)
        self.signum = None
        self.run_dir = run_dir
        self._previous = {}

    @staticmethod
    def wanted() -> bool:
        return (os.environ.get("SUBMITIT_EXECUTOR") != "slurm"
                and threading.current_thread() is threading.main_thread())

    def _handle(self, signum, frame):
        if self.signum is not None:  # second signal: stop now
            raise Stopped(f"stopped at once on a second {signal.Signals(signum).name}")
        self.signum = signum
        self.log(f"received {signal.Signals(signum).name}: stopping at the next checkpoint")

    def __enter__(self) -> "GracefulStop":
        if self.wanted():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        if self.run_dir and os.path.exists(os.path.join(self.run_dir, STOP_FILE)):
            self.signum = signal.SIGTERM
            self.log(f"the launcher asked this run to stop ({STOP_FILE}): stopping at the next "
                     f"checkpoint")
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def agreed(self, world_size: int, device) -> bool:
        """Whether any process was asked to stop (all processes get the same answer)."""
        if world_size == 1:
            return self.requested
        import torch
        from . import distributed
        flag = torch.tensor([1.0 if self.requested else 0.0], device=device)
        return bool(distributed.all_reduce_sum(flag).item() > 0)

    def stop(self, where: str) -> Stopped:
        name = signal.Signals(self.signum).name if self.signum else "a signal"
        return Stopped(f"stopped on {name} {where}; rerun the same command to resume")
