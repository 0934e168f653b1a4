"""Throughput that holds up on a busy machine: interleaved rounds, medians, spread, batch search.

Every model (or every ``r`` of one patched model, plus the unpatched baseline) is timed once per
round, round after round (in alternating order), so a slow spell of the machine hits all of them alike. Per model we keep
the median samples/s and the quartiles of the per-round values; per ``r`` also the median of the
per-round speed-ups over the baseline (paired within a round, so drift cancels).

Clocks (``clock``): ``wall`` (the paper's: elapsed time) or ``cpu`` (the CPU time of the calling
thread, CPU devices with one intra-op thread only). On a CPU that other processes share, elapsed
time measures the scheduler as much as the model: each call runs at whatever share of the cores it
gets, and with several intra-op threads every small operator (ToMe adds a handful per block) ends
at a barrier where the threads that were descheduled hold up the others, so the merged model loses
more than the plain one. One thread timed by its own CPU clock counts the work done, not the wait.

Used by the engine (``measure_sweep``) and by ``launch/bench.py`` (``time_interleaved``,
``search_batch``, ``make_step``): one implementation of the protocol.
"""
from __future__ import annotations

import copy
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from tome.schedule import clamp_r

import tome

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CLOCKS = ("wall", "cpu")
BASELINE = "unpatched"


def check_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"throughput dtype must be one of {', '.join(DTYPES)}, got {name!r}")
    return DTYPES[name]


def call_tokens(model, x: torch.Tensor) -> list:
    """Run ``model`` on ``x`` (no grad) and return the token count leaving each block.

    The one place that reads per-call token counts from a patched model."""
    with torch.no_grad(), tome.trace() as t:
        model(x)
    return list(t.tokens)


def check_clock(clock: str, device: torch.device, threads: Optional[int]) -> None:
    """``clock`` must be one of :data:`CLOCKS`; ``cpu`` needs a CPU device and one thread."""
    if clock not in CLOCKS:
        raise ValueError(f"throughput clock must be one of {', '.join(CLOCKS)}, got {clock!r}")
    if clock == "cpu" and (device.type != "cpu" or threads != 1):
        raise ValueError(f"throughput clock 'cpu' times one thread on a CPU device, got device "
                         f"{device.type} with threads={threads}; use clock 'wall' or threads 1 on cpu")


def seconds_of(fn: Callable[[], None], device: torch.device, clock: str = "wall") -> float:
    """Seconds of one call: elapsed (CUDA events on GPU, perf_counter on CPU), or with
    ``clock="cpu"`` the CPU time of the calling thread (see :func:`check_clock`)."""
    if clock == "cpu":
        t0 = time.thread_time()
        fn()
        return time.thread_time() - t0
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def make_step(model, x: torch.Tensor, step: str, dtype: torch.dtype, device: torch.device,
              before: Optional[Callable[[], None]] = None):
    """A callable running one inference pass or one training step of ``model`` on ``x``, in
    ``dtype`` (autocast unless fp32). ``before`` runs first, untimed by design of the caller
    (it is cheap: e.g. setting ``model.r``)."""
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    if step == "inference":
        def run():
            if before is not None:
                before()
            model.eval()
            with torch.no_grad(), autocast:
                model(x)
        return run
    if step != "train":
        raise ValueError(f"step must be inference or train, got {step!r}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.randint(0, model.num_classes, (x.shape[0],), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")

    def run():
        if before is not None:
            before()
        model.train()
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return run


def time_interleaved(steps: Dict[str, Callable[[], None]], rounds: int, warmup: int,
                     device: torch.device, clock: str = "wall") -> Dict[str, List[float]]:
    """Seconds per call of each step: ``warmup`` untimed calls each, then ``rounds`` rounds in
    which every step is timed once, in the given order in even rounds and reversed in odd ones.
    Alternating cancels a steady drift of the machine's speed between neighbours (each step is as
    often before as after the others), and keeps neighbours in the order adjacent in every round,
    so the ratio of two adjacent steps within a round compares calls made seconds apart."""
    for fn in steps.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in steps}
    names = list(steps)
    for i in range(max(rounds, 1)):
        for name in (names if i % 2 == 0 else names[::-1]):
            times[name].append(seconds_of(steps[name], device, clock))
    return times


def quartiles(values: List[float]) -> tuple:
    """(lower quartile, median, upper quartile); the quartiles equal the median for one value."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarize(times: Dict[str, List[float]], batches: Dict[str, int],
              baseline: Optional[str] = None) -> Dict[str, dict]:
    """Per step: median samples/s and its quartiles over rounds; with ``baseline``, also the
    median and quartiles of the per-round speed-up (samples/s over the baseline's in that round)."""
    out = {}
    for name, secs in times.items():
        per_round = [batches[name] / s for s in secs]
        lo, mid, hi = quartiles(per_round)
        out[name] = {"throughput": mid, "throughput_q1": lo, "throughput_q3": hi,
                     "rounds": len(secs), "batch": batches[name]}
        if baseline is not None:
            base = [batches[baseline] / s for s in times[baseline]]
            ratios = [a / b for a, b in zip(per_round, base)]
            lo, mid, hi = quartiles(ratios)
            out[name].update({"speedup": mid, "speedup_q1": lo, "speedup_q3": hi})
    return out


def search_batch(make_run: Callable[[int], Callable[[], None]], device: torch.device,
                 max_batch: int = 1024, rounds: int = 5, warmup: int = 2, gain: float = 1.03,
                 clock: str = "wall") -> int:
    """The paper's protocol: the power-of-two batch with the best throughput, doubling while the
    throughput still improves by at least ``gain`` (or until out of memory / ``max_batch``).
    ``make_run(batch)`` returns the callable to time at that batch size."""
    best, best_speed, batch = 1, 0.0, 1
    while batch <= max_batch:
        try:
            secs = time_interleaved({"m": make_run(batch)}, rounds, warmup, device, clock)["m"]
        except torch.OutOfMemoryError:
            break
        speed = batch / statistics.median(secs)
        if speed < best_speed * gain:
            break
        best, best_speed, batch = batch, speed, batch * 2
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best


def measure_sweep(model, schedules: Dict[str, object], shape: tuple, batch, dtype: str,
                  rounds: int, warmup: int, device: torch.device, baseline_model=None,
                  threads: Optional[int] = None, clock: str = "wall") -> Dict[str, dict]:
    """Inference throughput of a patched ``model`` at each schedule of ``schedules``
    (label -> ``model.r`` value) and of the unpatched baseline (label ``BASELINE``), interleaved.

    ``batch``: an int, or ``"search"`` for the best batch of each one (see :func:`search_batch`).
    ``baseline_model``: the unpatched model; default a deep copy of ``model`` with ToMe removed.
    ``threads``: intra-op threads while timing (None: torch's current number); ``clock``: see
    :func:`check_clock`. Leaves ``model.r`` and torch's thread count as it found them."""
    torch_dtype = check_dtype(dtype)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"throughput threads must be a positive integer or None, got {threads!r}")
    check_clock(clock, device, threads)
    saved_r = model.r
    if baseline_model is None:
        baseline_model = tome.unpatch(copy.deepcopy(model))
    baseline_model.to(device)
    was_training = model.training

    def maker(label):
        net = baseline_model if label == BASELINE else model
        set_r = None if label == BASELINE else (lambda: setattr(model, "r", schedules[label]))

        def make_run(b):
            x = torch.randn(b, *shape, device=device)
            return make_step(net, x, "inference", torch_dtype, device, before=set_r)
        return make_run

    labels = [BASELINE, *schedules]
    makers = {label: maker(label) for label in labels}
    if not (batch == "search" or (isinstance(batch, int) and not isinstance(batch, bool) and batch > 0)):
        raise ValueError(f"throughput batch must be a positive integer or 'search', got {batch!r}")
    saved_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        if batch == "search":
            batches = {label: search_batch(makers[label], device, clock=clock) for label in labels}
        else:
            batches = {label: batch for label in labels}
        steps = {label: makers[label](batches[label]) for label in labels}
        times = time_interleaved(steps, rounds, warmup, device, clock)
    finally:
        torch.set_num_threads(saved_threads)
        model.r = saved_r
        model.train(was_training)
    return summarize(times, batches, baseline=BASELINE)


def limit_model(model: torch.nn.Module, rs) -> torch.nn.Module:
    """A copy of an unpatched timm ViT whose block i keeps only the first tokens after attention,
    as many as ToMe would leave: the zero-overhead limit."""
    model = copy.deepcopy(model)
    protected = model.num_prefix_tokens

    def make_forward(blk, r):
        def forward(x, attn_mask=None, is_causal=False):
            x = x + blk.drop_path1(blk.ls1(blk.attn(blk.norm1(x))))
            x = x[:, : x.shape[1] - clamp_r(r, x.shape[1], protected)]
            return x + blk.drop_path2(blk.ls2(blk.mlp(blk.norm2(x))))
        return forward

    for blk, r in zip(model.blocks, rs):
        blk.forward = make_forward(blk, r)
    return model
