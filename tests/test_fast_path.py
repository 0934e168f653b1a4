"""The benchmark's three models, compilation without graph breaks, and fast == reference path."""
import copy

import timm
import torch

import tome
from launch import bench
from tests.models import timm_model, input_for


def test_limit_model_keeps_the_merged_token_counts():
    base = timm.create_model("vit_tiny_patch16_224", img_size=64, pretrained=False).eval()
    merged = tome.patch.timm(copy.deepcopy(base))
    merged.r = 5
    rs = tome.parse_r(5, len(base.blocks))
    limit = bench.limit_model(base, rs)
    counts = []
    hooks = [blk.mlp.register_forward_hook(lambda m, i, o: counts.append(o.shape[1]))
             for blk in limit.blocks]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        merged(x)
        limit(x)
    for h in hooks:
        h.remove()
    assert counts == merged._tome.tokens


def test_bench_reports_all_three_and_ratios(tmp_path):
    out = tmp_path / "bench.json"
    result = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                         "--batch", "2", "--runs", "2", "--warmup", "1", "--device", "cpu",
                         "--json", str(out)])
    assert set(result["throughput"]) == {"unmerged", "merged", "limit"}
    assert result["gflops"]["merged"] < result["gflops"]["unmerged"]
    assert abs(result["efficiency"] - result["merged_over_unmerged"] / result["limit_over_unmerged"]) < 1e-9
    assert out.exists()
    train = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                        "--batch", "2", "--runs", "1", "--warmup", "1", "--device", "cpu",
                        "--step", "train", "--dtype", "bf16"])
    assert train["throughput"]["merged"] > 0


def test_patched_model_compiles_without_graph_breaks():
    model = tome.patch.timm(timm_model("augreg").eval(), trace_source=True)
    model.r = 3
    explanation = torch._dynamo.explain(model)(input_for("augreg"))
    assert explanation.graph_break_count == 0


def test_fused_attention_matches_explicit_attention_with_merging():
    fused = tome.patch.timm(timm_model("augreg").eval(), trace_source=True)
    fused.r = 3
    manual = copy.deepcopy(fused)
    for blk in manual.blocks:
        blk.attn.fused_attn = False
    x = input_for("augreg")
    with torch.no_grad():
        a, b = fused(x), manual(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    assert torch.equal(fused._tome.source, manual._tome.source)


def test_gflops_of_vit_b16_match_the_published_count():
    """ViT-B/16 at 224 px is 17.6 GFLOPs (fvcore convention); merging at r=16 halves it."""
    from tome.flops import model_gflops
    model = tome.patch.timm(timm.create_model("vit_base_patch16_224", pretrained=False))
    full = model_gflops(model, 197, [197] * 12)
    assert 17.4 < full < 17.7
    merged = model_gflops(model, 197, tome.token_counts(197, 1, [16] * 12))
    assert 8.5 < merged < 9.0
