"""tome.dense: a patched timm ViT's tokens spread back onto the patch grid.

Oracles: timm's own unpatched features on the grid (r = 0), and a slow copy, patch by patch, of
the token whose source-map row holds that patch, from the public forward passes under
``tome.trace(source=True)``.
"""
from __future__ import annotations

import copy

import pytest
import timm
import torch

import tome

ARCHS = ("vit_small_patch14_dinov2", "vit_small_patch14_reg4_dinov2")  # 1 and 5 prefix tokens
IMG, GRID, DEPTH = 112, 8, 4


def make(arch: str):
    model = timm.create_model(arch, img_size=IMG, num_classes=0, depth=DEPTH).eval()
    for blk in model.blocks:  # trained-like LayerScale (timm initialises it at 1e-5)
        blk.ls1.gamma.data.fill_(0.5)
        blk.ls2.gamma.data.fill_(0.5)
    return model


def images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, IMG, IMG)


def copied_by_source(tokens: torch.Tensor, source: torch.Tensor, prefix: int) -> torch.Tensor:
    """[B, T, C] tokens and their [B, T, T_in] source map -> [B, patches, C], one patch at a time."""
    batch, _, channels = tokens.shape
    patches = source.shape[-1] - prefix
    out = torch.empty(batch, patches, channels)
    for b in range(batch):
        for p in range(patches):
            holders = (source[b, :, prefix + p] == 1).nonzero().flatten().tolist()
            assert len(holders) == 1, f"patch {p} is held by tokens {holders}"
            out[b, p] = tokens[b, holders[0]]
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_dense_at_r0_is_the_unpatched_models_patch_tokens_on_the_grid(arch):
    model = make(arch)
    x = images()
    with torch.no_grad():
        feats = model.forward_features(x)[:, model.num_prefix_tokens:]
        expected = feats.reshape(2, GRID, GRID, -1).permute(0, 3, 1, 2)
        unpatched = tome.dense(model, x)
        patched = tome.patch.timm(copy.deepcopy(model))
        patched.r = 0
        at_r0 = tome.dense(patched, x)
    assert unpatched.shape == expected.shape == (2, 384, GRID, GRID)
    torch.testing.assert_close(unpatched, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(at_r0, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_dense_copies_each_final_token_to_the_patches_its_source_map_names(arch):
    model = tome.patch.timm(make(arch))
    model.r = 6
    x = images()
    prefix = model.num_prefix_tokens
    with torch.no_grad():
        with tome.trace(source=True) as t:
            feats = model.forward_features(x)
        expected = copied_by_source(feats, t.source, prefix)
        got = tome.dense(model, x, output_fmt="NLC")
        grid = tome.dense(model, x)
    assert feats.shape[1] == prefix + GRID * GRID - DEPTH * 6  # tokens did merge
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grid, expected.reshape(2, GRID, GRID, -1).permute(0, 3, 1, 2))


@pytest.mark.parametrize("arch", ARCHS)
def test_dense_intermediate_tokens_match_a_run_that_stops_merging_after_that_block(arch):
    model = tome.patch.timm(make(arch))
    model.r = 6
    x = images()
    with torch.no_grad():
        got = tome.dense(model, x, indices=[1, -1], output_fmt="NLC")
        last_two = tome.dense(model, x, indices=2)
        final = tome.dense(model, x)
        # Oracle for block 1: the same model merging only in blocks 0 and 1, so that the source
        # map at the end of the run is the one after block 1.
        model.r = [6, 6, 0, 0]
        with tome.trace(source=True) as t:
            out = model.forward_intermediates(x, indices=[1], norm=True, output_fmt="NLC",
                                              return_prefix_tokens=True, intermediates_only=True)
        spatial, prefix_tokens = out[0]
        tokens = torch.cat([prefix_tokens, spatial], dim=1)
        expected = copied_by_source(tokens, t.source, model.num_prefix_tokens)
    torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=1e-5)
    assert len(last_two) == 2
    torch.testing.assert_close(last_two[1], final)
    torch.testing.assert_close(got[1].transpose(1, 2).reshape(final.shape), final)


def test_dense_leaves_zeros_on_the_patches_that_pruning_dropped():
    model = tome.patch.timm(make(ARCHS[0]), mode="keep")
    model.r = 6
    x = images()
    with torch.no_grad(), tome.trace() as t:
        got = tome.dense(model, x, output_fmt="NLC")
    # keep mode drops each A token with the patch it holds: one zero patch per removed token
    removed = t.tokens_in - t.tokens[-1]
    zero_patches = (got.abs().sum(-1) == 0).sum(1)
    assert removed == DEPTH * 6
    assert zero_patches.tolist() == [removed, removed]


def test_dense_under_an_outer_trace_records_its_call():
    model = tome.patch.timm(make(ARCHS[1]))
    model.r = 6
    with torch.no_grad(), tome.trace() as t:
        tome.dense(model, images())
    assert len(t.calls) == 1 and t.tokens[-1] == 5 + GRID * GRID - DEPTH * 6


@pytest.mark.parametrize("kwargs, message", [
    (dict(indices=0), "indices=0"),
    (dict(indices=DEPTH + 1), f"indices={DEPTH + 1}"),
    (dict(indices=[DEPTH]), f"block index {DEPTH} is out of range"),
    (dict(indices="last"), "indices must be an int"),
    (dict(output_fmt="NHWC"), "output_fmt must be one of"),
])
def test_dense_rejects_bad_arguments_by_name(kwargs, message):
    model = tome.patch.timm(make(ARCHS[0]))
    with pytest.raises(ValueError, match=message):
        tome.dense(model, images(1), **kwargs)


def test_dense_rejects_models_and_inputs_it_cannot_place_on_a_grid():
    with pytest.raises(ValueError, match="timm VisionTransformer models, got Linear"):
        tome.dense(torch.nn.Linear(3, 3), images(1))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\] image batch, got shape \(3, 112, 112\)"):
        tome.dense(make(ARCHS[0]), torch.randn(3, IMG, IMG))
