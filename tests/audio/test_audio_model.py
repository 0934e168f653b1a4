import argparse

import numpy as np
import pytest
import torch

from audio.model import build_audio_vit, load_audiomae_checkpoint, sincos_pos_embed
from launch.engine.errors import ConfigError


def _model(seed, **kw):
    torch.manual_seed(seed)
    kw.setdefault("num_classes", 5)
    return build_audio_vit("micro", drop_path=0.0, **kw).eval()


def _input(target_length=1024, batch=2):
    return torch.randn(batch, 1, target_length, 128, generator=torch.Generator().manual_seed(1))


def _numpy_sincos(dim, t_size, f_size):
    # Independent re-derivation of Audio-MAE's table: meshgrid(w, h) puts the frequency
    # coordinate first; each half is [sin, cos] of pos * 10000^(-i / (dim/4)).
    grid = np.meshgrid(np.arange(f_size, dtype=np.float64), np.arange(t_size, dtype=np.float64))
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim / 4))

    def half(pos):
        out = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([half(grid[0]), half(grid[1])], axis=1)
    return np.concatenate([np.zeros((1, dim)), table])[None]


def test_grid_token_order_and_frozen_sincos_table_follow_audio_mae():
    model = _model(0)
    x = _input()
    assert model.patch_embed.grid_size == (64, 8)
    assert model(x).shape == (2, 5)
    tokens = model._pos_embed(model.patch_embed(x))
    assert tokens.shape == (2, 513, 64)
    assert not model.pos_embed.requires_grad and model.global_pool == "avg"
    np.testing.assert_allclose(model.pos_embed.numpy(), _numpy_sincos(64, 64, 8), atol=1e-6)
    # Token 1 + t*8 + f is the patch at time t, band f (row-major over time, frequency).
    patch = torch.zeros(1, 1, 1024, 128)
    patch[..., 16 * 5:16 * 6, 16 * 3:16 * 4] = 1.0
    emb = model.patch_embed(patch)[0] - model.patch_embed(torch.zeros_like(patch))[0]
    assert emb.abs().sum(-1).nonzero().flatten().tolist() == [5 * 8 + 3]


def test_forward_matches_audio_mae_recipe_and_timm_chain():
    model = _model(0)
    x = _input()
    with torch.no_grad():
        # Audio-MAE models_vit.forward_features with global_pool=True, written out.
        h = model.patch_embed(x) + model.pos_embed[:, 1:]
        cls = (model.cls_token + model.pos_embed[:, :1]).expand(len(x), -1, -1)
        h = torch.cat([cls, h], dim=1)
        for blk in model.blocks:
            h = blk(h)
        expected = model.head(model.fc_norm(h[:, 1:].mean(dim=1)))
        # The chain a token-merging patch re-implements.
        t = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        chained = model.forward_head(model.norm(model.blocks(t)))
        torch.testing.assert_close(model(x), expected)
        torch.testing.assert_close(chained, expected)


def test_variants_have_audio_mae_parameter_counts_and_bad_settings_are_refused():
    assert build_audio_vit("tiny", num_classes=3, target_length=256).patch_embed.grid_size == (16, 8)
    b = build_audio_vit("b")
    assert sum(p.numel() for p in b.parameters() if p.requires_grad) == 85_659_407  # Audio-MAE log
    with pytest.raises(ConfigError, match="variant 'huge'"):
        build_audio_vit("huge")
    with pytest.raises(ConfigError, match="target_length=1000"):
        build_audio_vit("micro", target_length=1000)


def _pretrained_layout(src):
    """A state dict laid out like Audio-MAE's pretrained.pth (encoder + decoder, no head)."""
    sd = {k: v for k, v in src.state_dict().items() if not k.startswith(("head.", "fc_norm."))}
    sd["norm.weight"], sd["norm.bias"] = torch.randn(64), torch.randn(64)
    sd["mask_token"] = torch.randn(1, 1, 32)
    sd["decoder_embed.weight"] = torch.randn(32, 64)
    sd["decoder_pos_embed"] = torch.randn(1, 513, 32)
    sd["decoder_blocks.0.attn.qkv.weight"] = torch.randn(96, 32)
    sd["decoder_norm.weight"] = torch.randn(32)
    sd["decoder_pred.weight"] = torch.randn(256, 32)
    return sd


def test_finetuned_checkpoint_gives_identical_outputs(tmp_path):
    src, dst = _model(0), _model(1)
    path = tmp_path / "finetuned.pth"
    torch.save({"model": src.state_dict(), "optimizer": {"state": {}}, "epoch": 3,
                "args": argparse.Namespace(lr=1e-3, model="vit_base_patch16")}, path)
    report = load_audiomae_checkpoint(dst, path)
    assert report["head"] == "loaded" and report["dropped"] == [] and report["missing"] == []
    assert report["resized"] == {} and report["loaded"] == len(src.state_dict()) and report["wrapper"] == "model"
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(dst(x), src(x), rtol=0, atol=0)

    # DDP prefixes and another head size: the head is skipped and reported, the rest loads.
    torch.save({"model": {"module." + k: v for k, v in src.state_dict().items()}}, path)
    other = _model(2, num_classes=7)
    report = load_audiomae_checkpoint(other, path)
    assert report["head"].startswith("skipped: head.weight (5, 64) vs model (7, 64)")
    with torch.no_grad():
        torch.testing.assert_close(other.forward_features(x), src.forward_features(x), rtol=0, atol=0)


def test_pretrained_checkpoint_drops_decoder_and_norm(tmp_path):
    src, dst = _model(0), _model(1, num_classes=7)
    path = tmp_path / "pretrained.pth"
    torch.save({"model": _pretrained_layout(src)}, path)
    report = load_audiomae_checkpoint(dst, path)
    assert len([k for k in report["dropped"] if k.startswith(("decoder_", "mask_token"))]) == 6
    assert {"norm.weight", "norm.bias"} <= set(report["dropped"]) and len(report["dropped"]) == 8
    assert set(report["missing"]) == {"fc_norm.weight", "fc_norm.bias", "head.weight", "head.bias"}
    assert report["head"] == "absent" and report["head_init"] == 2e-5
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(dst.forward_features(x), src.forward_features(x), rtol=0, atol=0)


def test_position_table_for_another_grid_is_regenerated(tmp_path):
    src, dst = _model(0, target_length=256), _model(1)
    path = tmp_path / "short.pth"
    torch.save({"model": src.state_dict()}, path)
    report = load_audiomae_checkpoint(dst, path)
    assert report["pos_embed"].startswith("regenerated sin-cos for grid (64, 8) (checkpoint grid (16, 8))")
    torch.testing.assert_close(dst.pos_embed.data, sincos_pos_embed(64, (64, 8)))


def test_checkpoint_mismatches_are_one_line_config_errors(tmp_path):
    src = _model(0)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": src.state_dict()}, path)
    shapes = r"cls_token has shape \(1, 1, 64\) but the model needs \(1, 1, 192\)"
    with pytest.raises(ConfigError, match=shapes):
        load_audiomae_checkpoint(build_audio_vit("tiny", num_classes=5), path)
    deeper = build_audio_vit("micro", num_classes=5)
    shallow = {k: v for k, v in src.state_dict().items() if not k.startswith("blocks.1.")}
    torch.save({"model": shallow}, path)
    with pytest.raises(ConfigError, match="lacks 12 model tensors, first 'blocks.1."):
        load_audiomae_checkpoint(deeper, path)
    torch.save({"model": {**src.state_dict(), "dist_token": torch.zeros(1, 1, 64)}}, path)
    with pytest.raises(ConfigError, match="'dist_token'"):
        load_audiomae_checkpoint(deeper, path)
    torch.save({"model": src.state_dict(), "bad": ConfigError("not a tensor")}, path)
    with pytest.raises(ConfigError, match="objects other than tensors .*launch.engine.errors.ConfigError"):
        load_audiomae_checkpoint(deeper, path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_audiomae_checkpoint(deeper, tmp_path / "missing.pth")


def test_tome_patch_is_identity_at_r0_and_merges_r_per_layer_on_the_audio_model():
    import tome
    from tome.patch import spectrogram
    model = _model(0)
    x = _input()
    with torch.no_grad():
        reference = model(x)
        spectrogram.patch_audio(model)
        model.r = 0
        torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=0)
        model.r = 100  # 2 layers x 100 merges: 513 -> 313 tokens
        with tome.trace() as t:
            assert model(x).shape == (2, 5)
        assert t.size.shape[1] == 313 and int(t.size[0].sum()) == 513


def test_token_masking_drops_whole_rows_and_columns_in_training_only():
    import tome
    model = build_audio_vit("micro", num_classes=5, target_length=64, mel_bins=32, patch=8,
                            mask_t_prob=0.25, mask_f_prob=0.5)  # grid 8 x 4
    masking = model.patch_drop
    x = torch.arange(2 * 33 * 1, dtype=torch.float32).view(2, 33, 1)
    masking.train()
    out = masking(x)
    assert out.shape == (2, 1 + 6 * 2, 1)  # 6 of 8 time rows x 2 of 4 freq columns
    kept = out[:, 1:, 0] - x[:, 1:2, 0]  # patch positions
    for row in kept:
        t, f = (row // 4).long(), (row % 4).long()
        assert len(set(t.tolist())) == 6 and len(set(f.tolist())) == 2
        assert (row[1:] > row[:-1]).all()  # kept in (time, freq) order
    masking.eval()
    assert torch.equal(masking(x), x)
    tome.patch.audio(model)
    model.r = 2
    with tome.trace() as t:
        model.train()(torch.randn(2, 1, 64, 32)).sum().backward()
    assert t.tokens_in == 13 and t.tokens[0] == 13 - 2
    with pytest.raises(ConfigError, match="mask_t_prob"):
        build_audio_vit("micro", mask_t_prob=1.0)
