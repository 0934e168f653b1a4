"""Tiny versions of every model family the patches support, shared by the tests."""
import timm
import torch
from timm.models.vision_transformer import ResPostBlock
from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT

SMALL = dict(img_size=32, patch_size=8, embed_dim=48, depth=3, num_heads=3, num_classes=7)

TIMM_VARIANTS = {
    "augreg": ("vit_small_patch16_224", {}),
    "deit": ("deit_small_patch16_224", {}),
    "deit_distilled": ("deit_small_distilled_patch16_224", {}),
    "mae_avgpool": ("vit_base_patch16_224", dict(global_pool="avg", fc_norm=True)),
    "layerscale": ("vit_small_patch16_224", dict(init_values=1e-2)),
    "qk_norm": ("vit_small_patch16_224", dict(qk_norm=True)),
    "registers": ("vit_small_patch16_224", dict(reg_tokens=3)),
    "no_class_token": ("vit_small_patch16_224", dict(class_token=False, global_pool="avg")),
    "dynamic_size": ("vit_small_patch16_224", dict(dynamic_img_size=True)),
    "manual_attention": ("vit_small_patch16_224", {}),
}


def timm_model(variant: str, **extra):
    name, kwargs = TIMM_VARIANTS[variant]
    model = timm.create_model(name, pretrained=False, **{**SMALL, **kwargs, **extra})
    if variant == "manual_attention":
        for blk in model.blocks:
            blk.attn.fused_attn = False
    return model


def input_for(variant: str, batch: int = 2) -> torch.Tensor:
    size = (40, 48) if variant == "dynamic_size" else (32, 32)
    return torch.randn(batch, 3, *size)


def torchvision_model(**extra):
    kwargs = dict(image_size=32, patch_size=8, num_layers=3, num_heads=3, hidden_dim=48,
                  mlp_dim=96, num_classes=7)
    kwargs.update(extra)
    return TorchvisionViT(**kwargs)


def respost_model():
    return timm.create_model("vit_small_patch16_224", pretrained=False, block_fn=ResPostBlock, **SMALL)
