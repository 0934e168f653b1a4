"""The paper's tables (launch/tables.py, launch/runs/tables.py, launch/engine/paper.py): the published
numbers against a hand transcription of the paper's tables, the matching of runs to rows (settings,
schedule, training, views) including runs that must not match, and the layout beside the paper's."""
import csv
import io
import json
import os
from contextlib import redirect_stdout

import pytest
import yaml

from launch import submit, tables as tables_cmd
from launch.engine import paper
from launch.engine.config import load_raw, resolve
from launch.runs import tables
from launch.runs.plan import expand

from tests.repo import REPO

# ------------------------------------------------------------------ the paper's numbers

# ToMe paper (arXiv v1) Tables 1-7, transcribed by hand from the paper's printed tables:
# id, top-1 / mAP ("-": none printed), GFLOPs, speed (im/s, clips/s, samples/s), r, schedule
# (c/d), training (none/merge/plain/either), views ("-" or crops x clips).
TRANSCRIBED = """
t1a_xpre 83.02 - 186.8 8 c none -
t1a_x 83.70 - 182.8 8 c none -
t1a_k 84.25 - 182.9 8 c none -
t1a_q 84.04 - 182.8 8 c none -
t1a_v 83.80 - 182.9 8 c none -
t1b_euclidean 84.26 - 182.5 8 c none -
t1b_cosine 84.25 - 182.9 8 c none -
t1b_dot 82.78 - 183.0 8 c none -
t1b_softmax 82.00 - 183.0 8 c none -
t1c_concat 84.32 - 180.3 8 c none -
t1c_mean 84.25 - 182.9 8 c none -
t1d_keep 81.01 - 185.4 8 c none -
t1d_max 83.50 - 184.6 8 c none -
t1d_avg 83.57 - 183.8 8 c none -
t1d_wavg 84.25 - 182.9 8 c none -
t1e_sequential 81.07 - 183.0 8 c none -
t1e_alternating 84.25 - 182.9 8 c none -
t1e_random 83.80 - 181.7 8 c none -
t1f_mae_off 84.25 - 182.9 8 c none -
t1f_mae_on 83.84 - 180.9 8 c none -
t1f_augreg_off 82.15 - 182.8 8 c none -
t1f_augreg_on 83.51 - 180.8 8 c none -
t2_prune_random 79.22 - 184.4 8 c none -
t2_prune_attn 79.48 - 183.8 8 c none -
t2_kmeans2 80.19 - 169.7 8 c none -
t2_kmeans5 80.29 - 147.5 8 c none -
t2_greedy 84.36 - 179.4 8 c none -
t2_bipartite 84.25 - 182.9 8 c none -
t3_vit_l_r8_dec 84.2 22.3 241 8 d merge -
t3_vit_l_r8 85.1 31.0 183 8 c merge -
t3_vit_l_base 85.7 61.6 93 0 c plain -
t3_vit_h_r7_dec 86.1 72.6 81 7 d merge -
t3_vit_h_r7 86.5 92.9 63 7 c merge -
t3_vit_h_base 86.9 167.4 35 0 c plain -
t4_deit_s_base 79.8 4.6 930 0 c plain -
t4_deit_s_r13 79.4 2.7 1552 13 c merge -
t4_augreg_s_r13 79.3 2.7 1550 13 c none -
t5_vit_l_base 84.7 598 - 0 c either 1x10
t5_r65_dec_offshelf 82.5 184 - 65 d none 1x10
t5_r65_dec_trained 83.2 184 - 65 d merge 1x10
t5_r55_offshelf 84.5 325 - 55 c none 1x4
t5_r65_offshelf 84.5 281 - 65 c none 1x10
t5_r65_trained 84.4 281 - 65 c merge 1x10
t5_vit_b_mae 81.3 180 - 0 c either 3x7
t6_base - - 7.3 0 c plain -
t6_r65_trained - - 16.3 65 c merge -
t6_r65_dec_offshelf - - 24.9 65 d none -
t7_base 47.3 48.6 103 0 c none -
t7_r20_offshelf 46.2 36.3 136 20 c none -
t7_r40_offshelf 43.1 24.7 200 40 c none -
t7_base_authors 46.4 48.6 103 0 c plain -
t7_r20_trained 46.3 36.3 136 20 c merge -
t7_r40_trained 46.0 24.7 200 40 c merge -
"""
# Table 6's printed ratios and hours; Table 4's training speeds; Table 1's option per row.
TABLE6 = {"t6_base": (None, 263, None), "t6_r65_trained": (2.2, 136, 0.5), "t6_r65_dec_offshelf": (3.4, None, None)}
TABLE4_TRAIN = {"t4_deit_s_base": 1.0, "t4_deit_s_r13": 1.5, "t4_augreg_s_r13": None}
OPTIONS = {"t1a_xpre": ("tome.metric", "x_pre"), "t1b_softmax": ("tome.distance", "softmax"),
           "t1c_concat": ("tome.heads", "concat"), "t1d_avg": ("tome.mode", "mean"),
           "t1e_random": ("tome.partition", "random"), "t2_prune_attn": ("tome.matching", "attn_prune"),
           "t2_kmeans2": ("tome.kmeans_iters", 2), "t3_vit_h_r7": ("model.name", "mae_vit_huge_patch14")}


def _num(text):
    return None if text == "-" else float(text)


def test_every_table_row_holds_the_papers_numbers_exactly():
    lines = TRANSCRIBED.strip().splitlines()
    non_fig = {k: v for k, v in paper.TABLE_ROWS.items() if v.panel != "f5"}
    assert len(lines) == len(non_fig)
    for line in lines:
        rid, value, gflops, speed, r, schedule, training, views = line.split()
        row = paper.TABLE_ROWS[rid]
        assert (row.value, row.gflops, row.speed) == (_num(value), _num(gflops), _num(speed)), rid
        assert (row.r, row.schedule[0], row.training) == (int(r), schedule, training), rid
        assert row.views == (None if views == "-" else tuple(int(v) for v in views.split("x"))), rid
        table = paper.PANELS[row.panel].table
        assert row.source == f"ToMe paper (arXiv v1) {table}", rid
        assert row.approx is None, rid
    for rid, (speedup, hours, ratio) in TABLE6.items():
        row = paper.TABLE_ROWS[rid]
        assert (row.speedup, row.train, row.train_ratio) == (speedup, hours, ratio)
    assert {rid: paper.TABLE_ROWS[rid].train for rid in TABLE4_TRAIN} == TABLE4_TRAIN
    for rid, (key, value) in OPTIONS.items():
        assert dict(paper.TABLE_ROWS[rid].match)[key] == value
    # every pinned panel holds its rows; a config may name a panel or a row
    assert set(paper.PANELS) == {"t1a", "t1b", "t1c", "t1d", "t1e", "t1f", "t2", "t3", "t4", "t5", "t6", "f5", "t7"}
    assert {"t5", "t7_r40_trained", "augreg_vit_b16"} <= set(paper.known_ids())


def test_fig5_points_are_approximate_never_published():
    f5 = paper.panel_rows("f5")
    assert len(f5) == 20                                   # clips 1, 2, 4, 8, 16 x r 0, 45, 55, 65
    assert all(r.value is None and r.approx and "read off the plot" in r.source for r in f5)
    read = {(r.views[1], r.r): r.approx for r in f5}
    assert (read[(1, 0)], read[(1, 65)], read[(4, 45)], read[(4, 65)]) == ("~80.1", "~78.9", "~84.5", "~84.0")
    assert read[(16, 55)] == "~84.4-84.8" and read[(2, 45)] == "not readable"


# ------------------------------------------------------------------ tiny runs

MAE_OFFSHELF_IMAGE = {  # what a resolved Table 1 config holds (image engineer's option keys included)
    "task": "image", "data": {"family": "mae"}, "model": {"name": "mae_vit_large_patch16"},
    "tome": {"r": 0, "inflection": None, "metric": "k", "distance": "cosine", "heads": "mean", "mode": "wavg",
             "partition": "alternating", "prop_attn": False, "matching": "bipartite", "kmeans_iters": 5},
    "train": {"epochs": 0}}


def _write_run(root, name, cfg: dict, results, epoch_seconds=()):
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    if epoch_seconds:
        (d / "log.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "epoch_seconds": s}) + "\n"
                                             for i, s in enumerate(epoch_seconds)))
    return str(d)


def _demo(task, *overrides) -> dict:
    """A demo-size config, resolved as the engine saves it (no stages: one run)."""
    return resolve(os.path.join(REPO, f"{task}/configs/demo.yaml"), ["stages=[]", *overrides]).to_dict()


def _result(r, metric="acc1", value=80.0, se=0.5, speedup=1.0, gflops=0.5):
    return {"r": r, metric: value, f"{metric}_se": se, "throughput": 100.0 * speedup, "speedup": speedup,
            "gflops": gflops}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    l10 = ["model.variant=l", "data.num_spatial_crops=1", "data.num_temporal_clips=10"]
    _write_run(root, "v_offshelf", _demo("video", "paper=t5", "train.epochs=0", *l10),
               [_result(0, value=84.0, se=0.3), _result(65, value=83.9, se=0.3, speedup=2.5, gflops=0.2)])
    _write_run(root, "v_trained", _demo("video", "paper=t5_r65_trained", "tome.r=65", "train.epochs=2", *l10),
               [_result(65, value=84.6, speedup=2.1)], epoch_seconds=(5.0, 5.0))
    _write_run(root, "v_base", _demo("video", "paper=t5_vit_l_base", "train.epochs=2", *l10),
               [_result(0, value=84.9)], epoch_seconds=(10.0, 10.0))
    # an unfinished baseline (1 of 2 epochs logged, read first) is no training-time reference
    _write_run(root, "v_a_base_half", _demo("video", "paper=t5_vit_l_base", "train.epochs=2", *l10),
               [_result(0, value=84.9)], epoch_seconds=(2.0,))
    _write_run(root, "v_dec", _demo("video", "paper=t5_r65_dec_offshelf", "train.epochs=0", "tome.inflection=-1",
                                    *l10), [_result(65, value=82.0, speedup=3.2)])
    # must not match: MAE-ST's 3 x 7 views on the 1 x 10 rows; the r55 row at r=45; a constant
    # schedule on the decreasing row
    _write_run(root, "v_3x7", _demo("video", "paper=t5", "train.epochs=0", "model.variant=l",
                                    "data.num_spatial_crops=3", "data.num_temporal_clips=7"),
               [_result(0), _result(65)])
    _write_run(root, "v_r45", _demo("video", "paper=t5_r55_offshelf", "train.epochs=0", "model.variant=l",
                                    "data.num_spatial_crops=1", "data.num_temporal_clips=4"), [_result(45)])
    _write_run(root, "v_const", _demo("video", "paper=t5_r65_dec_trained", "tome.r=65", "train.epochs=2", *l10),
               [_result(65)])
    _write_run(root, "v_clips4", _demo("video", "paper=f5", "train.epochs=0", "model.variant=l",
                                       "data.num_spatial_crops=1", "data.num_temporal_clips=4"),
               [_result(0, value=84.6), _result(55, value=84.2)])
    _write_run(root, "a_offshelf", _demo("audio", "paper=t7", "train.epochs=0"),
               [_result(r, "map", 47.0 - r / 10, 0.2, 1 + r / 40) for r in (0, 20, 40)])
    _write_run(root, "a_r40", _demo("audio", "paper=t7_r40_trained", "tome.r=40", "train.epochs=2"),
               [_result(40, "map", 46.2, 0.2, 1.9)], epoch_seconds=(3.0, 3.0))
    # must not match: trained at r=20, evaluated at r=40; merging within frequency bands
    _write_run(root, "a_r20_at_40", _demo("audio", "paper=t7", "tome.r=20", "train.epochs=2"),
               [_result(40, "map")])
    _write_run(root, "a_bands", _demo("audio", "paper=t7", "train.epochs=0", "tome.band=2"),
               [_result(20, "map")])
    # image ablations, config written as a resolved Table 1 config holds them
    q = {**MAE_OFFSHELF_IMAGE, "paper": "t1a", "tome": {**MAE_OFFSHELF_IMAGE["tome"], "metric": "q"}}
    _write_run(root, "i_q", q, [_result(8, value=84.14, se=0.05, speedup=1.9), _result(4)])
    dot = {**q, "tome": {**q["tome"], "metric": "k", "distance": "dot"}}
    _write_run(root, "i_k_dot", dot, [_result(8)])       # t1a rows hold the default cosine
    return root


def _lines(markdown, start):
    return [l for l in markdown.splitlines() if l.startswith(start)]


def test_runs_fill_their_rows_and_wrong_settings_fill_none(runs, tmp_path):
    out = tables.write_tables([str(runs)], str(tmp_path / "out" / "tables"))
    md = out["markdown"]
    matches = out["found"]["matches"]
    owners = {rid: sorted(os.path.basename(c["run"]) for c in cells) for rid, cells in matches.items()}
    assert owners == {
        "t5_vit_l_base": ["v_a_base_half", "v_base", "v_offshelf"], "t5_r65_offshelf": ["v_offshelf"],
        "t5_r65_trained": ["v_trained"], "t5_r65_dec_offshelf": ["v_dec"],
        "t6_base": ["v_a_base_half", "v_base"], "t6_r65_trained": ["v_trained"], "t6_r65_dec_offshelf": ["v_dec"],
        "f5_c4_r0": ["v_clips4"], "f5_c4_r55": ["v_clips4"],
        "t7_base": ["a_offshelf"], "t7_r20_offshelf": ["a_offshelf"], "t7_r40_offshelf": ["a_offshelf"],
        "t7_r40_trained": ["a_r40"], "t1a_q": ["i_q"]}
    unmatched = {(os.path.basename(run), r) for panel in out["found"]["unmatched"].values() for run, r, _ in panel}
    assert unmatched == {("v_3x7", 0), ("v_3x7", 65), ("v_r45", 45), ("v_const", 65), ("a_r20_at_40", 40),
                         ("a_bands", 20), ("i_q", 4), ("i_k_dot", 8)}
    # the layout: the paper's value, ours, the difference, our standard error, speed-ups, the run
    assert "| Q | 84.04 | 84.14 | +0.10 | 0.05 | 182.8 | 1.96 | 1.90 | i_q (r=8) |" in md
    assert "| X_pre | 83.02 | not run |  |  | 186.8 | 2.00 |  |  |" in md
    assert ("| ToMe r=65 constant, trained | 84.4 | 84.60 | +0.20 | 0.50 | 281 x 1 x 10 | 0.5 x 1 x 10 | 2.10 "
            "| v_trained (r=65) |") in md
    assert "| ToMe r=55 constant, off-the-shelf | 84.5 | not run |  |  | 325 x 1 x 4 |" in md
    # Table 6: the printed speed-ups and hours; our fine-tuning time against the baseline run's
    # (10 s against 20 s for the same 2 epochs: 0.5)
    assert ("| ToMe r=65 constant, trained | 16.3 | 210 | 2.2x | 2.10 | 136 h | 0.5x | 0.50 | v_trained (r=65) |"
            in md)
    # Fig. 5: read-off values are marked, differences against them too
    assert "| 4 clips, r=55 | ~84.5 | 84.20 | ~-0.3 | 0.50 | 1 x 4 | 1 x 4 | 1.00 | v_clips4 (r=55) |" in md
    assert "| 2 clips, r=45 | not readable | not run |" in md
    # Table 7 in mAP, samples/s
    assert ("| ToMe r=40 constant, off-the-shelf | 43.1 | 43.00 | -0.10 | 0.20 | 24.7 | 0.5 | 200 | 1.94 | 2.00 "
            "| a_offshelf (r=40) |") in md
    assert "| baseline trained by the authors | 46.4 | not run |" in md
    assert "Not matched: v_3x7 r=0, 65 (no row has its settings)." in md
    assert "Not matched: v_r45 r=45 (the row's r is 55)." in md
    assert "Not matched: v_const r=65 (schedule constant, the row's is decreasing)." in md
    # every table is laid out, "not run" wherever no run stands
    for heading in ("## Table 1", "### (f) proportional", "## Table 2", "## Table 3", "## Table 4", "## Table 5",
                    "## Table 6", "## Fig. 5", "## Table 7"):
        assert heading in md
    rows_shown = [l for l in md.splitlines() if l.startswith("| ") and not l.startswith("| row |")]
    assert sum("not run" in l for l in rows_shown) == len(paper.TABLE_ROWS) - len(matches)
    with open(tmp_path / "out" / "tables.csv") as f:
        records = list(csv.DictReader(f))
    assert len(records) == len(rows_shown)
    t6 = next(r for r in records if r["row"] == "t6_r65_trained")
    assert (float(t6["ours_train_ratio"]), float(t6["paper_train"])) == (0.5, 136)
    assert t6["run"].endswith("v_trained")


def test_tables_command_prints_one_table_and_rejects_an_unknown_one(runs, tmp_path, capsys):
    assert tables_cmd.main([str(runs), "--table", "7", "--out", str(tmp_path / "t7")]) == 0
    shown = capsys.readouterr().out
    assert "## Table 7" in shown and "## Table 5" not in shown
    assert os.path.isfile(tmp_path / "t7.md") and os.path.isfile(tmp_path / "t7.csv")
    assert tables_cmd.main([str(runs), "--table", "9"]) == 2
    assert "--table '9' is not a table" in capsys.readouterr().err
    assert tables.table_key("t1c") == "1" and tables.table_key("fig5") == "f5"


def test_engine_runs_fill_table4_with_their_training_time_ratio(tmp_path):
    """Two tiny DeiT-S-named runs through the engine (2-layer ViT, 16 px): the baseline fine-tuned
    without merging and the one trained at r=13 fill Table 4's rows; the training speed is the
    ratio of their log.jsonl epoch seconds."""
    from launch.engine.loop import run
    from launch.engine.tasks import get_task
    from tests.tiny_configs import write_config
    path = write_config(tmp_path)
    for name, r in (("base", 0), ("r13", 13)):
        cfg = resolve(path, ["paper=t4", "model.name=deit_small_patch16_224", f"tome.r={r}", f"tome.eval_r=[{r}]",
                             "train.epochs=1", "eval.throughput_iters=1"])
        get_task("image").prepare(cfg)
        run(cfg, str(tmp_path / "runs" / name))
    found = tables.collect([str(tmp_path / "runs")])
    seconds = {n: sum(json.loads(l)["epoch_seconds"] for l in open(tmp_path / "runs" / n / "log.jsonl"))
               for n in ("base", "r13")}
    (base,), (merged,) = found["matches"]["t4_deit_s_base"], found["matches"]["t4_deit_s_r13"]
    assert merged["ours_train_ratio"] == pytest.approx(seconds["base"] / seconds["r13"])
    assert base["ours_train_ratio"] == pytest.approx(1.0)
    assert "t4_augreg_s_r13" not in found["matches"] and not found["unmatched"]


# ------------------------------------------------------------------ the paper-row configs

def _print(path, *overrides):
    out = io.StringIO()
    with redirect_stdout(out):
        assert submit.main([path, "--print", *overrides]) == 0
    return list(yaml.safe_load_all(out.getvalue()))


# config -> (views, evaluated r, inflection, training r, epochs > 0)
PAPER_CONFIGS = {
    "video/configs/vitl_k400.yaml": ((1, 10), [65], None, 65, True),
    "video/configs/vitl_k400_dec.yaml": ((1, 10), [65], -1.0, 65, True),
    "video/configs/vitl_k400_baseline.yaml": ((1, 10), [0], None, 0, True),
    "video/configs/vitl_k400_offshelf.yaml": ((1, 10), [0, 65], None, 0, False),
    "video/configs/vitl_k400_offshelf_dec.yaml": ((1, 10), [65], -1.0, 0, False),
    "video/configs/vitl_k400_offshelf_r55.yaml": ((1, 4), [55], None, 0, False),
    "video/configs/vitb_k400_baseline.yaml": ((3, 7), [0], None, 0, True),
    "audio/configs/audiomae_offshelf.yaml": (None, [0, 20, 40], None, 0, False),
    "audio/configs/audiomae_as2m.yaml": (None, [40], None, 40, True),
    "audio/configs/audiomae_as2m_r20.yaml": (None, [20], None, 20, True),
    "audio/configs/audiomae_as2m_baseline.yaml": (None, [0], None, 0, True),
}


@pytest.mark.parametrize("path", sorted(PAPER_CONFIGS))
def test_paper_row_configs_print_the_rows_views_r_and_schedule(path):
    views, eval_r, inflection, r, trained = PAPER_CONFIGS[path]
    (doc,) = _print(os.path.join(REPO, path))
    if views is not None:
        assert (doc["data"]["num_spatial_crops"], doc["data"]["num_temporal_clips"]) == views
    assert (doc["tome"]["eval_r"], doc["tome"]["inflection"], doc["tome"]["r"]) == (eval_r, inflection, r)
    assert (doc["train"]["epochs"] > 0) is trained


def test_fig5_config_sweeps_the_papers_clips_and_r():
    docs = _print(os.path.join(REPO, "video/configs/vitl_k400_clips.yaml"))
    assert [(d["data"]["num_spatial_crops"], d["data"]["num_temporal_clips"]) for d in docs] == \
        [(1, 1), (1, 2), (1, 4), (1, 8), (1, 16)]
    assert all(d["tome"]["eval_r"] == [0, 45, 55, 65] and d["train"]["epochs"] == 0 for d in docs)


def test_the_video_and_audio_configs_fill_every_row_of_tables_5_to_7_and_fig5(tmp_path):
    """Each run of every video / audio config that names the paper, with a result at each of its
    evaluated r: together they leave no row of Tables 5, 6, 7 and Fig. 5 empty."""
    root = tmp_path / "runs"
    paths = [os.path.join(REPO, d, f) for d in ("video/configs", "audio/configs")
             for f in sorted(os.listdir(os.path.join(REPO, d)))]
    for path in paths:
        raw = load_raw(path)
        if not raw.get("name") or not raw.get("paper"):
            continue
        for stage in expand(raw):
            for run in stage:
                seconds = (1.0,) if run.cfg.train.epochs else ()
                _write_run(root, os.path.relpath(run.run_dir, run.cfg.launch.out_dir), run.cfg.to_dict(),
                           [_result(r, "map" if run.cfg.task == "audio" else "acc1") for r in run.cfg.tome.eval_r],
                           seconds)
    found = tables.collect([str(root)])
    wanted = {r.id for r in paper.TABLE_ROWS.values() if r.panel in ("t5", "t6", "f5", "t7")}
    assert wanted - set(found["matches"]) == set()
    assert not any(p in found["unmatched"] for p in ("t5", "t6", "f5", "t7"))
