"""launch/bench.py --target: bisection over r against worked speed-up curves (no timing), and the
command's output with a deterministic measurement in place of the clock."""
import pytest

import launch.bench as bench
import launch.runs.target as target
from launch.engine.throughput import summarize
from launch.runs.target import bisect_r, shortfall


def curve(merged, limit):
    """A measure(r) callable from two speed-up functions of r, recording the r it was asked."""
    asked = []

    def measure(r):
        asked.append(r)
        return {"merged": merged(r), "limit": limit(r)}
    return measure, asked


def test_bisection_finds_the_hand_worked_r_in_the_hand_worked_steps():
    # merged 1 + r/10 reaches 2.0 first at r = 10; from [0, 16]: 16 (2.6), 8 (1.8), 12 (2.2),
    # 10 (2.0), 9 (1.9)
    measure, asked = curve(lambda r: 1 + r / 10, lambda r: 1 + r / 8)
    found = bisect_r(measure, 2.0, 16)
    assert (found["reached"], found["r"], asked) == (True, 10, [16, 8, 12, 10, 9])
    assert found["steps"][10]["merged"] >= 2.0


@pytest.mark.parametrize("target_x", [1.05, 1.5, 2.0, 2.5, 3.0, 3.1])
def test_bisection_returns_the_smallest_r_of_a_step_curve(target_x):
    """Against a direct scan of a monotone curve with plateaus (the speed-up of a schedule grows
    in steps as the layers' token counts change)."""
    values = [1.0, 1.0, 1.2, 1.2, 1.2, 1.6, 2.0, 2.0, 2.4, 2.9, 2.9, 3.0, 3.1]
    measure, asked = curve(lambda r: values[r], lambda r: values[r] + 0.3)
    found = bisect_r(measure, target_x, len(values) - 1)
    assert found["r"] == min(r for r, v in enumerate(values) if v >= target_x)
    assert len(asked) <= 1 + 4  # r_max, then ceil(log2(12)) halvings


def test_target_above_the_limit_at_the_largest_r_cannot_be_reached_and_names_the_limit():
    measure, asked = curve(lambda r: 1 + r / 10, lambda r: 1 + r / 8)  # at r = 16: 2.6x, limit 3.0x
    found = bisect_r(measure, 5.0, 16)
    assert (found["reached"], found["short"], asked) == (False, "limit", [16])
    line = shortfall("constant", 5.0, found)
    assert line == ("target 5.00x cannot be reached with a constant schedule: the zero-overhead "
                    "limit at the largest r (16) measured 3.00x (merged 2.60x)")


def test_target_the_limit_reaches_but_the_merged_model_does_not_says_so():
    measure, _ = curve(lambda r: 1 + r / 20, lambda r: 1 + r / 4)  # at r = 16: 1.8x, limit 5.0x
    found = bisect_r(measure, 2.0, 16)
    assert (found["reached"], found["short"]) == (False, "merged")
    assert "merged model measured 1.80x while the zero-overhead limit measured 5.00x" in \
        shortfall("decreasing", 2.0, found)


def test_a_merged_speedup_above_the_target_is_reached_even_if_the_limit_measured_below():
    # timing noise can put the limit below the merged model: what was measured for merged counts
    measure, _ = curve(lambda r: 1 + r / 4, lambda r: 1.0)
    assert bisect_r(measure, 2.0, 8)["r"] == 4


@pytest.mark.parametrize("bad", [1.0, 0.5, "2", True])
def test_target_must_be_above_one(bad):
    with pytest.raises(ValueError, match=r"target speed-up must be a number above 1.*got"):
        bisect_r(lambda r: {}, bad, 8)


def _fake_measure(speedup_of_r):
    """launch/runs/benchmark.py measure() with worked times in place of the clock: the unmerged
    model takes 1, the merged 1 / speedup(r), the limit 1 / (speedup(r) + 0.5)."""
    def measure(models, batch, args, device, dtype):
        s = speedup_of_r(models["merged"].r)
        times = {"unmerged": [1.0], "merged": [1.0 / s], "limit": [1.0 / (s + 0.5)]}
        stats = summarize({k: v for k, v in times.items() if k in models}, {k: batch for k in models},
                          baseline="unmerged")
        stats["merged"]["efficiency_per_round"] = [times["limit"][0] / times["merged"][0]]
        return stats
    return measure


BENCH = ["--model", "test_vit", "--img-size", "64", "--batch", "4", "--runs", "1",
         "--warmup", "0", "--device", "cpu", "--schedule", "constant"]


def test_bench_target_prints_the_r_its_speedup_and_the_limits(monkeypatch, capsys):
    # timm test_vit at 64 px: 17 tokens, r_max = 8; speed-up 1 + r/4: 8 (3.0x), 4 (2.0x), 2 (1.5x), 3 (1.75x) -> r = 4
    monkeypatch.setattr(target, "measure", _fake_measure(lambda r: 1 + r / 4))
    result = bench.main(BENCH + ["--target", "2.0"])
    out = capsys.readouterr().out
    found = result["schedules"]["constant"]
    assert (found["r"], list(found["steps"])) == (4, ["8", "4", "2", "3"])
    assert "| constant | 4 | 2.00x | 2.50x |" in out
    assert "r=4 is the smallest r measured at 2.00x or more" in out


def test_bench_target_beyond_reach_says_so_with_the_limits_value(monkeypatch, capsys):
    monkeypatch.setattr(target, "measure", _fake_measure(lambda r: 1 + r / 4))
    bench.main(BENCH + ["--target", "5"])
    assert ("target 5.00x cannot be reached with a constant schedule: the zero-overhead limit at "
            "the largest r (8) measured 3.50x (merged 3.00x)") in capsys.readouterr().out
