"""Attention backends (sdpa, flex, eager): the same proportional attention in every patch family,
under torch.compile, in training; bench --attn and the GPU check's CPU smoke mode."""
import copy

import pytest
import timm
import torch

import tome
import tome.attention
from tome.attention import BACKENDS, attention
from tests.models import input_for, timm_model, torchvision_model


@pytest.fixture
def unfused_flex(monkeypatch):
    """Flex outside torch.compile without compiling its kernel: the same score_mod, run by flex's
    reference implementation (a compiled CPU kernel costs about a minute per token count here)."""
    monkeypatch.setattr(tome.attention, "COMPILE_FLEX", False)


def _weighted_attention(q, k, v, size, scale):
    """Oracle: each key counted ``size`` times, written as weights on exp(logits) (no log)."""
    out = torch.empty_like(q)
    for b in range(q.shape[0]):
        for h in range(q.shape[1]):
            w = torch.exp((q[b, h] @ k[b, h].T) * scale) * size[b][None, :]
            out[b, h] = (w / w.sum(dim=-1, keepdim=True)) @ v[b, h]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_counts_a_key_of_size_s_as_s_keys(backend, unfused_flex):
    q, k, v = (torch.randn(2, 3, 11, 8) for _ in range(3))
    size = torch.randint(1, 6, (2, 11, 1)).float()
    assert size.max() > 1
    expected = _weighted_attention(q.double(), k.double(), v.double(), size[..., 0].double(), 8 ** -0.5)
    out = attention(q, k, v, size, backend=backend)
    torch.testing.assert_close(out.double(), expected, atol=2e-6, rtol=1e-5)


def test_a_merged_pair_attends_like_the_two_tokens_it_replaced(unfused_flex):
    """Hand-worked: keys [k, k, k2] with sizes 1 == keys [k, k2] with sizes [2, 1]."""
    q = torch.randn(1, 1, 1, 4)
    k1, k2 = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 1, 4)
    v1, v2 = torch.randn(1, 1, 1, 4), torch.randn(1, 1, 1, 4)
    full = attention(q, torch.cat([k1, k1, k2], 2), torch.cat([v1, v1, v2], 2), None, "eager")
    for backend in BACKENDS:
        merged = attention(q, torch.cat([k1, k2], 2), torch.cat([v1, v2], 2),
                           torch.tensor([[[2.0], [1.0]]]), backend)
        torch.testing.assert_close(merged, full, atol=1e-6, rtol=1e-5)


def _video_model():
    from video.model import build_video_vit
    return build_video_vit("micro", 5, num_frames=4, img_size=32, patch=8)


def _audio_model():
    from audio.model import build_audio_vit
    return build_audio_vit("micro", num_classes=5, target_length=64, mel_bins=32, patch=8, drop_path=0.0)


FAMILIES = {
    "timm": (lambda: timm_model("augreg"), tome.patch.timm, lambda: input_for("augreg"), 3),
    "torchvision": (torchvision_model, tome.patch.torchvision, lambda: torch.randn(2, 3, 32, 32), 3),
    "video": (_video_model, tome.patch.video, lambda: torch.randn(2, 3, 4, 32, 32), 8),
    "audio": (_audio_model, tome.patch.audio, lambda: torch.randn(2, 1, 64, 32), 8),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_flex_equals_explicit_attention_on_merged_sizes(family, unfused_flex):
    make, patch, make_input, r = FAMILIES[family]
    eager = patch(make().eval(), trace_source=True, attn="eager")
    eager.r = r
    flex = copy.deepcopy(eager)
    flex._tome.attn = "flex"
    x = make_input()
    with torch.no_grad(), tome.trace() as t:
        ref = eager(x)
        out = flex(x)
    ref_call, flex_call = t.calls
    assert ref_call.size.max() > 1, "the attention layers after a merge must see sizes above one"
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    assert torch.equal(flex_call.source, ref_call.source)


def test_flex_training_step_has_the_gradients_of_sdpa(unfused_flex):
    sdpa = tome.patch.timm(timm_model("augreg"), attn="sdpa")
    sdpa.r = 3
    flex = copy.deepcopy(sdpa)
    flex._tome.attn = "flex"
    x, target = input_for("augreg"), torch.tensor([1, 4])
    with tome.trace() as t:
        for model in (sdpa, flex):
            model.train()
            torch.nn.functional.cross_entropy(model(x), target).backward()
    assert t.calls[0].size.max() > 1
    for (name, a), b in zip(sdpa.named_parameters(), flex.parameters()):
        torch.testing.assert_close(b.grad, a.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_flex_model_traces_as_one_graph():
    model = tome.patch.timm(timm_model("augreg").eval(), attn="flex")
    model.r = 3
    explanation = torch._dynamo.explain(model)(input_for("augreg"))
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def test_compiled_flex_kernel_matches_explicit_attention_without_recompiling():
    """The one inductor compile of the suite (about a minute on 2 CPU cores): the fused flex
    kernel in a merged model under torch.compile(fullgraph=True); every layer has its own token
    count, all in one graph; a second input of the same shape reuses it."""
    from torch._dynamo.utils import counters
    eager = tome.patch.timm(timm_model("augreg", depth=2).eval(), attn="eager")
    eager.r = [4, 0]
    flex = copy.deepcopy(eager)
    flex._tome.attn = "flex"
    torch._dynamo.reset()
    compiled = torch.compile(flex, fullgraph=True)
    before = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        for _ in range(2):
            x = input_for("augreg")
            with tome.trace() as t:
                ref = eager(x)
            torch.testing.assert_close(compiled(x), ref, atol=1e-5, rtol=1e-4)
    assert t.size.max() > 1
    assert counters["stats"]["unique_graphs"] - before == 1


def test_flex_refuses_attention_dropout_in_training_only(unfused_flex):
    model = tome.patch.timm(timm_model("augreg", attn_drop_rate=0.1), attn="flex")
    model.r = 3
    model.eval()
    with torch.no_grad():
        model(input_for("augreg"))
    model.train()
    with pytest.raises(ValueError, match="attn='flex' has no attention dropout, got dropout p=0.1"):
        model(input_for("augreg"))


@pytest.mark.parametrize("patch, make", [(tome.patch.timm, lambda: timm_model("augreg")),
                                         (tome.patch.torchvision, torchvision_model),
                                         (tome.patch.audio, _audio_model)])
def test_unknown_attention_backend_is_a_one_line_error(patch, make):
    with pytest.raises(ValueError, match=r"attn must be one of \('sdpa', 'flex', 'eager'\), got 'flash'"):
        patch(make(), attn="flash")


def record_fused_flags(monkeypatch) -> list:
    """Every later call of tome.attention.attend appends its ``fused`` flag to the returned list."""
    fused = []
    original = tome.attention.attend

    def spy(*args, **kwargs):
        fused.append(kwargs["fused"])
        return original(*args, **kwargs)
    monkeypatch.setattr(tome.attention, "attend", spy)
    return fused


def test_timm_explicit_attention_switch_still_selects_eager(monkeypatch):
    """timm's fused_attn=False (its own explicit attention) keeps meaning explicit attention."""
    model = tome.patch.timm(timm_model("manual_attention").eval())
    model.r = 3
    fused = record_fused_flags(monkeypatch)
    with torch.no_grad():
        model(input_for("manual_attention"))
    assert fused == [False] * len(model.blocks)


def test_bench_attn_option_patches_the_merged_model(monkeypatch):
    from launch import bench
    fused = record_fused_flags(monkeypatch)
    result = bench.main(["--model", "vit_tiny_patch16_224", "--img-size", "64", "--r", "4",
                         "--batch", "2", "--runs", "1", "--warmup", "0", "--device", "cpu",
                         "--attn", "eager"])
    assert result["attn"] == "eager" and result["throughput"]["merged"] > 0
    # the merged model ran ToMe's attention, every call the explicit one (sdpa would be fused)
    assert fused and not any(fused)


def test_gpu_check_smoke_mode_runs_end_to_end_on_the_cpu(tmp_path):
    from launch import gpu_check
    out = tmp_path / "smoke"
    report = gpu_check.main(["--smoke", "--out", str(out), "--dtypes", "fp32"])
    assert [c["case"] for c in report["cases"]] == list(gpu_check.SMOKE_CASES)
    for case in report["cases"]:
        for attn in BACKENDS:
            assert case["correctness"][attn]["same_merges"], (case["case"], attn)
            assert case["correctness"][attn]["max_abs_logit_diff"] < 1e-4
        assert {row["step"] for row in case["speed"]} == {"inference", "train"}
        for row in case["speed"]:
            assert set(row["backends"]) == set(BACKENDS)
            for v in row["backends"].values():
                assert v["efficiency"] == pytest.approx(v["merged_over_unmerged"] / row["limit_over_unmerged"])
    assert report["cases"][0]["compile"] == {a: {"graphs": 1, "graph_breaks": 0} for a in BACKENDS}
    assert (tmp_path / "smoke.md").read_text().count("\n") == 2 + 3 * 2 * len(BACKENDS)
    assert tome.attention.COMPILE_FLEX is True
