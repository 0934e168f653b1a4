"""Image model builders and the checkpoint loader, at tiny sizes."""

import argparse

import pytest
import torch

from image.checkpoint import load_image_checkpoint
from image.model import build_image_model
from launch.engine.errors import ConfigError

# Tiny widths/depths keep every build well under a second.
TIMM_TINY = dict(depth=2, embed_dim=32, num_heads=2)
TV_TINY = dict(num_layers=2, hidden_dim=32, mlp_dim=64, num_heads=2)


@pytest.mark.parametrize("name,kwargs,family,size,classes", [
    ("demo_vit_tiny", dict(depth=2), "demo", 64, 8),
    ("demo_vit_mae", dict(depth=2), "demo", 64, 8),
    ("vit_small_patch16_224.augreg_in21k_ft_in1k", dict(TIMM_TINY, img_size=32), "augreg", 32, 1000),
    ("vit_large_patch16_384.augreg_in21k_ft_in1k", dict(TIMM_TINY, img_size=48), "augreg", 48, 1000),
    ("deit_small_patch16_224", dict(TIMM_TINY, img_size=32, num_classes=10), "deit", 32, 10),
    ("deit_small_distilled_patch16_224", dict(TIMM_TINY, img_size=32), "deit", 32, 1000),
    ("mae_vit_large_patch16", dict(TIMM_TINY, img_size=32), "mae", 32, 1000),
    ("vit_large_patch16_224", dict(TIMM_TINY, img_size=32, global_pool="avg"), "mae", 32, 1000),
    ("torchvision:vit_b_16", dict(TV_TINY, img_size=32), "swag", 32, 1000),
])
def test_each_builder_gives_its_family_size_and_class_count(name, kwargs, family, size, classes):
    model = build_image_model(name, **kwargs).eval()
    info = model.image_info
    assert (info["family"], info["img_size"], info["num_classes"]) == (family, size, classes)
    with torch.no_grad():
        assert model(torch.randn(2, 3, size, size)).shape == (2, classes)


def test_demo_mae_pools_through_fc_norm():
    model = build_image_model("demo_vit_mae", depth=1)
    assert model.global_pool == "avg" and isinstance(model.norm, torch.nn.Identity)
    assert isinstance(model.fc_norm, torch.nn.LayerNorm)


def test_swag_weights_recorded_not_downloaded():
    model = build_image_model("torchvision:vit_h_14", **TV_TINY)
    assert model.image_info["img_size"] == 518
    assert model.image_info["weights"] == "ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1"


def test_bad_build_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown image model 'resnet_nope'"):
        build_image_model("resnet_nope")
    with pytest.raises(ConfigError, match="unknown torchvision ViT"):
        build_image_model("torchvision:vit_q_99")
    with pytest.raises(ConfigError, match="names no published weights"):
        build_image_model("deit_small_patch16_224", pretrained=True, **TIMM_TINY)
    with pytest.raises(ConfigError, match="img_size"):
        build_image_model("demo_vit_tiny", img_size=-3)
    with pytest.raises(ConfigError, match="drop_path"):
        build_image_model("torchvision:vit_b_16", drop_path=0.1, **TV_TINY)


def _mae_checkpoint(path, **kwargs):
    """A model plus an MAE-repo style file: weights under "model", DDP prefix, a stale `norm`."""
    src = build_image_model("mae_vit_base_patch16", img_size=32, num_classes=5, **TIMM_TINY, **kwargs).eval()
    state = {f"module.{k}": v for k, v in src.state_dict().items()}
    state["module.norm.weight"], state["module.norm.bias"] = torch.ones(32), torch.zeros(32)
    torch.save({"model": state, "epoch": 9, "args": argparse.Namespace(lr=1e-3)}, path)
    return src


def test_mae_checkpoint_loads_to_identical_outputs_dropping_the_stale_norm(tmp_path):
    src = _mae_checkpoint(tmp_path / "mae.pth")
    dst = build_image_model("mae_vit_base_patch16", img_size=32, num_classes=5, checkpoint=str(tmp_path / "mae.pth"),
                            **TIMM_TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    report = dst.image_info["checkpoint"]
    assert report["dropped"] == ["norm.weight", "norm.bias"] and report["wrapper"] == "model"
    assert report["missing"] == [] and report["unexpected"] == [] and report["family"] == "mae"
    assert report["head"] == "loaded" and report["head_init"] is None


def test_deit_distilled_checkpoint_loads_to_identical_outputs(tmp_path):
    src = build_image_model("deit_small_distilled_patch16_224", img_size=32, **TIMM_TINY).eval()
    torch.save({"model": src.state_dict()}, tmp_path / "deit.pth")
    dst = build_image_model("deit_small_distilled_patch16_224", img_size=32, **TIMM_TINY)
    load_image_checkpoint(dst, tmp_path / "deit.pth")
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst.eval()(x))


def test_torchvision_checkpoint_loads_to_identical_outputs(tmp_path):
    src = build_image_model("torchvision:vit_b_16", img_size=32, num_classes=4, **TV_TINY).eval()
    torch.save(src.state_dict(), tmp_path / "swag.pth")
    dst = build_image_model("torchvision:vit_b_16", img_size=32, num_classes=4, checkpoint=str(tmp_path / "swag.pth"),
                            **TV_TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    assert dst.image_info["checkpoint"]["family"] == "torchvision"


def test_pos_embed_is_resampled_and_a_mismatched_head_skipped(tmp_path):
    _mae_checkpoint(tmp_path / "mae.pth")
    dst = build_image_model("mae_vit_base_patch16", img_size=48, num_classes=7, **TIMM_TINY)
    report = load_image_checkpoint(dst, tmp_path / "mae.pth")
    assert report["resized"] == {"pos_embed": ((1, 5, 32), (1, 10, 32))}
    assert report["head"] == "skipped: head.weight (5, 32) vs model (7, 32); head.bias (5,) vs model (7,)"
    tv = build_image_model("torchvision:vit_b_16", img_size=32, **TV_TINY)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    big = build_image_model("torchvision:vit_b_16", img_size=64, **TV_TINY)
    assert load_image_checkpoint(big, tmp_path / "tv.pth")["resized"] == {
        "encoder.pos_embedding": ((1, 5, 32), (1, 17, 32))}


def test_checkpoint_mismatches_are_config_errors(tmp_path):
    _mae_checkpoint(tmp_path / "mae.pth")
    wide = build_image_model("mae_vit_base_patch16", img_size=32, depth=2, embed_dim=64, num_heads=2)
    with pytest.raises(ConfigError, match=r"cls_token has shape \(1, 1, 32\).*\(1, 1, 64\)"):
        load_image_checkpoint(wide, tmp_path / "mae.pth")
    tv = build_image_model("torchvision:vit_b_16", img_size=32, **TV_TINY)
    with pytest.raises(ConfigError, match="timm layout but the model is a torchvision"):
        load_image_checkpoint(tv, tmp_path / "mae.pth")
    deeper = build_image_model("mae_vit_base_patch16", img_size=32, num_classes=5, depth=3, embed_dim=32, num_heads=2)
    with pytest.raises(ConfigError, match="lacks .* model tensors, first 'blocks.2."):
        load_image_checkpoint(deeper, tmp_path / "mae.pth")
    assert load_image_checkpoint(deeper, tmp_path / "mae.pth", allow_missing=True)["missing"]
    with pytest.raises(ConfigError, match="does not exist"):
        load_image_checkpoint(tv, tmp_path / "absent.pth")
