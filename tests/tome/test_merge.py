"""The matching and merging core against the paper's algorithm."""

import pytest
import torch

from tome.merge import (bipartite_soft_matching, merge_source, merge_tokens, token_groups,
                        unmerge)

from tests.oracle import paper_merge


@pytest.mark.parametrize("tokens", [197, 198, 50])
def test_matches_published_algorithm_token_for_token(tokens):
    x = torch.randn(3, tokens, 16, dtype=torch.float64)
    metric = torch.randn(3, tokens, 8, dtype=torch.float64)
    size = torch.randint(1, 5, (3, tokens, 1)).double()
    for r in (1, 7, 30):
        m = bipartite_soft_matching(metric, r, protected=1)
        ours, our_size = merge_tokens(m, x, size)
        ref, ref_size = paper_merge(x, metric, size, min(r, (tokens - 1) // 2))
        torch.testing.assert_close(ours, ref)
        torch.testing.assert_close(our_size, ref_size)


def test_r_zero_merges_nothing_and_a_large_r_is_clamped_to_half():
    metric = torch.randn(2, 11, 4)
    assert bipartite_soft_matching(metric, 0, protected=1) is None
    m = bipartite_soft_matching(metric, 100, protected=1)
    assert m.keep.shape == (2, 11 - 5)


@pytest.mark.parametrize("protected", [0, 1, 2, 5])
def test_protected_tokens_stay_first_and_alone(protected):
    tokens = 40
    metric = torch.randn(2, tokens, 8)
    # make prefix tokens identical to everything so they would be the best matches if allowed
    metric[:, :protected] = metric[:, protected:].mean(1, keepdim=True)
    m = bipartite_soft_matching(metric, 19, protected=protected)
    assert (m.keep[:, :protected] == torch.arange(protected)).all()
    assert (m.src >= protected).all()
    assert (m.dst >= protected).all()
    source = torch.eye(tokens)[None].expand(2, -1, -1)
    out = merge_source(m, source)
    assert (out[:, :protected, :protected] == torch.eye(protected)).all()
    assert out[:, protected:, :protected].sum() == 0


@pytest.mark.parametrize("mode", ["wavg", "mean", "max", "keep"])
def test_sizes_and_sources_account_for_every_input_in_each_merge_mode(mode):
    tokens, batch = 60, 2
    x = torch.randn(batch, tokens, 8)
    size, source = None, torch.eye(tokens)[None].expand(batch, -1, -1)
    for _ in range(4):
        m = bipartite_soft_matching(x, 6, protected=1)
        source = merge_source(m, source, mode)
        x, size = merge_tokens(m, x, size, mode)
    assert x.shape[1] == tokens - 24
    if mode == "keep":
        assert (size == 1).all()  # pruning drops tokens, it does not grow them
        assert source.sum() == batch * (tokens - 24)
    else:
        assert (size.sum(dim=1) == tokens).all()
        assert (source.sum(dim=1) == 1).all()  # every input held by exactly one output
        assert torch.equal(source.sum(dim=2, keepdim=True), size)


def test_each_merge_mode_combines_a_hand_worked_group_as_defined():
    # positions: 0 cls | B: 1, 3 | A: 2, 4. Both A tokens match B token 1 (identical metric).
    x = torch.tensor([[[9.0], [1.0], [3.0], [5.0], [100.0]]])
    metric = torch.tensor([[[1.0, 0], [0, 1.0], [0, 1.0], [1.0, 0], [0, 1.0]]])
    size = torch.tensor([[[1.0], [2.0], [1.0], [1.0], [1.0]]])
    m = bipartite_soft_matching(metric, 2, protected=1)
    wavg, s = merge_tokens(m, x, size, "wavg")
    assert wavg.flatten().tolist() == pytest.approx([9.0, (2 * 1 + 3 + 100) / 4, 5.0])
    assert s.flatten().tolist() == [1.0, 4.0, 1.0]
    mean, _ = merge_tokens(m, x, size, "mean")
    assert mean.flatten().tolist() == pytest.approx([9.0, 104 / 3, 5.0])
    mx, _ = merge_tokens(m, x, size, "max")
    assert mx.flatten().tolist() == [9.0, 100.0, 5.0]
    kept, ks = merge_tokens(m, x, size, "keep")
    assert kept.flatten().tolist() == [9.0, 1.0, 5.0] and ks.flatten().tolist() == [1.0, 2.0, 1.0]


def test_random_partition_merges_r_and_keeps_prefix():
    metric = torch.randn(2, 33, 8)
    m = bipartite_soft_matching(metric, 10, protected=1, matching="random",
                                generator=torch.Generator().manual_seed(0))
    assert m.keep.shape == (2, 23) and (m.keep[:, 0] == 0).all()
    positions = torch.cat([m.keep, m.src], dim=1).sort(dim=1).values
    assert (positions == torch.arange(33)).all()


def test_tokens_of_different_groups_never_merge():
    tokens = 41
    groups = torch.cat([torch.tensor([-1]), torch.arange(40) // 10])[None].expand(2, -1)
    metric = torch.randn(2, tokens, 8)
    source = torch.eye(tokens)[None].expand(2, -1, -1)
    g = groups
    x = metric
    merged = 0
    for _ in range(3):
        m = bipartite_soft_matching(x, 8, protected=1, groups=g)
        if m is None:
            break
        merged += m.src.shape[1]
        source = merge_source(m, source)
        x, _ = merge_tokens(m, x, None)
        g = g.gather(1, m.keep)
    assert merged > 0
    owner = token_groups(source)
    # every output token holds inputs of a single group
    for b in range(2):
        for out_tok in range(source.shape[1]):
            members = groups[b][owner[b] == out_tok]
            assert members.unique().numel() == 1


def test_unmerge_puts_unmerged_tokens_back_at_their_input_positions():
    x = torch.randn(2, 30, 5)
    m = bipartite_soft_matching(x, 10, protected=1)
    source = merge_source(m, torch.eye(30)[None].expand(2, -1, -1))
    merged, _ = merge_tokens(m, x, None)
    full = unmerge(merged, source)
    assert full.shape == (2, 30, 5)
    # the unmerged tokens come back exactly
    kept = m.keep[:, : 30 - 10 - 15]  # prefix + unmerged A
    torch.testing.assert_close(full.gather(1, kept[..., None].expand(-1, -1, 5)),
                               x.gather(1, kept[..., None].expand(-1, -1, 5)))


def test_merge_passes_each_outputs_gradient_back_to_all_its_members():
    x = torch.randn(2, 20, 6, requires_grad=True)
    m = bipartite_soft_matching(x.detach(), 5, protected=1)
    out, _ = merge_tokens(m, x, None)
    out.sum().backward()
    # a size-weighted average passes each token's gradient share back to every member
    assert torch.allclose(x.grad.sum(dim=(1, 2)), torch.full((2,), 15.0 * 6))
    assert (x.grad != 0).all()
