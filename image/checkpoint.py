"""The image checkpoint families for the shared loader (`launch.engine.state_dict`).

- timm layout (``blocks.N.*``): timm / AugReg state dicts (.safetensors, .pth), DeiT and ToMe
  training checkpoints (weights under ``model``), MAE pretrained and fine-tuned checkpoints
  (MAE ``models_vit.py`` is a timm ViT; with ``global_pool`` it adds ``fc_norm`` and deletes
  ``norm``, so a pretrained ``norm.*`` is dropped when the model pools through ``fc_norm``).
  MAE fine-tuning (``main_finetune.py``) starts a head the checkpoint lacks with
  ``trunc_normal_(head.weight, std=2e-5)``; other timm models keep timm's initialisation.
- torchvision layout (``encoder.layers.*``): SWAG state dicts.
- AugReg ``.npz`` files go through timm's own converter (``image/npz.py``).
"""
from __future__ import annotations

import math

from torch import nn

from launch.engine.errors import ConfigError
from launch.engine.state_dict import Family, load_checkpoint
from launch.engine.weights import fetch

from image.npz import load_npz

# MAE main_finetune.py: trunc_normal_(model.head.weight, std=2e-5) after loading the encoder.
MAE_HEAD_INIT_STD = 2e-5


def _layout(keys) -> str:
    keys = list(keys)
    if any(k.startswith("encoder.layers.") or k == "conv_proj.weight" for k in keys):
        return "torchvision"
    if any(k.startswith(("blocks.", "patch_embed.")) for k in keys):
        return "timm"
    return "unknown"


def _uses_fc_norm(model: nn.Module) -> bool:
    return isinstance(getattr(model, "norm", None), nn.Identity) and \
        not isinstance(getattr(model, "fc_norm", nn.Identity()), nn.Identity)


def _rename(state, model, report):
    ck, own = _layout(state), _layout(model.state_dict())
    if "unknown" not in (ck, own) and ck != own:
        raise ConfigError(f"checkpoint {report['path']!r} is in {ck} layout but the model is a {own} "
                          f"model; build the matching architecture")
    if _uses_fc_norm(model):
        # A pretrained encoder's final norm must not be mistaken for the pooled fc_norm.
        for key in [k for k in state if k.split(".", 1)[0] == "norm"]:
            report["dropped"].append(key)
            del state[key]
    for key in [k for k in state if k.startswith(("decoder_", "mask_token"))]:
        report["dropped"].append(key)  # MAE pre-training decoder
        del state[key]
    return state


def _prefix_tokens(model: nn.Module, tokens: int) -> int:
    if getattr(model, "no_embed_class", False):
        return 0
    if hasattr(model, "num_prefix_tokens"):
        return int(model.num_prefix_tokens)
    if hasattr(model, "class_token"):  # torchvision
        return 1
    return tokens - math.isqrt(tokens) ** 2


def _resize(key, value, target, model, report):
    from timm.layers import resample_abs_pos_embed

    if value.dim() != 3 or value.shape[-1] != target.shape[-1]:
        raise ConfigError(f"checkpoint {key} has shape {tuple(value.shape)} but the model needs "
                          f"{tuple(target.shape)}; only the number of positions may differ")
    prefix = _prefix_tokens(model, target.shape[1])
    old, new = math.isqrt(value.shape[1] - prefix), math.isqrt(target.shape[1] - prefix)
    if old * old != value.shape[1] - prefix or new * new != target.shape[1] - prefix:
        raise ConfigError(f"checkpoint {key} has shape {tuple(value.shape)} and the model "
                          f"{tuple(target.shape)}; only square patch grids can be resampled")
    out = resample_abs_pos_embed(value.float(), new_size=[new, new], old_size=[old, old],
                                 num_prefix_tokens=prefix, interpolation="bicubic", antialias=True)
    return out.to(target.dtype)


def image_family(model: nn.Module) -> Family:
    if _layout(model.state_dict()) == "torchvision":
        return Family("torchvision", head_modules=("heads",), pos_embed_keys=("encoder.pos_embedding",),
                      rename=_rename, resize=_resize)
    mae = _uses_fc_norm(model)
    return Family("mae" if mae else "timm", head_modules=("head", "head_dist"), optional=("fc_norm.",),
                  pos_embed_keys=("pos_embed",), head_init_std=MAE_HEAD_INIT_STD if mae else None,
                  rename=_rename, resize=_resize)


def load_image_checkpoint(model: nn.Module, source, check_only: bool = False,
                          allow_missing: bool = False) -> dict:
    """Load a checkpoint source (see `launch.engine.weights`) into a timm or torchvision ViT; the report
    is `launch.engine.state_dict.load_checkpoint`'s."""
    path = fetch(source)
    if path.endswith(".npz"):
        return load_npz(model, path, check_only)
    return load_checkpoint(model, path, image_family(model), check_only=check_only,
                           allow_missing=allow_missing)
