"""The r for a FLOP budget: the smallest merge schedule whose analytic FLOPs are at most a given
fraction of the unmerged model's, without timing anything.

    tome.r_for_flops(model, 0.5)                        # constant r: half the FLOPs
    tome.r_for_flops(model, 0.5, kind="decreasing")     # the paper's (r, -1) schedule
    tome.r_for_flops(hf_model, 0.5, example=x)          # token count read from one forward

FLOPs follow :mod:`tome.flops` (fvcore's convention, matching cost included). Every r from 0 to
the largest one that still changes the token counts is counted (a few hundred analytic sums), so
the answer does not assume the FLOPs fall monotonically with r.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from .flops import model_gflops
from .schedule import Schedule, parse_r, token_counts
from .state import tome_info, trace

KINDS = ("constant", "decreasing")


def schedule_of(r: int, kind: str) -> Schedule:
    """``r`` as a schedule of ``kind``: constant (``r`` every layer) or decreasing (``(r, -1)``,
    2r in the first layer down to 0 in the last)."""
    if kind not in KINDS:
        raise ValueError(f"schedule kind must be one of {KINDS}, got {kind!r}")
    return r if kind == "constant" else (r, -1.0)


def useful_r_max(tokens_in: int, protected: int, num_layers: int, kind: str = "constant") -> int:
    """The smallest r from which a larger r no longer changes any layer's token count (every
    layer already merges as much as it can, half of its unprotected tokens)."""
    def counts(r):
        return token_counts(tokens_in, protected, parse_r(schedule_of(r, kind), num_layers))
    # A request of tokens_in * num_layers saturates every layer of either kind (a decreasing
    # schedule's second-to-last layer asks for 2r / (num_layers - 1) >= tokens_in).
    hi = max(1, tokens_in * num_layers)
    saturated, lo = counts(hi), 0
    while hi - lo > 1:  # token counts only fall as r grows, so bisect for the first saturated r
        mid = (lo + hi) // 2
        if counts(mid) == saturated:
            hi = mid
        else:
            lo = mid
    return hi


def model_tokens_in(model: torch.nn.Module, example: Optional[torch.Tensor] = None) -> int:
    """Tokens entering the first block: from one forward of ``example`` when given, else from a
    timm (image, video, audio) or torchvision model's patch geometry."""
    if example is not None:
        saved, was_training = model.r, model.training
        model.r = 0
        try:
            with torch.no_grad(), trace() as t:
                model.eval()(example)
        finally:
            model.r = saved
            model.train(was_training)
        return t.tokens_in
    embed = getattr(model, "patch_embed", None)
    if embed is not None and hasattr(embed, "num_patches"):  # timm, and the video / audio ViTs
        return embed.num_patches + model.num_prefix_tokens
    if hasattr(model, "conv_proj") and hasattr(model, "image_size"):  # torchvision
        return (model.image_size // model.patch_size) ** 2 + 1
    raise ValueError(f"cannot tell how many tokens {type(model).__name__} takes; pass tokens_in= "
                     f"or example= (one input batch)")


@dataclass
class FlopTarget:
    """The answer of :func:`r_for_flops`: the schedule and what it costs."""
    r: int
    schedule: Schedule        # what to set as ``model.r``
    gflops: float             # per sample, merged
    unmerged_gflops: float    # per sample, r = 0
    fraction: float           # gflops / unmerged_gflops
    tokens: list              # tokens leaving each block


def r_for_flops(model: torch.nn.Module, fraction: float, kind: str = "constant",
                tokens_in: Optional[int] = None, example: Optional[torch.Tensor] = None) -> FlopTarget:
    """The smallest r of schedule ``kind`` whose analytic FLOPs are at most ``fraction`` of the
    unmerged model's (``fraction`` in (0, 1]; a 2x FLOP reduction is 0.5), for any patched model.

    ``tokens_in``: tokens entering the first block; default from ``example`` (one input batch) or
    the model's patch geometry (see :func:`model_tokens_in`). Raises when no r reaches
    ``fraction``, naming the smallest fraction merging can reach."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
        raise ValueError(f"FLOP fraction must be a number in (0, 1] (0.5: half the unmerged FLOPs), "
                         f"got {fraction!r}")
    schedule_of(0, kind)  # validates kind
    info = tome_info(model)
    if tokens_in is None:
        tokens_in = model_tokens_in(model, example)
    num_layers = model._tome_num_layers()
    unmerged = model_gflops(model, tokens_in, [tokens_in] * num_layers)
    best = None
    for r in range(useful_r_max(tokens_in, info.protected, num_layers, kind) + 1):
        schedule = schedule_of(r, kind)
        tokens = token_counts(tokens_in, info.protected, parse_r(schedule, num_layers))
        gflops = model_gflops(model, tokens_in, tokens)
        if best is None or gflops < best.gflops:
            best = FlopTarget(r, schedule, gflops, unmerged, gflops / unmerged, tokens)
        if gflops <= fraction * unmerged:
            return FlopTarget(r, schedule, gflops, unmerged, gflops / unmerged, tokens)
    raise ValueError(f"FLOP fraction {fraction} cannot be reached with a {kind} schedule: the "
                     f"fewest FLOPs are {best.fraction:.3f} of the unmerged model's (r={best.r}, "
                     f"{best.tokens[-1]} tokens left)")
