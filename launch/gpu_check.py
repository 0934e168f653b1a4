"""The GPU check: does the fast path give the reference results, and how close to the limit is it?

    python launch/gpu_check.py --out gpu_report          # on a machine with a CUDA device

For each of ViT-S/16 r13, ViT-B/16 r16 and ViT-L/16 r8 (224 px):
  1. correctness: the merged model on the GPU (fused SDPA, fp32) against the same model on the
     CPU with explicit attention: logits close, and the same tokens merged (source maps equal);
  2. torch.compile traces the patched model with no graph break;
  3. launch/bench.py in fp32, fp16 and bf16 (inference, best batch) and a bf16/fp16 training
     step: throughput of unmerged / merged / limit, and efficiency = merged / limit speed-up.
Writes <out>.json and <out>.md (the README's performance table format).
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import timm  # noqa: E402
import torch  # noqa: E402

import tome  # noqa: E402
from launch import bench  # noqa: E402

CASES = [("vit_small_patch16_224", 13), ("vit_base_patch16_224", 16), ("vit_large_patch16_224", 8)]


def check_correctness(name: str, r: int, device: torch.device) -> dict:
    torch.manual_seed(0)
    cpu = tome.patch.timm(timm.create_model(name).eval(), trace_source=True)
    cpu.r = r
    for blk in cpu.blocks:
        blk.attn.fused_attn = False  # the explicit reference attention
    gpu = copy.deepcopy(cpu).to(device)
    for blk in gpu.blocks:
        blk.attn.fused_attn = True
    x = torch.randn(8, 3, 224, 224)
    with torch.no_grad(), tome.trace() as t:
        ref = cpu(x)
        out = gpu(x.to(device)).cpu()
    same_merges = torch.equal(t.calls[0].source, t.calls[1].source.cpu())
    return {"max_abs_logit_diff": (out - ref).abs().max().item(), "same_merges": same_merges}


def check_compile(name: str, r: int, device: torch.device) -> dict:
    model = tome.patch.timm(timm.create_model(name).eval().to(device))
    model.r = r
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 224, 224, device=device))
    return {"graph_count": explanation.graph_count, "graph_breaks": explanation.graph_break_count}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_report")
    parser.add_argument("--quick", action="store_true", help="ViT-B only, fewer timed runs")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this check needs a GPU", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    cases = CASES[1:2] if args.quick else CASES
    report = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__, "cases": []}
    rows = []
    for name, r in cases:
        case = {"model": name, "r": r, "correctness": check_correctness(name, r, device),
                "compile": check_compile(name, r, device), "bench": []}
        runs = 10 if args.quick else 30
        for dtype in ("fp32", "fp16", "bf16"):
            for step in ("inference", "train"):
                if step == "train" and dtype == "fp32":
                    continue
                result = bench.main(["--model", name, "--r", str(r), "--dtype", dtype, "--step", step,
                                     "--device", "cuda", "--batch", "search", "--runs", str(runs)])
                case["bench"].append(result)
                t = result["throughput"]
                rows.append(f"| {report['device']} | {name} r{r} | {dtype} | {step} | {result['batch']} | "
                            f"{t['unmerged']:.0f} | {t['merged']:.0f} | {t['limit']:.0f} | "
                            f"{result['efficiency']:.2f} |")
        report["cases"].append(case)
        print(json.dumps({k: case[k] for k in ("model", "correctness", "compile")}))
    table = ["| device | model | dtype | step | batch | unmerged | merged | limit | efficiency |",
             "|---|---|---|---|---:|---:|---:|---:|---:|"] + rows
    with open(args.out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(args.out + ".md", "w") as f:
        f.write("\n".join(table) + "\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
