"""What merging a run actually did: the per-layer ``r`` requested and the ``r`` applied.

ToMe merges at most half of a layer's unprotected tokens, so an ``r`` beyond what the tokens allow
is clamped layer by layer. Each results.jsonl row records both schedules (``r_requested``,
``r_applied``: tokens merged in each layer, from the measured token counts), and the first clamped
row of a run logs one warning.
"""
from __future__ import annotations

from tome.schedule import parse_r


def applied_schedule(r, num_layers: int, tokens_in: int, tokens: list, log=None) -> dict:
    """``tokens``: the token count leaving each block; ``tokens_in``: entering the first."""
    requested = parse_r(r, num_layers)
    counts = [int(tokens_in)] + [int(t) for t in tokens]
    applied = [counts[i] - counts[i + 1] for i in range(min(len(tokens), num_layers))]
    out = {"r_requested": requested, "r_applied": applied}
    clamped = applied != requested[:len(applied)]
    if clamped and log is not None and not getattr(log, "clamp_warned", False):
        log.clamp_warned = True
        log.info(f"warning: r={r} asks for more merging than the tokens allow; merged per layer "
                 f"{applied} instead of {requested} (recorded as r_applied in results.jsonl, as "
                 f"for every clamped r after this one)")
    return out
