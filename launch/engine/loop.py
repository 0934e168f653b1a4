"""The one training and evaluation loop, for every modality.

A run (one config, one run directory) does:
  1. fine-tuning with merging at ``tome.r`` for ``train.epochs`` epochs (skipped when 0), with
     periodic atomic checkpoints; a restarted run resumes from its directory and ends with the same
     weights and metrics as an uninterrupted one;
  2. evaluation at every ``tome.eval_r``: the task's metrics, measured throughput, analytic GFLOPs
     and tokens left, one row each in results.jsonl (already-written rows are kept on resume).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import tome
from tome.flops import model_gflops

from . import checkpoint as ckpt
from . import distributed
from .config import Config, model_r
from .data import EpochSampler, SeededDataset, ignore_job_signals, step_seed
from .mixup import Mixup
from .lr_schedule import lr_at_step
from .optim import build_optimizer, set_lr
from .ra_sampler import train_sampler
from . import steps as batch_math
from .runlog import RunLog, fmt, previous_results
from .rundir_lock import RunDirLock
from .schedule_record import applied_schedule
from .skips import SkipCounter
from . import slow_merge
from .stop import GracefulStop
from .tasks import get_task
from . import throughput


class Interrupted(RuntimeError):
    """Raised by the test hook ``stop_after_steps`` to simulate a preemption."""


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def _num_layers(model) -> int:
    return model._tome_num_layers()


def _loss(task, logits, soft_targets):
    if isinstance(logits, tuple):  # distilled models in distillation mode: average both heads
        logits = (logits[0] + logits[1]) / 2
    logits = logits.float()
    if task.multilabel:
        return F.binary_cross_entropy_with_logits(logits, soft_targets)
    return torch.sum(-soft_targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def _flatten_views(x: torch.Tensor, y: torch.Tensor, sample_dims: int):
    """Repeated augmentation gives [B, k, ...] inputs: fold k into the batch."""
    if x.dim() == sample_dims + 2:
        k = x.shape[1]
        return x.flatten(0, 1), y.repeat_interleave(k, dim=0)
    return x, y


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.shadow[k].copy_(v)


def _loader(dataset, sampler, batch_size, workers, drop_last):
    return DataLoader(SeededDataset(dataset), batch_size=batch_size, sampler=sampler,
                      num_workers=workers, drop_last=drop_last, pin_memory=False,
                      persistent_workers=False, worker_init_fn=ignore_job_signals)


@torch.no_grad()
def evaluate(model, task, cfg: Config, dataset, env, log=None) -> dict:
    """Task metrics over the whole evaluation set (gathered from every process)."""
    model.eval()
    sampler = EpochSampler(len(dataset), env.rank, env.world_size, shuffle=False)
    loader = _loader(dataset, sampler, cfg.eval.batch_size, cfg.launch.num_workers, False)
    scores, targets, groups, skips = [], [], [], SkipCounter()
    for batch in loader:
        x = batch["input"].to(env.device)
        with _autocast(env.device, "none" if task.fp32_scores else cfg.eval.amp):
            out = model(x)
        scores.append(out.float())
        targets.append(batch["target"].to(env.device))
        groups.append(batch["group"].to(env.device))
        skips.add(batch)
    scores = distributed.gather_cat(torch.cat(scores))
    targets = distributed.gather_cat(torch.cat(targets))
    groups = distributed.gather_cat(torch.cat(groups))
    metrics = task.metrics(scores.cpu(), targets.cpu(), groups.cpu())
    metrics.update(skips.report(log and log.info, log and log.named_files))
    return metrics


def measure_throughput(model, shape, cfg: Config, device, rs: list) -> dict:
    """Interleaved inference throughput at every r of ``rs`` and of the unpatched model, in
    ``eval.throughput_dtype`` (see launch/engine/throughput.py); row fields keyed by ``json.dumps(r)``."""
    speeds = throughput.measure_sweep(
        model, {json.dumps(r): model_r(cfg.tome, r) for r in rs}, shape, cfg.eval.throughput_batch,
        cfg.eval.throughput_dtype, cfg.eval.throughput_iters, cfg.eval.throughput_warmup, device,
        threads=cfg.eval.throughput_threads, clock=cfg.eval.throughput_clock)
    base = speeds.pop(throughput.BASELINE)
    return {key: {**s, "baseline_throughput": base["throughput"], "baseline_batch": base["batch"],
                  "throughput_dtype": cfg.eval.throughput_dtype, "throughput_clock": cfg.eval.throughput_clock,
                  "throughput_threads": cfg.eval.throughput_threads or torch.get_num_threads()}
            for key, s in speeds.items()}


def slow_merge_notes(model, shape, cfg: Config, device, speeds: dict, rs: list) -> dict:
    """For every r whose merged model measured slower than the unpatched one: a one-line warning
    that says why and from which batch merging pays off (launch/engine/slow_merge.py), searched
    by doubling ``eval.throughput_batch`` up to ``eval.payoff_max_batch``. Row fields keyed by
    ``json.dumps(r)``."""
    notes = {}
    batch = cfg.eval.throughput_batch
    for r in rs:
        key = json.dumps(r)
        speedup = speeds.get(key, {}).get("speedup")
        if speedup is None or speedup >= 1.0 or not any(tome.parse_r(model_r(cfg.tome, r), _num_layers(model))):
            continue
        payoff = None
        if isinstance(batch, int) and cfg.eval.payoff_max_batch:  # ("search": each at its best batch)
            def speedup_at(b, key=key, r=r):
                return throughput.measure_sweep(
                    model, {key: model_r(cfg.tome, r)}, shape, b, cfg.eval.throughput_dtype,
                    cfg.eval.throughput_iters, cfg.eval.throughput_warmup, device,
                    threads=cfg.eval.throughput_threads, clock=cfg.eval.throughput_clock)[key]["speedup"]
            payoff = slow_merge.payoff_batch(speedup_at, batch, cfg.eval.payoff_max_batch)
        notes[key] = {"slow_merge": slow_merge.message(f"r={key}", speedup, speeds[key]["batch"], payoff),
                      "payoff_batch": payoff.batch if payoff is not None else None}
    return notes


def _tokens_in(model, shape, device) -> int:
    """Tokens entering the first block (one forward with a single sample)."""
    with torch.no_grad(), tome.trace() as t:
        model.eval()(torch.zeros(1, *shape, device=device))
    return t.tokens_in


def partial_sums(totals: torch.Tensor, seconds: float) -> dict:
    """The running epoch's sums over all processes (loss sum, steps, skipped files) and its
    wall-clock seconds so far, for a mid-epoch checkpoint. Collective: every process calls it."""
    summed = distributed.all_reduce_sum(totals.clone())
    return {"totals": summed.tolist(), "seconds": seconds}


def epoch_sums(state, start_step: int) -> dict:
    """The interrupted epoch's sums saved with a mid-epoch checkpoint ({} when none apply)."""
    if state is None or not start_step:
        return {}
    return state.get("epoch_sums") or {}


def train(model, task, cfg: Config, env, log: RunLog, state, stop_after_steps=None,
          stopper: GracefulStop = None):
    """Fine-tune with merging at ``tome.r``; returns the (possibly EMA) evaluation weights."""
    return Training(model, task, cfg, env, log, stopper).run(state, stop_after_steps)


def milli_epoch(epoch_float: float) -> int:
    """TensorBoard's step for a point in training: the fractional epoch x 1000, truncated.

    TensorBoard steps are integers. Counting in thousandths of an epoch puts the per-step train
    scalars (at ``epoch + steps_done / steps_per_epoch``) and the per-epoch ones (at ``epoch + 1``)
    on one axis, and runs with different batch sizes (different steps per epoch) line up by epoch.
    """
    return int(epoch_float * 1000)


class Training:
    """One fine-tuning run, in named steps: build the data, build the optimization, resume, wrap
    for DDP, then per epoch train, evaluate (when due), log and save."""

    def __init__(self, model, task, cfg: Config, env, log: RunLog, stopper: GracefulStop = None):
        self.model, self.task, self.cfg, self.env, self.log = model, task, cfg, env, log
        self.t = cfg.train
        self.stopper = stopper or GracefulStop()
        self.steps_run = 0  # micro-batches run by this process since it started (test hook)

    def build_data(self) -> None:
        """Datasets, seeded sampler, mixup: every step's batch follows from the config, resumed or not."""
        t, cfg, env, task = self.t, self.cfg, self.env, self.task
        self.train_set = task.build_dataset(cfg, train=True)
        self.interim_cfg = task.interim_eval_config(cfg) if cfg.eval.interim_views == "single" else cfg
        # between epochs; the final sweep (evaluate_sweep) uses cfg
        self.val_set = task.build_dataset(self.interim_cfg, train=False)
        weights, epoch_samples = task.train_sampling(self.train_set, cfg)
        self.sampler = train_sampler(len(self.train_set), env.rank, env.world_size, t.seed, weights,
                                     epoch_samples, task.sampler_repeats(cfg))
        self.steps_per_epoch = len(self.sampler) // t.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"train.batch_size {t.batch_size} x {env.world_size} processes exceeds "
                             f"the {len(self.train_set)} training samples")
        self.sample_dims = len(task.input_shape(cfg))
        # stateless between steps: each step hands it a generator seeded for that step
        self.mixup = Mixup(t.mixup, t.cutmix, t.mixup_prob, t.mixup_switch_prob, t.label_smoothing,
                           task.num_classes(cfg), task.multilabel)

    def build_optimization(self) -> None:
        """Peak lr, AdamW groups, fp16 scaler, EMA: the state besides the weights a checkpoint carries."""
        t, env = self.t, self.env
        self.eff_batch = batch_math.effective_batch(t, env.world_size, self.task.repeated_views(self.cfg))
        self.base_lr = batch_math.peak_lr(t, self.eff_batch)
        self.optimizer = build_optimizer(self.model, t, _num_layers(self.model), self.base_lr)
        self.scaler = torch.amp.GradScaler(env.device.type,
                                           enabled=t.amp == "fp16" and env.device.type == "cuda")
        self.ema = EMA(self.model, t.ema_decay) if t.ema else None

    def resume(self, state) -> tuple:
        """Restore weights, optimizer, scaler, EMA from ``state`` so a restart goes on; -> (epoch, step)."""
        if state is None:
            return 0, 0
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.shadow = {k: v.to(self.env.device) for k, v in state["ema"].items()}
        self.log.info(f"resumed from epoch {state['epoch']} step {state['step']}")
        return state["epoch"], state["step"]

    def wrap(self) -> None:
        """The module steps call: DDP when several processes must average gradients, else the model."""
        env = self.env
        self.net = self.model
        if env.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[env.local_rank] if env.device.type == "cuda" else None)

    def save(self, epoch: int, step: int, done: bool = False, sums=None) -> None:
        """Atomic checkpoint by the main process; all wait, so none runs past a save it could lose."""
        if self.env.is_main:
            self.saver.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                             "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
                             "ema": self.ema.shadow if self.ema is not None else {}, "epoch": epoch,
                             "step": step, "train_done": done, "config": self.cfg.to_dict(),
                             "epoch_sums": {} if sums is None else sums}, final=done)
        distributed.barrier()

    def run(self, state, stop_after_steps=None):
        """The steps in order, every epoch from the checkpoint's position; -> the evaluation weights."""
        t, cfg, log, model = self.t, self.cfg, self.log, self.model
        self.build_data()
        self.build_optimization()
        start_epoch, start_step = self.resume(state)
        # A mid-epoch checkpoint carries the interrupted epoch's sums so far (all processes summed):
        # the resumed epoch's record then covers the whole epoch, time and loss alike.
        before = epoch_sums(state, start_step)
        self.wrap()
        model.r = model_r(cfg.tome, cfg.tome.r)
        log.info(f"training {t.epochs} epochs x {self.steps_per_epoch} steps, lr {self.base_lr:.3g}, "
                 f"effective batch {self.eff_batch}, r={model.r}")
        self.saver = ckpt.Saver(log.run_dir, log.info)
        for epoch in range(start_epoch, t.epochs):
            first = start_step if epoch == start_epoch else 0
            record = self.train_epoch(epoch, first, before if epoch == start_epoch else {},
                                      stop_after_steps)
            done = epoch + 1 == t.epochs
            if (t.eval_every and (epoch + 1) % t.eval_every == 0) or done:
                record.update(self.evaluate_epoch(epoch))
            self.log_epoch(epoch, record)
            self.save(epoch + 1, 0, done)
            if not done and self.stopper.agreed(self.env.world_size, self.env.device):
                raise self.stopper.stop(f"after epoch {epoch + 1}, checkpoint saved")
        if self.env.world_size > 1:
            del self.net
        return _with_weights(model, self.ema, cfg.eval.use_ema)

    def train_epoch(self, epoch: int, first: int, before: dict, stop_after_steps=None) -> dict:
        """Steps ``first``.. of an epoch plus ``before`` (a resumed epoch's sums): its record is whole."""
        t, cfg, env, log, task = self.t, self.cfg, self.env, self.log, self.task
        net, model, optimizer, scaler, ema = self.net, self.model, self.optimizer, self.scaler, self.ema
        steps_per_epoch = self.steps_per_epoch
        self.sampler.set_epoch(epoch, first * t.batch_size)
        loader = _loader(self.train_set, self.sampler, t.batch_size, cfg.launch.num_workers, True)
        net.train()
        totals = torch.zeros(3, device=env.device)  # loss sum, steps, skipped files
        prior_seconds = 0.0
        if before and env.is_main:  # added once, on one process
            totals += torch.tensor(before["totals"], device=env.device)
            prior_seconds = before["seconds"]
        skips = SkipCounter()
        epoch_start = time.time()
        progress = log.progress(f"epoch {epoch + 1}/{t.epochs}", steps_per_epoch, first)
        for i, batch in enumerate(loader, start=first):
            seed = step_seed(t.seed, epoch, i, env.rank)
            torch.manual_seed(seed)
            lr = lr_at_step(t, epoch, i, steps_per_epoch, self.base_lr)
            set_lr(optimizer, lr)
            x, y = _flatten_views(batch["input"].to(env.device), batch["target"].to(env.device),
                                  self.sample_dims)
            x, soft = self.mixup(x, y, np.random.default_rng(seed))
            last_micro = (i + 1) % t.accum_steps == 0 or i + 1 == steps_per_epoch
            sync = contextlib.nullcontext() if last_micro or env.world_size == 1 else net.no_sync()
            with sync:
                with _autocast(env.device, t.amp):
                    loss = _loss(task, net(x), soft)
                if not math.isfinite(loss.item()):
                    raise FloatingPointError(f"loss is {loss.item()} at epoch {epoch} step {i}")
                scaler.scale(loss / batch_math.accum_window(i, steps_per_epoch, t.accum_steps)).backward()
            if last_micro:
                if t.clip_grad is not None:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), t.clip_grad)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model)
            totals += torch.tensor([loss.item(), 1.0, float(batch["skipped"].sum())], device=env.device)
            skips.add(batch)
            log.scalars({"train/loss": loss.item(), "train/lr": lr},
                        milli_epoch(epoch + (i + 1) / steps_per_epoch))
            self.steps_run += 1
            progress.update(loss=loss.item(), lr=lr, samples=x.shape[0])
            # mid-epoch saves only between optimizer steps, never inside gradient accumulation
            if (t.checkpoint_every and (i + 1) % t.checkpoint_every == 0 and last_micro
                    and i + 1 < steps_per_epoch):
                self.save(epoch, i + 1, sums=partial_sums(totals, prior_seconds + time.time() - epoch_start))
            if stop_after_steps is not None and self.steps_run >= stop_after_steps:
                raise Interrupted(f"stopped after {self.steps_run} steps (test hook)")
            if last_micro and i + 1 < steps_per_epoch and self.stopper.agreed(env.world_size, env.device):
                self.save(epoch, i + 1, sums=partial_sums(totals, prior_seconds + time.time() - epoch_start))
                raise self.stopper.stop(f"at epoch {epoch + 1} step {i + 1}, checkpoint saved")
        progress.close()
        distributed.all_reduce_sum(totals)
        seconds = prior_seconds + time.time() - epoch_start
        record = {"epoch": epoch + 1, "train_loss": (totals[0] / totals[1]).item(), "lr": lr,
                  "epoch_seconds": seconds, "skipped_files": int(totals[2].item()), "r": cfg.tome.r}
        record.update(skips.report(log.info, log.named_files))
        return record

    def evaluate_epoch(self, epoch: int) -> dict:
        """Metrics on the (EMA) weights the run would return, so each epoch shows what the end will see."""
        eval_model = _with_weights(self.model, self.ema, self.cfg.eval.use_ema)
        metrics = evaluate(eval_model, self.task, self.interim_cfg, self.val_set, self.env, self.log)
        if eval_model is not self.model:
            del eval_model
        self.log.scalars({f"eval/{k}": v for k, v in metrics.items()}, milli_epoch(epoch + 1))
        return {f"eval_{k}": v for k, v in metrics.items()}

    def log_epoch(self, epoch: int, record: dict) -> None:
        """The epoch's record to TensorBoard, log.jsonl (resume replaces its row) and the text log."""
        log, t = self.log, self.t
        log.scalars({"train/epoch_seconds": record["epoch_seconds"],
                     "train/skipped_files": record["skipped_files"]}, milli_epoch(epoch + 1))
        log.jsonl("log.jsonl", record, key=("epoch",))
        log.info(f"epoch {epoch + 1}/{t.epochs} " + fmt(record, ["train_loss", "lr", "epoch_seconds",
                                                                f"eval_{self.task.primary_metric}",
                                                                "skipped_files"]))


def _with_weights(model, ema, use_ema: bool):
    if ema is None or not use_ema:
        return model
    import copy
    clone = copy.deepcopy(model)
    clone.load_state_dict(ema.shadow)
    return clone


def evaluate_sweep(model, task, cfg: Config, env, log: RunLog, stopper: GracefulStop = None) -> list:
    """Metrics, throughput, GFLOPs and tokens left at every ``tome.eval_r``."""
    dataset = task.build_dataset(cfg, train=False)
    shape = task.input_shape(cfg)
    tokens_in = _tokens_in(model, shape, env.device)
    done = previous_results(log.run_dir)
    rows = []
    todo = [r for r in cfg.tome.eval_r if json.dumps(r) not in done]
    speeds = {}
    if env.is_main and cfg.eval.throughput and todo:  # all r at once: interleaved rounds
        speeds = measure_throughput(model, shape, cfg, env.device, todo)
        for key, note in slow_merge_notes(model, shape, cfg, env.device, speeds, todo).items():
            log.info("WARNING " + note["slow_merge"])
            speeds[key].update(note)
    distributed.barrier()
    for r in cfg.tome.eval_r:
        key = json.dumps(r)
        if key in done:
            rows.append(done[key])
            continue
        if stopper is not None and stopper.agreed(env.world_size, env.device):
            raise stopper.stop(f"before evaluating r={r}, {len(rows)} row(s) kept")
        model.r = model_r(cfg.tome, r)
        metrics = evaluate(model, task, cfg, dataset, env, log)
        if env.is_main:
            tokens = throughput.call_tokens(model.eval(), torch.zeros(1, *shape, device=env.device))
            speed = speeds.get(key, {})
            row = {"r": r, "inflection": cfg.tome.inflection, **metrics,
                   "throughput": speed.get("throughput"), **{k: v for k, v in speed.items() if k != "throughput"},
                   "gflops": model_gflops(model, tokens_in, tokens),
                   "tokens_in": tokens_in, "tokens_out": tokens[-1], "device": str(env.device),
                   "amp": cfg.eval.amp,
                   **applied_schedule(model_r(cfg.tome, r), _num_layers(model), tokens_in, tokens,
                                      log)}
            rows.append(row)
            log.jsonl("results.jsonl", row, key=("r",))
            step = r if isinstance(r, int) else sum(r)
            log.scalars({f"sweep/{k}": v for k, v in row.items() if k not in ("r",)}, step)
            log.info(f"eval r={r}: " + fmt(row, [task.primary_metric, "throughput", "gflops",
                                                 "tokens_out", "skipped_files"]))
    return rows


def run(cfg: Config, run_dir: str, stop_after_steps=None) -> list:
    """Train (if asked) and evaluate one config in ``run_dir``; resumable. ``launch.threads`` sets
    the intra-op threads for the run only (a run in the calling process gives them back after)."""
    before = torch.get_num_threads()
    if cfg.launch.threads:
        # A small model on a CPU that other jobs share trains faster on one thread: each op split over
        # several threads ends at a barrier that waits for the slowest, often descheduled, thread.
        torch.set_num_threads(cfg.launch.threads)
    try:
        return _run(cfg, run_dir, stop_after_steps)
    finally:
        torch.set_num_threads(before)


def _run(cfg: Config, run_dir: str, stop_after_steps=None) -> list:
    env = distributed.setup(cfg.launch.device)
    task = get_task(cfg.task)
    notes = []
    lock = RunDirLock.for_run(run_dir, env, notes.append)
    log = RunLog(run_dir, env.is_main)
    for note in notes:
        log.info(note)
    stopper = GracefulStop(log.info, run_dir).__enter__()
    try:
        if env.is_main:
            from .config import save as save_config
            save_config(cfg, os.path.join(run_dir, "config.yaml"))
        torch.manual_seed(cfg.train.seed)
        model = task.build_model(cfg)
        task.patch(model, cfg)
        model.to(env.device)
        state = ckpt.load_last(run_dir, log.info, clean=env.is_main)
        log.info(f"{cfg.task} run {run_dir} on {env.device} x {env.world_size}: "
                 f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
        if cfg.train.epochs > 0:
            if state is not None and state.get("train_done"):
                model.load_state_dict(state["model"])
                if cfg.eval.use_ema and state.get("ema"):
                    model.load_state_dict(state["ema"])
            else:
                model = train(model, task, cfg, env, log, state, stop_after_steps, stopper)
        rows = evaluate_sweep(model, task, cfg, env, log, stopper)
        if env.is_main:
            main_row = next((row for row in rows if row["r"] == cfg.tome.r), rows[0] if rows else {})
            log.scalars({"speed/throughput": main_row.get("throughput") or 0.0,
                         "tome/r": main_row.get("r") if isinstance(main_row.get("r"), int) else 0,
                         "tome/tokens_out": main_row.get("tokens_out", 0),
                         "tome/gflops": main_row.get("gflops", 0.0)}, 0)
            log.hparams({"task": cfg.task, "model": getattr(cfg.model, "name", ""), "r": str(cfg.tome.r),
                         "epochs": cfg.train.epochs, "blr": cfg.train.blr,
                         "prop_attn": cfg.tome.prop_attn, "mode": cfg.tome.mode},
                        {task.primary_metric: main_row.get(task.primary_metric, 0.0),
                         "throughput": main_row.get("throughput") or 0.0})
            with open(os.path.join(run_dir, "DONE"), "w") as f:
                f.write("ok\n")
        return rows
    finally:
        stopper.__exit__()
        log.close()
        distributed.cleanup()
        if lock is not None:
            lock.release()
