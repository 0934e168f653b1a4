"""Throughput benchmark: unmerged model, merged model, and the zero-overhead limit, in one run.

    python launch/bench.py --model vit_base_patch16_224 --r 16 --device cpu --batch 16
    python launch/bench.py --model vit_large_patch16_224 --r 8 --dtype fp16 --device cuda --batch search
    python launch/bench.py --model vit_small_patch16_224 --r 13 --step train --dtype bf16 --json out.json
    python launch/bench.py --model vit_base_patch16_224 --r 16 --attn flex --compile

``--attn`` picks the merged model's attention backend (sdpa, flex or eager; see tome.attention);
the unmerged and limit models always run timm's own fused attention.

The limit is the same model with the same per-layer token counts, where the tokens a layer would
merge are simply dropped (no matching, no merging, the unmerged model's attention kernel): the most
any merging method can reach at that schedule. Efficiency = merged speed-up / limit speed-up.
Timing: warm-up, then the median of ``--runs`` timed repetitions (CUDA events on GPU).
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import timm  # noqa: E402
import torch  # noqa: E402

import tome  # noqa: E402
from launch.timing import median_seconds  # noqa: E402
from tome.attention import BACKENDS  # noqa: E402
from tome.flops import model_gflops  # noqa: E402
from tome.schedule import clamp_r, parse_r  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


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


def make_step(model, x, step: str, dtype: torch.dtype, device: torch.device):
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)
    if step == "inference":
        model.eval()

        @torch.no_grad()
        def run():
            with autocast:
                model(x)
        return run
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    target = torch.randint(0, model.num_classes, (x.shape[0],), device=device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16 and device.type == "cuda")

    def run():
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), target)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
    return run


def measure(models: dict, batch: int, args, device, dtype) -> dict:
    """Samples/s of each model. Repetitions are interleaved (one timed call of each model per
    round) so that drift in the machine's state hits all models alike; medians per model."""
    x = torch.randn(batch, 3, args.img_size, args.img_size, device=device)
    steps = {name: make_step(model, x, args.step, dtype, device) for name, model in models.items()}
    for fn in steps.values():
        median_seconds(fn, 0, args.warmup, device)
    times = {name: [] for name in steps}
    for _ in range(args.runs):
        for name, fn in steps.items():
            times[name].append(median_seconds(fn, 1, 0, device))
    return {name: batch / statistics.median(t) for name, t in times.items()}


def search_batch(model, args, device, dtype) -> int:
    """Largest power-of-two batch whose throughput still improves by >= 3% (or until OOM)."""
    best, best_speed, batch = 1, 0.0, 1
    while batch <= args.max_batch:
        try:
            speed = measure({"m": model}, batch, argparse.Namespace(**{**vars(args), "runs": 5,
                                                                        "warmup": 2}), device, dtype)["m"]
        except torch.OutOfMemoryError:
            break
        if speed < best_speed * 1.03:
            break
        best, best_speed, batch = batch, speed, batch * 2
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return best


def build(args, device):
    kwargs = {"img_size": args.img_size} if args.img_size else {}
    base = timm.create_model(args.model, pretrained=False, **kwargs).to(device)
    args.img_size = base.patch_embed.img_size[0]
    r = (args.r, args.inflection) if args.inflection is not None else args.r
    rs = parse_r(r, len(base.blocks))
    merged = tome.patch.timm(copy.deepcopy(base), attn=args.attn)
    merged.r = r
    models = {"unmerged": base, "merged": merged, "limit": limit_model(base, rs)}
    if args.compile:
        models = {k: torch.compile(m) for k, m in models.items()}
    return models, merged, rs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--img-size", type=int, default=None)
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
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.manual_seed(0)
    models, merged, rs = build(args, device)
    batch = search_batch(models["unmerged"], args, device, dtype) if args.batch == "search" else int(args.batch)
    speeds = measure(models, batch, args, device, dtype)
    tokens_in = merged.patch_embed.num_patches + merged.num_prefix_tokens
    tokens = merged._tome.expected_tokens(tokens_in, len(merged.blocks))
    gflops = {"unmerged": model_gflops(merged, tokens_in, [tokens_in] * len(rs)),
              "merged": model_gflops(merged, tokens_in, tokens)}
    gflops["limit"] = gflops["merged"]
    merged_x = speeds["merged"] / speeds["unmerged"]
    limit_x = speeds["limit"] / speeds["unmerged"]
    result = {"model": args.model, "r": args.r, "inflection": args.inflection, "schedule": rs,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
              "dtype": args.dtype, "step": args.step, "batch": batch, "compile": args.compile,
              "attn": args.attn,
              "throughput": speeds, "gflops": gflops, "tokens_out": tokens[-1],
              "merged_over_unmerged": merged_x, "limit_over_unmerged": limit_x,
              "efficiency": merged_x / limit_x, "torch": torch.__version__, "timm": timm.__version__}
    unit = "samples/s" if args.step == "inference" else "train samples/s"
    print(f"{args.model} r={args.r} {args.dtype} {args.step} batch {batch} attn={args.attn} "
          f"on {result['device']}")
    print(f"| model | {unit} | GFLOPs | x unmerged |")
    print("|---|---:|---:|---:|")
    for name in ("unmerged", "merged", "limit"):
        print(f"| {name} | {speeds[name]:.1f} | {gflops[name]:.2f} | {speeds[name] / speeds['unmerged']:.2f}x |")
    print(f"efficiency (merged speed-up / limit speed-up): {result['efficiency']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
