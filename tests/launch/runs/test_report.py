"""The comparison report (launch/runs/report.py): table, CSV, plot, paper numbers and training speed-ups."""
import json
import os

import yaml

from launch import compare
from launch.runs import report as report_lib


def test_compare_writes_table_csv_and_plot_with_the_papers_number(tmp_path):
    run_dir = tmp_path / "exp" / "r2"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"task": "image", "paper": "deit_s16_tome", "model": {"name": "deit_small_patch16_224"},
         "tome": {"r": 13}}))
    rows = [{"r": 0, "acc1": 80.0, "throughput": 100.0, "gflops": 4.6, "tokens_out": 197},
            {"r": 13, "acc1": 79.0, "throughput": 170.0, "gflops": 2.7, "tokens_out": 41}]
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = report_lib.write_report([str(tmp_path / "exp")], str(tmp_path / "out"))
    table = report["markdown"]
    assert "| r2 | image | deit_small_patch16_224 | 13 | 13 | acc1 | 79.0 | 170.0 | 1.7 |" in table
    assert "79.36" in table or "79.4" in table  # the paper's ToMe accuracy for DeiT-S r=13
    assert "Paper numbers:" in table
    assert os.path.getsize(tmp_path / "out.png") > 1000
    assert open(tmp_path / "out.csv").read().startswith("run,task,model")
    assert compare.main([str(tmp_path / "nothing")]) == 2


def test_compare_reports_training_speedup_as_the_ratio_of_training_seconds(tmp_path):
    for name, train_r, seconds in (("base", 0, [10.0, 10.0]), ("merged", 8, [5.0, 5.0])):
        run_dir = tmp_path / "exp" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(
            {"task": "video", "model": {"name": "video_vit_l"}, "tome": {"r": train_r}}))
        (run_dir / "results.jsonl").write_text(json.dumps({"r": train_r, "acc1": 80.0}) + "\n")
        (run_dir / "log.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "epoch_seconds": s}) + "\n"
                                                   for i, s in enumerate(seconds)))
    rows = {os.path.basename(r["run"]): r for r in report_lib.collect([str(tmp_path / "exp")])}
    assert rows["merged"]["train_s"] == 10.0 and rows["merged"]["train_speedup"] == 2.0
    assert rows["base"]["train_speedup"] == 1.0
