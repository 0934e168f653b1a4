"""What ``launch/compare.py`` writes: a table (markdown + CSV) and an accuracy-versus-speed-up
plot (PNG) of runs.

Each row is one evaluated r of one run (from its results.jsonl). Speed-up is throughput over the
unpatched model's, measured in the same process in interleaved rounds (the median of per-round
ratios, with its quartiles), so it compares across machines; rows written before that fall back
to throughput over the same run's r=0 row. The metric carries its standard error (binomial for
accuracies; bootstrap over clips, with a 95% interval, for mAP). Where a config names a published
row (``paper: <id>``), the paper's numbers sit beside ours.
"""
from __future__ import annotations

import csv
import json
import os

import yaml

from launch.engine.monotone import report_lines as throughput_falls
from launch.engine.paper import README_ROWS, TABLE_ROWS, row as paper_row
from launch.engine.runlog import read_jsonl

METRICS = ("acc1", "acc5", "map", "mauc", "view_acc1")
COLUMNS = ["run", "task", "model", "train_r", "r", "metric", "value", "value_se", "value_lo",
           "value_hi", "throughput", "speedup", "speedup_q1", "speedup_q3", "gflops", "tokens_out",
           "skipped_files", "train_s", "train_speedup", "paper_base", "paper_tome", "paper_speedup",
           "note", "paper_source"]
NOTE_MERGE_OFF = "ToMe-trained model with merging off, not the paper's baseline (trained without merging)"


def find_runs(paths) -> list[str]:
    runs = []
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such run directory: {path}")
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames[:] = sorted(d for d in dirnames if d not in ("tb", "submitit", "compare"))
            if "results.jsonl" in filenames:
                runs.append(dirpath)
    return runs


def collect(paths) -> list[dict]:
    rows = []
    for run_dir in find_runs(paths):
        cfg = {}
        if os.path.isfile(os.path.join(run_dir, "config.yaml")):
            with open(os.path.join(run_dir, "config.yaml")) as f:
                cfg = yaml.safe_load(f) or {}
        results = read_jsonl(os.path.join(run_dir, "results.jsonl"))
        # one record per epoch (the last written), should a resumed run have written one twice
        epochs = list({e.get("epoch"): e for e in read_jsonl(os.path.join(run_dir, "log.jsonl"))}.values())
        train_s = sum(e.get("epoch_seconds", 0.0) for e in epochs) if epochs else None
        base = next((r.get("throughput") for r in results if r["r"] == 0), None)
        paper = paper_row(cfg["paper"]) if cfg.get("paper") in {**README_ROWS, **TABLE_ROWS} else None
        tome_cfg = cfg.get("tome") or {}
        train_r = tome_cfg.get("r", 0) if (cfg.get("train") or {}).get("epochs", 0) else 0
        for res in results:
            matched = _paper_matches(paper, res["r"], train_r, tome_cfg.get("inflection"))
            metric = next((m for m in METRICS if m in res), None)
            speed = res.get("throughput")
            speedup = res.get("speedup")  # over the unpatched model, paired within rounds
            if speedup is None:           # older rows: over the same run's r=0 row
                speedup = speed / base if speed and base else None
            rows.append({
                "run": run_dir, "task": cfg.get("task", ""), "model": (cfg.get("model") or {}).get("name", ""),
                "train_r": (cfg.get("tome") or {}).get("r", ""), "r": res["r"], "metric": metric,
                "value": res.get(metric), "value_se": res.get(f"{metric}_se"),
                "value_lo": res.get(f"{metric}_lo"), "value_hi": res.get(f"{metric}_hi"),
                "throughput": speed, "speedup": speedup, "speedup_q1": res.get("speedup_q1"),
                "speedup_q3": res.get("speedup_q3"), "gflops": res.get("gflops"),
                "tokens_out": res.get("tokens_out"), "skipped_files": res.get("skipped_files", 0),
                "train_s": train_s, "train_speedup": None, "epochs": len(epochs),
                "paper_base": paper["base"] if paper else None,
                "paper_tome": paper["tome"] if matched else None,
                "paper_speedup": paper["speedup"] if matched else None,
                "note": _note(paper, matched, res["r"], train_r),
                "paper_source": paper["source"] if paper else "",
            })
    _training_speedups(rows)
    return rows


def _paper_matches(paper, r, train_r, inflection) -> bool:
    """Whether the paper's ToMe numbers belong beside the row evaluated at ``r``.

    The rows compared here are constant-r schedules: a run with a decreasing (or any ramped)
    schedule gets none, and a run trained with merging at another r than the row's gets none.
    (``launch/tables.py`` matches the paper's tables on every setting, schedules included.)
    """
    if paper is None or paper["tome"] is None and paper["speedup"] is None:
        return False
    if inflection is not None:
        return False
    if train_r and train_r != paper["r"]:  # a merge-trained row belongs to the model trained at its r
        return False
    return r == paper["r"]


def _note(paper, matched, r, train_r) -> str:
    return NOTE_MERGE_OFF if r == 0 and train_r not in (0, None, "") else ""


def _training_speedups(rows: list[dict]) -> None:
    """Fine-tuning wall-clock of each merged run against the r=0 run of the same task, model and
    epoch count in the same comparison (the paper compares fine-tuning time for the same epochs)."""
    base = {(r["task"], r["model"], r["epochs"]): r["train_s"] for r in rows
            if r["train_r"] == 0 and r["train_s"]}
    for r in rows:
        ref = base.get((r["task"], r["model"], r["epochs"]))
        if ref and r["train_s"]:
            r["train_speedup"] = ref / r["train_s"]


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


# In the markdown table, uncertainty sits in two columns of its own: "±" (standard error of the
# metric: binomial for accuracies, bootstrap for mAP) and "speedup IQR" (quartiles over rounds).
MD_HIDDEN = ("paper_source", "value_lo", "value_hi", "speedup_q1", "speedup_q3")


def _md_cells(r: dict) -> dict:
    cells = dict(r)
    cells["±"] = r.get("value_se")
    if r.get("value_lo") is not None and r.get("value_hi") is not None:
        cells["95% interval"] = f"{r['value_lo']:.1f}-{r['value_hi']:.1f}"
    if r.get("speedup_q1") is not None and r.get("speedup_q3") is not None:
        cells["speedup IQR"] = f"{r['speedup_q1']:.2f}-{r['speedup_q3']:.2f}"
    return cells


def markdown(rows: list[dict], root: str = "") -> str:
    columns = []
    for c in COLUMNS:
        columns.append(c)
        if c == "value":
            columns += ["±", "95% interval"]
        if c == "speedup":
            columns.append("speedup IQR")
    cells = [dict(_md_cells(r), run=os.path.relpath(r["run"], root) if root else r["run"]) for r in rows]
    shown = [c for c in columns if c not in MD_HIDDEN and c != "value_se"
             and any(cell.get(c) not in (None, "") for cell in cells)]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for cell in cells:
        lines.append("| " + " | ".join(_cell(cell.get(c)) for c in shown) + " |")
    falls = throughput_falls(rows, lambda run: os.path.relpath(run, root) if root else run)
    if falls:
        lines += [""] + falls
    sources = sorted({r["paper_source"] for r in rows if r["paper_source"]})
    if sources:
        lines.append("")
        lines += [f"Paper numbers: {s}." for s in sources]
    return "\n".join(lines)


def plot(rows: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    runs = sorted({r["run"] for r in rows})
    prefix = os.path.commonpath(runs) if len(runs) > 1 else os.path.dirname(runs[0]) if runs else ""
    for run in runs:
        pts = sorted((r["speedup"], r["value"], r["r"]) for r in rows
                     if r["run"] == run and r["speedup"] is not None and r["value"] is not None)
        if not pts:
            continue
        xs, ys, rs = zip(*pts)
        ax.plot(xs, ys, "o-", label=os.path.relpath(run, prefix) if prefix else run)
        for x, y, r in pts:
            ax.annotate(f"r={r}", (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
    papers = {(r["paper_base"], r["paper_tome"], r["paper_speedup"]) for r in rows
              if r["paper_tome"] is not None and r["paper_speedup"] is not None}
    for base, value, speed in papers:
        ax.plot([1.0, speed], [base, value], "k*--", alpha=0.6, label="paper")
    metric = next((r["metric"] for r in rows if r["metric"]), "metric")
    ax.set_xlabel("speed-up over r=0 (same run, same machine)")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(paths, out_prefix: str) -> dict:
    rows = collect(paths)
    if not rows:
        raise FileNotFoundError(f"no results.jsonl under {', '.join(paths)}")
    os.makedirs(os.path.dirname(out_prefix) or ".", exist_ok=True)
    root = os.path.commonpath([os.path.abspath(p) for p in paths])
    table = markdown(rows, root if len(paths) == 1 else "")
    with open(out_prefix + ".md", "w") as f:
        f.write(table + "\n")
    with open(out_prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for r in rows:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()
                             if k in COLUMNS})
    plot(rows, out_prefix + ".png")
    return {"rows": rows, "markdown": table,
            "paths": [out_prefix + ext for ext in (".md", ".csv", ".png")]}
