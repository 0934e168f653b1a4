"""DataLoader workers leave the job's signals to the main process (launch/engine/data.py
``ignore_job_signals``): on SLURM, USR2 (preemption) and SIGTERM (requeue) reach every process of
the job, and a worker must neither requeue the job itself nor die and take the run down."""
import os
import signal

import pytest
import torch
from torch.utils.data import Dataset

from launch.engine.data import EpochSampler
from launch.engine.loop import _loader


class SignalsItself(Dataset):
    """Each item: the worker sends itself ``sig`` (as SLURM would), then returns the index."""

    def __init__(self, sig, size=4):
        self.sig, self.size = sig, size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        os.kill(os.getpid(), self.sig)
        return {"index": torch.tensor(index)}


def _indices(dataset):
    loader = _loader(dataset, EpochSampler(len(dataset), shuffle=False), 2, 1, False)
    return sorted(int(i) for batch in loader for i in batch["index"])


def test_a_worker_survives_the_sigterm_slurm_sends_on_requeue():
    # torch's own worker handler dies on SIGTERM, and the main process then fails with
    # "DataLoader worker ... killed by signal"
    assert _indices(SignalsItself(signal.SIGTERM)) == [0, 1, 2, 3]


def test_a_worker_never_runs_the_main_process_preemption_handler(tmp_path):
    calls = tmp_path / "usr2_handled_by"

    def handler(signum, frame):  # what submitit installs: checkpoint and requeue the job
        with open(calls, "a") as f:
            f.write(f"{os.getpid()}\n")

    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        assert _indices(SignalsItself(signal.SIGUSR2)) == [0, 1, 2, 3]
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert not calls.exists(), f"the handler ran in worker process(es) {calls.read_text().split()}"
