"""Which USR2 is a time limit: only those use up ``slurm.max_timeouts``, never a preemption.

submitit's handler guesses from the attempt's run time against ``timeout_min`` (80%, or 10 minutes
before the end), so with a limit of 10 minutes or less every USR2 counts as a timeout, preemptions
included, and a job preempted a few times fails with "timed-out too many times". Here the guess is
replaced by SLURM's own answer: the job's time left when the signal arrives. A time-limit signal
comes ``slurm.signal_delay_s`` before the end (SLURM may send it up to a minute early); a preemption
or ``scancel --signal=USR2`` comes at any other time.
"""
from __future__ import annotations

import os
import signal
import subprocess
from typing import Optional

EARLY_SLACK_S = 90  # SLURM's signal timer runs on a ~60 s tick, plus the time to ask squeue


def slurm_duration_s(text: str) -> Optional[int]:
    """Seconds in a SLURM duration (``MM:SS``, ``H:MM:SS``, ``D-HH:MM:SS``); None when unlimited or unknown."""
    text = text.strip()
    days = 0
    if "-" in text:
        head, text = text.split("-", 1)
        if not head.isdigit():
            return None
        days = int(head)
    parts = text.split(":")
    if not parts or not all(p.isdigit() for p in parts) or len(parts) > 3:
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    if len(parts) == 1:  # a bare number is minutes
        seconds *= 60
    return days * 86400 + seconds


def time_left_s(job_id: str) -> Optional[int]:
    """The job's time left according to SLURM, None when squeue does not say."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%L"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.split()
    return slurm_duration_s(lines[0]) if lines else None


def is_time_limit(left_s: int, signal_delay_s: int) -> bool:
    return left_s <= signal_delay_s + EARLY_SLACK_S


def count_only_time_limits(signal_delay_s: int) -> bool:
    """Inside a submitit SLURM job: make its USR2 handler count a timeout only at the time limit.
    Returns whether the handler was found (outside submitit nothing is changed)."""
    handler = signal.getsignal(signal.SIGUSR2)
    owner = getattr(handler, "__self__", None)
    guess = getattr(owner, "has_timed_out", None)
    job_id = os.environ.get("SLURM_JOB_ID")
    if guess is None or not job_id:
        return False

    def has_timed_out() -> bool:
        left = time_left_s(job_id)
        if left is None:
            return guess()
        timed_out = is_time_limit(left, signal_delay_s)
        print(f"USR2 with {left} s left of the time limit: "
              f"{'a time limit' if timed_out else 'a preemption, not counted as a timeout'}", flush=True)
        return timed_out

    owner.has_timed_out = has_timed_out
    return True
