"""Spatiotemporal MAE ViT: shapes, token layout, timm compatibility and the MAE-ST checkpoint loader."""
import pytest
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from launch.engine.errors import ConfigError, DataError
from video.model import VARIANTS, PatchEmbed3D, build_video_vit, load_mae_st_checkpoint

SMALL = dict(num_frames=4, img_size=32)  # grid (2, 2, 2) with tubelet 2, patch 16


def _eval(model):
    return model.eval()  # no dropout, so outputs compare exactly


def test_video_vit_has_mae_st_shapes_and_refuses_a_wrong_input_shape():
    model = _eval(build_video_vit("micro", 5, **SMALL))
    x = torch.randn(2, 3, 4, 32, 32)
    assert isinstance(model, VisionTransformer)
    assert model.patch_embed.grid_size == (2, 2, 2) and model.patch_embed.num_patches == 8
    assert model.forward_features(x).shape == (2, 1 + 8, 64)
    assert model(x).shape == (2, 5)
    assert model.num_prefix_tokens == 1 and model.global_pool == "avg"
    assert isinstance(model.norm, nn.Identity) and model.fc_norm.eps == 1e-6
    assert model.head_drop.p == 0.5 and model.blocks[0].attn.qkv.bias is not None
    with pytest.raises(DataError, match="input shape"):
        model(torch.randn(1, 3, 6, 32, 32))


def test_variants_have_the_published_sizes_and_bad_settings_are_refused():
    assert VARIANTS["b"] == (768, 12, 12) and VARIANTS["l"] == (1024, 24, 16)
    assert VARIANTS["h"] == (1280, 32, 16)
    model = build_video_vit("tiny", 3, num_frames=8, img_size=(32, 48), drop_path=0.1)
    assert model.patch_embed.grid_size == (4, 2, 3) and model.embed_dim == 192 and len(model.blocks) == 4
    with pytest.raises(ConfigError, match="variant"):
        build_video_vit("xl", 3)
    with pytest.raises(ConfigError, match="multiple"):
        build_video_vit("micro", 3, num_frames=5)


def test_tokens_are_ordered_time_then_row_then_column():
    embed = PatchEmbed3D(img_size=(32, 48), patch_size=16, embed_dim=8, num_frames=4, tubelet=2)
    x = torch.randn(1, 3, 4, 32, 48)
    tokens = embed(x)
    grid = embed.proj(x)  # (1, D, T', H', W')
    t, h, w = embed.grid_size
    for ti, r, c in [(0, 0, 2), (1, 0, 0), (1, 1, 2)]:
        torch.testing.assert_close(tokens[0, ti * h * w + r * w + c], grid[0, :, ti, r, c])


def test_position_embedding_is_spatial_plus_temporal_and_class_apart():
    model = build_video_vit("micro", 2, **SMALL)
    x = torch.zeros(1, 8, 64)
    out = model._pos_embed(x)
    torch.testing.assert_close(out[0, 0], (model.cls_token + model.pos_embed_class)[0, 0])
    # token (t=1, r=0, c=1) is index 1*4 + 0*2 + 1 = 5 after the class token
    torch.testing.assert_close(out[0, 1 + 5], model.pos_embed_spatial[0, 1] + model.pos_embed_temporal[0, 1])
    assert {"pos_embed_spatial", "pos_embed_temporal", "cls_token"} <= model.no_weight_decay()


# -- checkpoint loading -------------------------------------------------------------------------

def _mae_st_layout(model, head=True, head_name="head"):
    """A state dict in MAE-ST's key layout: separate q/k/v, pooled ``norm``, decoder extras."""
    sd = {}
    for k, v in model.state_dict().items():
        if ".attn.qkv." in k:
            q, kk, vv = v.chunk(3, dim=0)
            for name, part in zip("qkv", (q, kk, vv)):
                sd[k.replace(".qkv.", f".{name}.")] = part.clone()
        elif k.startswith("fc_norm."):
            sd[k.replace("fc_norm.", "norm.")] = v.clone()
        elif k.startswith("head."):
            if head:
                sd[k.replace("head.", f"{head_name}.")] = v.clone()
        else:
            sd[k] = v.clone()
    return sd


def _save(tmp_path, sd, key="model_state", name="ckpt.pyth"):
    path = tmp_path / name
    torch.save({key: sd, "epoch": 5, "cfg": "MODEL:\n  NUM_CLASSES: 5\n"}, path)
    return path


def test_mae_st_checkpoint_loads_to_identical_outputs_dropping_the_decoder(tmp_path):
    torch.manual_seed(0)
    source = _eval(build_video_vit("micro", 5, **SMALL))
    sd = _mae_st_layout(source)
    sd.update({"decoder_embed.weight": torch.zeros(4, 64), "mask_token": torch.zeros(1, 1, 4),
               "decoder_pos_embed_spatial": torch.zeros(1, 4, 4)})
    target = _eval(build_video_vit("micro", 5, **SMALL))
    report = load_mae_st_checkpoint(target, _save(tmp_path, sd))
    assert report["wrapper"] == "model_state" and report["fused_qkv"] == 2
    assert report["head"] == "loaded" and report["missing"] == [] and report["unexpected"] == []
    assert set(report["dropped"]) == {"decoder_embed.weight", "mask_token", "decoder_pos_embed_spatial"}
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_raw_ddp_state_dict_with_slowfast_head_name_loads_to_identical_outputs(tmp_path):
    source = _eval(build_video_vit("micro", 5, **SMALL))
    sd = {f"module.{k}": v for k, v in _mae_st_layout(source, head_name="head.projection").items()}
    path = tmp_path / "raw.pth"
    torch.save(sd, path)
    target = _eval(build_video_vit("micro", 5, **SMALL))
    report = load_mae_st_checkpoint(target, path)
    assert report["wrapper"] == "" and report["head"] == "loaded"
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_pos_embeds_are_interpolated_to_a_larger_grid(tmp_path):
    source = build_video_vit("micro", 5, **SMALL)  # grid (2, 2, 2)
    with torch.no_grad():
        source.pos_embed_spatial.fill_(0.25)
        source.pos_embed_temporal.copy_(torch.tensor([0.0, 1.0])[None, :, None].expand(1, 2, 64))
    target = build_video_vit("micro", 5, num_frames=8, img_size=64)  # grid (4, 4, 4)
    report = load_mae_st_checkpoint(target, _save(tmp_path, _mae_st_layout(source)))
    assert report["resized"] == {"pos_embed_spatial": ((1, 4, 64), (1, 16, 64)),
                                      "pos_embed_temporal": ((1, 2, 64), (1, 4, 64))}
    torch.testing.assert_close(target.pos_embed_spatial, torch.full((1, 16, 64), 0.25))
    temporal = target.pos_embed_temporal[0, :, 0]
    assert temporal[0] == 0 and temporal[-1] == 1 and torch.all(temporal.diff() >= 0)
    assert target(torch.randn(1, 3, 8, 64, 64)).shape == (1, 5)


def test_mismatched_head_is_skipped_and_an_absent_head_gets_std_2e5(tmp_path):
    source = build_video_vit("micro", 5, **SMALL)
    path = _save(tmp_path, _mae_st_layout(source))
    target = build_video_vit("micro", 7, **SMALL)
    report = load_mae_st_checkpoint(target, path)
    head = report["head"]
    assert head.startswith("skipped") and "(5, 64)" in head and "(7, 64)" in head
    assert target.head.weight.abs().max() < 1e-3 and torch.all(target.head.bias == 0)
    torch.testing.assert_close(target.fc_norm.weight, source.fc_norm.weight)
    with pytest.raises(ConfigError, match="head"):
        load_mae_st_checkpoint(build_video_vit("micro", 7, **SMALL), path, strict_head=True)
    pretrained = _save(tmp_path, _mae_st_layout(source, head=False), key="model", name="pre.pth")
    report = load_mae_st_checkpoint(build_video_vit("micro", 7, **SMALL), pretrained)
    assert report["head"] == "absent" and report["head_init"] == 2e-5


def test_width_tubelet_qkv_and_file_mismatches_are_config_errors(tmp_path):
    source = build_video_vit("micro", 5, **SMALL)
    path = _save(tmp_path, _mae_st_layout(source))
    with pytest.raises(ConfigError, match="shape"):  # width 192 vs 64
        load_mae_st_checkpoint(build_video_vit("tiny", 5, **SMALL), path)
    with pytest.raises(ConfigError, match="tubelet|shape"):
        load_mae_st_checkpoint(build_video_vit("micro", 5, num_frames=4, img_size=32, tubelet=4), path)
    sd = _mae_st_layout(source)
    del sd["blocks.1.attn.k.weight"]
    with pytest.raises(ConfigError, match="q, k, v"):
        load_mae_st_checkpoint(build_video_vit("micro", 5, **SMALL), _save(tmp_path, sd, name="b.pyth"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_mae_st_checkpoint(source, tmp_path / "nope.pyth")
    (tmp_path / "junk.pyth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable"):
        load_mae_st_checkpoint(source, tmp_path / "junk.pyth")


def test_pickled_namespace_loads_through_the_allow_list_and_a_depth_mismatch_is_refused(tmp_path, caplog):
    import argparse
    from video.model import VideoViT
    source = _eval(build_video_vit("micro", 5, **SMALL))
    path = tmp_path / "mae_st_save.pth"  # mae_st's own saves carry an argparse.Namespace
    torch.save({"model": _mae_st_layout(source), "args": argparse.Namespace(lr=1e-3)}, path)
    target = _eval(build_video_vit("micro", 5, **SMALL))
    assert load_mae_st_checkpoint(target, path)["wrapper"] == "model"  # allow-listed, no full unpickle
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))
    shallow = VideoViT(num_frames=4, img_size=32, patch_size=16, embed_dim=64, depth=1, num_heads=2,
                       num_classes=5)
    with pytest.raises(ConfigError, match="blocks.1"):
        load_mae_st_checkpoint(shallow, path)
