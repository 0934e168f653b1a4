"""The lr schedules per micro-batch, on numbers worked out by hand: MAE's half-cosine with linear
warm-up (set before every step from ``epoch + step / steps_per_epoch``), and DeiT's timm cosine,
constant within an epoch and stepped after it; the timm scheduler itself as a second oracle."""
import math
from types import SimpleNamespace

import pytest
import torch

from launch.engine.lr_schedule import lr_at_step, timm_epoch_cosine

COS_45 = math.sqrt(0.5)  # cos(pi / 4)


def _mae(**kw):
    return SimpleNamespace(**{**dict(lr_schedule="half_cosine", min_lr=0.0, warmup_epochs=1,
                                     warmup_lr=0.0, epochs=3), **kw})


@pytest.mark.parametrize("epoch, step, expected", [
    (0, 0, 0.0), (0, 1, 0.25), (0, 2, 0.5), (0, 3, 0.75),     # warm-up: epoch 0 + step / 4
    (1, 0, 1.0),                                              # the peak at the end of warm-up
    (1, 2, 0.5 * (1 + COS_45)),                               # 1.5: a quarter of the cosine, 0.853553
    (2, 0, 0.5),                                              # 2.0: half-way
    (2, 2, 0.5 * (1 - COS_45)),                               # 2.5: three quarters, 0.146447
])
def test_half_cosine_per_step_with_4_steps_per_epoch_1_warmup_of_3_epochs(epoch, step, expected):
    assert lr_at_step(_mae(), epoch, step, 4, 1.0) == pytest.approx(expected, abs=1e-12)


def test_half_cosine_decays_to_min_lr_not_to_zero():
    cfg = _mae(min_lr=0.1)
    assert lr_at_step(cfg, 2, 0, 4, 1.0) == pytest.approx(0.1 + 0.9 * 0.5)   # 0.55
    assert lr_at_step(cfg, 3, 0, 4, 1.0) == pytest.approx(0.1)               # past the end: min_lr
    assert lr_at_step(cfg, 0, 2, 4, 1.0) == pytest.approx(0.5)               # warm-up starts at 0


def test_fractional_warmup_reaches_the_peak_mid_epoch():
    cfg = _mae(warmup_epochs=0.5, epochs=2)  # the demo merge stage: half an epoch of warm-up
    assert lr_at_step(cfg, 0, 1, 4, 2.0) == pytest.approx(2.0 * 0.25 / 0.5)  # 1.0
    assert lr_at_step(cfg, 0, 2, 4, 2.0) == pytest.approx(2.0)               # 0.5: the peak


DEIT = dict(peak_lr=1.0, min_lr=0.0, warmup=2, warmup_lr=0.1, epochs=4)


@pytest.mark.parametrize("epoch, expected", [
    (0, 0.1),                        # warmup_lr, set at construction
    (1, 0.1),                        # after step(0): t=0 of the warm-up
    (2, 0.1 + 1 * (1.0 - 0.1) / 2),  # t=1: 0.55
    (3, 0.5),                        # t=2: 0.5 * (1 + cos(pi * 2 / 4)); the cosine counts from 0
    (4, 0.5 * (1 - COS_45)),         # t=3: 0.146447
    (5, 0.0),                        # t=4 = epochs: past the one cycle, min_lr
])
def test_deit_cosine_of_4_epochs_with_2_warmup_epochs_by_hand(epoch, expected):
    assert timm_epoch_cosine(epoch, **DEIT) == pytest.approx(expected, abs=1e-12)


def test_deit_cosine_without_warmup_starts_at_the_peak():
    kw = dict(DEIT, warmup=0)
    assert [timm_epoch_cosine(e, **kw) for e in (0, 1, 2)] == pytest.approx(
        [1.0, 1.0, 0.5 * (1 + COS_45)])


def test_deit_cosine_equals_timm_cosine_lr_scheduler_stepped_after_each_epoch():
    # DeiT main.py: the scheduler is built before training and lr_scheduler.step(epoch) runs after
    # epoch `epoch`; the lr an epoch trains with is the optimizer's lr when it starts
    from timm.scheduler import CosineLRScheduler
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = CosineLRScheduler(opt, t_initial=10, lr_min=1e-3, warmup_t=3, warmup_lr_init=1e-2,
                              cycle_limit=1)
    kw = dict(peak_lr=1.0, min_lr=1e-3, warmup=3, warmup_lr=1e-2, epochs=10)
    for epoch in range(13):
        assert timm_epoch_cosine(epoch, **kw) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        sched.step(epoch)


def test_deit_lr_is_constant_within_an_epoch():
    cfg = SimpleNamespace(lr_schedule="timm_epoch_cosine", min_lr=0.0, warmup_epochs=2, warmup_lr=0.1,
                          epochs=4)
    assert [lr_at_step(cfg, 2, step, 4, 1.0) for step in range(4)] == pytest.approx([0.55] * 4)


def test_unknown_schedule_is_one_line_naming_the_valid_ones():
    with pytest.raises(ValueError, match=r"'step' is not one of half_cosine, timm_epoch_cosine"):
        lr_at_step(_mae(lr_schedule="step"), 0, 0, 4, 1.0)
