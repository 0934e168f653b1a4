"""Runs whose throughput falls as r grows: merging more tokens must not make a model slower.

ToMe's throughput rises with r (fewer tokens in every later block). A measured fall of more than a
tolerance means the timing measured something else (a busy machine, a thread count fighting other
processes), and the speed-ups of that run are not to be trusted. ``compare.py`` lists every such
run under its table.
"""
from __future__ import annotations

TOLERANCE = 0.10  # a later (larger) r may time at most this fraction below an earlier one


def throughput_drops(rows: list[dict], tolerance: float = TOLERANCE) -> list[dict]:
    """For each run, the worst fall of throughput from a smaller r to a larger r, when it exceeds
    ``tolerance`` (a fraction of the smaller r's throughput). Rows with a schedule (a list) for r
    or without a throughput are left out. Returns dicts with run, r_from, r_to, drop."""
    by_run: dict = {}
    for row in rows:
        if isinstance(row.get("r"), int) and not isinstance(row["r"], bool) and row.get("throughput"):
            by_run.setdefault(row["run"], []).append((row["r"], row["throughput"]))
    found = []
    for run, points in by_run.items():
        points.sort()
        worst = None
        for i, (r_lo, t_lo) in enumerate(points):
            for r_hi, t_hi in points[i + 1:]:
                drop = 1 - t_hi / t_lo
                if r_hi > r_lo and drop > tolerance and (worst is None or drop > worst["drop"]):
                    worst = {"run": run, "r_from": r_lo, "r_to": r_hi, "drop": drop}
        if worst is not None:
            found.append(worst)
    return found


def report_lines(rows: list[dict], name=lambda run: run, tolerance: float = TOLERANCE) -> list[str]:
    """Markdown lines naming each run whose throughput falls by more than ``tolerance`` with r."""
    return [f"Throughput falls as r grows in {name(d['run'])}: r={d['r_from']} to r={d['r_to']} is "
            f"{100 * d['drop']:.0f}% slower (more than {100 * tolerance:.0f}%); its speed-ups are not a result."
            for d in throughput_drops(rows, tolerance)]
