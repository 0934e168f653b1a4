"""Throughput benchmark: unmerged model, merged model, and the zero-overhead limit, in one run.

    python launch/bench.py --model vit_base_patch16_224 --r 16 --device cpu --batch 16
    python launch/bench.py --model vit_large_patch16_224 --r 8 --dtype fp16 --device cuda --batch search
    python launch/bench.py --model vit_small_patch16_224 --r 13 --step train --dtype bf16 --json out.json
    python launch/bench.py --model vit_base_patch16_224 --r 16 --attn flex --compile
    python launch/bench.py --model vit_base_patch16_224 --target 2.0 --device cpu --batch 16 --runs 5

``--attn`` picks the merged model's attention backend (sdpa, flex or eager; see tome.attention);
the unmerged and limit models always run timm's own fused attention.

``--official PATH`` (a checkout of github.com/facebookresearch/ToMe, supplied by the user, never
part of this repository) adds a fourth model, the official timm patch at the same schedule, timed
in the same rounds between the unmerged and our merged model; the result then holds its speed-up,
its efficiency and ``merged_over_official`` (median over rounds of official time / our time, with
its interval):

    python launch/bench.py --model vit_small_patch16_224 --r 13 --batch 16 --runs 15 --official ~/ToMe

The limit is the same model with the same per-layer token counts, where the tokens a layer would
merge are simply dropped (no matching, no merging, the unmerged model's attention kernel): the most
any merging method can reach at that schedule.
Timing (launch/engine/throughput.py): warm-up, then ``--runs`` rounds, each timing every model once
(CUDA events on GPU), in the order unmerged, merged, limit and reversed in every other round;
throughput is the median per model, speed-ups the median of the per-round ratios to the unmerged
model. Efficiency is the median over rounds of limit time / merged time (the two are timed next to
each other in every round), with a distribution-free 95% interval of that median
(launch/engine/stats.py ``median_interval``; 6 rounds or more for a 95% interval, 15 give a
useful one on a shared CPU); ``efficiency_of_medians`` is the merged speed-up over the limit's.

``--target X`` finds the smallest constant r and decreasing schedule whose measured speed-up
reaches X (launch/runs/target.py). A merged model that measures slower than the unmerged one gets
a warning that says why and from which batch merging pays off (launch/runs/bench_warning.py).

The merged speed-up comes with the same interval (``merged_over_unmerged_interval``): with
``--r 0`` it tells whether the patch alone costs anything (an interval holding 1.0: within noise).
Every timed model is a deep copy of the one built (launch/runs/benchmark.py says why).
``--clock cpu --threads 1`` times the CPU time of the one thread instead of elapsed time: on a
machine that other jobs share it counts the work each model does, not the waits.
"""
from __future__ import annotations

import argparse
import json

import timm
import torch

from launch.engine.stats import median_interval
from launch.engine.throughput import CLOCKS, DTYPES, check_clock
from launch.runs.bench_warning import slow_merge_note
from launch.runs.benchmark import TASK_MODELS, build, measure, search_batch
from launch.runs.official_tome import load_official_timm_patch
from launch.runs.target import run as target_search
from tome.attention import BACKENDS
from tome.flops import model_gflops


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224",
                        help="a timm ViT name, video_vit_<micro|tiny|b|l|h> (MAE-ST, 16x224 clips) or "
                             "audio_vit_<micro|tiny|s|b|l> (Audio-MAE, 1024x128 fbanks)")
    parser.add_argument("--img-size", type=int, default=None, help="image size (video: crop size)")
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument("--inflection", type=float, default=None, help="schedule (r, inflection)")
    parser.add_argument("--batch", default="16", help="batch size, or 'search'")
    parser.add_argument("--max-batch", type=int, default=1024)
    parser.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--step", choices=["inference", "train"], default="inference")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile all three models")
    parser.add_argument("--attn", choices=BACKENDS, default="sdpa",
                        help="the merged model's attention backend (tome.attention)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: elapsed time; cpu: CPU time of the one thread (needs --device cpu "
                             "--threads 1): the work done, not the waits of a shared machine")
    parser.add_argument("--official", metavar="PATH", default=None,
                        help="a checkout of github.com/facebookresearch/ToMe: also time its timm "
                             "patch at the same schedule, in the same rounds (timm image ViTs)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--target", type=float, default=None,
                        help="find the smallest r whose measured speed-up reaches this (e.g. 2.0)")
    parser.add_argument("--schedule", choices=["both", "constant", "decreasing"], default="both",
                        help="--target: the schedules to search (decreasing: (r, -1))")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    try:
        check_clock(args.clock, device, args.threads)
    except ValueError as err:
        parser.error(str(err))
    torch.manual_seed(0)
    if args.official is not None:  # a bad path or model fails now, before any model is built
        if args.model.startswith(("hf:", *TASK_MODELS)):
            parser.error(f"--official times the official ToMe's timm patch, which needs a timm "
                         f"image ViT; got --model {args.model!r}")
        try:
            load_official_timm_patch(args.official)
        except ValueError as err:
            parser.error(str(err))
    if args.target is not None:
        return run_target(args, device, dtype)
    models, merged, rs = build(args, device)
    batch = search_batch(models["unmerged"], args, device, dtype) if args.batch == "search" else int(args.batch)
    stats = measure(models, batch, args, device, dtype)
    slow = None
    if stats["merged"]["speedup"] < 1.0:
        slow = slow_merge_note(models, stats, batch, args, device, dtype, label=f"r={args.r}")
    speeds = {name: s["throughput"] for name, s in stats.items()}
    tokens_in = getattr(args, "tokens_in", None) or merged.patch_embed.num_patches + merged.num_prefix_tokens
    tokens = merged._tome.expected_tokens(tokens_in, len(rs))
    gflops = {"unmerged": model_gflops(merged, tokens_in, [tokens_in] * len(rs)),
              "merged": model_gflops(merged, tokens_in, tokens)}
    gflops["limit"] = model_gflops(merged, tokens_in, tokens, matching=False)  # drops tokens for free
    if "official" in models:
        gflops["official"] = gflops["merged"]  # the same matching and token counts
    merged_x, limit_x = stats["merged"]["speedup"], stats["limit"]["speedup"]  # paired per round
    efficiency = median_interval(stats["merged"]["efficiency_per_round"])
    # the merged speed-up with its interval: at r = 0 it says whether patching alone costs anything
    merged_interval = median_interval(stats["merged"]["speedup_per_round"])
    result = {"model": args.model, "input_shape": list(args.input_shape), "r": args.r,
              "inflection": args.inflection, "schedule": rs, "runs": args.runs,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
              "dtype": args.dtype, "step": args.step, "batch": batch, "compile": args.compile,
              "clock": args.clock,
              "attn": args.attn,
              "throughput": speeds, "throughput_quartiles": {
                  name: [s["throughput_q1"], s["throughput_q3"]] for name, s in stats.items()},
              "speedup_quartiles": {name: [s["speedup_q1"], s["speedup_q3"]] for name, s in stats.items()},
              "gflops": gflops, "tokens_out": tokens[-1],
              "merged_over_unmerged": merged_x, "limit_over_unmerged": limit_x,
              "merged_over_unmerged_interval": {k: merged_interval[k] for k in ("lo", "hi", "coverage")},
              "efficiency": efficiency["median"],
              "efficiency_interval": {k: efficiency[k] for k in ("lo", "hi", "coverage")},
              "efficiency_of_medians": merged_x / limit_x,
              "efficiency_per_round": stats["merged"]["efficiency_per_round"],
              "torch": torch.__version__, "timm": timm.__version__}
    if slow is not None:
        result["slow_merge"] = slow
    unit = "samples/s" if args.step == "inference" else "train samples/s"
    print(f"{args.model} r={args.r} {args.dtype} {args.step} batch {batch} attn={args.attn} "
          f"on {result['device']}")
    print(f"| model | {unit} | GFLOPs | x unmerged |")
    print("|---|---:|---:|---:|")
    for name in ("unmerged", "official", "merged", "limit"):
        if name in speeds:
            print(f"| {name} | {speeds[name]:.2f} | {gflops[name]:.2f} | {stats[name]['speedup']:.2f}x |")
    print(f"merged / unmerged (median of per-round ratios): {merged_x:.3f}x, interval "
          f"{merged_interval['lo']:.3f}-{merged_interval['hi']:.3f}")
    print(f"efficiency (median of limit time / merged time per round): {efficiency['median']:.3f}, "
          f"interval {efficiency['lo']:.3f}-{efficiency['hi']:.3f} "
          f"(coverage {efficiency['coverage']:.1%}, {args.runs} rounds)")
    if "official" in stats:
        over = median_interval(stats["merged"]["over_official_per_round"])
        official_eff = median_interval(stats["official"]["efficiency_per_round"])
        result.update({
            "official": args.official, "official_over_unmerged": stats["official"]["speedup"],
            "official_efficiency": official_eff["median"],
            "official_efficiency_interval": {k: official_eff[k] for k in ("lo", "hi", "coverage")},
            "merged_over_official": over["median"],
            "merged_over_official_interval": {k: over[k] for k in ("lo", "hi", "coverage")},
            "merged_over_official_per_round": stats["merged"]["over_official_per_round"]})
        print(f"official efficiency: {official_eff['median']:.3f}, interval {official_eff['lo']:.3f}-"
              f"{official_eff['hi']:.3f}; ours over official (median of official time / merged time "
              f"per round): {over['median']:.3f}x, interval {over['lo']:.3f}-{over['hi']:.3f}")
    if slow is not None:
        print("WARNING " + slow["message"])
    _write_json(args, result)
    return result


def _write_json(args, result: dict) -> None:
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


def run_target(args, device, dtype) -> dict:
    """``--target``: the smallest r whose measured speed-up reaches it (launch/runs/target.py)."""
    if args.batch == "search":
        raise SystemExit("--target needs a fixed --batch (the speed-up depends on it), got 'search'")
    batch = int(args.batch)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    print(f"{args.model} target {args.target:.2f}x: {args.dtype} {args.step} batch {batch} on {where}, "
          f"{args.runs} rounds a step", flush=True)
    result = {"model": args.model, "device": where, "dtype": args.dtype, "step": args.step,
              "batch": batch, "runs": args.runs, **target_search(args, device, dtype, batch),
              "torch": torch.__version__, "timm": timm.__version__}
    _write_json(args, result)
    return result


if __name__ == "__main__":
    main()
