"""launch/profile_merge.py: one row per block with the token counts the schedule gives, and no
matching or merging cost in a layer that merges nothing."""
import pytest

import tome
from launch import profile_merge


def test_profile_has_a_row_per_block_and_no_merge_cost_where_r_is_zero():
    # (r, inflection) = (4, -1): the decreasing schedule 8, 7, ..., 0 over 12 layers
    result = profile_merge.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                                 "--inflection", "-1", "--batch", "2", "--reps", "1", "--threads", "1",
                                 "--clock", "cpu"])
    rs = tome.parse_r((4, -1.0), 12)
    assert rs[-1] == 0 and rs[0] > 0
    rows = result["layers"]
    assert [row["r"] for row in rows] == rs
    # tokens entering each block: 17 (16 patches + class token), then the schedule's counts
    assert [row["tokens"] for row in rows] == [17] + tome.token_counts(17, 1, rs)[:-1]
    for row in rows:
        merges = tome.schedule.clamp_r(row["r"], row["tokens"], 1) > 0
        assert (row["match"] > 0) == merges and (row["merge"] > 0) == merges
    assert result["totals_ms"]["match"] == pytest.approx(sum(row["match"] for row in rows))


def test_cpu_clock_needs_one_thread():
    with pytest.raises(SystemExit, match="--threads 1"):
        profile_merge.main(["--model", "vit_tiny_patch16_224", "--clock", "cpu", "--threads", "2"])
