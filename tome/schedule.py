"""Merge schedules: how many tokens each layer removes.

A schedule is given as
  * an int ``r``: every layer removes ``r`` tokens;
  * a pair ``(r, inflection)`` with ``inflection`` in [-1, 1]: a linear ramp from
    ``int(r * (1 - inflection))`` in the first layer to ``2r - that`` in the last, so the total stays
    about ``r * depth``. ``(r, -1)`` is the paper's decreasing schedule (2r first, 0 last);
  * a list of ints, one per layer (shorter lists are padded with zeros).
Whatever the schedule says, a layer never removes more than half of its unprotected tokens.
"""
from __future__ import annotations

from typing import Sequence, Union

Schedule = Union[int, tuple, Sequence[int]]


def _check_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # Allow integral floats that YAML or numpy may produce, reject 2.5.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif hasattr(value, "__index__") and not isinstance(value, bool):
            value = int(value.__index__())
        else:
            raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return value


def parse_r(r: Schedule, num_layers: int) -> list[int]:
    """Expand a schedule into one requested ``r`` per layer (before clamping)."""
    if num_layers <= 0:
        raise ValueError(f"num_layers must be positive, got {num_layers!r}")
    if isinstance(r, tuple):
        if len(r) != 2:
            raise ValueError(f"a schedule tuple must be (r, inflection), got {r!r}")
        base = _check_int(r[0], "r")
        inflection = r[1]
        if isinstance(inflection, bool) or not isinstance(inflection, (int, float)):
            raise ValueError(f"inflection must be a number in [-1, 1], got {inflection!r}")
        if not -1.0 <= float(inflection) <= 1.0:
            raise ValueError(f"inflection must be in [-1, 1], got {inflection!r}")
        first = int(base * (1.0 - inflection))
        last = 2 * base - first
        if num_layers == 1:
            return [base]
        step = (last - first) / (num_layers - 1)
        return [int(first + step * i) for i in range(num_layers)]
    if isinstance(r, (list,)) or (hasattr(r, "__len__") and not isinstance(r, (str, bytes))):
        values = [_check_int(v, f"r[{i}]") for i, v in enumerate(r)]
        if len(values) > num_layers:
            raise ValueError(
                f"schedule has {len(values)} entries but the model has {num_layers} layers")
        return values + [0] * (num_layers - len(values))
    return [_check_int(r, "r")] * num_layers


def clamp_r(r: int, num_tokens: int, protected: int) -> int:
    """At most half of the unprotected tokens can merge in one layer."""
    return max(0, min(r, (num_tokens - protected) // 2))


def token_counts(num_tokens: int, protected: int, rs: Sequence[int]) -> list[int]:
    """Tokens leaving each layer for a given per-layer schedule (after clamping)."""
    counts = []
    for r in rs:
        num_tokens -= clamp_r(r, num_tokens, protected)
        counts.append(num_tokens)
    return counts
