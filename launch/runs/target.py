"""``launch/bench.py --target X``: the smallest r whose measured speed-up over the unmerged model
reaches X on this device, batch and dtype, for a constant and a decreasing schedule.

The search (:func:`bisect_r`) takes the measurement as a callable ``measure(r)`` returning the
merged and limit speed-ups, so it can be checked against a worked speed-up curve. It first
measures the largest useful r (``tome.budget.useful_r_max``: every layer merges as much as it
can). If the merged model there falls short of X and so does the zero-overhead limit, no merging
method reaches X on this setup and it says so with the limit's value; if only the merged model
falls short, merging's own cost is what stands between. Otherwise it bisects r in (0, r_max] on the merged speed-up: the r it
returns measured at least X in this run. Each step times the unmerged, merged and limit models in
interleaved rounds (launch/runs/benchmark.py ``measure``), so drift of the machine hits all three.
"""
from __future__ import annotations

import copy
from typing import Callable, Dict

import torch

from launch.runs.benchmark import build, measure
from launch.runs.bench_warning import slow_merge_note
from tome.budget import KINDS, schedule_of, useful_r_max
from tome.flops import model_gflops


def bisect_r(measure_r: Callable[[int], dict], target: float, r_max: int) -> dict:
    """The smallest r in [1, r_max] whose ``measure_r(r)["merged"]`` speed-up is at least
    ``target``, assuming it grows with r (r = 0 is the unmerged model: 1x). ``measure_r(r)``
    returns at least ``merged`` and ``limit`` (speed-ups over the unmerged model).

    Returns ``reached``, ``r`` (None when not reached), ``r_max``, ``steps`` (r -> measurement, in
    the order measured) and, when the merged model at r_max falls short, ``short`` = "limit" (the
    limit there is below the target too: no merging reaches it) or "merged" (the limit reaches
    it, the merged model does not)."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 1.0:
        raise ValueError(f"target speed-up must be a number above 1 (2.0: twice the unmerged "
                         f"throughput), got {target!r}")
    if isinstance(r_max, bool) or not isinstance(r_max, int) or r_max < 1:
        raise ValueError(f"r_max must be a positive integer, got {r_max!r}")
    steps: Dict[int, dict] = {r_max: measure_r(r_max)}
    top = steps[r_max]
    if top["merged"] < target:
        return {"reached": False, "r": None, "r_max": r_max, "steps": steps,
                "short": "limit" if top["limit"] < target else "merged"}
    lo, hi = 0, r_max  # speed-up at lo below target (lo = 0: 1x), at hi at least target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        steps[mid] = measure_r(mid)
        if steps[mid]["merged"] >= target:
            hi = mid
        else:
            lo = mid
    return {"reached": True, "r": hi, "r_max": r_max, "steps": steps, "short": None}


def shortfall(kind: str, target: float, found: dict) -> str:
    """The one line saying that ``target`` was not reached, with the limit's value."""
    top = found["steps"][found["r_max"]]
    if found["short"] == "limit":
        return (f"target {target:.2f}x cannot be reached with a {kind} schedule: the zero-overhead "
                f"limit at the largest r ({found['r_max']}) measured {top['limit']:.2f}x "
                f"(merged {top['merged']:.2f}x)")
    return (f"target {target:.2f}x not reached with a {kind} schedule: at the largest r "
            f"({found['r_max']}) the merged model measured {top['merged']:.2f}x while the "
            f"zero-overhead limit measured {top['limit']:.2f}x (merging's own cost is the gap)")


def _schedule_label(schedule) -> str:
    return str(schedule) if isinstance(schedule, int) else f"({schedule[0]}, {schedule[1]:g})"


def run(args, device: torch.device, dtype: torch.dtype, batch: int) -> dict:
    """The ``--target`` search of launch/bench.py for every kind in ``args.schedule``; prints a
    table and the steps, returns the results (what ``--json`` writes)."""
    probe = copy.copy(args)
    probe.r, probe.inflection = 0, None
    _, merged0, _ = build(probe, device)
    tokens_in = getattr(probe, "tokens_in", None) or merged0.patch_embed.num_patches + merged0.num_prefix_tokens
    num_layers, protected = merged0._tome_num_layers(), merged0._tome.protected
    unmerged_gflops = model_gflops(merged0, tokens_in, [tokens_in] * num_layers)
    del merged0
    kinds = KINDS if args.schedule == "both" else (args.schedule,)
    results = {}
    for kind in kinds:
        r_max = useful_r_max(tokens_in, protected, num_layers, kind)

        def measure_r(r, kind=kind, r_max=r_max):
            schedule = schedule_of(r, kind)
            step = copy.copy(args)
            step.r, step.inflection = (r, None) if kind == "constant" else (r, schedule[1])
            models, merged, rs = build(step, device)
            stats = measure(models, batch, step, device, dtype)
            tokens = merged._tome.expected_tokens(tokens_in, num_layers)
            out = {"merged": stats["merged"]["speedup"], "limit": stats["limit"]["speedup"],
                   "schedule": schedule, "gflops": model_gflops(merged, tokens_in, tokens),
                   "tokens_out": tokens[-1],
                   "throughput": {name: s["throughput"] for name, s in stats.items()}}
            if r == r_max and out["merged"] < 1.0:  # no r helps here: say why, and from which batch
                out["slow_merge"] = slow_merge_note(models, stats, batch, step, device, dtype,
                                                    label=f"{kind} r={_schedule_label(schedule)}")
            print(f"  {kind} r={_schedule_label(schedule)}: {out['merged']:.2f}x "
                  f"(limit {out['limit']:.2f}x)", flush=True)
            return out
        print(f"{kind} schedule: bisection over r in 1..{r_max}", flush=True)
        results[kind] = bisect_r(measure_r, args.target, r_max)
    _print(args, batch, results, unmerged_gflops, tokens_in)
    return {"target": args.target, "unmerged_gflops": unmerged_gflops, "tokens_in": tokens_in,
            "schedules": {kind: {**found, "steps": {str(r): s for r, s in found["steps"].items()}}
                          for kind, found in results.items()}}


def _print(args, batch: int, results: dict, unmerged_gflops: float, tokens_in: int) -> None:
    print(f"| schedule | r | x unmerged | limit x unmerged | GFLOPs | tokens left |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| unmerged | 0 | 1.00x | 1.00x | {unmerged_gflops:.2f} | {tokens_in} |")
    for kind, found in results.items():
        if found["reached"]:
            s = found["steps"][found["r"]]
            print(f"| {kind} | {_schedule_label(s['schedule'])} | {s['merged']:.2f}x | {s['limit']:.2f}x "
                  f"| {s['gflops']:.2f} | {s['tokens_out']} |")
    for kind, found in results.items():
        if found["reached"]:
            print(f"{kind}: r={_schedule_label(found['steps'][found['r']]['schedule'])} is the smallest "
                  f"r measured at {args.target:.2f}x or more ({len(found['steps'])} steps)")
        else:
            print(shortfall(kind, args.target, found))
        for s in found["steps"].values():
            if "slow_merge" in s:
                print("WARNING " + s["slow_merge"]["message"])
