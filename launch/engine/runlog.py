"""Everything a run writes for people and tools: text log, JSON lines, TensorBoard.

Files in a run directory:
  config.yaml     the resolved config
  log.txt         human-readable progress
  log.jsonl       one JSON object per epoch (train stats and evaluation at the training r);
                  one per epoch even when an epoch is redone after a preemption
  results.jsonl   one JSON object per evaluated r: metrics, throughput, GFLOPs, tokens left,
                  r_requested / r_applied per layer, skipped_files (distinct) and standins
  .lock           the job that writes this directory (launch/engine/rundir_lock.py)
  checkpoint.pth, checkpoint.prev.pth   the two newest checkpoints (launch/engine/checkpoint.py)
  tb/             TensorBoard events with the same tags in every modality:
                  train/loss, train/lr, eval/<metric>, speed/throughput, tome/r, tome/tokens_out,
                  tome/gflops, and sweep/<metric> over r (step = r) for the evaluation sweep.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Optional


class RunLog:
    def __init__(self, run_dir: str, enabled: bool):
        self.run_dir, self.enabled = run_dir, enabled
        self.writer = None
        self.start = time.time()
        self.named_files: set = set()  # unreadable files already named in log.txt
        if enabled:
            os.makedirs(run_dir, exist_ok=True)
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(run_dir, "tb"))

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')} +{time.time() - self.start:6.0f}s] {message}"
        print(line, file=sys.stdout, flush=True)
        with open(os.path.join(self.run_dir, "log.txt"), "a") as f:
            f.write(line + "\n")

    def progress(self, label: str, total: int, start: int = 0) -> "Progress":
        return Progress(self, label, total, start)

    def scalars(self, values: dict, step: int, prefix: str = "") -> None:
        if self.writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(f"{prefix}{key}", value, step)

    def jsonl(self, name: str, record: dict, key=None) -> None:
        """Append ``record``; with ``key`` (field names) replace the record with the same key."""
        if not self.enabled:
            return
        if key:
            from .records import upsert_jsonl
            if upsert_jsonl(os.path.join(self.run_dir, name), record, key):
                self.info(f"{name}: replaced the earlier record of " +
                          ", ".join(f"{k}={record.get(k)}" for k in key) + " (a retried write)")
            return
        with open(os.path.join(self.run_dir, name), "a") as f:
            f.write(json.dumps(record) + "\n")

    def hparams(self, hparams: dict, metrics: dict) -> None:
        if self.writer is None:
            return
        clean = {k: (v if isinstance(v, (int, float, str, bool)) else str(v)) for k, v in hparams.items()}
        self.writer.add_hparams(clean, {f"hparam/{k}": v for k, v in metrics.items()
                                        if isinstance(v, (int, float))}, run_name=".")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A progress bar on a terminal; on a log file (SLURM, the local executor) a line at every
    tenth of the epoch (at most one per 10 s) with loss, lr, samples/s and the time left."""

    def __init__(self, log: RunLog, label: str, total: int, start: int = 0):
        self.log, self.label, self.total, self.done, self.first = log, label, total, start, start
        self.start, self.samples = time.time(), 0
        self.bar = None
        if log.enabled and sys.stdout.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=start, desc=label, leave=False, dynamic_ncols=True)
        self.every = max(total // 10, 1)
        self.last_line = time.time()

    def update(self, loss: float, lr: float, samples: int) -> None:
        self.done += 1
        self.samples += samples
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
            self.bar.update(1)
        elif (self.log.enabled and self.done % self.every == 0 and self.done < self.total
              and time.time() - self.last_line >= 10):
            self.last_line = time.time()
            elapsed = time.time() - self.start
            rate = self.samples / max(elapsed, 1e-9)
            left = elapsed / (self.done - self.first) * (self.total - self.done)
            self.log.info(f"{self.label} [{self.done}/{self.total}] loss={loss:.4f} lr={lr:.3g} "
                          f"{rate:.1f} samples/s, {left:.0f}s left")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def read_jsonl(path: str) -> list:
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def previous_results(run_dir: str) -> dict:
    """Results already written by an earlier attempt of this run, keyed by r (for resuming)."""
    return {json.dumps(row["r"]): row for row in read_jsonl(os.path.join(run_dir, "results.jsonl"))}


def fmt(metrics: dict, keys: Optional[list] = None) -> str:
    keys = keys or list(metrics)
    return " ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
                    for k in keys if k in metrics)
