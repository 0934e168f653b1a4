"""When merging will not help: name the case where the merged model measured slower than the
unmerged one, say why, and find the batch from which it pays off.

Two causes, told apart by the measurements at hand:
  * the batch is too small to fill the device: fewer tokens do not make a call faster (the
    zero-overhead limit, which drops the same tokens for free, is no faster either), or a larger
    batch makes merging pay;
  * the merge ops outweigh the tokens saved: dropping the tokens for free would be faster, but
    matching and merging cost more than that, and no larger batch changes it.

``payoff_batch`` doubles the batch until the merged model measures at least as fast as the
unmerged one; it takes the measurement as a callable, so that the engine (``measure_sweep``) and
``launch/bench.py`` (its three interleaved models) share the search and tests can hand it a
worked speed-up curve.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import torch


@dataclass
class Payoff:
    """The outcome of :func:`payoff_batch`: ``batch`` is the first batch whose merged speed-up
    reached 1 (None: none up to ``max_batch``); ``tried`` maps every measured batch to its speed-up."""
    batch: Optional[int]
    tried: Dict[int, float] = field(default_factory=dict)
    stopped: str = ""           # why the search ended without a batch ("out of memory", "max_batch N")

    @property
    def speedup(self) -> Optional[float]:
        return self.tried.get(self.batch) if self.batch is not None else None


def payoff_batch(speedup_at: Callable[[int], float], batch: int, max_batch: int) -> Payoff:
    """Double ``batch`` (2x, 4x, ... up to ``max_batch``) until ``speedup_at(b)``, the merged
    model's measured speed-up over the unmerged one at batch ``b``, is at least 1."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"payoff search batch must be a positive integer, got {batch!r}")
    out = Payoff(None)
    b = batch * 2
    while b <= max_batch:
        try:
            out.tried[b] = speedup_at(b)
        except torch.OutOfMemoryError:
            out.stopped = f"out of memory at batch {b}"
            return out
        if out.tried[b] >= 1.0:
            out.batch = b
            return out
        b *= 2
    out.stopped = f"measured up to batch {max_batch}" if out.tried else \
        f"no larger batch measured (the search stops at batch {max_batch})"
    return out


def cause(payoff: Optional[Payoff] = None, limit_speedup: Optional[float] = None) -> str:
    """Why the merged model is slower: from the limit's speed-up when it was measured, else from
    whether a larger batch pays off."""
    if limit_speedup is not None:
        if limit_speedup < 1.0:
            return (f"the batch is too small to fill the device: dropping the same tokens for free "
                    f"is no faster either (limit {limit_speedup:.2f}x)")
        return (f"the merge ops outweigh the tokens saved: dropping the same tokens for free would "
                f"give {limit_speedup:.2f}x")
    if payoff is not None and payoff.batch is not None:
        return "the batch is too small to fill the device"
    if payoff is not None and payoff.tried:
        return "the merge ops outweigh the tokens saved"
    return "the batch may be too small to fill the device, or the merge ops outweigh the tokens saved"


def message(label: str, speedup: float, batch: int, payoff: Optional[Payoff] = None,
            limit_speedup: Optional[float] = None) -> str:
    """One line: the merged model at ``label`` measured ``speedup`` (< 1) at ``batch``; why; and
    where it starts to pay off."""
    text = (f"merging does not help here: the merged model ({label}) measured {speedup:.2f}x the "
            f"unmerged one at batch {batch}, slower; {cause(payoff, limit_speedup)}; ")
    if payoff is None:
        return text + "no larger batch was measured"
    if payoff.batch is not None:
        return text + f"it starts to pay off at batch {payoff.batch} ({payoff.speedup:.2f}x)"
    if not payoff.tried:
        return text + payoff.stopped
    best = max(payoff.tried, key=payoff.tried.get)
    return (text + f"no larger batch paid off ({payoff.stopped}; best {payoff.tried[best]:.2f}x at "
            f"batch {best})")
