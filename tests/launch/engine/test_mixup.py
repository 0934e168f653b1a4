"""Batch mixup / cutmix with label smoothing against hand-computed batches. A scripted generator
fixes every draw (the mixing probability, the mixup/cutmix switch, lambda and the box centre);
the partner of sample i is always sample B - 1 - i (the batch flipped)."""
import numpy as np
import pytest
import torch

from launch.engine.mixup import Mixup, one_hot


class Scripted:
    """A stand-in for ``np.random.Generator`` returning fixed draws and recording beta's alpha."""

    def __init__(self, random=(), beta=0.5, integers=()):
        self._random, self._beta, self._integers = list(random), beta, list(integers)
        self.alphas = []

    def random(self):
        return self._random.pop(0)

    def beta(self, a, b):
        self.alphas.append((a, b))
        return self._beta

    def integers(self, high):
        value = self._integers.pop(0)
        assert 0 <= value < high
        return value


def _mixup(mixup=0.8, cutmix=0.0, prob=1.0, switch=0.5, smoothing=0.0, classes=2, multilabel=False):
    return Mixup(mixup, cutmix, prob, switch, smoothing, classes, multilabel)


def test_label_smoothing_gives_off_and_on_values_by_hand():
    # 3 classes, smoothing 0.3: off = 0.3 / 3 = 0.1, on = 1 - 0.3 + 0.1 = 0.8
    expected = torch.tensor([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    assert torch.allclose(one_hot(torch.tensor([2, 0]), 3, 0.3), expected)


def test_mixup_with_lambda_07_mixes_each_sample_with_its_mirror():
    x = torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1, 1)
    mixed, soft = _mixup()(x, torch.tensor([0, 1, 1]), Scripted(random=[0.5], beta=0.7))
    # 0.7 * 1 + 0.3 * 4 = 1.9; the middle sample is its own partner; 0.7 * 4 + 0.3 * 1 = 3.1
    assert torch.allclose(mixed.flatten(), torch.tensor([1.9, 2.0, 3.1]))
    assert torch.allclose(soft, torch.tensor([[0.7, 0.3], [0.0, 1.0], [0.3, 0.7]]))


def test_mixup_mixes_smoothed_targets():
    # smoothing 0.2 over 2 classes: [0.9, 0.1] and [0.1, 0.9]; lambda 0.75 -> 0.75 * 0.9 + 0.25 * 0.1
    _, soft = _mixup(smoothing=0.2)(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]),
                                    Scripted(random=[0.0], beta=0.75))
    assert torch.allclose(soft, torch.tensor([[0.7, 0.3], [0.3, 0.7]]))


def test_multilabel_targets_mix_their_multi_hot_vectors_without_smoothing():
    targets = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    _, soft = _mixup(smoothing=0.1, classes=3, multilabel=True)(
        torch.zeros(2, 1, 2, 2), targets, Scripted(random=[0.0], beta=0.6))
    assert torch.allclose(soft, torch.tensor([[0.6, 0.4, 0.6], [0.4, 0.6, 0.4]]))


def test_cutmix_box_of_lambda_075_is_4x4_of_8x8_and_lambda_stays_075():
    # cut side = sqrt(1 - 0.75) * 8 = 4, centred at (4, 4): rows and columns 2..5
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    mixed, soft = _mixup(mixup=0.0, cutmix=1.0)(x, torch.tensor([0, 1]),
                                               Scripted(random=[0.0], beta=0.75, integers=[4, 4]))
    box = torch.zeros(8, 8)
    box[2:6, 2:6] = 1.0
    assert torch.equal(mixed[0, 0], box) and torch.equal(mixed[1, 0], 1.0 - box)
    assert torch.allclose(soft, torch.tensor([[0.75, 0.25], [0.25, 0.75]]))


def test_cutmix_box_clipped_at_the_corner_sets_lambda_from_the_area_actually_cut():
    # the 4x4 box centred at (0, 0) keeps rows and columns 0..1: 4 of 64 pixels, lambda = 60 / 64
    x = torch.stack([torch.zeros(1, 8, 8), torch.ones(1, 8, 8)])
    mixed, soft = _mixup(mixup=0.0, cutmix=1.0)(x, torch.tensor([0, 1]),
                                               Scripted(random=[0.0], beta=0.75, integers=[0, 0]))
    assert mixed[0, 0].sum() == 4 and torch.equal(mixed[0, 0, :2, :2], torch.ones(2, 2))
    assert torch.allclose(soft, torch.tensor([[0.9375, 0.0625], [0.0625, 0.9375]]))


def test_cutmix_on_clips_cuts_the_same_box_from_every_frame():
    x = torch.stack([torch.zeros(3, 4, 8, 8), torch.ones(3, 4, 8, 8)])  # [B, C, T, H, W]
    mixed, _ = _mixup(mixup=0.0, cutmix=1.0)(x, torch.tensor([0, 1]),
                                            Scripted(random=[0.0], beta=0.75, integers=[4, 4]))
    box = torch.zeros(8, 8)
    box[2:6, 2:6] = 1.0
    assert torch.equal(mixed[0], box.expand(3, 4, 8, 8))


@pytest.mark.parametrize("draw, alpha", [(0.3, 1.0), (0.7, 0.8)])
def test_switch_probability_picks_cutmix_below_it_and_mixup_above(draw, alpha):
    # both on, switch_prob 0.5: the second draw below 0.5 picks cutmix (alpha 1.0), else mixup (0.8)
    rng = Scripted(random=[0.0, draw], beta=0.75, integers=[4, 4])
    _mixup(mixup=0.8, cutmix=1.0)(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1]), rng)
    assert rng.alphas == [(alpha, alpha)]


def test_a_batch_drawn_above_the_mixing_probability_is_left_alone_with_smoothed_targets():
    x = torch.arange(8.0).view(2, 1, 2, 2)
    mixed, soft = _mixup(prob=0.5, smoothing=0.2)(x, torch.tensor([0, 1]), Scripted(random=[0.9]))
    assert torch.equal(mixed, x)
    assert torch.allclose(soft, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))


def test_one_instance_reused_mixes_like_a_fresh_one_for_the_same_step_seed():
    # the engine builds one Mixup per run and hands it each step's generator
    x, y = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0])
    reused = Mixup(0.8, 1.0, 1.0, 0.5, 0.1, 3, False)
    for seed in range(5):
        reused(x, y, np.random.default_rng(seed))
    got = reused(x, y, np.random.default_rng(7))
    fresh = Mixup(0.8, 1.0, 1.0, 0.5, 0.1, 3, False)(x, y, np.random.default_rng(7))
    assert torch.equal(got[0], fresh[0]) and torch.equal(got[1], fresh[1])
