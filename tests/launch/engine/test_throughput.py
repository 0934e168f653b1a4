"""Interleaved throughput (launch/engine/throughput.py), its use by the engine, and training time and loss
across a preemption."""
import json
import os
import time

import pytest
import torch

from launch.engine import loop, throughput
from launch.engine.config import resolve
from launch.engine.errors import ConfigError
from launch.engine.loop import Interrupted, run
from tests.tiny_configs import write_config

CPU = torch.device("cpu")


def test_rounds_time_every_step_once_in_alternating_order_after_warmup(monkeypatch):
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("base", "r8", "r16")}
    times = throughput.time_interleaved(steps, rounds=3, warmup=2, device=CPU)
    assert calls == (["base"] * 2 + ["r8"] * 2 + ["r16"] * 2
                     + ["base", "r8", "r16"] + ["r16", "r8", "base"] + ["base", "r8", "r16"])
    assert {k: len(v) for k, v in times.items()} == {"base": 3, "r8": 3, "r16": 3}


def test_alternating_order_cancels_a_steady_drift(monkeypatch):
    # Two equally fast steps on a machine that slows down by 1 s per call: in the same order every
    # round the second step always looks 1 s slower; alternating, both total the same.
    clock = {"t": 0}

    def seconds(fn, device, clock_name="wall"):
        clock["t"] += 1
        return 10.0 + clock["t"]
    monkeypatch.setattr(throughput, "seconds_of", seconds)
    times = throughput.time_interleaved({"a": lambda: None, "b": lambda: None}, rounds=4, warmup=0,
                                        device=CPU)
    assert times == {"a": [11.0, 14.0, 15.0, 18.0], "b": [12.0, 13.0, 16.0, 17.0]}
    assert sum(times["a"]) == sum(times["b"])


def test_summary_gives_hand_worked_medians_quartiles_and_paired_speedups():
    # batch 2: per-round samples/s of "a" are 2, 1, 0.5; "b" runs 1 sample/s every round
    out = throughput.summarize({"a": [1.0, 2.0, 4.0], "b": [2.0, 2.0, 2.0]}, {"a": 2, "b": 2}, "b")
    assert out["a"]["throughput"] == 1.0
    assert (out["a"]["throughput_q1"], out["a"]["throughput_q3"]) == (0.75, 1.5)  # inclusive quartiles
    assert (out["a"]["speedup"], out["b"]["speedup"]) == (1.0, 1.0)
    # a slow spell in round 2 slows both models: the paired speed-up does not move
    out = throughput.summarize({"a": [1.0, 10.0, 1.0], "b": [2.0, 20.0, 2.0]}, {"a": 1, "b": 1}, "b")
    assert out["a"]["speedup"] == out["a"]["speedup_q1"] == out["a"]["speedup_q3"] == 2.0


def test_batch_search_stops_where_throughput_stops_growing(monkeypatch):
    # a device that runs up to 8 samples in parallel in 1 s: throughput 1, 2, 4, 8, 8, ...
    monkeypatch.setattr(throughput, "seconds_of", lambda fn, device, clock="wall": fn())
    assert throughput.search_batch(lambda b: (lambda: max(1.0, b / 8)), CPU) == 8
    assert throughput.search_batch(lambda b: (lambda: max(1.0, b / 8)), CPU, max_batch=4) == 4


@pytest.mark.parametrize("value, match", [
    ("eval.throughput_batch=serach", "eval.throughput_batch must be a positive integer or 'search'"),
    ("eval.throughput_dtype=fp64", "eval.throughput_dtype must be fp32, fp16 or bf16"),
])
def test_bad_throughput_settings_are_one_line_errors(tmp_path, value, match):
    with pytest.raises(ConfigError, match=match):
        resolve(write_config(tmp_path), [value])


def test_engine_rows_carry_speedups_over_the_unpatched_model(tmp_path):
    cfg = resolve(write_config(tmp_path), ["train.epochs=0", "tome.eval_r=[0,2]", "train.amp=bf16",
                                           "eval.throughput_iters=3", "eval.throughput_batch=search"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    rows = run(cfg, str(tmp_path / "run"))
    for row in rows:
        assert row["throughput_dtype"] == "fp32" and row["rounds"] == 3
        assert row["baseline_throughput"] > 0 and row["speedup_q1"] <= row["speedup"] <= row["speedup_q3"]
        assert row["batch"] in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
        assert row["acc1_se"] >= 0 and row["n"] == 8  # 2 classes x 4 validation images
    assert rows[1]["tokens_out"] < rows[0]["tokens_out"]


def test_resumed_epoch_counts_time_and_loss_from_before_the_preemption(tmp_path, monkeypatch):
    step_s = 0.2
    loss = loop._loss

    def slow_loss(*args):
        time.sleep(step_s)  # every step takes at least this long
        return loss(*args)
    monkeypatch.setattr(loop, "_loss", slow_loss)
    cfg = resolve(write_config(tmp_path), ["train.checkpoint_every=1", "eval.throughput=false",
                                           "tome.r=1"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    straight, broken = str(tmp_path / "straight"), str(tmp_path / "broken")
    run(cfg, straight)
    with pytest.raises(Interrupted):
        run(cfg, broken, stop_after_steps=2)  # half-way through the first epoch (4 steps)
    run(cfg, broken)

    def epochs(run_dir):
        records = [json.loads(l) for l in open(os.path.join(run_dir, "log.jsonl"))]
        return {r["epoch"]: r for r in records}
    a, b = epochs(straight), epochs(broken)
    assert sorted(b) == [1, 2]
    for epoch in (1, 2):
        assert b[epoch]["train_loss"] == a[epoch]["train_loss"]  # all 4 steps' losses, same order
        assert b[epoch]["epoch_seconds"] >= 4 * step_s           # 2 steps before, 2 after
    from launch.runs import report
    row = next(r for r in report.collect([broken]))
    assert row["train_s"] >= 8 * step_s
