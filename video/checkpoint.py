"""The MAE-ST checkpoint family (facebookresearch/mae_st, PySlowFast) for the shared loader.

Key layout (mae_st ``models_vit.py`` / ``models_mae.py`` / ``util/video_vit.py``):
  patch_embed.proj.{weight,bias}             Conv3d (D, 3, t_patch, 16, 16)
  cls_token, pos_embed_class                 (1, 1, D)
  pos_embed_spatial (1, H*W, D), pos_embed_temporal (1, T, D)
  blocks.N.attn.{q,k,v}.{weight,bias}        separate projections -> fused timm ``qkv``
  blocks.N.{norm1,norm2,attn.proj,mlp.fc1,mlp.fc2}.*   same names as timm
  norm.*                                     applied AFTER mean pooling (models_vit.py forward),
                                             which is timm's ``fc_norm`` in an avg-pooling model
  head.{weight,bias} or head.projection.*    classifier (mae_st / PySlowFast naming)
Pre-training files also hold the decoder and mask token, which are dropped. mae_st
``main_finetune.py`` starts the classifier with ``trunc_normal_(model.head.weight, std=2e-5)``;
the shared loader does the same for a head the checkpoint does not fill.
"""
from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from launch.engine.errors import ConfigError
from launch.engine.state_dict import Family, load_checkpoint

# mae_st main_finetune.py: trunc_normal_(model.head.weight, std=2e-5)
MAE_ST_HEAD_INIT_STD = 2e-5

# Decoder / masking parts of pretraining checkpoints (mae_st and PySlowFast names).
_DROP = re.compile(r"^(decoder_|dec_pos_embed|mask_token|pred_head\.|decoder\.)")
_QKV = re.compile(r"^blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)$")
_RENAMES = {
    "norm.weight": "fc_norm.weight",
    "norm.bias": "fc_norm.bias",
    "head.projection.weight": "head.weight",
    "head.projection.bias": "head.bias",
}


def _rename(state, model, report):
    """Rename to timm keys and fuse q/k/v (report["fused_qkv"]: the number of fused blocks)."""
    out, parts = {}, {}
    for key, value in state.items():
        if _DROP.match(key):
            report["dropped"].append(key)
            continue
        m = _QKV.match(key)
        if m:
            parts.setdefault((int(m[1]), m[3]), {})[m[2]] = value
            continue
        out[_RENAMES.get(key, key)] = value
    for (block, kind), qkv in sorted(parts.items()):
        if set(qkv) != {"q", "k", "v"}:
            raise ConfigError(f"MAE-ST checkpoint block {block} has attn {sorted(qkv)} {kind} but needs "
                              f"all of q, k, v")
        # timm's fused qkv Linear outputs [q; k; v] stacked along the output dimension.
        out[f"blocks.{block}.attn.qkv.{kind}"] = torch.cat([qkv["q"], qkv["k"], qkv["v"]], dim=0)
    report["fused_qkv"] = len({b for b, _ in parts})
    if "pos_embed" in out:
        raise ConfigError(f"{report['path']}: joint 'pos_embed' {tuple(out['pos_embed'].shape)} is not "
                          f"supported; expected MAE-ST separable pos_embed_spatial/pos_embed_temporal")
    return out


def _resize(key, value, target, model, report):
    t, h, w = model.patch_embed.grid_size
    if value.dim() != 3 or value.shape[2] != target.shape[2]:
        raise ConfigError(f"{key} has shape {tuple(value.shape)} but the model needs {tuple(target.shape)}")
    if key == "pos_embed_spatial":
        side = math.isqrt(value.shape[1])
        if side * side != value.shape[1]:
            raise ConfigError(f"{key} has {value.shape[1]} positions, not a square grid; cannot "
                              f"interpolate to {(h, w)}")
        grid = value.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
        grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, h * w, -1).to(value.dtype)
    if key == "pos_embed_temporal":
        seq = value.permute(0, 2, 1).float()  # (1, D, T) for 1-D interpolation along time
        seq = F.interpolate(seq, size=t, mode="linear", align_corners=False)
        return seq.permute(0, 2, 1).to(value.dtype)
    raise ConfigError(f"{key} has shape {tuple(value.shape)} but the model needs {tuple(target.shape)}")


FAMILY = Family("mae_st", head_modules=("head",), pos_embed_keys=("pos_embed_spatial", "pos_embed_temporal"),
                head_init_std=MAE_ST_HEAD_INIT_STD, rename=_rename, resize=_resize)


def load_mae_st_checkpoint(model, source, strict_head: bool = False, check_only: bool = False) -> dict:
    """Load an MAE-ST checkpoint source (pretrained or fine-tuned) into a ``VideoViT`` in place.

    The report is `launch.engine.state_dict.load_checkpoint`'s, plus ``fused_qkv`` (blocks).
    """
    return load_checkpoint(model, source, FAMILY, strict_head=strict_head, check_only=check_only)
