"""The benchmark's three models, compilation without graph breaks, and fast == reference path."""
import copy

import pytest
import timm
import torch

import tome
from launch import bench
from launch.engine.throughput import limit_model
from tests.models import timm_model, input_for


def test_limit_model_keeps_the_merged_token_counts():
    base = timm.create_model("vit_tiny_patch16_224", img_size=64, pretrained=False).eval()
    merged = tome.patch.timm(copy.deepcopy(base))
    merged.r = 5
    rs = tome.parse_r(5, len(base.blocks))
    limit = limit_model(base, rs)
    counts = []
    hooks = [blk.mlp.register_forward_hook(lambda m, i, o: counts.append(o.shape[1]))
             for blk in limit.blocks]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(), tome.trace() as t:
        merged(x)
        limit(x)
    for h in hooks:
        h.remove()
    assert counts == t.tokens


def test_bench_reports_three_models_paired_speedups_and_the_matchings_flops(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                         "--batch", "2", "--runs", "2", "--warmup", "1", "--device", "cpu",
                         "--json", str(out)])
    speed = result["throughput"]
    assert set(speed) == {"unmerged", "merged", "limit"}
    assert result["gflops"]["merged"] < result["gflops"]["unmerged"]
    # speed-ups are medians of per-round ratios (paired within a round; tests/launch/engine/test_throughput.py
    # checks those on hand-worked timings): each lies inside its own quartiles, and efficiency is
    # the median of the per-round limit / merged times, inside its interval; the ratio of the two
    # median speed-ups is reported beside it
    for name, key in (("merged", "merged_over_unmerged"), ("limit", "limit_over_unmerged")):
        q1, q3 = result["speedup_quartiles"][name]
        assert q1 <= result[key] <= q3
    per_round = result["efficiency_per_round"]
    assert len(per_round) == 2
    assert result["efficiency"] == pytest.approx((per_round[0] + per_round[1]) / 2, rel=1e-12)
    interval = result["efficiency_interval"]
    assert (interval["lo"], interval["hi"]) == (min(per_round), max(per_round))  # 2 rounds: the range
    assert interval["coverage"] == pytest.approx(0.5)  # 1 - 2 / 2^2
    assert result["efficiency_of_medians"] == pytest.approx(
        result["merged_over_unmerged"] / result["limit_over_unmerged"], rel=1e-12)
    # the limit drops tokens for free: its GFLOPs are the merged ones less the matching, which is
    # |A| x |B| x head_dim (192 / 3 heads = 64) per merging layer: A = even, B = odd positions
    # after the class token
    tokens = tome.token_counts(17, 1, [4] * 12)
    n, matching = 17, 0
    for out_n in tokens:
        if out_n < n:
            matching += ((n - 1) // 2) * (n - 1 - (n - 1) // 2) * 64
        n = out_n
    assert (result["gflops"]["merged"] - result["gflops"]["limit"]) * 1e9 == pytest.approx(matching)
    assert out.exists()
    train = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                        "--batch", "2", "--runs", "1", "--warmup", "1", "--device", "cpu",
                        "--step", "train", "--dtype", "bf16"])
    assert train["throughput"]["merged"] > 0


@pytest.mark.parametrize("variant", ["augreg", "mae_avgpool"])
def test_patched_model_compiles_without_graph_breaks(variant):
    """Sizes (and sources) flow as values into the size-weighted pooling: one graph."""
    model = tome.patch.timm(timm_model(variant).eval(), trace_source=True)
    model.r = 3
    with tome.trace():  # an open trace must not break the graph either (compiled calls skip it)
        explanation = torch._dynamo.explain(model)(input_for(variant))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_fused_attention_matches_explicit_attention_with_merging():
    fused = tome.patch.timm(timm_model("augreg").eval(), trace_source=True)
    fused.r = 3
    manual = copy.deepcopy(fused)
    for blk in manual.blocks:
        blk.attn.fused_attn = False
    x = input_for("augreg")
    with torch.no_grad(), tome.trace() as t:
        a, b = fused(x), manual(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert torch.equal(t.calls[0].source, t.calls[1].source)


def test_gflops_of_vit_b16_match_the_published_count():
    """ViT-B/16 at 224 px is 17.6 GFLOPs (fvcore convention); merging at r=16 halves it."""
    from tome.flops import model_gflops
    model = tome.patch.timm(timm.create_model("vit_base_patch16_224", pretrained=False))
    full = model_gflops(model, 197, [197] * 12)
    assert 17.4 < full < 17.7
    merged = model_gflops(model, 197, tome.token_counts(197, 1, [16] * 12))
    assert 8.5 < merged < 9.0


def test_matching_flops_use_the_metric_width_and_both_set_sizes():
    """Hand count for a 17-token layer (class token + 16): |A| = |B| = 8 pairs of each; the key
    metric is head_dim = 64 wide for ViT-S (384 / 6 heads), the block-input metric 384 wide."""
    from tome.flops import model_gflops
    model = timm.create_model("vit_small_patch16_224", pretrained=False, img_size=64)
    for metric, width in (("k", 64), ("v", 64), ("x", 384)):
        tome.patch.timm(model, metric=metric)
        merged = model_gflops(model, 17, [16] + [16] * 11)
        free = model_gflops(model, 17, [16] + [16] * 11, matching=False)
        assert (merged - free) * 1e9 == pytest.approx(8 * 8 * width)
