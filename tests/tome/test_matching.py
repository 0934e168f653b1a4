"""Table 1's distance axis and Table 2's matching algorithms, on cases worked by hand."""
import math

import pytest
import torch

import tome
from tome.distance import similarity
from tome.matching import greedy_matching, kmeans_matching, match, random_prune_matching
from tome.merge import bipartite_soft_matching, merge_source, merge_tokens

from tests.models import input_for, timm_model

# Six 2-D tokens. Euclidean distances: d(0,2) = 1, d(1,3) = 3, d(3,4) = sqrt(29) ~ 5.4,
# d(2,4) = sqrt(41), d(0,1) = 10, d(4,5) = sqrt(450), d(3,5) = sqrt(389).
SIX = torch.tensor([[[0., 0.], [10., 0.], [0., 1.], [10., 3.], [5., 5.], [20., 20.]]])


def _rows(m):
    return m.keep[0].tolist(), m.src[0].tolist(), m.dst[0].tolist()


def test_dot_cosine_and_euclidean_similarities_match_hand_values():
    a = torch.tensor([[[3., 4.]]])
    b = torch.tensor([[[6., 8.], [0., 1.]]])
    assert similarity(a, b, "dot")[0, 0].tolist() == pytest.approx([50, 4])
    assert similarity(a, b, "cosine")[0, 0].tolist() == pytest.approx([1.0, 0.8])
    assert similarity(a, b, "euclidean")[0, 0].tolist() == pytest.approx([-5.0, -math.sqrt(9 + 9)])
    with pytest.raises(ValueError, match="distance must be one of"):
        similarity(a, b, "l1")


def test_greedy_takes_the_closest_pair_then_the_next_disjoint_one():
    m = greedy_matching(SIX, 2, protected=0, distance="euclidean")
    # (0, 2) first, then (1, 3); the later token of a pair merges into the earlier one.
    assert _rows(m) == ([0, 1, 4, 5], [2, 3], [0, 1])
    x, size = merge_tokens(m, SIX, None)
    assert x[0].tolist() == [[0, 0.5], [10, 1.5], [5, 5], [20, 20]]
    assert size[0, :, 0].tolist() == [2, 2, 1, 1]
    # A third merge can only pair the two tokens left: 5 into 4.
    assert _rows(greedy_matching(SIX, 3, protected=0, distance="euclidean")) == \
        ([0, 1, 4], [2, 3, 5], [0, 1, 2])
    # Bipartite (A = 0, 2, 4; B = 1, 3, 5) cannot pair 0 with 2: it merges 4 -> 3, then 0 -> 1.
    assert _rows(bipartite_soft_matching(SIX, 2, 0, distance="euclidean")) == ([2, 1, 3, 5], [4, 0], [2, 1])


def test_greedy_with_cosine_and_a_protected_token():
    angles = torch.tensor([0., 10., 90., 95., 180., 260.]) * math.pi / 180
    x = torch.stack([angles.cos(), angles.sin()], dim=-1)
    x = torch.cat([torch.tensor([[1., 0.]]), x])[None]  # a class token identical to token 1
    m = greedy_matching(x, 2, protected=1)
    # 5 degrees apart (inputs 3, 4) first, then 10 degrees (inputs 1, 2); the class token stays.
    assert _rows(m) == ([0, 1, 3, 5, 6], [4, 2], [2, 1])


def test_kmeans_clusters_six_tokens_into_three_by_hand():
    x = torch.tensor([[[0., 0.], [10., 10.], [0., 1.], [20., 0.], [10., 11.], [21., 0.]]])
    # Seeds at tokens 0, 2, 5. Step 1: {0}, {1, 2, 4}, {3, 5}; centroids (0, 0), (6.7, 7.3),
    # (20.5, 0). Step 2: {0, 2}, {1, 4}, {3, 5}, stable after.
    m = kmeans_matching(x, 3, protected=0, distance="euclidean")
    assert _rows(m) == ([0, 1, 3], [2, 4, 5], [0, 1, 2])
    merged, size = merge_tokens(m, x, None)
    assert merged[0].tolist() == [[0, 0.5], [10, 10.5], [20.5, 0]]
    assert size[0, :, 0].tolist() == [2, 2, 2]


def test_kmeans_many_to_one_is_the_size_weighted_group_mean():
    torch.manual_seed(0)
    x = torch.randn(2, 1 + 20, 4)
    size = torch.randint(1, 4, (2, 21, 1)).float()
    m = kmeans_matching(x, 10, protected=1)  # 20 tokens -> 10 clusters (r is at most half)
    assert m.keep.shape == (2, 11) and m.src.shape == (2, 10) and (m.keep[:, 0] == 0).all()
    assert any(len(set(row.tolist())) < 10 for row in m.dst)  # some cluster holds three or more
    merged, new_size = merge_tokens(m, x, size)
    source = merge_source(m, torch.eye(21).expand(2, -1, -1).clone())
    # Oracle: each output token is the size-weighted mean of the inputs its source row holds.
    want = (source * size.transpose(1, 2)) @ x / (source @ size)
    torch.testing.assert_close(merged, want)
    torch.testing.assert_close(new_size, source @ size)
    assert (source.sum(1) == 1).all()  # every input is in exactly one output token


def test_kmeans_refills_empty_clusters():
    x = torch.cat([torch.ones(1, 5, 2), torch.full((1, 1, 2), -7.0)], dim=1)  # five identical tokens
    m = kmeans_matching(x, 3, protected=0, distance="euclidean")
    assert m.keep.shape == (1, 3) and m.src.shape == (1, 3)
    assert 5 in m.keep[0].tolist()  # the far token stays alone
    with pytest.raises(ValueError, match="kmeans"):
        kmeans_matching(x, 2, protected=0, groups=torch.zeros(1, 6, dtype=torch.long))


def test_random_prune_drops_r_random_tokens_and_averages_nothing():
    torch.manual_seed(0)
    x = torch.randn(3, 1 + 10, 5)
    m = random_prune_matching(x, 4, protected=1)
    assert m.keep.shape == (3, 7) and m.src.shape == (3, 0) and (m.keep[:, 0] == 0).all()
    assert (m.keep.diff(dim=1) > 0).all()  # kept tokens in input order
    out, size = merge_tokens(m, x, None, "wavg")
    torch.testing.assert_close(out, x.gather(1, m.keep[..., None].expand(-1, -1, 5)))
    assert (size == 1).all()
    counts = torch.zeros(11)
    for _ in range(500):
        kept = random_prune_matching(x[:1], 4, protected=1).keep[0]
        counts[kept] += 1
    assert counts[0] == 500 and (counts[1:] / 500 - 0.6).abs().max() < 0.1  # each kept w.p. 6/10


def test_distance_changes_bipartite_decisions():
    # A = tokens 0, 2; B = 1, 3. Cosine: 0 -> 1 (same direction); euclidean: 2 -> 3 (0.51 apart).
    x = torch.tensor([[[1., 0.], [10., 0.], [0., 1.], [0.1, 1.5]]])
    assert match(x, 1, 0, "bipartite", distance="cosine").src[0].tolist() == [0]
    assert match(x, 1, 0, "bipartite", distance="euclidean").src[0].tolist() == [2]
    # Dot product favours the long vector: dot(2, 3) = 20 beats dot(0, 1) = 10.
    y = torch.tensor([[[1., 0.], [10., 0.], [0., 1.], [0.1, 20.]]])
    assert match(y, 1, 0, "bipartite", distance="cosine").src[0].tolist() == [0]
    assert match(y, 1, 0, "bipartite", distance="dot").src[0].tolist() == [2]
    with pytest.raises(ValueError, match="matching must be one of"):
        match(x, 1, 0, "hungarian")


@pytest.mark.parametrize("matching", ["greedy", "kmeans", "random_prune", "random", "bipartite"])
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "dot"])
def test_every_matching_and_distance_merges_r_per_layer_in_a_patched_vit(matching, distance):
    model = tome.patch.timm(timm_model("augreg").eval(), matching=matching, distance=distance,
                            trace_source=True)
    model.r = 3
    with torch.no_grad(), tome.trace() as t:
        y = model(input_for("augreg"))
    assert y.shape == (2, 7) and torch.isfinite(y).all()
    assert t.tokens[-1] == 17 - 3 * 3
    kept_inputs = t.source.sum(dim=(1, 2))
    if matching == "random_prune":
        assert (kept_inputs == 17 - 9).all()  # pruned tokens are gone, not merged
    else:
        assert (kept_inputs == 17).all()
