"""Where a merged model's extra time goes, layer by layer: what each merging layer pays beyond the
zero-overhead limit (``launch/bench.py``'s "limit": the same blocks, dropping the same tokens for free).

    python -m launch.profile_merge --model vit_small_patch16_224 --r 13 --batch 16
    python -m launch.profile_merge --model video_vit_b --r 100 --batch 2 --reps 10
    python -m launch.profile_merge --model audio_vit_b --r 24 --batch 4 --ops

One forward of the merged model records every block's input (tokens, sizes, r). Each block's
pieces are then replayed on those inputs, ``--reps`` times in interleaved rounds (every piece once
per round, so a slow spell of a shared machine hits them alike), and the median time of each is
reported:

- ``attn``: timm's own attention on the block's tokens (what the unmerged and limit models run);
- ``+patch``: the patched attention without size bias or metric, minus ``attn`` (should be ~0);
- ``+bias``: the same with the ``log size`` bias of proportional attention, minus the above;
- ``+metric``: the same returning the matching metric (the head-averaged keys), minus the above;
- ``match``: the matching (normalisation, similarities, argmax, sort, index building);
- ``merge``: applying it to the tokens and sizes (row gathers, weighted scatter).

The three ``+`` columns and ``match`` + ``merge`` are what a layer costs beyond the limit's block;
the totals are given in ms and as a share of the limit model's forward (timed in the same rounds).
``--ops`` adds a torch.profiler table of the aten ops inside ``match`` + ``merge`` (self CPU time
summed over all layers, per forward). Timings are elapsed time on the threads torch has
(``--threads``), or with ``--clock cpu --threads 1`` the CPU time of the one thread (the work
done, not the waits: use it on a shared machine); the load average is printed with them.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

import torch

from launch.runs.benchmark import build
from tome.merge import merge_tokens
from tome.matching import match
from tome.threads import calling_thread

CLOCKS = ("wall", "cpu")
PIECES = ("attn", "+patch", "+bias", "+metric", "match", "merge")


def capture_blocks(model, x: torch.Tensor) -> list:
    """Run ``model`` once; return each block's ``(block, tokens in, size in, groups in, r)``."""
    seen = []
    for blk in model.blocks:
        def spy(x, size, source, groups, r, _blk=blk, _fn=blk.tome_forward):
            seen.append((_blk, x, size, groups, r))
            return _fn(x, size, source, groups, r)
        blk.tome_forward = spy
    try:
        with torch.no_grad():
            model(x)
    finally:
        for blk in model.blocks:
            del blk.tome_forward  # the class's method again
    return seen


def layer_pieces(blk, x: torch.Tensor, size, groups, r: int) -> dict:
    """The callables of one block's pieces on its recorded input (see the module doc)."""
    info, attn = blk._tome, blk.attn
    xn = blk.norm1(x)
    bias_size = size if info.prop_attn else None
    timm_forward = attn._tome_original_class.forward

    def patched(size_in, want_metric):
        return lambda: attn.tome_forward(xn, size_in, info.prop_attn, info.metric, info.attn,
                                         want_metric=want_metric)
    pieces = {"attn": lambda: timm_forward(attn, xn), "+patch": patched(None, False),
              "+bias": patched(bias_size, False), "+metric": patched(bias_size, True)}
    if r > 0:
        h, metric = attn.tome_forward(xn, bias_size, info.prop_attn, info.metric, info.attn)
        xr = x + blk.drop_path1(blk.ls1(h))

        def matching():
            with calling_thread(xr):
                return match(metric, r, info.protected, info.matching, groups, info.distance)
        m = matching()
        if m is None:  # no tokens left to merge
            return pieces

        def merging():
            with calling_thread(xr):
                return merge_tokens(m, xr, size, info.mode)
        pieces.update({"match": matching, "merge": merging})
    return pieces


def interleaved_medians(fns: dict, reps: int, clock: str = "wall") -> dict:
    """Median seconds of each callable over ``reps`` rounds (one call of each per round,
    alternating the order), after one untimed warm-up call each. ``clock``: ``wall`` (elapsed)
    or ``cpu`` (CPU time of the calling thread: the work done, whatever the machine's load)."""
    now = time.thread_time if clock == "cpu" else time.perf_counter
    with torch.no_grad():
        for fn in fns.values():
            fn()
        times = {name: [] for name in fns}
        names = list(fns)
        for i in range(reps):
            for name in (names if i % 2 == 0 else names[::-1]):
                t0 = now()
                fns[name]()
                times[name].append(now() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def op_table(layers: list, reps: int, top: int = 20) -> list:
    """(aten op, ms per forward, calls per forward) inside match + merge over all merging layers."""
    from torch.profiler import ProfilerActivity, profile
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(reps):
            for pieces in layers:
                if "match" in pieces:
                    pieces["match"]()
                    pieces["merge"]()
    rows = [(e.key, e.self_cpu_time_total / reps / 1e3, e.count // reps) for e in prof.key_averages()]
    return sorted(rows, key=lambda row: -row[1])[:top]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_small_patch16_224",
                        help="a timm ViT name, video_vit_<variant> or audio_vit_<variant> (as launch/bench.py)")
    parser.add_argument("--img-size", type=int, default=None)
    parser.add_argument("--r", type=int, default=13)
    parser.add_argument("--inflection", type=float, default=None, help="schedule (r, inflection)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reps", type=int, default=15, help="interleaved rounds per piece")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--clock", choices=CLOCKS, default="wall",
                        help="wall: elapsed time; cpu: CPU time of the calling thread (needs --threads 1), "
                             "which counts the work done and not the waits of a shared machine")
    parser.add_argument("--ops", action="store_true", help="also profile the aten ops of match + merge")
    args = parser.parse_args(argv)
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit(f"--clock cpu times the calling thread only: it needs --threads 1, got "
                         f"--threads {args.threads}")
    if args.model.startswith("hf:"):
        raise SystemExit(f"--model {args.model!r}: profile_merge replays timm-patched blocks; "
                         f"use a timm ViT name, video_vit_<variant> or audio_vit_<variant>")
    if args.reps < 1:
        raise SystemExit(f"--reps must be at least 1, got {args.reps}")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    build_args = SimpleNamespace(model=args.model, img_size=args.img_size, r=args.r,
                                 inflection=args.inflection, attn="sdpa", compile=False)
    device = torch.device("cpu")
    models, merged, rs = build(build_args, device)
    for model in models.values():
        model.eval()
    x = torch.randn(args.batch, *build_args.input_shape)
    blocks = capture_blocks(merged, x)
    with torch.no_grad():
        layers = [layer_pieces(*block) for block in blocks]
    fns = {"limit forward": lambda: models["limit"](x), "merged forward": lambda: models["merged"](x)}
    for i, pieces in enumerate(layers):
        fns.update({(i, name): fn for name, fn in pieces.items()})
    med = interleaved_medians(fns, args.reps, args.clock)

    rows, totals = [], {name: 0.0 for name in PIECES}
    for i, ((_, xb, _, _, r), pieces) in enumerate(zip(blocks, layers)):
        attn = med[(i, "attn")]
        cumulative = [attn, med[(i, "+patch")], med[(i, "+bias")], med[(i, "+metric")]]
        row = {"layer": i, "tokens": xb.shape[1], "r": r, "attn": attn * 1e3}
        for name, now, before in zip(PIECES[1:4], cumulative[1:], cumulative[:-1]):
            row[name] = (now - before) * 1e3
        for name in ("match", "merge"):
            row[name] = med[(i, name)] * 1e3 if name in pieces else 0.0
        for name in PIECES:
            totals[name] += row[name]
        rows.append(row)
    limit_ms, merged_ms = med["limit forward"] * 1e3, med["merged forward"] * 1e3
    extra = sum(totals[name] for name in PIECES[1:])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.model} r={args.r} batch {args.batch}, {torch.get_num_threads()} threads, "
          f"{args.reps} rounds, {args.clock} clock, load average {load:.2f}; times in ms (medians)")
    print("| layer | tokens | r | " + " | ".join(PIECES) + " |")
    print("|---:|---:|---:|" + "---:|" * len(PIECES))
    for row in rows:
        print(f"| {row['layer']} | {row['tokens']} | {row['r']} | "
              + " | ".join(f"{row[name]:.2f}" for name in PIECES) + " |")
    print("| total | | | " + " | ".join(f"{totals[name]:.2f}" for name in PIECES) + " |")
    print(f"limit forward {limit_ms:.1f} ms, merged forward {merged_ms:.1f} ms "
          f"(efficiency {limit_ms / merged_ms:.3f}); pieces beyond the limit: {extra:.1f} ms = "
          f"{extra / limit_ms:.1%} of the limit forward")
    for name in PIECES[1:]:
        print(f"  {name:8s} {totals[name]:7.2f} ms  {totals[name] / limit_ms:6.2%}")
    result = {"model": args.model, "r": args.r, "batch": args.batch, "threads": torch.get_num_threads(),
              "clock": args.clock, "load": load, "layers": rows, "totals_ms": totals, "limit_ms": limit_ms,
              "merged_ms": merged_ms}
    if args.ops:
        ops = op_table(layers, args.reps)
        print("| aten op (match + merge) | ms per forward | calls |")
        print("|---|---:|---:|")
        for key, ms, count in ops:
            print(f"| {key} | {ms:.2f} | {count} |")
        result["ops"] = ops
    return result


if __name__ == "__main__":
    main()
