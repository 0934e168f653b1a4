"""Build the image ViTs the experiments use: timm models, torchvision SWAG ViTs and tiny demo ViTs.

Weights come from `checkpoint`, any source `launch.engine.weights` accepts (a local path, a URL, or a
hub reference, downloaded once into the cache); `pretrained=True` without a checkpoint uses the
model's published source (`model.image_info["source"]`). Each built model carries
`model.image_info` (name, family, img_size, num_classes, weights
and the checkpoint load report); `family` names the matching `image.transforms.eval_transform`.
"""

from __future__ import annotations

import functools
from typing import Optional

from torch import nn

from launch.engine.errors import ConfigError
from image.checkpoint import load_image_checkpoint
from image.demo import DEFAULT_NUM_CLASSES

TORCHVISION_PREFIX = "torchvision:"

# torchvision ViT architectures: patch_size, num_layers, num_heads, hidden_dim, mlp_dim, weights enum
TORCHVISION_ARCHS = {
    "vit_b_16": (16, 12, 12, 768, 3072, "ViT_B_16_Weights"),
    "vit_b_32": (32, 12, 12, 768, 3072, "ViT_B_32_Weights"),
    "vit_l_16": (16, 24, 16, 1024, 4096, "ViT_L_16_Weights"),
    "vit_l_32": (32, 24, 16, 1024, 4096, "ViT_L_32_Weights"),
    "vit_h_14": (14, 32, 16, 1280, 5120, "ViT_H_14_Weights"),
}

# Tiny ViTs for the synthetic demo set: 64x64 inputs in 8x8 patches give 64 tokens to merge.
DEMO_ARCHS = {
    "demo_vit_tiny": dict(patch_size=8, embed_dim=192, depth=6, num_heads=3, global_pool="token"),
    # MAE-style head: average the patch tokens through fc_norm instead of reading the class token.
    "demo_vit_mae": dict(patch_size=8, embed_dim=192, depth=6, num_heads=3, global_pool="avg",
                         fc_norm=True),
}
DEMO_IMG_SIZE = 64

# MAE fine-tuned ViTs: timm architecture with average pooling + fc_norm, as in the MAE repo.
MAE_FINETUNED_URL = "https://dl.fbaipublicfiles.com/mae/finetune/mae_finetuned_vit_{}.pth"
MAE_ALIASES = {
    "mae_vit_base_patch16": ("vit_base_patch16_224", MAE_FINETUNED_URL.format("base")),
    "mae_vit_large_patch16": ("vit_large_patch16_224", MAE_FINETUNED_URL.format("large")),
    "mae_vit_huge_patch14": ("vit_huge_patch14_224", MAE_FINETUNED_URL.format("huge")),
}


def _valid_names() -> str:
    return (f"{sorted(DEMO_ARCHS)}, {sorted(MAE_ALIASES)}, "
            f"{[TORCHVISION_PREFIX + a for a in sorted(TORCHVISION_ARCHS)]} or any timm model name")


def _check_args(num_classes, img_size, drop_path) -> None:
    # num_classes=0 is allowed: timm then builds a headless feature extractor
    for name, value, low in (("num_classes", num_classes, 0), ("img_size", img_size, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"{name}={value!r} is not valid; expected an integer >= {low} or None")
    if not isinstance(drop_path, (int, float)) or not 0.0 <= drop_path < 1.0:
        raise ConfigError(f"drop_path={drop_path!r} is not valid; expected a rate in [0, 1)")


def _build_demo(name, num_classes, img_size, drop_path, overrides):
    from timm.models.vision_transformer import VisionTransformer

    kwargs = dict(DEMO_ARCHS[name], img_size=img_size or DEMO_IMG_SIZE,
                  num_classes=DEFAULT_NUM_CLASSES if num_classes is None else num_classes,
                  drop_path_rate=drop_path)
    kwargs.update(overrides)
    model = VisionTransformer(**kwargs)
    return model, {"family": "demo", "img_size": kwargs["img_size"], "weights": None}


def swag_weights(arch: str, img_size: int):
    """The torchvision SWAG weights enum member for an architecture at an input size, or None."""
    import torchvision.models as tvm

    enum = getattr(tvm, TORCHVISION_ARCHS[arch][5])
    for w in enum:
        if "SWAG" in w.name and w.meta["min_size"] == (img_size, img_size):
            return w
    return None


def _default_swag_size(arch: str) -> int:
    import torchvision.models as tvm

    # the end-to-end fine-tuned SWAG weights are the ones evaluated at high resolution
    enum = getattr(tvm, TORCHVISION_ARCHS[arch][5])
    e2e = [w for w in enum if w.name.endswith("SWAG_E2E_V1")]
    return e2e[0].meta["min_size"][0] if e2e else 224


@functools.lru_cache(maxsize=None)  # one class, built on first use (torchvision imports lazily)
def _torchvision_vit_class():
    """torchvision's ``VisionTransformer`` with the two optimizer hooks timm models answer
    (``launch/engine/optim.py`` reads them), under torchvision's own parameter names."""
    from torchvision.models.vision_transformer import VisionTransformer

    class TorchvisionViT(VisionTransformer):
        def no_weight_decay(self) -> set:
            """The class token and position table (1-d parameters and biases go without decay anyway)."""
            return {"class_token", "encoder.pos_embedding"}

        def group_matcher(self, coarse: bool = False) -> dict:
            """Layer 0: class token, patch projection, position table; layer i + 1: encoder
            block i; the final LayerNorm ``encoder.ln`` and the head: the top layer."""
            return dict(stem=r"^class_token|conv_proj|encoder\.pos_embedding",
                        blocks=[(r"^encoder\.layers\.encoder_layer_(\d+)\.", None),
                                (r"^encoder\.ln\.", (99999,))])

    return TorchvisionViT


def _build_torchvision(name, num_classes, img_size, drop_path, overrides):
    arch = name[len(TORCHVISION_PREFIX):]
    if arch not in TORCHVISION_ARCHS:
        raise ConfigError(f"unknown torchvision ViT {name!r}; expected one of "
                          f"{[TORCHVISION_PREFIX + a for a in sorted(TORCHVISION_ARCHS)]}")
    if drop_path:
        raise ConfigError(f"drop_path={drop_path!r} is not supported by torchvision ViTs; use 0.0")
    patch, layers, heads, hidden, mlp, enum_name = TORCHVISION_ARCHS[arch]
    img_size = img_size or _default_swag_size(arch)
    kwargs = dict(image_size=img_size, patch_size=patch, num_layers=layers, num_heads=heads,
                  hidden_dim=hidden, mlp_dim=mlp, num_classes=1000 if num_classes is None else num_classes)
    kwargs.update(overrides)
    if kwargs["image_size"] % kwargs["patch_size"]:
        raise ConfigError(f"img_size={kwargs['image_size']} is not valid for {name}; expected a "
                          f"multiple of the patch size {kwargs['patch_size']}")
    model = _torchvision_vit_class()(**kwargs)
    weights = swag_weights(arch, img_size)
    info = {"family": "swag", "img_size": img_size,
            "weights": f"{enum_name}.{weights.name}" if weights else None,
            "weights_url": weights.url if weights else None,
            "source": f"torchvision:{enum_name}.{weights.name}" if weights else None}
    return model, info


def timm_family(name: str, model: nn.Module) -> str:
    """Which eval transform a timm model's published weights expect."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    tag = cfg.get("tag") or ""
    if "mae" in tag or getattr(model, "global_pool", "token") == "avg":
        return "mae"
    if name.startswith("deit"):
        return "deit"
    if tuple(cfg.get("mean", ())) == (0.5, 0.5, 0.5) or "augreg" in tag:
        return "augreg"
    return "deit"  # plain ImageNet normalisation with the 0.875 crop


def _build_timm(name, num_classes, img_size, drop_path, overrides):
    import timm

    arch, mae_url = MAE_ALIASES.get(name, (name, None))
    if not timm.is_model(arch):
        raise ConfigError(f"unknown image model {name!r}; expected one of {_valid_names()}")
    kwargs = {"drop_path_rate": drop_path}
    if name in MAE_ALIASES:
        kwargs.update(global_pool="avg", fc_norm=True, num_classes=1000)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if img_size is not None:
        kwargs["img_size"] = img_size
    kwargs.update(overrides)
    try:
        # pretrained stays False: weights arrive via `checkpoint` (launch.engine.weights' cache)
        model = timm.create_model(arch, pretrained=False, **kwargs)
    except (TypeError, RuntimeError) as err:  # unknown kwarg, or unknown pretrained tag
        raise ConfigError(f"cannot build {name!r}: {err}") from None
    cfg = getattr(model, "pretrained_cfg", None) or {}
    size = model.patch_embed.img_size[0] if hasattr(model, "patch_embed") else cfg.get("input_size", (3, 224))[1]
    info = {"family": timm_family(arch, model), "img_size": int(size),
            "weights": mae_url or cfg.get("hf_hub_id") or cfg.get("url") or None,
            "source": mae_url or (f"timm:{arch}" if "." in arch else None)}
    return model, info


def build_image_model(name: str, num_classes: Optional[int] = None, img_size: Optional[int] = None,
                      drop_path: float = 0.0, checkpoint: Optional[str] = None, pretrained: bool = False,
                      **overrides) -> nn.Module:
    """Build an image classifier by name and optionally load a local checkpoint into it.

    name: "demo_vit_tiny" / "demo_vit_mae", "mae_vit_{base,large}_patch16" / "mae_vit_huge_patch14",
    "torchvision:vit_b_16" (and the other torchvision ViTs; img_size defaults to the SWAG E2E size),
    or any timm model name. Extra keyword arguments go to the architecture's constructor
    (e.g. depth=2 for timm, num_layers=2 for torchvision). pretrained=True only asserts that
    weights are expected: without `checkpoint` it loads the model's published source.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model name {name!r} is not valid; expected one of {_valid_names()}")
    _check_args(num_classes, img_size, drop_path)
    if name in DEMO_ARCHS:
        model, info = _build_demo(name, num_classes, img_size, drop_path, overrides)
    elif name.startswith(TORCHVISION_PREFIX):
        model, info = _build_torchvision(name, num_classes, img_size, drop_path, overrides)
    else:
        model, info = _build_timm(name, num_classes, img_size, drop_path, overrides)

    if pretrained and not checkpoint:
        checkpoint = info.get("source")
        if not checkpoint:
            raise ConfigError(f"pretrained=True for {name!r} names no published weights; give a timm tag "
                              f"(e.g. {name}.augreg_in21k_ft_in1k) or checkpoint=<source>")
    report = load_image_checkpoint(model, checkpoint) if checkpoint else None
    model.image_info = dict(info, name=name, checkpoint=report,
                            num_classes=_num_classes(model))
    return model


def _num_classes(model: nn.Module) -> int:
    if hasattr(model, "num_classes"):
        return int(model.num_classes)
    head = getattr(getattr(model, "heads", None), "head", None)  # torchvision
    return int(head.out_features) if isinstance(head, nn.Linear) else 0
