"""The GPU check: does every attention backend give the reference merges, and how close to the
zero-overhead limit does each one get?

    python launch/gpu_check.py --out gpu_report            # all cases (a CUDA device)
    python launch/gpu_check.py --quick --out gpu_quick     # ViT-B/16 r16 only, fp32 and fp16
    python launch/gpu_check.py --smoke --out /tmp/smoke    # tiny models on the CPU: the script works

Cases: ViT-S/16 r13, ViT-B/16 r16, ViT-L/16 r8 (224 px), MAE-ST ViT-L r65 (16 frames, 1568 tokens)
and Audio-MAE ViT-B r24 (1024 x 128 fbank, 512 tokens), random weights. For each case:

1. correctness, in fp32 on the device: the merged model with each backend (``sdpa``, ``flex``,
   ``eager``) against the same model with explicit attention (``eager``): the same tokens merged
   (source maps equal) and the largest logit difference; and the graph breaks of each backend's
   model under torch.compile (dynamo's explain: tracing only);
2. speed, for each dtype (fp32, and fp16 / bf16 autocast) and step (inference, a training step):
   the unmerged model, the limit (the same tokens per layer simply dropped, timm's fused
   attention) and the merged model with each backend, timed interleaved (one call of each per
   round, after a short warm-up), median per model. Merged speed-up = merged / unmerged, limit
   speed-up = limit / unmerged, efficiency = merged speed-up / limit speed-up.

Flex attention runs its fused kernel through ``torch.compile(flex_attention)`` (``tome.attention``);
its compilation happens in the warm-up. ``--compile`` compiles every whole model instead (slow to
start). Results are written after every case to ``<out>.json`` and ``<out>.md``, so a run that is
stopped early keeps what it measured. ``--smoke`` runs the whole script on tiny models on the
CPU (flex unfused, one timed round): it proves the script, not the speed.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import timm
import torch

import tome
import tome.attention
from launch.engine.throughput import DTYPES, limit_model, make_step
from launch.engine.timing import median_seconds

BACKENDS = tome.attention.BACKENDS
STEPS = ("inference", "train")


def _image(name, **kw):
    return lambda: timm.create_model(name, pretrained=False, **kw)


def _video(variant, **kw):
    def build():
        from video.model import build_video_vit
        return build_video_vit(variant, 400, **kw)
    return build


def _audio(variant, **kw):
    def build():
        from audio.model import build_audio_vit
        return build_audio_vit(variant, num_classes=527, **kw)
    return build


# name: (builder, patch, r, input shape per sample, inference batch, training batch)
CASES = {
    "vit_s16_r13": (_image("vit_small_patch16_224"), "timm", 13, (3, 224, 224), 256, 128),
    "vit_b16_r16": (_image("vit_base_patch16_224"), "timm", 16, (3, 224, 224), 256, 128),
    "vit_l16_r8": (_image("vit_large_patch16_224"), "timm", 8, (3, 224, 224), 128, 64),
    "maest_vit_l_r65": (_video("l"), "video", 65, (3, 16, 224, 224), 8, 4),
    "audiomae_vit_b_r24": (_audio("b", drop_path=0.0), "audio", 24, (1, 1024, 128), 64, 32),
}
SMOKE_CASES = {
    "tiny_image_r4": (_image("vit_small_patch16_224", img_size=32, patch_size=8, embed_dim=48, depth=3,
                             num_heads=3, num_classes=7), "timm", 4, (3, 32, 32), 2, 2),
    "tiny_video_r4": (_video("micro", num_frames=4, img_size=32, patch=8), "video", 4, (3, 4, 32, 32), 2, 2),
    "tiny_audio_r4": (_audio("micro", target_length=64, mel_bins=32, patch=8, drop_path=0.0), "audio", 4,
                      (1, 64, 32), 2, 2),
}
QUICK = ["vit_b16_r16"]


def patched(base: torch.nn.Module, family: str, r: int, attn: str, trace_source: bool = False):
    model = getattr(tome.patch, family)(copy.deepcopy(base), trace_source=trace_source, attn=attn)
    model.r = r
    return model


def _run_traced(model, x: torch.Tensor):
    """(output, [B, T_out, T_in] source map) of one call (the source map through tome.trace)."""
    with tome.trace(source=True) as t:
        out = model(x)
    return out, t.source


def check_backends(base, family: str, r: int, x: torch.Tensor) -> dict:
    """fp32: each backend's logits and merges against explicit attention (the eager backend)."""
    result = {}
    with torch.no_grad():
        ref_model = patched(base, family, r, "eager", trace_source=True).eval()
        ref, ref_source = _run_traced(ref_model, x)
        scale = ref.abs().max().item()
        for attn in BACKENDS:
            model = patched(base, family, r, attn, trace_source=True).eval()
            try:
                out, source = _run_traced(model, x)
            except Exception as e:  # noqa: BLE001  (reported in the table)
                result[attn] = {"error": f"{type(e).__name__}: {str(e)[:300]}", "same_merges": False,
                                "max_abs_logit_diff": float("nan"), "relative": float("nan")}
                continue
            diff = (out - ref).abs().max().item()
            result[attn] = {"max_abs_logit_diff": diff, "relative": diff / max(scale, 1e-12),
                            "same_merges": bool(torch.equal(source, ref_source))}
    return result


def check_graph_breaks(base, family: str, r: int, x: torch.Tensor) -> dict:
    """Graph breaks of each backend's merged model under torch.compile (dynamo only, no kernels)."""
    result = {}
    for attn in BACKENDS:
        model = patched(base, family, r, attn).eval()
        try:
            explanation = torch._dynamo.explain(model)(x)
        except Exception as e:  # noqa: BLE001  (reported)
            result[attn] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            continue
        result[attn] = {"graphs": explanation.graph_count, "graph_breaks": explanation.graph_break_count}
    torch._dynamo.reset()
    return result


def time_models(models: dict, x: torch.Tensor, step: str, dtype: torch.dtype, runs: int,
                warmup: int, device: torch.device) -> tuple[dict, dict]:
    """Samples/s of each model: warm-up, then ``runs`` interleaved rounds, median per model.
    A merged model that fails in its warm-up is left out (its one-line error is returned), so one
    broken backend does not cost the rest of a GPU run."""
    steps, errors = {}, {}
    for name, model in models.items():
        fn = make_step(model, x, step, dtype, device)
        try:
            median_seconds(fn, 0, warmup, device)
        except Exception as e:  # noqa: BLE001  (reported, not hidden)
            if not name.startswith("merged_"):
                raise
            errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
            print(f"  {name} failed: {errors[name]}", flush=True)
            continue
        steps[name] = fn
    times = {name: [] for name in steps}
    for _ in range(runs):
        for name, fn in steps.items():
            times[name].append(median_seconds(fn, 1, 0, device))
    return {name: x.shape[0] / statistics.median(t) for name, t in times.items()}, errors


def run_case(name: str, spec, args, device: torch.device) -> dict:
    build, family, r, shape, batch_inf, batch_train = spec
    torch.manual_seed(0)
    base = build().to(device).eval()
    rs = tome.parse_r(r, len(base.blocks))
    case = {"case": name, "r": r, "schedule": rs, "correctness": None, "speed": []}
    t0 = time.time()
    x = torch.randn(2, *shape, device=device)
    case["correctness"] = check_backends(base, family, r, x)
    if not args.smoke or name == next(iter(SMOKE_CASES)):  # smoke: once, to run the code
        case["compile"] = check_graph_breaks(base, family, r, x)
    print(f"{name}: correctness {json.dumps(case['correctness'])}, compile "
          f"{json.dumps(case.get('compile'))} ({time.time() - t0:.0f} s)", flush=True)
    for step in args.steps:
        batch = batch_train if step == "train" else batch_inf
        x = torch.randn(batch, *shape, device=device)
        for dtype_name in args.dtypes:
            t0 = time.time()
            models = {"unmerged": copy.deepcopy(base), "limit": limit_model(base, rs)}
            for attn in args.backends:
                models[f"merged_{attn}"] = patched(base, family, r, attn)
            if args.compile:
                models = {k: torch.compile(m) for k, m in models.items()}
            speed, errors = time_models(models, x, step, DTYPES[dtype_name], args.runs, args.warmup,
                                        device)
            limit_x = speed["limit"] / speed["unmerged"]
            row = {"step": step, "dtype": dtype_name, "batch": batch, "throughput": speed,
                   "limit_over_unmerged": limit_x, "backends": {}, "errors": errors}
            for attn in args.backends:
                if f"merged_{attn}" not in speed:
                    continue
                merged_x = speed[f"merged_{attn}"] / speed["unmerged"]
                row["backends"][attn] = {"merged_over_unmerged": merged_x,
                                         "efficiency": merged_x / limit_x}
            row["seconds"] = time.time() - t0
            case["speed"].append(row)
            print(f"{name} {dtype_name} {step} batch {batch}: limit {limit_x:.2f}x, " + ", ".join(
                f"{a} {v['merged_over_unmerged']:.2f}x (eff {v['efficiency']:.2f})"
                for a, v in row["backends"].items()) + f" ({row['seconds']:.0f} s)", flush=True)
            del models
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return case


def table(report: dict) -> str:
    lines = ["| device | case | dtype | step | batch | unmerged /s | limit x | backend | merged /s | "
             "merged x | efficiency | same merges | max logit diff |",
             "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---|---:|"]
    for case in report["cases"]:
        for row in case["speed"]:
            for attn, v in row["backends"].items():
                check = case["correctness"][attn]
                lines.append(
                    f"| {report['device']} | {case['case']} | {row['dtype']} | {row['step']} | "
                    f"{row['batch']} | {row['throughput']['unmerged']:.1f} | "
                    f"{row['limit_over_unmerged']:.2f} | {attn} | "
                    f"{row['throughput'][f'merged_{attn}']:.1f} | {v['merged_over_unmerged']:.2f} | "
                    f"{v['efficiency']:.2f} | {check['same_merges']} | {check['max_abs_logit_diff']:.1e} |")
    errors = [f"- {case['case']} {where}: {error}" for case in report["cases"]
              for where, error in [(a, c["error"]) for a, c in case["correctness"].items() if "error" in c]
              + [(f"{row['dtype']} {row['step']} {m}", e) for row in case["speed"]
                 for m, e in row["errors"].items()]]
    if errors:
        lines += ["", "Errors:"] + errors
    return "\n".join(lines) + "\n"


def write(report: dict, out: str) -> None:
    with open(out + ".json", "w") as f:
        json.dump(report, f, indent=2)
    with open(out + ".md", "w") as f:
        f.write(table(report))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="gpu_report")
    parser.add_argument("--quick", action="store_true", help="ViT-B/16 r16 only, fp32 and fp16")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU, one round")
    parser.add_argument("--cases", nargs="+", default=None, help=f"subset of {list(CASES)}")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=None)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--runs", type=int, default=None, help="timed rounds (default 10, quick 8)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile every whole model")
    args = parser.parse_args(argv)
    cases = SMOKE_CASES if args.smoke else CASES
    if args.cases is None:
        args.cases = list(cases) if not args.quick else QUICK
    unknown = [c for c in args.cases if c not in cases]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; valid: {list(cases)}")
    if args.dtypes is None:
        args.dtypes = ["fp32", "fp16"] if args.quick else (["fp32", "bf16"] if args.smoke
                                                          else list(DTYPES))
    if args.runs is None:
        args.runs = 1 if args.smoke else (8 if args.quick else 10)
    if args.smoke:
        args.warmup = 0
    return args, cases


def main(argv=None) -> dict:
    args, cases = parse_args(argv)
    if args.smoke:
        device = torch.device("cpu")
        tome.attention.COMPILE_FLEX = False  # no kernel compilation: the script, not the speed
    elif torch.cuda.is_available():
        device = torch.device("cuda")
    else:
        print("no CUDA device: this check needs a GPU (or --smoke on the CPU)", file=sys.stderr)
        raise SystemExit(2)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    report = {"device": name, "torch": torch.__version__, "timm": timm.__version__,
              "args": {k: v for k, v in vars(args).items()}, "cases": []}
    start = time.time()
    try:
        for case in args.cases:
            report["cases"].append(run_case(case, cases[case], args, device))
            report["seconds"] = time.time() - start
            write(report, args.out)
    finally:
        if args.smoke:
            tome.attention.COMPILE_FLEX = True
    print(table(report))
    print(f"total {time.time() - start:.0f} s; wrote {args.out}.json and {args.out}.md")
    return report


if __name__ == "__main__":
    main()
