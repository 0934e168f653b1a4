"""The training samplers on tiny datasets, against orders worked out by hand: EpochSampler's
evaluation sharding, its shuffled DDP sharding and mid-epoch resume; DeiT's repeated
augmentation (which index each process gets)."""
import pytest

from launch.engine.data import EpochSampler
from launch.engine.errors import ConfigError
from launch.engine.ra_sampler import RepeatedAugSampler, train_sampler


def _indices(sampler):
    return [i for i, _ in sampler]


# ------------------------------------------------------------------ EpochSampler

def test_unshuffled_sampler_deals_indices_round_robin_and_keeps_the_remainder():
    # 10 samples on 3 processes: rank r gets r, r + 3, ...; nothing dropped (evaluation)
    got = [_indices(EpochSampler(10, rank, 3, shuffle=False)) for rank in range(3)]
    assert got == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [len(EpochSampler(10, rank, 3, shuffle=False)) for rank in range(3)] == [4, 3, 3]


def test_one_process_epoch_is_a_permutation_of_all_samples():
    order = _indices(EpochSampler(10, seed=3))
    assert sorted(order) == list(range(10)) and order != list(range(10))


def test_shuffled_shards_are_the_one_process_order_dealt_round_robin_after_dropping_the_tail():
    # 10 samples on 3 processes: 10 // 3 = 3 each; the order's first 9 entries dealt out
    whole = _indices(EpochSampler(10, 0, 1, seed=3))
    shards = [_indices(EpochSampler(10, rank, 3, seed=3)) for rank in range(3)]
    assert shards == [[whole[0], whole[3], whole[6]], [whole[1], whole[4], whole[7]],
                      [whole[2], whole[5], whole[8]]]
    assert len({i for s in shards for i in s}) == 9  # disjoint: no sample twice in an epoch


def test_each_epoch_has_its_own_order_and_the_same_epoch_the_same_order():
    a, b = EpochSampler(32, seed=0), EpochSampler(32, seed=0)
    a.set_epoch(1)
    b.set_epoch(1)
    first = list(a)
    assert list(b) == first
    b.set_epoch(2)
    assert _indices(b) != [i for i, _ in first]


def test_resume_mid_epoch_yields_the_rest_of_the_epoch_with_the_same_sample_seeds():
    full = EpochSampler(12, 1, 2, seed=5)
    full.set_epoch(3)
    whole = list(full)                     # 6 (index, seed) pairs on rank 1
    resumed = EpochSampler(12, 1, 2, seed=5)
    resumed.set_epoch(3, start=4)          # 4 samples already seen: batch size 2, after 2 steps
    assert list(resumed) == whole[4:] and len(resumed) == 2


def test_every_position_of_every_rank_gets_its_own_sample_seed():
    seeds = [s for rank in range(2) for _, s in EpochSampler(8, rank, 2, seed=0)]
    assert len(seeds) == len(set(seeds)) == 8


# ------------------------------------------------------------------ repeated augmentation

def _perm(size, seed, repeats):
    """The epoch's permutation, read off the one-process order (each index ``repeats`` times)."""
    seq = _indices(RepeatedAugSampler(size, 0, 1, seed=seed, repeats=repeats))
    assert seq[0::repeats] == seq[1::repeats] == seq[repeats - 1::repeats]
    return seq[0::repeats]


def test_repeated_aug_deals_4_images_x_3_copies_to_2_processes_by_hand():
    # positions 0..11 hold p0 p0 p0 p1 p1 p1 p2 p2 p2 p3 p3 p3; rank 0 takes the even positions,
    # rank 1 the odd ones; fewer than 256 images: each keeps all 6 (the engine's fallback)
    p = _perm(4, seed=1, repeats=3)
    assert sorted(p) == [0, 1, 2, 3]
    assert _indices(RepeatedAugSampler(4, 0, 2, seed=1, repeats=3)) == [p[0], p[0], p[1], p[2], p[2], p[3]]
    assert _indices(RepeatedAugSampler(4, 1, 2, seed=1, repeats=3)) == [p[0], p[1], p[1], p[2], p[3], p[3]]


def test_repeated_aug_pads_5_images_x_3_copies_to_16_positions_for_4_processes_by_hand():
    # 15 positions padded to ceil(15 / 4) * 4 = 16 by repeating position 0 (p0):
    # p0 p0 p0 p1 p1 p1 p2 p2 p2 p3 p3 p3 p4 p4 p4 | p0; rank r takes positions r, r + 4, r + 8, r + 12
    p = _perm(5, seed=2, repeats=3)
    got = [_indices(RepeatedAugSampler(5, rank, 4, seed=2, repeats=3)) for rank in range(4)]
    assert got == [[p[0], p[1], p[2], p[4]], [p[0], p[1], p[3], p[4]],
                   [p[0], p[2], p[3], p[4]], [p[1], p[2], p[3], p[0]]]


def test_repeated_aug_keeps_deits_floor_n_over_256_share_of_each_deal():
    # 512 images on 2 processes: each is dealt 1536 / 2 = 768 positions and keeps
    # floor(512 // 256 * 256 / 2) = 256 of them, the first 256 of its deal
    # one process keeps floor(512 // 256 * 256 / 1) = 512 positions: p0 p0 p0 ... p170 p170,
    # which hold every position the two processes keep (positions 0 .. 511)
    repeated = _indices(RepeatedAugSampler(512, 0, 1, seed=0, repeats=3))
    assert len(repeated) == 512 and repeated[0:510:3] == repeated[1:510:3] == repeated[2:510:3]
    assert repeated[510] == repeated[511] != repeated[509]
    for rank in range(2):
        sampler = RepeatedAugSampler(512, rank, 2, seed=0, repeats=3)
        assert len(sampler) == 256
        assert _indices(sampler) == repeated[rank::2][:256]


def test_repeated_aug_resumes_mid_epoch_like_the_plain_sampler():
    whole = list(RepeatedAugSampler(4, 0, 2, seed=1, repeats=3))
    resumed = RepeatedAugSampler(4, 0, 2, seed=1, repeats=3)
    resumed.set_epoch(0, start=3)
    assert list(resumed) == whole[3:] and len(resumed) == 3


def test_train_sampler_picks_repeated_aug_only_for_repeats_above_one_and_refuses_it_with_weights():
    assert type(train_sampler(8, 0, 1, 0, repeats=3)) is RepeatedAugSampler
    assert type(train_sampler(8, 0, 1, 0, repeats=1)) is EpochSampler
    with pytest.raises(ConfigError, match="weighted"):
        train_sampler(8, 0, 1, 0, weights=[1.0] * 8, repeats=3)
    with pytest.raises(ConfigError, match="repeats >= 1, got 0"):
        RepeatedAugSampler(8, repeats=0)
