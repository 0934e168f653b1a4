"""tome.patch.transformers on tiny random ViT, DeiT, ViTMAE, VideoMAE and AST models.

The oracle for merged outputs is a direct re-implementation of each model's forward pass with
explicit softmax attention plus log-size, and the paper's merge algorithm from test_merge.py
(not the code under test).
"""
import math
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

import tome  # noqa: E402
from tests.oracle import paper_merge  # noqa: E402

SMALL = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=3, intermediate_size=96)


def make(family, **extra):
    T = transformers
    if family == "vit":
        return T.ViTForImageClassification(T.ViTConfig(image_size=32, patch_size=8, num_labels=7, **SMALL, **extra))
    if family == "deit":
        return T.DeiTForImageClassificationWithTeacher(
            T.DeiTConfig(image_size=32, patch_size=8, num_labels=7, **SMALL, **extra))
    if family == "vitmae":
        return T.ViTMAEModel(T.ViTMAEConfig(image_size=32, patch_size=8, mask_ratio=0.0, **SMALL, **extra))
    if family == "videomae":
        return T.VideoMAEForVideoClassification(T.VideoMAEConfig(
            image_size=32, patch_size=8, num_frames=4, tubelet_size=2, num_labels=7, **SMALL, **extra))
    if family == "ast":
        return T.ASTForAudioClassification(T.ASTConfig(
            patch_size=16, frequency_stride=10, time_stride=10, max_length=96, num_mel_bins=56,
            num_labels=7, **SMALL, **extra))
    raise KeyError(family)


def inputs(family, batch=2):
    if family == "videomae":
        return torch.randn(batch, 4, 3, 32, 32)
    if family == "ast":
        return torch.randn(batch, 96, 56)
    return torch.randn(batch, 3, 32, 32)


def output(model, family, x):
    if family == "vitmae":
        noise = torch.arange(16.0).expand(x.shape[0], -1)
        return model(x, noise=noise).last_hidden_state
    return model(x).logits


FAMILIES = ["vit", "deit", "vitmae", "videomae", "ast"]


def _randomise(model):
    """Random init leaves class/distillation tokens and AST positions at zero: fill them."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "token" in name or "position" in name:
                p.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_r0_equals_the_unpatched_model(family):
    model = _randomise(make(family))
    x = inputs(family)
    with torch.no_grad():
        ref = output(model, family, x)
        tome.patch.transformers(model)
        model.r = 0
        out = output(model, family, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the oracle

def paper_merge_no_class(x, metric, size, r):
    """The paper's algorithm without a class token (A = even, B = odd positions)."""
    metric = metric / metric.norm(dim=-1, keepdim=True)
    scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)
    node_max, node_idx = scores.max(dim=-1)
    edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]
    unm_idx = edge_idx[:, r:].sort(dim=1).values
    src_idx, dst_idx = edge_idx[:, :r], node_idx[..., None].gather(1, edge_idx[:, :r])

    def merge(t):
        src, dst = t[:, ::2], t[:, 1::2]
        n, t1, c = src.shape
        unm = src.gather(1, unm_idx.expand(n, t1 - r, c))
        dst = dst.scatter_reduce(1, dst_idx.expand(n, r, c), src.gather(1, src_idx.expand(n, r, c)),
                                 reduce="sum")
        return torch.cat([unm, dst], dim=1)
    merged_size = merge(size)
    return merge(x * size) / merged_size, merged_size


def oracle_merge(x, metric, size, r, protected):
    """Protected tokens set aside first; the rest split by absolute position parity."""
    r = min(r, (x.shape[1] - protected) // 2)
    if r <= 0:
        return x, size
    if protected % 2 == 1:  # the last protected token plays the paper's class token
        keep = protected - 1
        merged, msize = paper_merge(x[:, keep:], metric[:, keep:], size[:, keep:], r)
    else:
        keep = protected
        merged, msize = paper_merge_no_class(x[:, keep:], metric[:, keep:], size[:, keep:], r)
    return torch.cat([x[:, :keep], merged], 1), torch.cat([size[:, :keep], msize], 1)


def explicit_attention(h, size, q_lin, k_lin, v_lin, heads):
    b, n, d = h.shape
    split = lambda t: t.view(b, n, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q_lin(h)), split(k_lin(h)), split(v_lin(h))
    logits = q @ k.transpose(-1, -2) / math.sqrt(d // heads) + size.log()[:, None, None, :, 0]
    out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    return out, k.mean(1)


def reference(model, family, x, r):
    """The merged model, written out directly: returns its logits (features for ViTMAE)."""
    protected = {"vit": 1, "deit": 2, "vitmae": 1, "videomae": 0, "ast": 2}[family]
    if family == "vitmae":
        base = model
        h, _, _ = base.embeddings(x, noise=torch.arange(16.0).expand(x.shape[0], -1))
    elif family == "videomae":
        base = model.videomae
        h = base.embeddings(x, None)
    else:
        base = {"vit": lambda: model.vit, "deit": lambda: model.deit,
                "ast": lambda: model.audio_spectrogram_transformer}[family]()
        h = base.embeddings(x) if family == "ast" else base.embeddings(x)
    size = torch.ones(h.shape[0], h.shape[1], 1)
    layers = base.encoder.layer if family == "videomae" else base.layers
    heads = SMALL["num_attention_heads"]
    for layer in layers:
        if family == "videomae":
            a = layer.attention.attention
            out, metric = explicit_attention(layer.layernorm_before(h), size, a.query, a.key, a.value, heads)
            h = h + layer.attention.output.dense(out)
            h, size = oracle_merge(h, metric, size, r, protected)
            h = h + layer.output.dense(layer.intermediate(layer.layernorm_after(h)))
        else:
            a = layer.attention
            out, metric = explicit_attention(layer.layernorm_before(h), size, a.q_proj, a.k_proj, a.v_proj, heads)
            h = h + a.o_proj(out)
            h, size = oracle_merge(h, metric, size, r, protected)
            h = h + layer.mlp(layer.layernorm_after(h))
    if family == "videomae":
        return model.classifier(model.fc_norm((h * size).sum(1) / size.sum(1))), size
    h = base.layernorm(h)
    if family == "vitmae":
        return h, size
    if family == "vit":
        return model.classifier(h[:, 0]), size
    if family == "deit":
        return (model.cls_classifier(h[:, 0]) + model.distillation_classifier(h[:, 1])) / 2, size
    return model.classifier((h[:, 0] + h[:, 1]) / 2), size


@pytest.mark.parametrize("r", [2, 5])
@pytest.mark.parametrize("family", FAMILIES)
def test_merged_outputs_match_the_paper_algorithm(family, r):
    model = _randomise(make(family))
    x = inputs(family)
    with torch.no_grad():
        ref, ref_size = reference(model, family, x, r)
        tome.patch.transformers(model)
        model.r = r
        with tome.trace() as t:
            out = output(model, family, x)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(t.size, ref_size)


@pytest.mark.parametrize("family, protected", [("vit", 1), ("deit", 2), ("ast", 2), ("videomae", 0)])
def test_each_family_protects_its_prefix_tokens_and_sources_partition_the_inputs(family, protected):
    model = tome.patch.transformers(_randomise(make(family)), trace_source=True)
    model.r = 4
    with torch.no_grad(), tome.trace() as info:
        output(model, family, inputs(family))
    assert model._tome.protected == protected
    assert (info.source.sum(dim=1) == 1).all()  # every input token held by exactly one output
    assert torch.equal(info.source.sum(dim=2, keepdim=True), info.size)
    if protected:
        assert (info.source[:, :protected, :protected] == torch.eye(protected)).all()
        assert info.source[:, protected:, :protected].sum() == 0


def test_videomae_without_mean_pooling_protects_token_zero():
    model = tome.patch.transformers(_randomise(make("videomae", use_mean_pooling=False)))
    assert model._tome.protected == 1


def test_videomae_pool_weights_each_token_by_its_size():
    """A token of size 3 counts three times in the classifier's mean."""
    model = tome.patch.transformers(_randomise(make("videomae")))
    from tome.patch.transformers import size_weighted_mean
    x = torch.tensor([[[1.0], [4.0]]])
    size = torch.tensor([[[3.0], [1.0]]])
    assert size_weighted_mean(x, size).item() == pytest.approx((3 * 1 + 4) / 4)
    model.r = 6
    with torch.no_grad(), tome.trace() as t:
        model(inputs("videomae"))
    assert not torch.all(t.size == 1)


def test_unpatch_restores_the_original_model():
    model = _randomise(make("deit"))
    x = inputs("deit")
    with torch.no_grad():
        ref = model(x).logits
    tome.patch.transformers(model)
    model.r = 4
    tome.unpatch(model)
    assert type(model) is transformers.DeiTForImageClassificationWithTeacher
    assert type(model.deit.layers[0]) is transformers.models.deit.modeling_deit.DeiTLayer
    assert not hasattr(model, "_tome") and not hasattr(model, "r")
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, ref)


def test_patching_a_wrapper_module_merges_r_per_layer_of_the_inner_model():
    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = make("ast")

        def forward(self, x):
            return self.net(x).logits
    wrapper = tome.patch.transformers(_randomise(Wrapper()))
    wrapper.r = 3
    with torch.no_grad(), tome.trace() as t:
        wrapper(inputs("ast"))
    assert wrapper._tome_num_layers() == 3
    # class and distillation tokens + 5 x 9 patches, r=3 in each of the 3 layers
    assert t.tokens_in == 2 + 45 and t.tokens == [2 + 42, 2 + 39, 2 + 36]


def test_gradients_reach_every_parameter():
    model = tome.patch.transformers(make("videomae").train())
    model.r = 4
    model(inputs("videomae")).logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, missing


@pytest.mark.parametrize("band, window", [(1, None), (2, None), (None, 2), (2, 3)])
def test_ast_band_merging_never_crosses_a_band(band, window):
    """AST's tokens are frequency-major (2 + f * T' + t): groups follow that grid."""
    model = tome.patch.transformers(_randomise(make("ast")), trace_source=True, band=band, window=window)
    model.r = 6
    with torch.no_grad(), tome.trace() as traced:
        model(inputs("ast"))
    n_time, n_freq = 9, 5
    f = torch.arange(n_freq)[:, None].expand(n_freq, n_time).flatten()
    t = torch.arange(n_time)[None, :].expand(n_freq, n_time).flatten()
    label = (f // band if band else 0) * 100 + (t // window if window else 0)
    source = traced.source[:, 2:, 2:]  # patch tokens only
    assert traced.tokens[-1] < 2 + n_freq * n_time
    for b in range(source.shape[0]):
        for row in source[b]:
            members = label[row.bool()]
            assert members.numel() == 0 or members.unique().numel() == 1


def test_ast_grid_of_the_published_model_is_101_by_12():
    """MIT/ast-finetuned-audioset-10-10-0.4593: 1024 frames x 128 bins, stride 10 -> 101 x 12."""
    from tome.patch.transformers import ast_grid
    config = transformers.ASTConfig(num_hidden_layers=1, hidden_size=48, num_attention_heads=3,
                                    intermediate_size=96)  # defaults: 16, stride 10, 1024, 128
    model = transformers.ASTModel(config)
    assert ast_grid(model) == (101, 12)
    assert model.embeddings.position_embeddings.shape[1] == 1212 + 2


def test_unsupported_models_options_and_outputs_are_refused_clearly():
    with pytest.raises(ValueError, match="holds none of them"):
        tome.patch.transformers(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="spectrogram model"):
        tome.patch.transformers(make("vit"), band=2)
    model = tome.patch.transformers(make("vit"))
    with pytest.raises(ValueError, match="per-layer outputs"):
        model(inputs("vit"), output_attentions=True)


def test_import_tome_does_not_import_transformers():
    code = "import sys, tome; tome.patch.timm; assert 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_repatch_keeps_the_schedule_and_changes_options():
    model = tome.patch.transformers(make("vit"))
    model.r = 3
    tome.patch.transformers(model, trace_source=True)
    assert model.r == 3 and model._tome.trace_source
    assert model.vit._tome is model._tome and model.vit.layers[0]._tome is model._tome


def test_model_keeps_no_tensors_between_calls_except_the_recorded_results():
    """Sizes flow as values: only record() writes per-call results (size, source, tokens)."""
    model = tome.patch.transformers(_randomise(make("videomae")))
    model.r = 4
    before = {k for m in model.modules() for k in vars(m)}
    with torch.no_grad():
        model(inputs("videomae"))
    after = {k for m in model.modules() for k in vars(m)}
    assert after == before
