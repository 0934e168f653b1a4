"""The Audio-MAE checkpoint family (facebookresearch/AudioMAE) for the shared loader.

Audio-MAE saves ``{"model": state_dict, ...}`` (training snapshots add optimizer, epoch, scaler
and the run's ``argparse.Namespace``):

* pre-trained (``models_mae.MaskedAutoencoderViT``): encoder ``patch_embed.proj.*``,
  ``cls_token``, ``pos_embed`` (fixed sin-cos), ``blocks.N.*``, the encoder's final ``norm.*``,
  and the decoder: ``mask_token``, ``decoder_embed.*``, ``decoder_pos_embed``,
  ``decoder_blocks.N.*``, ``decoder_norm.*``, ``decoder_pred.*``. No head, no ``fc_norm``.
* fine-tuned (``models_vit.VisionTransformer`` with ``global_pool=True``): the same encoder keys,
  ``fc_norm.*`` and ``head.*`` (527 classes); ``norm`` is deleted from that model.

Block keys are the same in timm 0.3.2 (used by Audio-MAE) and current timm. Decoder keys are
dropped; a pre-trained ``norm.*`` is dropped for an average-pooling model (``fc_norm`` starts
fresh, as in Audio-MAE's own fine-tuning). ``main_finetune_as.py`` starts the classifier with
``trunc_normal_(model.head.weight, std=2e-5)``; the shared loader does the same for a head the
checkpoint does not fill. A position table for another grid is regenerated exactly when it is
Audio-MAE's sin-cos table, else interpolated.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.layers import resample_abs_pos_embed

from launch.engine.errors import ConfigError
from launch.engine.state_dict import Family, load_checkpoint

from .pos_embed import sincos_pos_embed

# AudioMAE main_finetune_as.py: trunc_normal_(model.head.weight, std=2e-5)
AUDIOMAE_HEAD_INIT_STD = 2e-5
_DECODER_PREFIXES = ("decoder_", "mask_token")


def _rename(state, model, report):
    pools_first = isinstance(getattr(model, "norm", None), nn.Identity)
    for key in list(state):
        if key.startswith(_DECODER_PREFIXES) or (pools_first and key.startswith("norm.")):
            report["dropped"].append(key)
            del state[key]
    return state


def _resize(key, table, target, model, report):
    grid = tuple(model.patch_embed.grid_size)
    tokens = table.shape[1] - 1
    if table.dim() != 3 or table.shape[2] != target.shape[2] or tokens % grid[1]:
        raise ConfigError(f"pos_embed shape {tuple(table.shape)} cannot map to the model's "
                          f"{tuple(target.shape)} (grid {grid} + class token)")
    # Audio-MAE varies only the time length (ESC-50: 512 frames), so keep the frequency rows.
    old_grid = (tokens // grid[1], grid[1])
    if torch.allclose(table.float(), sincos_pos_embed(target.shape[2], old_grid), atol=1e-4):
        report["pos_embed"] = f"regenerated sin-cos for grid {grid} (checkpoint grid {old_grid})"
        return sincos_pos_embed(target.shape[2], grid).to(target.dtype)
    report["pos_embed"] = f"interpolated from grid {old_grid} to {grid} (not a sin-cos table)"
    return resample_abs_pos_embed(table.float(), list(grid), list(old_grid), num_prefix_tokens=1).to(target.dtype)


# pos_embed is a fixed sin-cos table the model computes itself: a checkpoint may omit it.
FAMILY = Family("audiomae", head_modules=("head",), optional=("fc_norm.", "pos_embed"),
                pos_embed_keys=("pos_embed",), head_init_std=AUDIOMAE_HEAD_INIT_STD,
                rename=_rename, resize=_resize)


def load_audiomae_checkpoint(model: nn.Module, source, check_only: bool = False) -> dict:
    """Load an Audio-MAE checkpoint source into a timm-based AudioViT and return the report
    (`launch.engine.state_dict.load_checkpoint`'s, plus ``pos_embed`` when the table was resized)."""
    return load_checkpoint(model, source, FAMILY, check_only=check_only)
