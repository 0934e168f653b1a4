"""The options of the paper's Tables 1 and 2 that tome adds beside its defaults, each on a case
worked out by hand: distance ``softmax``, ``heads="concat"``, ``partition`` sequential / random,
``kmeans_iters``, ``matching="attn_prune"`` (with the class attention it ranks by), and the
checks that refuse combinations that mean nothing. Metrics ``x`` / ``x_pre`` are checked against
the slow oracle in test_patch.py (test_merges_and_outputs_match_the_direct_computation)."""
import math

import pytest
import torch

import tome
from launch.engine.config import ConfigError, ToMeConfig, resolve
from launch.engine.tasks import tome_options
from tome.attention import class_attention, pick_metric
from tome.distance import similarity
from tome.flops import model_gflops
from tome.matching import KMEANS_ITERS, attn_prune_matching, kmeans_matching, match
from tome.merge import bipartite_soft_matching
from tome.state import ToMeInfo

from tests.models import input_for, timm_model, torchvision_model
from tests.oracle import _attention
from tests.repo import REPO


def _rows(m):
    return m.keep[0].tolist(), m.src[0].tolist(), m.dst[0].tolist()


# ------------------------------------------------------------------ distance: softmax (Table 1b)

def test_softmax_similarity_is_the_scaled_dot_product_normalised_over_the_second_set():
    a = torch.tensor([[[3.0, 2.9]]])
    b = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # logits 3 / sqrt(2), 2.9 / sqrt(2): softmax = sigmoid of their difference, 0.1 / sqrt(2)
    first = 1 / (1 + math.exp(-0.1 / math.sqrt(2)))
    assert similarity(a, b, "softmax")[0, 0].tolist() == pytest.approx([first, 1 - first])


def test_softmax_distance_merges_another_token_than_dot_and_cosine():
    # No class token; A = positions 0, 2, B = positions 1, 3 (alternating).
    #   pos 0 = (3, 2.9): dot with B (3, 2.9), best 3; cosine 3 / 4.17 = 0.719;
    #                     softmax best = sigmoid(0.1 / sqrt 2) = 0.518
    #   pos 2 = (1, -1):  dot (1, -1), best 1; cosine 1 / 1.414 = 0.707;
    #                     softmax best = sigmoid(2 / sqrt 2) = 0.804
    # r = 1: dot and cosine merge pos 0 into pos 1, softmax merges pos 2 into pos 1.
    metric = torch.tensor([[[3.0, 2.9], [1.0, 0.0], [1.0, -1.0], [0.0, 1.0]]])
    for distance in ("dot", "cosine"):
        assert _rows(match(metric, 1, 0, distance=distance)) == ([2, 1, 3], [0], [1]), distance
    # output: [unmerged A (pos 0), B (pos 1, pos 3)]; pos 2 goes into output 1 (pos 1)
    assert _rows(match(metric, 1, 0, distance="softmax")) == ([0, 1, 3], [2], [1])


# ------------------------------------------------------------------ heads: concat (Table 1c)

# Keys of 4 tokens, 2 heads of 2 dims: [B=1, H=2, T=4, D=2].
#   token:    0           1           2           3
#   head 0: (1, 0)      (1, 0)      (0, 1)      (-1, 0)
#   head 1: (1, 0)      (0, 1)      (1, 0)      (0, -1)
KEYS = torch.tensor([[[[1., 0.], [1., 0.], [0., 1.], [-1., 0.]],
                      [[1., 0.], [0., 1.], [1., 0.], [0., -1.]]]])


def test_concat_heads_puts_each_tokens_heads_side_by_side():
    concat = pick_metric("k", None, None, KEYS, None, heads="concat")
    assert concat[0].tolist() == [[1, 0, 1, 0], [1, 0, 0, 1], [0, 1, 1, 0], [-1, 0, 0, -1]]
    mean = pick_metric("k", None, None, KEYS, None)
    assert mean[0].tolist() == [[1, 0], [0.5, 0.5], [0.5, 0.5], [-0.5, -0.5]]


def test_concat_heads_merges_another_token_than_the_head_mean():
    # A = tokens 0, 2; B = tokens 1, 3; cosine similarity, r = 1.
    # mean:   cos(0, 1) = 0.5 / 0.707 = 0.707, cos(2, 1) = 1       -> token 2 merges into 1
    # concat: cos(0, 1) = 1 / (1.414 * 1.414) = 0.5, cos(2, 1) = 0, cos(2, 3) = 0 -> token 0
    mean = pick_metric("k", None, None, KEYS, None)
    concat = pick_metric("k", None, None, KEYS, None, heads="concat")
    assert _rows(match(mean, 1, 0)) == ([0, 1, 3], [2], [1])
    assert _rows(match(concat, 1, 0)) == ([2, 1, 3], [0], [1])


# ------------------------------------------------------------------ partition (Table 1e)

def test_sequential_partition_compares_the_first_half_with_the_second():
    # Tokens (1, 0), (1, 0.1), (0, 1), (-1, 0), no class token, r = 1.
    # alternating, A = {0, 2}, B = {1, 3}: cos(0, 1) = 0.995 is the best -> 0 into 1.
    # sequential,  A = {0, 1}, B = {2, 3}: cos(0, 2) = 0, cos(1, 2) = 0.0995 -> 1 into 2.
    metric = torch.tensor([[[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [-1.0, 0.0]]])
    assert _rows(bipartite_soft_matching(metric, 1)) == ([2, 1, 3], [0], [1])
    assert _rows(bipartite_soft_matching(metric, 1, partition="sequential")) == ([0, 2, 3], [1], [1])


def test_every_partition_keeps_the_alternating_set_sizes_and_the_class_token():
    # 8 tokens, class token at 0: alternating A = {2, 4, 6}, B = {1, 3, 5, 7}; sequential A =
    # {1, 2, 3}, B = {4, 5, 6, 7}. Merging all 3 A tokens leaves the class token and B.
    metric = torch.randn(1, 8, 4)
    alternating = bipartite_soft_matching(metric, 3, protected=1)
    assert alternating.keep[0].tolist() == [0, 1, 3, 5, 7]
    assert sorted(alternating.src[0].tolist()) == [2, 4, 6]
    sequential = bipartite_soft_matching(metric, 3, protected=1, partition="sequential")
    assert sequential.keep[0].tolist() == [0, 4, 5, 6, 7]
    assert sorted(sequential.src[0].tolist()) == [1, 2, 3]
    shuffled = bipartite_soft_matching(metric, 3, protected=1, partition="random",
                                       generator=torch.Generator().manual_seed(0))
    assert shuffled.keep[0, 0] == 0 and shuffled.src.shape == (1, 3) and shuffled.keep.shape == (1, 5)


def test_random_partition_is_the_older_random_matching():
    metric = torch.randn(2, 33, 8)
    new = bipartite_soft_matching(metric, 10, protected=1, partition="random",
                                  generator=torch.Generator().manual_seed(3))
    old = bipartite_soft_matching(metric, 10, protected=1, matching="random",
                                  generator=torch.Generator().manual_seed(3))
    for a, b in zip(new, old):
        assert torch.equal(a, b)


# ------------------------------------------------------------------ k-means iterations (Table 2)

def test_kmeans_iterations_move_the_centroids_as_worked_by_hand():
    # 1-D tokens 2, 4, 5, 10, 12, 18; r = 3 -> 3 clusters seeded at tokens 0, 2, 5 (linspace 0..5,
    # rounded half to even): centroids 2, 5, 18; euclidean distance.
    # step 1: assign {2} {4, 5, 10} {12, 18} -> centroids 2, 6.33, 15
    #   final assignment: 4 is 2 from 2 and 2.33 from 6.33 -> {2, 4} {5, 10} {12, 18}
    # step 2: centroids 3, 7.5, 15 -> final: 5 is 2 from 3, 2.5 from 7.5 -> {2, 4, 5} {10} {12, 18}
    metric = torch.tensor([2.0, 4.0, 5.0, 10.0, 12.0, 18.0])[None, :, None]
    one = match(metric, 3, 0, "kmeans", distance="euclidean", kmeans_iters=1)
    assert _rows(one) == ([0, 2, 4], [1, 3, 5], [0, 1, 2])
    two = match(metric, 3, 0, "kmeans", distance="euclidean", kmeans_iters=2)
    assert _rows(two) == ([0, 3, 4], [1, 2, 5], [0, 0, 2])
    assert _rows(match(metric, 3, 0, "kmeans", distance="euclidean")) == \
        _rows(kmeans_matching(metric, 3, 0, distance="euclidean", iters=KMEANS_ITERS))


def test_kmeans_iters_default_is_the_same_in_tome_and_in_configs():
    assert ToMeInfo().kmeans_iters == ToMeConfig().kmeans_iters == KMEANS_ITERS


# ------------------------------------------------------------------ attention-based pruning (Table 2)

def test_class_attention_averages_the_class_rows_of_every_head():
    # One sample, 2 heads, 3 tokens, D = 1, scale 1. Head 0: q_cls = 1, keys 0, ln 2, ln 3 ->
    # softmax (1, 2, 3) / 6. Head 1: q_cls = 0 -> uniform 1/3. Mean over heads:
    q = torch.tensor([[[[1.0], [5.0], [5.0]], [[0.0], [5.0], [5.0]]]])
    k = torch.tensor([[[[0.0], [math.log(2)], [math.log(3)]]] * 2])
    got = class_attention(q, k, scale=1.0)
    assert got.shape == (1, 3, 1)
    assert got[0, :, 0].tolist() == pytest.approx([(1 / 6 + 1 / 3) / 2, (2 / 6 + 1 / 3) / 2,
                                                   (3 / 6 + 1 / 3) / 2])
    # sizes 1, 1, 2 add log 2 to the last key: head 0 (1, 2, 6) / 9, head 1 (1, 1, 2) / 4
    sized = class_attention(q, k, torch.tensor([[[1.0], [1.0], [2.0]]]), scale=1.0)
    assert sized[0, :, 0].tolist() == pytest.approx([(1 / 9 + 1 / 4) / 2, (2 / 9 + 1 / 4) / 2,
                                                     (6 / 9 + 2 / 4) / 2])


def test_attn_prune_drops_the_least_attended_tokens_and_never_the_class_token():
    # class attention: class 0.0 (lowest, but protected), then 0.1, 0.4, 0.05, 0.3, 0.15
    scores = torch.tensor([0.0, 0.1, 0.4, 0.05, 0.3, 0.15])[None, :, None]
    assert _rows(attn_prune_matching(scores, 2, protected=1)) == ([0, 2, 4, 5], [], [])
    # at most half of the 5 unprotected tokens go in one layer: r = 3 prunes 2
    assert _rows(match(scores, 3, 1, "attn_prune")) == ([0, 2, 4, 5], [], [])
    with pytest.raises(ValueError, match="no class token"):
        attn_prune_matching(scores, 2, protected=0)


def test_attn_prune_in_a_patched_vit_drops_what_the_explicit_attention_ranks_lowest():
    """Oracle: the first block's class-token attention written out (explicit softmax of
    q k^T * scale, tests/oracle.py), averaged over heads; the 3 lowest tokens must be gone."""
    model = timm_model("augreg").eval()
    x = input_for("augreg")
    with torch.no_grad():
        tokens = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        blk = model.blocks[0]
        _, q, k, _ = _attention(blk.attn, blk.norm1(tokens), torch.ones(tokens.shape[:2]), False)
        cls = ((q[:, :, :1] @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(-1).mean(1)[:, 0]
    expected = [sorted(set(range(17)) - set((row[1:].argsort()[:3] + 1).tolist())) for row in cls]
    tome.patch.timm(model, matching="attn_prune")
    model.r = [3]
    with torch.no_grad(), tome.trace(source=True) as t:
        model(x)
    kept = [sorted(torch.nonzero(s.sum(0)).flatten().tolist()) for s in t.source]
    assert kept == expected
    assert t.size.eq(1).all()  # pruning: nothing stands for more than itself


# ------------------------------------------------------------------ every patch takes the options

@pytest.mark.parametrize("options", [dict(metric="x_pre"), dict(metric="x"), dict(heads="concat"),
                                     dict(distance="softmax"), dict(partition="sequential"),
                                     dict(matching="attn_prune"),
                                     dict(matching="kmeans", kmeans_iters=2)])
@pytest.mark.parametrize("make, patch", [(lambda: timm_model("augreg"), tome.patch.timm),
                                         (torchvision_model, tome.patch.torchvision)])
def test_timm_and_torchvision_patches_run_every_new_option_on_schedule(make, patch, options):
    model = patch(make().eval(), **options)
    model.r = 3
    with torch.no_grad(), tome.trace() as t:
        y = model(torch.randn(2, 3, 32, 32))
    assert torch.isfinite(y).all() and t.tokens == [14, 11, 8]
    assert {k: getattr(model._tome, k) for k in options} == options


def test_metric_x_pre_runs_attention_on_the_merged_tokens():
    """FLOPs: with x_pre a layer's attention runs on the tokens left after merging. Hand count,
    ViT-S (dim 384) with 17 -> 16 tokens in the first layer: attention saves
    (17 - 16) * 4 * 384^2 projections + 2 * (17^2 - 16^2) * 384 products."""
    model = timm_model("augreg")
    dim = model.embed_dim
    counts = [16, 16, 16]
    after = model_gflops(tome.patch.timm(model, metric="x"), 17, counts)
    before = model_gflops(tome.patch.timm(model, metric="x_pre"), 17, counts)
    assert (after - before) * 1e9 == pytest.approx(4 * dim * dim + 2 * (17 ** 2 - 16 ** 2) * dim)


# ------------------------------------------------------------------ combinations refused, configs

@pytest.mark.parametrize("options, message", [
    (dict(heads="sum"), "heads must be one of"),
    (dict(partition="zigzag"), "partition must be one of"),
    (dict(kmeans_iters=0), "kmeans_iters must be a positive integer, got 0"),
    (dict(metric="x", heads="concat"), "metric 'x' has no heads"),
    (dict(partition="sequential", matching="greedy"), "matching 'greedy' has no partition"),
    (dict(partition="sequential", matching="random"), "matching 'random' has no partition"),
    (dict(metric="x_pre", matching="attn_prune"), "metric 'x_pre'"),
])
def test_meaningless_options_are_refused_with_the_bad_value(options, message):
    with pytest.raises(ValueError, match=message):
        ToMeInfo(**options)


def test_config_options_reach_the_patched_model(tmp_path):
    import os
    cfg = resolve(os.path.join(REPO, "image/configs/ablation_base.yaml"),
                  ["tome.heads=concat", "tome.partition=sequential", "tome.kmeans_iters=2",
                   "tome.distance=softmax", "tome.metric=q"])
    options = tome_options(cfg)
    model = tome.patch.timm(timm_model("augreg"), **options)
    info = model._tome
    assert (info.heads, info.partition, info.kmeans_iters, info.distance, info.metric) == \
        ("concat", "sequential", 2, "softmax", "q")
    with pytest.raises(ConfigError, match="partition must be one of"):
        resolve(os.path.join(REPO, "image/configs/ablation_base.yaml"), ["tome.partition=odd"])


def test_transformers_patch_runs_the_token_metrics_and_attention_pruning_on_schedule():
    transformers = pytest.importorskip("transformers")
    model = transformers.ViTForImageClassification(transformers.ViTConfig(
        image_size=32, patch_size=8, num_labels=7, hidden_size=48, num_hidden_layers=3,
        num_attention_heads=3, intermediate_size=96)).eval()
    for options in (dict(metric="x_pre"), dict(metric="x"), dict(matching="attn_prune"),
                    dict(heads="concat", partition="sequential")):
        tome.patch.transformers(model, **options)
        model.r = 3
        with torch.no_grad(), tome.trace() as t:
            y = model(torch.randn(2, 3, 32, 32)).logits
        assert torch.isfinite(y).all() and t.tokens == [14, 11, 8], options
        assert {k: getattr(model._tome, k) for k in options} == options
