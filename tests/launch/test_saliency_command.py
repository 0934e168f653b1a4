"""launch/saliency.py: bad arguments are one-line errors before anything loads; the table lists
one row per r with the measured values."""
from __future__ import annotations

import pytest
import torch

from launch import saliency


@pytest.mark.parametrize("argv, message", [
    (["--clock", "cpu"], "throughput clock 'cpu' times one thread"),
    (["--r", "-1"], "--r must be >= 0"),
    (["--time-batch", "0"], "time-batch=0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
])
def test_bad_arguments_fail_by_name(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        saliency.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_table_has_one_row_per_r_with_its_values():
    rows = [dict(r=r, tokens=t, corr=torch.tensor([1.0, c]), overlap=torch.tensor([0.5, 1.0]),
                 backbone=(s, s - 0.1, s + 0.1), model=(1.0, 0.9, 1.1))
            for r, t, c, s in ((0, 257, 1.0, 1.0), (16, 65, 0.9, 2.5))]
    lines = saliency.table(rows).splitlines()
    assert len(lines) == 4
    assert lines[3] == "| 16 | 65 | 0.9500 (0.9000) | 0.750 (0.500) | 2.50 (2.40-2.60) | 1.00 (0.90-1.10) |"
