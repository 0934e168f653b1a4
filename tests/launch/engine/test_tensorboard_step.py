"""TensorBoard's integer step is the fractional epoch in thousandths (launch/engine/loop.py)."""
from launch.engine.loop import milli_epoch


def test_step_3_of_4_in_epoch_1_is_logged_at_1750():
    assert milli_epoch(1 + 3 / 4) == 1750


def test_thousandths_are_truncated_so_one_third_of_epoch_2_is_2333():
    assert milli_epoch(2 + 1 / 3) == 2333


def test_the_end_of_epoch_3_and_its_last_step_share_step_3000():
    # per-epoch scalars (at epoch + 1) and the epoch's last train step land on one point
    assert milli_epoch(3) == milli_epoch(2 + 7 / 7) == 3000
