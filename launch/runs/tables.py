"""The paper's tables, ours beside theirs (written by ``launch/tables.py``).

Every run under the given directories whose config names a table row or panel (``paper:``, see
``launch/engine/paper.py``) is read: its resolved ``config.yaml``, its ``results.jsonl`` (one record
per evaluated r) and its ``log.jsonl`` (training seconds per epoch). Each result record is matched
to the rows of the run's panel, and of the panels that draw on it (Table 6 and Fig. 5 on Table 5's
runs), on everything that makes the paper's number what it is:

* the evaluated r, and the schedule (``tome.inflection`` -1 is the decreasing one) when r > 0;
* how the model was made: evaluated as loaded (``train.epochs`` 0, "off-the-shelf"), fine-tuned
  with merging at the row's r and schedule, or fine-tuned without merging (the baselines);
* the test views (video: spatial crops x temporal clips);
* the config settings the row names (``match``): feature, distance, model, ...

A config that names a row (not a panel) fills that row, and in the panels that draw on its panel
only the rows made the same way (r, schedule, training). A row no run
matches says "not run"; a result that matches no row of its panel is listed under the table.
Ours: the metric with its standard error, GFLOPs, and the speed-up over the model without merging
measured in the same run (paired interleaved rounds; older records: over the run's r=0 record).
Training-time ratios (Tables 4 and 6) compare the run's fine-tuning wall-clock with a run fine-tuned
without merging for the same epochs (same task and model) among the runs read, both complete.
"""
from __future__ import annotations

import csv
import os
from typing import Optional

import yaml

from launch.engine.paper import PANELS, TABLE_ROWS, panel_of, panel_rows
from launch.engine.runlog import read_jsonl
from launch.runs.report import find_runs

MISSING = object()
NOT_RUN = "not run"
METRIC_NAMES = {"acc1": "top-1", "map": "mAP"}
# Tables in the paper's order; a table lists its panels.
TABLES = {"1": ("t1a", "t1b", "t1c", "t1d", "t1e", "t1f"), "2": ("t2",), "3": ("t3",), "4": ("t4",),
          "5": ("t5",), "6": ("t6",), "f5": ("f5",), "7": ("t7",)}
CSV_COLUMNS = ["table", "panel", "row", "label", "metric", "paper", "paper_approx", "ours", "ours_se", "diff",
               "paper_gflops", "ours_gflops", "paper_views", "ours_views", "paper_speed", "speed_unit",
               "paper_speedup", "ours_speedup", "ours_speed", "paper_train", "paper_train_ratio",
               "ours_train_ratio", "r", "run", "source"]


# ---------------------------------------------------------------- reading runs

def config_value(cfg: dict, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return MISSING
        node = node[part]
    return node


def training_of(cfg: dict) -> str:
    """none (evaluated as loaded), merge (fine-tuned with merging) or plain (without)."""
    if config_value(cfg, "train.epochs") in (MISSING, None, 0):
        return "none"
    r = config_value(cfg, "tome.r")
    merged = any(r) if isinstance(r, list) else r not in (0, None, MISSING)
    return "merge" if merged else "plain"


def schedule_of(cfg: dict) -> str:
    inflection = config_value(cfg, "tome.inflection")
    if inflection in (None, MISSING) and not isinstance(config_value(cfg, "tome.r"), list):
        return "constant"
    return "decreasing" if inflection == -1 else "other"


def views_of(cfg: dict) -> Optional[tuple]:
    crops, clips = config_value(cfg, "data.num_spatial_crops"), config_value(cfg, "data.num_temporal_clips")
    return None if MISSING in (crops, clips) else (crops, clips)


def model_of(cfg: dict):
    name = config_value(cfg, "model.name")
    return name if name not in (MISSING, None, "") else config_value(cfg, "model.variant")


def read_run(run_dir: str) -> Optional[dict]:
    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    # one record per epoch (the last written), should a resumed run have written one twice
    epochs = list({e.get("epoch"): e for e in read_jsonl(os.path.join(run_dir, "log.jsonl"))}.values())
    return {"dir": run_dir, "cfg": cfg, "results": read_jsonl(os.path.join(run_dir, "results.jsonl")),
            "train_s": sum(e.get("epoch_seconds", 0.0) for e in epochs) if epochs else None,
            "epochs": len(epochs)}


# ---------------------------------------------------------------- matching

def mismatch(row, cfg: dict, result: dict) -> Optional[str]:
    """Why ``result`` of a run with config ``cfg`` does not stand beside ``row`` (None: it does)."""
    if result.get("r") != row.r:
        return f"the row's r is {row.r}"
    training = training_of(cfg)
    wanted = {"either": ("none", "plain")}.get(row.training, (row.training,))
    if training not in wanted:
        return f"training {training}, the row's is {row.training}"
    if row.r and schedule_of(cfg) != row.schedule:
        return f"schedule {schedule_of(cfg)}, the row's is {row.schedule}"
    if training == "merge" and config_value(cfg, "tome.r") != row.r:
        return f"trained at r={config_value(cfg, 'tome.r')}, the row's is {row.r}"
    if row.views is not None and views_of(cfg) != tuple(row.views):
        return f"views {views_of(cfg)}, the row's are {row.views}"
    for key, value in row.match:
        ours = config_value(cfg, key)
        if ours is MISSING or type(ours) is not type(value) or ours != value:
            return f"{key}={'(none)' if ours is MISSING else ours!r}, the row's is {value!r}"
    return None


def _trainings(row) -> set:
    return {"none", "plain"} if row.training == "either" else {row.training}


def candidates(paper_id) -> dict:
    """panel id -> the rows a run naming ``paper_id`` may fill there: a panel id, every row of the
    panel and of the panels that draw on it; a row id, that row and the rows elsewhere made the
    same way (r, schedule, training)."""
    home = panel_of(paper_id)
    if home is None:
        return {}
    named = TABLE_ROWS.get(paper_id)
    out = {home: [named] if named else panel_rows(home)}
    for panel in PANELS.values():
        if home in panel.uses:
            out[panel.id] = [r for r in panel_rows(panel.id) if named is None or (
                (r.r, r.schedule) == (named.r, named.schedule) and _trainings(r) & _trainings(named))]
    return out


def _speedup(result: dict, results: list) -> Optional[float]:
    if result.get("speedup") is not None:  # over the unpatched model, paired within rounds
        return result["speedup"]
    base = next((x.get("throughput") for x in results if x.get("r") == 0), None)
    return result["throughput"] / base if result.get("throughput") and base else None


def _complete(run: dict) -> bool:
    """Trained for all its epochs: one log.jsonl record per configured epoch."""
    return bool(run["train_s"]) and run["epochs"] == config_value(run["cfg"], "train.epochs")


def _train_ratio(run: dict, runs: list, kind: Optional[str]) -> Optional[float]:
    """Fine-tuning wall-clock of ``run`` against a run of the same task and model fine-tuned
    without merging for the same epochs, both complete: baseline / ours (kind speed) or ours /
    baseline (time)."""
    if kind is None or training_of(run["cfg"]) == "none" or not _complete(run):
        return None
    key = (run["cfg"].get("task"), model_of(run["cfg"]), config_value(run["cfg"], "train.epochs"))
    base = next((b["train_s"] for b in runs if _complete(b) and training_of(b["cfg"]) == "plain"
                 and (b["cfg"].get("task"), model_of(b["cfg"]), config_value(b["cfg"], "train.epochs")) == key),
                None)
    if not base:
        return None
    return base / run["train_s"] if kind == "speed" else run["train_s"] / base


def collect(paths) -> dict:
    """{"matches": {row id: [cell, ...]}, "unmatched": {panel id: [(run, r, reason), ...]}}."""
    runs = [run for run in (read_run(d) for d in find_runs(paths)) if run is not None]
    matches: dict = {}
    unmatched: dict = {}
    for run in runs:
        for panel_id, rows in candidates(run["cfg"].get("paper")).items():
            metric = PANELS[panel_id].metric
            for result in run["results"]:
                reasons = []
                for row in rows:
                    why = mismatch(row, run["cfg"], result)
                    if why is not None:
                        reasons.append(why)
                        continue
                    value = result.get(metric) if metric else None
                    matches.setdefault(row.id, []).append({
                        "run": run["dir"], "r": result.get("r"), "ours": value,
                        "ours_se": result.get(f"{metric}_se") if metric else None,
                        "ours_gflops": result.get("gflops"), "ours_views": views_of(run["cfg"]),
                        "ours_speed": result.get("throughput"), "ours_speedup": _speedup(result, run["results"]),
                        "ours_train_ratio": _train_ratio(run, runs, PANELS[panel_id].train_kind)})
                if len(reasons) == len(rows) and panel_of(run["cfg"].get("paper")) == panel_id:
                    reason = reasons[0] if len(rows) == 1 else "no row has its settings"
                    unmatched.setdefault(panel_id, []).append((run["dir"], result.get("r"), reason))
    return {"matches": matches, "unmatched": unmatched}


# ---------------------------------------------------------------- layout

def _num(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _sig(value) -> str:
    return "" if value is None else f"{value:.3g}"


def _views(views) -> str:
    return "" if views is None else f"{views[0]} x {views[1]}"


def _paper_cells(row, panel) -> dict:
    paper = row.approx if row.approx is not None else _num(row.value, panel.digits)
    gflops = _num(row.gflops, panel.gflops_digits)
    if row.views is not None and gflops:
        gflops += f" x {_views(row.views)}"
    return {"paper": paper, "paper_gflops": gflops, "paper_speed": _num(row.speed, panel.speed_digits),
            # as printed where the paper prints it (Table 6: "2.2x"), else its speeds' ratio
            "paper_speedup": (f"{row.speedup:g}x" if row.speedup is not None else
                              "" if row.paper_speedup is None else f"{row.paper_speedup:.2f}"),
            "paper_train": ("" if row.train is None else f"{row.train:g}x" if panel.train_kind == "speed"
                            else f"{row.train:g} h"),
            "paper_train_ratio": "" if row.train_ratio is None else f"{row.train_ratio:g}x"}


def _diff(row, ours) -> str:
    if ours is None:
        return ""
    if row.value is not None:
        return f"{ours - row.value:+.2f}"
    return f"~{ours - row.approx_value:+.1f}" if row.approx_value is not None else ""


def _columns(panel, rows) -> list:
    """(key, header) pairs: the paper's columns for this panel, each paper column beside ours."""
    metric = METRIC_NAMES.get(panel.metric, panel.metric)
    cols = [("label", "row")]
    if panel.metric:
        cols += [("paper", f"paper {metric}"), ("ours", "ours"), ("diff", "ours - paper"), ("ours_se", "± (s.e.)")]
    if any(r.gflops is not None for r in rows):
        views = " x views" if any(r.views for r in rows) else ""
        cols += [("paper_gflops", f"paper GFLOPs{views}"), ("ours_gflops", f"ours GFLOPs{views}")]
    elif any(r.views for r in rows):
        cols += [("paper_views", "paper views"), ("ours_views", "ours views")]
    if any(r.speed is not None for r in rows):
        cols.append(("paper_speed", f"paper {panel.speed_unit}"))
        if panel.train_kind == "time":
            cols.append(("ours_speed", f"ours {panel.speed_unit}"))
    if any(r.paper_speedup is not None for r in rows):
        cols.append(("paper_speedup", "paper speed-up"))
    cols.append(("ours_speedup", "ours speed-up (same run)"))
    if panel.train_kind == "speed":
        cols += [("paper_train", "paper training speed"), ("ours_train_ratio", "ours training speed")]
    elif panel.train_kind == "time":
        cols += [("paper_train", "paper fine-tuning"), ("paper_train_ratio", "paper time ratio"),
                 ("ours_train_ratio", "ours time ratio")]
    return cols + [("run", "run")]


def panel_lines(panel_id: str, found: dict, root: str = "") -> tuple[list, list]:
    """(markdown lines, CSV records) of one panel."""
    panel = PANELS[panel_id]
    rows = panel_rows(panel_id)
    cols = _columns(panel, rows)
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    records = []
    for row in rows:
        paper = _paper_cells(row, panel)
        label = row.label + (" *" if row.default else "")
        for cell in found["matches"].get(row.id) or [None]:
            shown = {"label": label, **paper, "paper_views": _views(row.views)}
            if cell is None:
                shown["ours" if panel.metric else "ours_speedup"] = NOT_RUN
            else:
                shown.update({
                    "ours": _num(cell["ours"], 2), "diff": _diff(row, cell["ours"]),
                    "ours_se": _num(cell["ours_se"], 2), "ours_gflops": _sig(cell["ours_gflops"]),
                    "ours_views": _views(cell["ours_views"]), "ours_speed": _sig(cell["ours_speed"]),
                    "ours_speedup": _num(cell["ours_speedup"], 2),
                    "ours_train_ratio": _num(cell["ours_train_ratio"], 2),
                    "run": f"{os.path.relpath(cell['run'], root) if root else cell['run']} (r={cell['r']})"})
                if row.views is not None and cell["ours_gflops"] is not None and cell["ours_views"]:
                    shown["ours_gflops"] += f" x {_views(cell['ours_views'])}"
            lines.append("| " + " | ".join(shown.get(k, "") for k, _ in cols) + " |")
            records.append({
                "table": panel.table, "panel": panel_id, "row": row.id, "label": row.label, "metric": panel.metric,
                "paper": row.value, "paper_approx": row.approx, "paper_gflops": row.gflops,
                "paper_views": _views(row.views), "paper_speed": row.speed, "speed_unit": panel.speed_unit,
                "paper_speedup": row.paper_speedup, "paper_train": row.train, "paper_train_ratio": row.train_ratio,
                "source": row.source,
                **({"ours": NOT_RUN} if cell is None else {
                    "ours": cell["ours"], "ours_se": cell["ours_se"],
                    "diff": None if cell["ours"] is None or row.value is None else cell["ours"] - row.value,
                    "ours_gflops": cell["ours_gflops"], "ours_views": _views(cell["ours_views"]),
                    "ours_speedup": cell["ours_speedup"], "ours_speed": cell["ours_speed"],
                    "ours_train_ratio": cell["ours_train_ratio"], "r": cell["r"], "run": cell["run"]})})
    sources = sorted({r.source for r in rows})
    notes = [f"Paper: {', '.join(sources)}." + (" * the paper's default." if any(r.default for r in rows) else "")]
    if panel.note:
        notes.append(f"Note: {panel.note}.")
    grouped: dict = {}  # one line per run and reason, its evaluated r listed
    for run, r, reason in found["unmatched"].get(panel_id, []):
        grouped.setdefault((run, reason), []).append(str(r))
    for (run, reason), rs in grouped.items():
        notes.append(f"Not matched: {os.path.relpath(run, root) if root else run} r={', '.join(rs)} ({reason}).")
    return lines + [""] + notes, records


def render(found: dict, tables=None, root: str = "") -> tuple[str, list]:
    """Markdown of the chosen tables (all by default) and their CSV records."""
    out, records = [], []
    for table in tables or TABLES:
        panels = TABLES[table]
        first = PANELS[panels[0]]
        out += ["", f"## {first.table}" + ("" if len(panels) > 1 else f": {first.title}")]
        for panel_id in panels:
            if len(panels) > 1:
                out += ["", f"### {PANELS[panel_id].title}"]
            lines, recs = panel_lines(panel_id, found, root)
            out += [""] + lines
            records += recs
    return "\n".join(out).lstrip("\n") + "\n", records


def table_key(text: str) -> str:
    """``--table`` value -> a key of TABLES: 1-7, f5 / fig5, or a panel id (t1c -> 1)."""
    key = str(text).lower().removeprefix("table").strip()
    key = {"fig5": "f5", "fig.5": "f5"}.get(key, key)
    if key in TABLES:
        return key
    for table, panels in TABLES.items():
        if key in panels:
            return table
    raise ValueError(f"--table {text!r} is not a table: use one of {', '.join(TABLES)} or a panel id "
                     f"({', '.join(PANELS)})")


def write_tables(paths, out_prefix: str, tables=None) -> dict:
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such run directory: {path}")
    found = collect(paths)
    root = os.path.commonpath([os.path.abspath(p) for p in paths]) if paths else ""
    text, records = render(found, tables, root)
    os.makedirs(os.path.dirname(out_prefix) or ".", exist_ok=True)
    with open(out_prefix + ".md", "w") as f:
        f.write(text)
    with open(out_prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(records)
    return {"markdown": text, "records": records, "found": found, "paths": [out_prefix + ".md", out_prefix + ".csv"]}
