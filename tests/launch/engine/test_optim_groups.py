"""Optimizer groups: which parameters decay and each parameter's layer id (hence lr scale), for a
tiny model of every family the configs use, written out by hand (MAE ``util/lr_decay.py``
``param_groups_lrd``: embeddings are layer 0, block i is layer i + 1, the rest is the top layer
num_layers + 1; 1-d parameters, biases and the model's ``no_weight_decay()`` names do not decay)."""
import pytest
import torch
import transformers

import tome
from audio.model import build_audio_vit
from image.model import build_image_model
from launch.engine.hf_models import TransformersClassifier
from launch.engine.optim import build_optimizer, param_groups
from video.model import build_video_vit

LAYER_DECAY = 0.5  # with 2 blocks: layer 0 -> 0.125, 1 -> 0.25, 2 -> 0.5, top (3) -> 1.0
SCALE = {0: 0.125, 1: 0.25, 2: 0.5, 3: 1.0}
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def _timm_vit():
    return tome.patch.timm(build_image_model("demo_vit_tiny", depth=2, embed_dim=32, num_heads=2,
                                             img_size=16))


def _mae_vit():  # the MAE alias: timm ViT with global average pooling and fc_norm
    return tome.patch.timm(build_image_model("mae_vit_base_patch16", depth=2, embed_dim=32,
                                             num_heads=2, img_size=32))


def _torchvision_vit():
    return tome.patch.torchvision(build_image_model("torchvision:vit_b_16", img_size=32, num_layers=2,
                                                    hidden_dim=32, mlp_dim=64, num_heads=2))


def _video_vit():
    return tome.patch.video(build_video_vit("micro", 5, num_frames=4, img_size=32))


def _audio_vit():
    return tome.patch.audio(build_audio_vit("micro", num_classes=5, target_length=64, mel_bins=32))


def _hf_vit():
    net = transformers.ViTForImageClassification(transformers.ViTConfig(image_size=32, patch_size=8,
                                                                        num_labels=5, **SMALL))
    return tome.patch.transformers(TransformersClassifier(net, "image"))


def _hf_videomae():
    net = transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, num_labels=5, **SMALL))
    return tome.patch.transformers(TransformersClassifier(net, "video"))


# name -> (decays?, layer id), by hand
EXPECTED = {
    "timm_vit": (_timm_vit, {
        "cls_token": (False, 0), "pos_embed": (False, 0),
        "patch_embed.proj.weight": (True, 0), "patch_embed.proj.bias": (False, 0),
        "blocks.0.attn.qkv.weight": (True, 1), "blocks.0.attn.qkv.bias": (False, 1),
        "blocks.0.norm1.weight": (False, 1), "blocks.1.mlp.fc1.weight": (True, 2),
        "norm.weight": (False, 3), "norm.bias": (False, 3),  # final norm: top layer, as in MAE
        "head.weight": (True, 3), "head.bias": (False, 3)}),
    "mae_vit": (_mae_vit, {
        "cls_token": (False, 0), "pos_embed": (False, 0), "patch_embed.proj.weight": (True, 0),
        "blocks.0.attn.qkv.weight": (True, 1), "blocks.1.attn.qkv.bias": (False, 2),
        "fc_norm.weight": (False, 3), "head.weight": (True, 3)}),
    "torchvision_vit": (_torchvision_vit, {
        "class_token": (False, 0), "encoder.pos_embedding": (False, 0),
        "conv_proj.weight": (True, 0), "conv_proj.bias": (False, 0),
        "encoder.layers.encoder_layer_0.self_attention.in_proj_weight": (True, 1),
        "encoder.layers.encoder_layer_0.self_attention.in_proj_bias": (False, 1),
        "encoder.layers.encoder_layer_1.mlp.0.weight": (True, 2),
        "encoder.ln.weight": (False, 3), "heads.head.weight": (True, 3), "heads.head.bias": (False, 3)}),
    "video_vit": (_video_vit, {
        "cls_token": (False, 0), "pos_embed_spatial": (False, 0), "pos_embed_temporal": (False, 0),
        "pos_embed_class": (False, 0), "patch_embed.proj.weight": (True, 0),
        "blocks.0.attn.qkv.weight": (True, 1), "blocks.1.attn.qkv.bias": (False, 2),
        "fc_norm.weight": (False, 3), "head.weight": (True, 3), "head.bias": (False, 3)}),
    "audio_vit": (_audio_vit, {  # pos_embed is a frozen sin-cos table: in no group
        "cls_token": (False, 0), "patch_embed.proj.weight": (True, 0),
        "blocks.0.attn.qkv.weight": (True, 1), "blocks.0.attn.qkv.bias": (False, 1),
        "blocks.1.norm2.weight": (False, 2), "fc_norm.bias": (False, 3), "head.weight": (True, 3)}),
    # transformers classifiers (evaluated only by the configs): no layer map, every parameter in
    # the top group; only the class token, 1-d parameters and biases skip decay
    "hf_vit": (_hf_vit, {
        "net.vit.embeddings.cls_token": (False, 3), "net.vit.embeddings.position_embeddings": (True, 3),
        "net.vit.embeddings.patch_embeddings.projection.weight": (True, 3),
        "net.vit.layers.0.attention.q_proj.weight": (True, 3),
        "net.vit.layers.0.attention.q_proj.bias": (False, 3), "net.classifier.weight": (True, 3)}),
    "hf_videomae": (_hf_videomae, {
        "net.videomae.embeddings.patch_embeddings.projection.weight": (True, 3),
        "net.videomae.encoder.layer.0.attention.attention.query.weight": (True, 3),
        "net.videomae.encoder.layer.1.layernorm_before.weight": (False, 3),
        "net.classifier.weight": (True, 3), "net.classifier.bias": (False, 3)}),
}


def _by_name(groups) -> dict:
    """name -> (decays?, lr scale) from the groups the optimizer gets."""
    return {name: (g["weight_decay"] > 0, g["lr_scale"]) for g in groups for name in g["names"]}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_each_family_decays_and_scales_its_parameters_as_written_by_hand(family):
    build, expected = EXPECTED[family]
    model = build()
    assert model._tome_num_layers() == 2
    got = _by_name(param_groups(model, 0.05, LAYER_DECAY, 2))
    assert {n: got[n] for n in expected} == {n: (d, SCALE[lid]) for n, (d, lid) in expected.items()}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_groups_hold_every_trainable_parameter_once_with_weight_decay_only_where_it_decays(family):
    model = EXPECTED[family][0]()
    groups = param_groups(model, 0.05, LAYER_DECAY, 2)
    names = [n for g in groups for n in g["names"]]
    assert sorted(names) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert all(g["weight_decay"] in (0.0, 0.05) for g in groups)
    assert len({(g["lr_scale"], g["weight_decay"]) for g in groups}) == len(groups)  # one per key


def test_the_optimizer_gets_the_groups_lr_scales_and_weight_decays():
    from types import SimpleNamespace
    model = _video_vit()
    opt = build_optimizer(model, SimpleNamespace(weight_decay=0.05, layer_decay=LAYER_DECAY), 2, 1e-3)
    ids = {id(p): n for n, p in model.named_parameters()}
    got = {ids[id(p)]: (g["weight_decay"] > 0, g["lr_scale"]) for g in opt.param_groups for p in g["params"]}
    assert got["pos_embed_temporal"] == (False, 0.125) and got["blocks.1.mlp.fc2.weight"] == (True, 0.5)
    assert got["head.weight"] == (True, 1.0) and all(g["lr"] == 1e-3 for g in opt.param_groups)


def test_groups_ask_the_model_for_its_no_weight_decay_names():
    model = _video_vit()
    model.no_weight_decay = lambda: {"head.weight"}  # the model's answer, not a name list in the engine
    got = _by_name(param_groups(model, 0.05, LAYER_DECAY, 2))
    assert got["head.weight"] == (False, 1.0)
    assert got["pos_embed_spatial"] == (True, 0.125)  # no longer named by the model: it decays


def test_groups_ask_the_model_for_its_group_matcher():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(2, 2)
            self.stages = torch.nn.ModuleList([torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)])
            self.out = torch.nn.Linear(2, 2)

        def group_matcher(self, coarse=False):
            return dict(stem=r"^embed", blocks=r"^stages\.(\d+)")

    got = _by_name(param_groups(Net(), 0.05, LAYER_DECAY, 2))
    assert got == {"embed.weight": (True, 0.125), "embed.bias": (False, 0.125),
                   "stages.0.weight": (True, 0.25), "stages.0.bias": (False, 0.25),
                   "stages.1.weight": (True, 0.5), "stages.1.bias": (False, 0.5),
                   "out.weight": (True, 1.0), "out.bias": (False, 1.0)}


def test_a_model_without_the_hooks_puts_everything_in_the_top_group():
    got = _by_name(param_groups(torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.LayerNorm(3)),
                                0.05, LAYER_DECAY, 2))
    assert got == {"0.weight": (True, 1.0), "0.bias": (False, 1.0),
                   "1.weight": (False, 1.0), "1.bias": (False, 1.0)}
