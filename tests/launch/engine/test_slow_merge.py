"""The warning when merging will not help (launch/engine/slow_merge.py), in the engine and in
launch/bench.py: forced with a worked cost model in place of the clock (no timing).

Cost model: the unmerged model takes ``batch`` time units, the merged one ``batch / 2 + 8``
(half the work per sample plus a fixed cost of the merge ops), so at batch 1 it measures
1 / 8.5 = 0.12x and it pays off from batch 16 (batch / 2 + 8 <= batch), 1.00x.
"""
import json
import os

import pytest
import torch

import launch.bench as bench
import launch.runs.bench_warning as bench_warning
from launch.engine import slow_merge, throughput
from launch.engine.config import resolve
from launch.engine.loop import run
from tests.tiny_configs import write_config
from tome.schedule import parse_r


def merged_time(batch):
    return batch / 2 + 8


def test_payoff_batch_doubles_until_the_merged_model_is_as_fast():
    found = slow_merge.payoff_batch(lambda b: b / merged_time(b), 1, 256)
    assert found.batch == 16 and found.speedup == 1.0
    assert list(found.tried) == [2, 4, 8, 16]


def test_payoff_search_that_finds_nothing_says_where_it_stopped():
    found = slow_merge.payoff_batch(lambda b: {2: 0.8, 4: 0.95, 8: 0.9}[b], 1, 8)
    assert found.batch is None and found.stopped == "measured up to batch 8"
    text = slow_merge.message("r=16", 0.7, 1, found)
    assert text.endswith("no larger batch paid off (measured up to batch 8; best 0.95x at batch 4)")
    assert "the merge ops outweigh the tokens saved" in text

    def out_of_memory(b):
        if b == 4:
            raise torch.OutOfMemoryError("fake")
        return 0.5
    assert slow_merge.payoff_batch(out_of_memory, 1, 64).stopped == "out of memory at batch 4"


def test_the_limit_tells_a_small_batch_from_merge_overhead():
    assert slow_merge.cause(limit_speedup=0.7).startswith("the batch is too small to fill the device")
    assert slow_merge.cause(limit_speedup=1.4).startswith("the merge ops outweigh the tokens saved")


def _fake_sweep(model, schedules, shape, batch, dtype, rounds, warmup, device, baseline_model=None,
                threads=None, clock="wall"):
    """measure_sweep with the worked cost model in place of the clock."""
    depth = model._tome_num_layers()
    times = {throughput.BASELINE: [float(batch)]}
    for label, r in schedules.items():
        times[label] = [merged_time(batch) if any(parse_r(r, depth)) else float(batch)]
    return throughput.summarize(times, {k: batch for k in times}, baseline=throughput.BASELINE)


@pytest.mark.parametrize("payoff_max_batch, says", [
    (256, "it starts to pay off at batch 16 (1.00x)"),
    (0, "no larger batch was measured"),
])
def test_engine_warns_when_the_merged_model_is_slower_at_batch_1(tmp_path, monkeypatch,
                                                                 payoff_max_batch, says):
    monkeypatch.setattr(throughput, "measure_sweep", _fake_sweep)
    cfg = resolve(write_config(tmp_path), ["train.epochs=0", "eval.throughput_batch=1",
                                           f"eval.payoff_max_batch={payoff_max_batch}"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    run_dir = str(tmp_path / "run")
    run(cfg, run_dir)
    rows = {row["r"]: row for row in map(json.loads, open(os.path.join(run_dir, "results.jsonl")))}
    assert "slow_merge" not in rows[0]
    note = rows[1]["slow_merge"]
    assert note.startswith("merging does not help here: the merged model (r=1) measured 0.12x the "
                           "unmerged one at batch 1, slower;")
    assert note.endswith(says)
    assert rows[1]["payoff_batch"] == (16 if payoff_max_batch else None)
    logs = "".join(open(os.path.join(run_dir, name)).read() for name in os.listdir(run_dir)
                   if name.endswith((".log", ".txt")))
    assert "WARNING " + note in logs


def _fake_bench_measure(models, batch, args, device, dtype):
    """launch/runs/benchmark.py measure() with the cost model; the limit drops the tokens for
    about free (batch / 2 + 0.9), yet at batch 1 it is slower too: 1 / 1.4 = 0.71x."""
    times = {"unmerged": [float(batch)], "merged": [merged_time(batch)], "limit": [batch / 2 + 0.9]}
    stats = throughput.summarize({k: times[k] for k in models}, {k: batch for k in models},
                                 baseline="unmerged")
    for name in models:
        if name != "unmerged":
            stats[name]["speedup_per_round"] = [times["unmerged"][0] / times[name][0]]
    if "limit" in models:
        stats["merged"]["efficiency_per_round"] = [times["limit"][0] / times["merged"][0]]
    return stats


def test_bench_warns_at_batch_1_with_the_cause_and_the_payoff_batch(monkeypatch, capsys):
    monkeypatch.setattr(bench, "measure", _fake_bench_measure)
    monkeypatch.setattr(bench_warning, "measure", _fake_bench_measure)
    result = bench.main(["--model", "test_vit", "--img-size", "64", "--r", "4", "--batch", "1",
                         "--runs", "1", "--warmup", "0", "--device", "cpu", "--max-batch", "64"])
    line = ("WARNING merging does not help here: the merged model (r=4) measured 0.12x the unmerged "
            "one at batch 1, slower; the batch is too small to fill the device: dropping the same "
            "tokens for free is no faster either (limit 0.71x); it starts to pay off at batch 16 (1.00x)")
    assert line in capsys.readouterr().out
    assert result["slow_merge"]["payoff_batch"] == 16


def test_bench_prints_no_warning_when_merging_helps(monkeypatch, capsys):
    monkeypatch.setattr(bench, "measure", _fake_bench_measure)
    bench.main(["--model", "test_vit", "--img-size", "64", "--r", "4", "--batch", "32", "--runs", "1",
                "--warmup", "0", "--device", "cpu"])
    assert "WARNING" not in capsys.readouterr().out
