"""Patched models: identity at r=0, token counts, sizes, sources, gradients, errors."""
import pytest
import timm
import torch

import tome
from tome.attention import size_bias
from tests.models import TIMM_VARIANTS, input_for, respost_model, timm_model, torchvision_model


def _outputs(model, x, train, seed=0):
    model.train(train)
    torch.manual_seed(seed)
    return model(x)


@pytest.mark.parametrize("variant", sorted(TIMM_VARIANTS))
@pytest.mark.parametrize("train", [False, True])
def test_r0_is_identity_timm(variant, train):
    drop = dict(drop_path_rate=0.1, attn_drop_rate=0.1, proj_drop_rate=0.1) if train else {}
    model = timm_model(variant, **drop)
    x = input_for(variant)
    ref = _outputs(model, x, train)
    tome.patch.timm(model)
    model.r = 0
    out = _outputs(model, x, train)
    ref, out = (ref[0], out[0]) if isinstance(ref, tuple) else (ref, out)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


def test_r0_is_identity_with_gradient_checkpointing():
    model = timm_model("augreg")
    x = input_for("augreg")
    ref = _outputs(model, x, True)
    model.set_grad_checkpointing(True)
    tome.patch.timm(model)
    out = _outputs(model, x, True)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)
    model.r = 4
    out = _outputs(model, x, True)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("train", [False, True])
def test_r0_is_identity_torchvision(train):
    model = torchvision_model(dropout=0.1, attention_dropout=0.1) if train else torchvision_model()
    x = torch.randn(2, 3, 32, 32)
    ref = _outputs(model, x, train)
    tome.patch.torchvision(model)
    out = _outputs(model, x, train)
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("schedule", [3, (3, -1.0), (2, 0.5), [5, 0, 2]])
@pytest.mark.parametrize("variant", ["augreg", "deit_distilled", "registers"])
def test_tokens_per_layer_follow_schedule(variant, schedule):
    model = tome.patch.timm(timm_model(variant).eval())
    model.r = schedule
    with torch.no_grad():
        model(input_for(variant))
    num_tokens = 16 + model.num_prefix_tokens
    assert model._tome.tokens == model._tome.expected_tokens(num_tokens, len(model.blocks))
    assert model._tome.tokens[-1] < num_tokens


@pytest.mark.parametrize("variant", sorted(TIMM_VARIANTS))
def test_sizes_and_source_partition_inputs(variant):
    model = tome.patch.timm(timm_model(variant).eval(), trace_source=True)
    model.r = 3
    with torch.no_grad():
        model(input_for(variant))
    info = model._tome
    num_in = info.source.shape[-1]
    assert (info.size.sum(dim=1) == num_in).all()
    assert (info.source.sum(dim=1) == 1).all()
    prefix = model.num_prefix_tokens
    assert (info.source[:, :prefix, :prefix] == torch.eye(prefix)).all()
    assert info.source[:, prefix:, :prefix].sum() == 0


def test_torchvision_merges_and_keeps_class_token():
    model = tome.patch.torchvision(torchvision_model().eval(), trace_source=True)
    model.r = 4
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 7)
    assert model._tome.tokens == [13, 9, 5]
    assert (model._tome.source[:, 0, 0] == 1).all()


def test_identical_tokens_with_proportional_attention():
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


def test_size_weighted_average_pooling():
    model = tome.patch.timm(timm_model("mae_avgpool").eval())
    model.r = 3
    x = input_for("mae_avgpool")
    with torch.no_grad():
        feats = model.forward_features(x)
        pooled = model.pool(feats)
    size = model._tome.size[:, 1:]
    manual = (feats[:, 1:] * size).sum(1) / size.sum(1)
    torch.testing.assert_close(pooled, manual)
    assert not torch.allclose(pooled, feats[:, 1:].mean(1))


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


@pytest.mark.parametrize("option, value", [("metric", "x"), ("metric", "q"), ("metric", "v"),
                                           ("mode", "mean"), ("mode", "max"), ("mode", "keep"),
                                           ("matching", "random"), ("prop_attn", False)])
def test_ablation_options_run(option, value):
    model = tome.patch.timm(timm_model("augreg").eval(), **{option: value})
    model.r = 4
    with torch.no_grad():
        y = model(input_for("augreg"))
    assert y.shape == (2, 7) and torch.isfinite(y).all()


def test_unpatch_restores_original():
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


def test_size_bias_is_log_size():
    size = torch.tensor([[[1.0], [4.0]]])
    assert torch.allclose(size_bias(size, torch.float32), torch.log(size)[:, None, None, :, 0])


@pytest.mark.parametrize("make, patch, match", [
    (lambda: torch.nn.Linear(2, 2), tome.patch.timm, "timm VisionTransformer models, got Linear"),
    (respost_model, tome.patch.timm, "only timm Block with Attention"),
    (lambda: timm_model("augreg", global_pool="map"), tome.patch.timm, "attention-pooling"),
    (lambda: timm_model("augreg"), tome.patch.torchvision, "torchvision VisionTransformer, got"),
])
def test_unsupported_models_fail_clearly(make, patch, match):
    with pytest.raises(ValueError, match=match):
        patch(make())


@pytest.mark.parametrize("kwargs, match", [
    (dict(metric="z"), "metric must be one of"), (dict(mode="median"), "mode must be one of"),
    (dict(matching="hungarian"), "matching must be one of"), (dict(distance="l1"), "distance must be one of"),
    (dict(prop_attn="yes"), "prop_attn must be True or False"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tome.patch.timm(timm_model("augreg"), **kwargs)


@pytest.mark.parametrize("bad", [-1, 1.5, [1, 1, 1, 1], (2, 3.0)])
def test_bad_r_fails_when_set(bad):
    model = tome.patch.timm(timm_model("augreg"))
    with pytest.raises(ValueError):
        model.r = bad
