"""What ``launch/bench.py`` times: the unmerged model, the merged model and the zero-overhead
limit (``launch.engine.throughput.limit_model``), built from a timm name, a video/audio task
model or a transformers classifier, and measured in interleaved rounds; with ``--official PATH``
also the official ToMe's patch of the same timm model (``launch/runs/official_tome.py``)."""
from __future__ import annotations

import copy

import timm
import torch

import tome
from launch.engine import throughput
from launch.engine.throughput import limit_model, make_step, summarize, time_interleaved
from tome.schedule import parse_r

# Video and audio models, built by their task: video_vit_{micro,tiny,b,l,h}, audio_vit_{micro,tiny,s,b,l}
TASK_MODELS = ("video_vit_", "audio_vit_")


def measure(models: dict, batch: int, args, device, dtype) -> dict:
    """Per model: median samples/s and the median speed-up over "unmerged" within a round.
    Rounds are interleaved (one timed call of each model per round) so that drift in the
    machine's state hits all models alike."""
    x = torch.randn(batch, *args.input_shape, device=device)
    steps = {name: make_step(model, x, args.step, dtype, device) for name, model in models.items()}
    times = time_interleaved(steps, args.runs, args.warmup, device, getattr(args, "clock", "wall"))
    stats = summarize(times, {name: batch for name in steps}, baseline="unmerged")
    for name in times:  # unmerged time / this model's time, round by round
        stats[name]["speedup_per_round"] = [u / t for u, t in zip(times["unmerged"], times[name])]
    if "merged" in times and "limit" in times:  # merged speed-up / limit speed-up, round by round
        stats["merged"]["efficiency_per_round"] = [lim / mer for lim, mer in zip(times["limit"], times["merged"])]
    if "merged" in times and "official" in times:  # official time / ours, round by round
        stats["merged"]["over_official_per_round"] = [off / mer for off, mer in zip(times["official"], times["merged"])]
        stats["official"]["efficiency_per_round"] = [lim / off for lim, off in zip(times["limit"], times["official"])]
    return stats


def search_batch(model, args, device, dtype) -> int:
    """The best power-of-two batch of ``model`` (launch/engine/throughput.py's protocol)."""
    def make_run(batch):
        return make_step(model, torch.randn(batch, *args.input_shape, device=device), args.step,
                         dtype, device)
    return throughput.search_batch(make_run, device, max_batch=args.max_batch,
                                   clock=getattr(args, "clock", "wall"))


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
    # Every timed model is a copy of ``base``: a ViT-S/16 measured 5-10% faster in the freshly
    # initialised original than in any deep copy of it (1 thread, CPU time), and copies within
    # noise of each other, so timing the original against copies would favour the unmerged model.
    models = {"unmerged": copy.deepcopy(base), "merged": merged, "limit": limit_model(base, rs)}
    official = getattr(args, "official", None)
    if official is not None:
        from launch.runs.official_tome import official_model
        # timed between the unmerged and our merged model: adjacent to ours in every round
        models = {"unmerged": models["unmerged"], "official": official_model(base, rs, official),
                  "merged": merged, "limit": models["limit"]}
    if args.compile:
        models = {k: torch.compile(m) for k, m in models.items()}
    return models, merged, rs
