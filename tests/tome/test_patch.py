"""Patched models: identity at r=0, token counts, sizes, sources, gradients, errors."""
import math

import pytest
import timm
import torch

import tome
from tome.attention import attend, size_bias
from tests.models import TIMM_VARIANTS, input_for, respost_model, timm_model, torchvision_model
from tests.oracle import direct_forward, groups_of


def _outputs(model, x, train, seed=0):
    model.train(train)
    torch.manual_seed(seed)
    return model(x)


@pytest.mark.parametrize("variant", sorted(TIMM_VARIANTS))
@pytest.mark.parametrize("train", [False, True])
def test_timm_model_patched_at_r0_gives_the_unpatched_outputs(variant, train):
    drop = dict(drop_path_rate=0.1, attn_drop_rate=0.1, proj_drop_rate=0.1) if train else {}
    model = timm_model(variant, **drop)
    x = input_for(variant)
    ref = _outputs(model, x, train)
    tome.patch.timm(model)
    model.r = 0
    out = _outputs(model, x, train)
    ref, out = (ref[0], out[0]) if isinstance(ref, tuple) else (ref, out)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_timm_model_at_r0_with_gradient_checkpointing_gives_the_unpatched_outputs():
    model = timm_model("augreg")
    x = input_for("augreg")
    ref = _outputs(model, x, True)
    model.set_grad_checkpointing(True)
    tome.patch.timm(model)
    out = _outputs(model, x, True)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", ["augreg", "mae_avgpool"])
def test_gradient_checkpointing_gives_the_same_gradients(variant):
    """Drop path on, r=4: checkpointed and plain runs give the same loss and the same gradients."""
    model = tome.patch.timm(timm_model(variant, drop_path_rate=0.2), trace_source=True)
    model.r = 4
    x = input_for(variant)
    grads = []
    for checkpointing in (False, True):
        model.set_grad_checkpointing(checkpointing)
        model.zero_grad()
        out = _outputs(model, x, True, seed=3)
        (out ** 2).sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-5, atol=1e-7, msg=name)
    assert any(g.abs().sum() > 0 for g in grads[0].values())


@pytest.mark.parametrize("train", [False, True])
def test_torchvision_model_patched_at_r0_gives_the_unpatched_outputs(train):
    model = torchvision_model(dropout=0.1, attention_dropout=0.1) if train else torchvision_model()
    x = torch.randn(2, 3, 32, 32)
    ref = _outputs(model, x, train)
    tome.patch.torchvision(model)
    out = _outputs(model, x, train)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


# Patch tokens left after each of the 3 layers, worked by hand from 16 patches: layer i merges
# min(r_i, half of the patch tokens left). (3, -1.0) is 2r down to 0: r = 6, 3, 0; (2, 0.5) ramps
# from r(1 - 0.5) = 1 to 2r - 1 = 3: r = 1, 2, 3.
@pytest.mark.parametrize("schedule, patches_after", [
    (3, [13, 10, 7]), ((3, -1.0), [10, 7, 7]), ((2, 0.5), [15, 13, 10]), ([5, 0, 2], [11, 11, 9])])
@pytest.mark.parametrize("variant, prefix", [("augreg", 1), ("deit_distilled", 2), ("registers", 4)])
def test_tokens_after_each_layer_follow_the_hand_worked_schedule(variant, prefix, schedule, patches_after):
    model = tome.patch.timm(timm_model(variant).eval())
    model.r = schedule
    with torch.no_grad(), tome.trace() as t:
        model(input_for(variant))
    assert model.num_prefix_tokens == prefix
    assert t.tokens_in == 16 + prefix
    assert t.tokens == [prefix + n for n in patches_after]
    assert model._tome.expected_tokens(16 + prefix, len(model.blocks)) == t.tokens


@pytest.mark.parametrize("variant", sorted(TIMM_VARIANTS))
def test_sizes_and_sources_partition_the_inputs_with_prefix_tokens_alone(variant):
    model = tome.patch.timm(timm_model(variant).eval(), trace_source=True)
    model.r = 3
    with torch.no_grad(), tome.trace() as info:
        model(input_for(variant))
    num_in = info.source.shape[-1]
    assert (info.size.sum(dim=1) == num_in).all()
    assert (info.source.sum(dim=1) == 1).all()
    prefix = model.num_prefix_tokens
    assert (info.source[:, :prefix, :prefix] == torch.eye(prefix)).all()
    assert info.source[:, prefix:, :prefix].sum() == 0


def test_torchvision_model_merges_r_per_layer_and_keeps_the_class_token_alone():
    model = tome.patch.torchvision(torchvision_model().eval(), trace_source=True)
    model.r = 4
    with torch.no_grad(), tome.trace() as t:
        y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 7)
    assert t.tokens == [13, 9, 5]
    assert (t.source[:, 0, 0] == 1).all()
    assert torch.equal(t.size, t.source.sum(-1, keepdim=True))


def test_two_identical_tokens_merged_to_size_2_attend_as_the_pair_only_with_prop_attn():
    """Two identical tokens merged into one of size 2 give the next attention the same output."""
    model = tome.patch.timm(timm_model("augreg").eval())
    attn = model.blocks[0].attn
    x = torch.randn(1, 9, 48)
    x[:, 5] = x[:, 4]
    full, _ = attn.tome_forward(x, None, True, "k")
    keep = [0, 1, 2, 3, 4, 6, 7, 8]
    size = torch.ones(1, 8, 1)
    size[:, 4] = 2
    merged, _ = attn.tome_forward(x[:, keep], size, True, "k")
    torch.testing.assert_close(merged, full[:, keep], atol=1e-6, rtol=1e-5)
    unweighted, _ = attn.tome_forward(x[:, keep], size, False, "k")
    assert not torch.allclose(unweighted, full[:, keep], atol=1e-4)


def test_average_pooling_equals_plain_mean_over_unmerged_patches():
    """Oracle: spread every merged token back over the patches it holds (tome.unmerge), then take
    the plain mean over all input patches, as the unmerged model's pooling would."""
    model = tome.patch.timm(timm_model("mae_avgpool").eval(), trace_source=True)
    model.r = 3
    x = input_for("mae_avgpool")
    with torch.no_grad(), tome.trace() as t:
        feats = model.forward_features(x)
        pooled = model.pool(feats)
        logits = model.forward_head(feats)
        direct = model(x)
    spread = tome.unmerge(feats, t.source)  # [B, 1 + 16, C]
    torch.testing.assert_close(pooled, spread[:, 1:].mean(1))
    assert not torch.allclose(pooled, feats[:, 1:].mean(1), atol=1e-4)  # sizes really matter here
    torch.testing.assert_close(logits, direct)


def test_forward_head_of_a_copy_without_sizes_fails_clearly():
    model = tome.patch.timm(timm_model("mae_avgpool").eval())
    model.r = 3
    with torch.no_grad():
        feats = model.forward_features(input_for("mae_avgpool"))
        with pytest.raises(ValueError, match="no token sizes recorded for these 8-token features"):
            model.forward_head(feats.clone())
        model.r = 0  # unmerged features need no sizes
        model.forward_head(model.forward_features(input_for("mae_avgpool")).clone())


@pytest.mark.parametrize("variant", ["augreg", "deit_distilled", "mae_avgpool", "layerscale",
                                     "qk_norm", "registers"])
def test_gradients_reach_every_parameter(variant):
    model = tome.patch.timm(timm_model(variant, drop_path_rate=0.1).train())
    model.r = 3
    out = model(input_for(variant))
    out = sum(o.sum() for o in out) if isinstance(out, tuple) else out.sum()
    out.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and
               (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing, missing


@pytest.mark.parametrize("variant", ["augreg", "mae_avgpool"])
@pytest.mark.parametrize("metric", ["k", "q", "v", "x", "x_pre"])
@pytest.mark.parametrize("prop_attn", [True, False])
def test_merges_and_outputs_match_the_direct_computation(variant, metric, prop_attn):
    """Against tests/oracle.py (explicit softmax attention, the paper's matching, sets of input
    positions): the same groups after every layer, the same sizes and the same logits."""
    model = tome.patch.timm(timm_model(variant).eval(), metric=metric, prop_attn=prop_attn)
    model.r = 3
    x = input_for(variant)
    with torch.no_grad(), tome.trace(source=True) as t:
        logits = model(x)
    ref_logits, ref_groups, ref_sizes = direct_forward(model, x, [3, 3, 3], prop_attn, metric)
    assert groups_of(t.source) == ref_groups
    assert torch.equal(t.size[..., 0], ref_sizes)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-4)


def test_each_ablation_option_changes_what_the_oracle_says_it_changes():
    """The oracle test above could pass with an ignored option only if the option made no
    difference: on this input each metric gives other merges than k, and prop_attn other logits."""
    model = timm_model("augreg").eval()
    x = input_for("augreg")
    base_logits, base_groups, _ = direct_forward(model, x, [3, 3, 3], True, "k")
    for metric in ("q", "v", "x", "x_pre"):
        assert direct_forward(model, x, [3, 3, 3], True, metric)[1] != base_groups, metric
    no_prop = direct_forward(model, x, [3, 3, 3], False, "k")[0]
    assert (no_prop - base_logits).abs().max() > 1e-3


@pytest.mark.parametrize("option, value", [("mode", "mean"), ("mode", "max"), ("mode", "keep"),
                                           ("matching", "random")])
def test_merge_modes_and_random_matching_give_finite_logits_end_to_end(option, value):
    model = tome.patch.timm(timm_model("augreg").eval(), **{option: value})
    model.r = 4
    with torch.no_grad():
        y = model(input_for("augreg"))
    assert y.shape == (2, 7) and torch.isfinite(y).all()


def test_unpatch_restores_the_original_class_and_outputs():
    model = timm_model("augreg").eval()
    x = input_for("augreg")
    with torch.no_grad():
        ref = model(x)
    tome.patch.timm(model)
    model.r = 5
    tome.unpatch(model)
    assert type(model) is timm.models.vision_transformer.VisionTransformer
    assert not hasattr(model, "_tome") and not hasattr(model, "r")
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref)


def test_repatch_keeps_schedule_and_changes_options():
    model = tome.patch.timm(timm_model("augreg"))
    model.r = 4
    tome.patch.timm(model, trace_source=True)
    assert model.r == 4 and model._tome.trace_source


def test_size_bias_equals_attention_over_repeated_keys():
    """Oracle: a key of size s must weigh as s copies of itself. Attention over the repeated keys
    (plain softmax, no bias) equals attention over one copy each with the log-size bias."""
    torch.manual_seed(1)
    sizes = [1, 3, 1, 7, 2]
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    rep_idx = torch.tensor([i for i, s in enumerate(sizes) for _ in range(s)])
    kr, vr = k[:, :, rep_idx], v[:, :, rep_idx]
    expected = ((q @ kr.transpose(-2, -1)) / 8 ** 0.5).softmax(-1) @ vr
    bias = size_bias(torch.tensor(sizes, dtype=torch.float32)[None, :, None], torch.float32)
    for fused in (True, False):
        torch.testing.assert_close(attend(q, k, v, bias, fused=fused), expected)


def test_size_bias_is_taken_in_fp32_then_cast():
    """log(301) in bf16 is the bf16 rounding of the exact value, not a log of a rounded size."""
    size = torch.tensor([[[301.0], [257.0], [1.0]]])
    bias = size_bias(size, torch.bfloat16)
    assert bias.dtype == torch.bfloat16
    exact = torch.tensor([math.log(301), math.log(257), 0.0], dtype=torch.float64)
    assert torch.equal(bias.flatten(), exact.to(torch.bfloat16))


@pytest.mark.parametrize("make, patch, match", [
    (lambda: torch.nn.Linear(2, 2), tome.patch.timm, "timm VisionTransformer models, got Linear"),
    (respost_model, tome.patch.timm, "only timm Block with Attention"),
    (lambda: timm_model("augreg", global_pool="map"), tome.patch.timm, "attention-pooling"),
    (lambda: timm_model("augreg"), tome.patch.torchvision, "torchvision VisionTransformer, got"),
])
def test_unsupported_models_are_refused_naming_what_is_supported(make, patch, match):
    with pytest.raises(ValueError, match=match):
        patch(make())


@pytest.mark.parametrize("kwargs, match", [
    (dict(metric="z"), "metric must be one of"), (dict(mode="median"), "mode must be one of"),
    (dict(matching="hungarian"), "matching must be one of"), (dict(distance="l1"), "distance must be one of"),
    (dict(prop_attn="yes"), "prop_attn must be True or False"),
])
def test_bad_patch_options_are_refused_naming_the_choices(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tome.patch.timm(timm_model("augreg"), **kwargs)


@pytest.mark.parametrize("bad", [-1, 1.5, [1, 1, 1, 1], (2, 3.0)])
def test_bad_r_is_refused_when_assigned(bad):
    model = tome.patch.timm(timm_model("augreg"))
    with pytest.raises(ValueError):
        model.r = bad
