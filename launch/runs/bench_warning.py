"""``launch/bench.py``'s warning when the merged model measured slower than the unmerged one:
why (from the zero-overhead limit measured beside it) and the batch from which merging pays off
(doubling the batch up to ``--max-batch``; launch/engine/slow_merge.py)."""
from __future__ import annotations

import torch

from launch.engine import slow_merge
from launch.runs.benchmark import measure


def slow_merge_note(models: dict, stats: dict, batch: int, args, device: torch.device,
                    dtype: torch.dtype, label: str) -> dict:
    """``message`` (one line) and ``payoff_batch`` for a merged model that measured slower than
    the unmerged one in ``stats`` (launch/runs/benchmark.py ``measure``)."""
    pair = {name: models[name] for name in ("unmerged", "merged")}

    def speedup_at(b: int) -> float:
        return measure(pair, b, args, device, dtype)["merged"]["speedup"]

    payoff = slow_merge.payoff_batch(speedup_at, batch, args.max_batch)
    message = slow_merge.message(label, stats["merged"]["speedup"], batch, payoff,
                                 limit_speedup=stats.get("limit", {}).get("speedup"))
    return {"message": message, "payoff_batch": payoff.batch,
            "payoff_tried": {str(b): s for b, s in payoff.tried.items()}}
