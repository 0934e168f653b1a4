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
Timing (launch/engine/throughput.py): warm-up, then ``--runs`` rounds, each timing every model once
(CUDA events on GPU); throughput is the median per model, speed-ups the median of the per-round
ratios to the unmerged model.
"""
from __future__ import annotations

import argparse
import copy
import json

import timm
import torch

import tome
from launch.engine import throughput
from launch.engine.throughput import DTYPES, make_step, summarize, time_interleaved
from tome.attention import BACKENDS
from tome.flops import model_gflops
from tome.schedule import clamp_r, parse_r

# Video and audio models, built by their task: video_vit_{micro,tiny,b,l,h}, audio_vit_{micro,tiny,s,b,l}
TASK_MODELS = ("video_vit_", "audio_vit_")


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


def measure(models: dict, batch: int, args, device, dtype) -> dict:
    """Per model: median samples/s and the median speed-up over "unmerged" within a round.
    Rounds are interleaved (one timed call of each model per round) so that drift in the
    machine's state hits all models alike."""
    x = torch.randn(batch, *args.input_shape, device=device)
    steps = {name: make_step(model, x, args.step, dtype, device) for name, model in models.items()}
    times = time_interleaved(steps, args.runs, args.warmup, device)
    stats = summarize(times, {name: batch for name in steps}, baseline="unmerged")
    if "merged" in times and "limit" in times:  # merged speed-up / limit speed-up, round by round
        stats["merged"]["efficiency_per_round"] = [lim / mer for lim, mer in zip(times["limit"], times["merged"])]
    return stats


def search_batch(model, args, device, dtype) -> int:
    """The best power-of-two batch of ``model`` (launch/engine/throughput.py's protocol)."""
    def make_run(batch):
        return make_step(model, torch.randn(batch, *args.input_shape, device=device), args.step,
                         dtype, device)
    return throughput.search_batch(make_run, device, max_batch=args.max_batch)


def _task_model(name: str):
    """A video (``video_vit_<variant>``) or audio (``audio_vit_<variant>``) model built by its task
    with the task's default input shape (MAE-ST 16x224 clips, Audio-MAE 1024x128 fbanks)."""
    from types import SimpleNamespace

    from launch.engine.config import ToMeConfig
    from launch.engine.tasks import get_task
    modality, variant = name.split("_vit_", 1)
    task = get_task(modality)
    cfg = SimpleNamespace(data=task.data_schema(), model=task.model_schema(variant=variant, drop_path=0.0),
                          tome=ToMeConfig())
    return task, cfg


def build(args, device):
    if args.model.startswith("hf:"):  # transformers video/audio classifiers (launch/engine/hf_bench.py)
        from launch.engine.hf_bench import build as build_hf
        return build_hf(args, device)
    r = (args.r, args.inflection) if args.inflection is not None else args.r
    if args.model.startswith(TASK_MODELS):
        task, cfg = _task_model(args.model)
        if args.img_size and args.model.startswith("video_"):
            cfg.data.crop_size = args.img_size
        cfg.tome.attn = args.attn
        base = task.build_model(cfg).to(device)
        merged = task.patch(copy.deepcopy(base), cfg)
        args.input_shape = tuple(task.input_shape(cfg))
    else:
        kwargs = {"img_size": args.img_size} if args.img_size else {}
        base = timm.create_model(args.model, pretrained=False, **kwargs).to(device)
        merged = tome.patch.timm(copy.deepcopy(base), attn=args.attn)
        size = base.patch_embed.img_size
        args.input_shape = (3, size[0], size[1])
    rs = parse_r(r, len(base.blocks))
    merged.r = r
    models = {"unmerged": base, "merged": merged, "limit": limit_model(base, rs)}
    if args.compile:
        models = {k: torch.compile(m) for k, m in models.items()}
    return models, merged, rs


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
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    torch.manual_seed(0)
    models, merged, rs = build(args, device)
    batch = search_batch(models["unmerged"], args, device, dtype) if args.batch == "search" else int(args.batch)
    stats = measure(models, batch, args, device, dtype)
    speeds = {name: s["throughput"] for name, s in stats.items()}
    tokens_in = getattr(args, "tokens_in", None) or merged.patch_embed.num_patches + merged.num_prefix_tokens
    tokens = merged._tome.expected_tokens(tokens_in, len(rs))
    gflops = {"unmerged": model_gflops(merged, tokens_in, [tokens_in] * len(rs)),
              "merged": model_gflops(merged, tokens_in, tokens)}
    gflops["limit"] = model_gflops(merged, tokens_in, tokens, matching=False)  # drops tokens for free
    merged_x, limit_x = stats["merged"]["speedup"], stats["limit"]["speedup"]  # paired per round
    result = {"model": args.model, "input_shape": list(args.input_shape), "r": args.r,
              "inflection": args.inflection, "schedule": rs, "runs": args.runs,
              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
              "dtype": args.dtype, "step": args.step, "batch": batch, "compile": args.compile,
              "attn": args.attn,
              "throughput": speeds, "throughput_quartiles": {
                  name: [s["throughput_q1"], s["throughput_q3"]] for name, s in stats.items()},
              "speedup_quartiles": {name: [s["speedup_q1"], s["speedup_q3"]] for name, s in stats.items()},
              "gflops": gflops, "tokens_out": tokens[-1],
              "merged_over_unmerged": merged_x, "limit_over_unmerged": limit_x,
              "efficiency": merged_x / limit_x,
              "efficiency_per_round": stats["merged"].get("efficiency_per_round"), "torch": torch.__version__, "timm": timm.__version__}
    unit = "samples/s" if args.step == "inference" else "train samples/s"
    print(f"{args.model} r={args.r} {args.dtype} {args.step} batch {batch} attn={args.attn} "
          f"on {result['device']}")
    print(f"| model | {unit} | GFLOPs | x unmerged |")
    print("|---|---:|---:|---:|")
    for name in ("unmerged", "merged", "limit"):
        print(f"| {name} | {speeds[name]:.2f} | {gflops[name]:.2f} | {stats[name]['speedup']:.2f}x |")
    print(f"efficiency (merged speed-up / limit speed-up): {result['efficiency']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
