"""Throughput on a shared CPU: one thread timed by its own CPU clock (launch/engine/throughput.py), and the
comparison's flag for runs whose throughput falls as r grows (launch/engine/monotone.py)."""
import time

import pytest
import timm
import torch

import tome
from launch.engine import throughput
from launch.runs import report as compare
from launch.engine.config import resolve
from launch.engine.errors import ConfigError
from launch.engine.monotone import throughput_drops
from tests.tiny_configs import write_config

CPU = torch.device("cpu")


def test_cpu_clock_counts_work_not_time_spent_waiting():
    # sleeping does no work: 0.2 s of elapsed time, (almost) no CPU time of the thread
    assert throughput.seconds_of(lambda: time.sleep(0.2), CPU, "wall") >= 0.2
    assert throughput.seconds_of(lambda: time.sleep(0.2), CPU, "cpu") < 0.05

    def spin():  # busy for 0.2 s of elapsed time: at most 0.2 s of CPU time, most of it when idle
        end = time.perf_counter() + 0.2
        while time.perf_counter() < end:
            pass
    assert 0 < throughput.seconds_of(spin, CPU, "cpu") <= 0.21


@pytest.mark.parametrize("clock, device, threads, match", [
    ("sundial", CPU, 1, "throughput clock must be one of wall, cpu, got 'sundial'"),
    ("cpu", CPU, 2, "times one thread on a CPU device, got device cpu with threads=2"),
    ("cpu", CPU, None, "threads=None"),
    ("cpu", torch.device("cuda"), 1, "got device cuda"),
])
def test_bad_clocks_are_refused(clock, device, threads, match):
    with pytest.raises(ValueError, match=match):
        throughput.check_clock(clock, device, threads)


def test_sweep_times_with_the_asked_threads_then_restores_them(monkeypatch):
    model = tome.patch.timm(timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2,
                                              embed_dim=32, num_heads=2, num_classes=3))
    seen = {}
    timed = throughput.time_interleaved

    def spy(steps, rounds, warmup, device, clock="wall"):
        seen.update(threads=torch.get_num_threads(), clock=clock)
        return timed(steps, rounds, warmup, device, clock)
    monkeypatch.setattr(throughput, "time_interleaved", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        out = throughput.measure_sweep(model, {"0": 0, "2": 2}, (3, 32, 32), 2, "fp32", 2, 1, CPU,
                                       threads=1, clock="cpu")
        assert seen == {"threads": 1, "clock": "cpu"} and torch.get_num_threads() == 2
        assert out["2"]["throughput"] > 0 and out["2"]["rounds"] == 2
        with pytest.raises(ValueError, match="threads must be a positive integer or None, got 0"):
            throughput.measure_sweep(model, {"0": 0}, (3, 32, 32), 2, "fp32", 1, 0, CPU, threads=0)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("values, match", [
    (["eval.throughput_clock=cpu", "eval.throughput_threads=null"],
     "eval.throughput_clock must be wall, or cpu with eval.throughput_threads=1"),
    (["eval.throughput_clock=cpu", "eval.throughput_threads=1", "launch.device=cuda"], "on cuda"),
    (["eval.throughput_clock=sundial"], "got 'sundial'"),
    (["eval.throughput_threads=0"], "eval.throughput_threads must be >= 1 or null, got 0"),
    (["launch.threads=0"], "launch.threads must be >= 1 or null, got 0"),
])
def test_bad_timing_settings_are_one_line_errors(tmp_path, values, match):
    with pytest.raises(ConfigError, match=match) as err:
        resolve(write_config(tmp_path), values)
    assert "\n" not in str(err.value)


def _rows(run, speeds):
    return [{"run": run, "r": r, "throughput": t} for r, t in speeds]


def test_a_fall_of_more_than_ten_percent_with_r_is_flagged_and_a_smaller_one_is_not():
    rows = (_rows("steady", [(0, 100.0), (8, 95.0), (16, 120.0)])         # -5%: within tolerance
            + _rows("falls", [(0, 100.0), (8, 120.0), (16, 105.0), (24, 130.0)])  # 120 -> 105: -12.5%
            + _rows("late", [(24, 80.0), (0, 100.0)])                       # unsorted rows: 0 -> 24 is -20%
            + [{"run": "steady", "r": [4, 4], "throughput": 1.0}, {"run": "late", "r": 8, "throughput": None}])
    drops = throughput_drops(rows)
    assert [(d["run"], d["r_from"], d["r_to"]) for d in drops] == [("falls", 8, 16), ("late", 0, 24)]
    assert drops[0]["drop"] == pytest.approx(0.125) and drops[1]["drop"] == pytest.approx(0.2)


def test_compare_table_names_the_run_whose_throughput_falls(tmp_path):
    rows = [dict(r, metric="acc1", value=50.0, task="image", model="", train_r=0, paper_source="")
            for r in _rows(str(tmp_path / "a"), [(0, 10.0), (8, 8.0)]) + _rows(str(tmp_path / "b"), [(0, 10.0), (8, 11.0)])]
    table = compare.markdown(rows, str(tmp_path))
    assert "Throughput falls as r grows in a: r=0 to r=8 is 20% slower" in table
    assert "in b:" not in table


def test_launch_threads_hold_for_the_run_and_are_given_back(tmp_path, monkeypatch):
    """launch.threads=1 (the demos' setting): training and evaluation see one intra-op thread, and
    a run in the calling process leaves the caller's thread count as it was."""
    from launch.engine import loop
    seen = []
    original = loop.evaluate_sweep

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(loop, "evaluate_sweep", recording)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cfg = resolve(write_config(tmp_path), ["launch.threads=1", "tome.eval_r=[0]", "train.epochs=1",
                                               "eval.throughput=false"])
        loop.get_task("image").prepare(cfg)  # writes the generated images, as a submission does
        loop.run(cfg, str(tmp_path / "run"))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
