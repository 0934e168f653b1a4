import pytest

from tome.schedule import clamp_r, parse_r, token_counts


def test_constant_r_merges_r_tokens_in_every_layer():
    assert parse_r(8, 4) == [8, 8, 8, 8]


def test_decreasing_schedule_is_2r_to_0():
    rs = parse_r((8, -1.0), 5)
    assert rs[0] == 16 and rs[-1] == 0
    assert rs == sorted(rs, reverse=True)


def test_inflection_ramp_keeps_total_near_r_times_depth():
    rs = parse_r((10, 0.5), 12)
    assert rs[0] == 5 and rs[-1] == 15
    assert abs(sum(rs) - 10 * 12) <= 12


def test_inflection_zero_is_constant():
    assert parse_r((7, 0.0), 6) == [7] * 6


def test_a_short_list_is_padded_with_zeros_to_the_depth():
    assert parse_r([4, 3], 4) == [4, 3, 0, 0]


def test_clamp_limits_r_to_half_of_the_unprotected_tokens():
    assert clamp_r(100, 197, 1) == 98
    assert clamp_r(100, 198, 2) == 98
    assert clamp_r(5, 197, 1) == 5


def test_token_counts_drop_by_r_per_layer_until_the_clamp_bites():
    assert token_counts(197, 1, [16] * 3) == [181, 165, 149]
    # the clamp bites when few tokens are left
    assert token_counts(11, 1, [16, 16]) == [6, 4]


@pytest.mark.parametrize("bad, match", [
    (-1, "non-negative integer, got -1"),
    (2.5, "non-negative integer, got 2.5"),
    ("16", "non-negative integer, got '16'"),
    (True, "non-negative integer, got True"),
    ([1, 2, 3, 4, 5], "5 entries but the model has 4 layers"),
    ([1, -2], r"r\[1\] must be a non-negative integer"),
    ((8, 1.5), r"inflection must be in \[-1, 1\], got 1.5"),
    ((8, -2), r"inflection must be in \[-1, 1\], got -2"),
    ((8, "x"), "inflection must be a number"),
    ((8, 0.5, 1), r"must be \(r, inflection\)"),
])
def test_bad_schedules_raise_a_value_error_naming_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_r(bad, 4)
