"""Load published MAE-ST checkpoints (facebookresearch/mae_st, PySlowFast) into ``VideoViT``.

Checkpoint layout (mae_st ``models_vit.py`` / ``models_mae.py``, PySlowFast MViT with SEPARATE_QKV):
  patch_embed.proj.{weight,bias}             Conv3d (D, 3, 2, 16, 16)
  cls_token, pos_embed_class                 (1, 1, D)
  pos_embed_spatial (1, H*W, D), pos_embed_temporal (1, T, D)
  blocks.N.attn.{q,k,v}.{weight,bias}        separate projections -> fused timm ``qkv``
  blocks.N.{norm1,norm2,attn.proj,mlp.fc1,mlp.fc2}.*   same names as timm
  norm.*                                     MAE-ST applies this AFTER mean pooling when fine-tuning
                                             (and fills it from the pretrained encoder norm), which is
                                             timm's ``fc_norm`` in a global_pool='avg' model
  head.{weight,bias} or head.projection.*    classifier (mae_st / PySlowFast naming)
Pretrained files also hold decoder and mask keys, which are dropped.
"""
from __future__ import annotations

import logging
import math
import pickle
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from launch.errors import ConfigError

log = logging.getLogger(__name__)

# Decoder / masking parts of pretraining checkpoints (mae_st and PySlowFast names).
_DROP = re.compile(r"^(decoder_|dec_pos_embed|mask_token|pred_head\.|decoder\.)")
_QKV = re.compile(r"^blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)$")
_RENAMES = {
    "norm.weight": "fc_norm.weight",
    "norm.bias": "fc_norm.bias",
    "head.projection.weight": "head.weight",
    "head.projection.bias": "head.bias",
}


def _read_state_dict(path: Path) -> tuple[dict, str]:
    if not path.is_file():
        raise ConfigError(f"MAE-ST checkpoint {path} does not exist; give the path of a .pyth/.pth file")
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if "weights only" not in str(err).lower():
                raise
            # mae_st's own saves pickle an argparse.Namespace next to the weights, which the safe
            # loader refuses; fall back to a full unpickle (point this only at checkpoints you trust).
            log.warning("%s holds non-tensor objects; loading it with weights_only=False", path)
            ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ConfigError(f"MAE-ST checkpoint {path} is not a readable torch file "
                          f"({str(err).splitlines()[0][:120]})") from err
    for key in ("model_state", "model", "state_dict"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return dict(ckpt[key]), key
    if isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        return dict(ckpt), "<raw state_dict>"
    raise ConfigError(f"MAE-ST checkpoint {path} has no weights under 'model_state', 'model' or "
                      f"'state_dict' and is not a raw state_dict")


def _to_timm_names(sd: dict) -> tuple[dict, list[str], int]:
    """Rename to timm keys, fuse q/k/v; return (state, dropped keys, number of fused blocks)."""
    out, dropped, parts = {}, [], {}
    for key, value in sd.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if _DROP.match(key):
            dropped.append(key)
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
    return out, dropped, len({b for b, _ in parts})


def _resize_spatial(pos: torch.Tensor, grid_hw: tuple[int, int], key: str) -> torch.Tensor:
    n, dim = pos.shape[1], pos.shape[2]
    side = math.isqrt(n)
    if side * side != n:
        raise ConfigError(f"{key} has {n} positions, not a square grid; cannot interpolate to {grid_hw}")
    grid = pos.reshape(1, side, side, dim).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=grid_hw, mode="bicubic", align_corners=False)
    return grid.permute(0, 2, 3, 1).reshape(1, grid_hw[0] * grid_hw[1], dim).to(pos.dtype)


def _resize_temporal(pos: torch.Tensor, t: int) -> torch.Tensor:
    seq = pos.permute(0, 2, 1).float()  # (1, D, T) for 1-D interpolation along time
    seq = F.interpolate(seq, size=t, mode="linear", align_corners=False)
    return seq.permute(0, 2, 1).to(pos.dtype)


def _reinit_head(model) -> None:
    # MAE fine-tuning starts the new classifier near zero so early logits stay uniform.
    torch.nn.init.trunc_normal_(model.head.weight, std=2e-5)
    torch.nn.init.zeros_(model.head.bias)


def load_mae_st_checkpoint(model, path, strict_head: bool = False) -> dict:
    """Load an MAE-ST checkpoint (pretrained or fine-tuned) into a ``VideoViT`` in place.

    Returns a report: ``source_key``, ``loaded`` (timm keys), ``fused_qkv`` (blocks), ``dropped``
    (decoder/mask keys), ``interpolated`` ({key: (old shape, new shape)}), ``head`` ("loaded",
    "skipped: ...", "missing: ..." or, for a num_classes=0 model, "dropped: ..."), ``missing`` and
    ``unexpected`` keys. A head whose shape does not match (or is absent) is re-initialised unless
    ``strict_head``; any other shape mismatch raises ConfigError.
    """
    path = Path(path)
    raw, source_key = _read_state_dict(path)
    sd, dropped, fused = _to_timm_names(raw)
    if "pos_embed" in sd:
        raise ConfigError(f"{path}: joint 'pos_embed' {tuple(sd['pos_embed'].shape)} is not supported; "
                          f"expected MAE-ST separable pos_embed_spatial/pos_embed_temporal")
    target = model.state_dict()
    t, h, w = model.patch_embed.grid_size
    report = {"source_key": source_key, "fused_qkv": fused, "dropped": dropped, "interpolated": {},
              "head": "loaded"}

    if "pos_embed_spatial" in sd and sd["pos_embed_spatial"].shape[1] != h * w:
        old = tuple(sd["pos_embed_spatial"].shape)
        sd["pos_embed_spatial"] = _resize_spatial(sd["pos_embed_spatial"], (h, w), "pos_embed_spatial")
        report["interpolated"]["pos_embed_spatial"] = (old, tuple(sd["pos_embed_spatial"].shape))
    if "pos_embed_temporal" in sd and sd["pos_embed_temporal"].shape[1] != t:
        old = tuple(sd["pos_embed_temporal"].shape)
        sd["pos_embed_temporal"] = _resize_temporal(sd["pos_embed_temporal"], t)
        report["interpolated"]["pos_embed_temporal"] = (old, tuple(sd["pos_embed_temporal"].shape))

    head_keys = ("head.weight", "head.bias")
    head_ok = all(k in sd and k in target and sd[k].shape == target[k].shape for k in head_keys)
    if "head.weight" not in target:  # built with num_classes=0: features only, nothing to fill
        report["head"] = "dropped: model has no classifier head"
        head_ok = True
        for k in head_keys:
            sd.pop(k, None)
    elif not head_ok:
        if all(k in sd for k in head_keys):
            shapes = tuple(sd["head.weight"].shape), tuple(target["head.weight"].shape)
            report["head"] = f"skipped: checkpoint head.weight {shapes[0]} vs model {shapes[1]}"
        else:
            report["head"] = "missing: checkpoint has no classifier head"
        if strict_head:
            raise ConfigError(f"{path}: {report['head']}; pass strict_head=False to re-initialise it")
        for k in head_keys:
            sd.pop(k, None)

    unexpected = sorted(k for k in sd if k not in target)
    deeper = [k for k in unexpected if k.startswith("blocks.")]
    if deeper:
        raise ConfigError(f"{path}: checkpoint key {deeper[0]} has no place in this model (depth "
                          f"{len(model.blocks)}); pick the variant the checkpoint was trained with")
    for key in sd:
        if key in target and sd[key].shape != target[key].shape:
            raise ConfigError(f"{path}: {key} has shape {tuple(sd[key].shape)} in the checkpoint but "
                              f"{tuple(target[key].shape)} in the model")
    loadable = {k: v for k, v in sd.items() if k in target}
    missing = sorted(k for k in target if k not in loadable and k not in head_keys)
    if any(k.startswith(("blocks.", "patch_embed.")) for k in missing):
        first = next(k for k in missing if k.startswith(("blocks.", "patch_embed.")))
        raise ConfigError(f"{path}: model key {first} is not in the checkpoint; pick the variant the "
                          f"checkpoint was trained with")
    model.load_state_dict(loadable, strict=False)
    if not head_ok:
        _reinit_head(model)
    if missing or unexpected:
        log.warning("%s: kept initial values for %s; ignored checkpoint keys %s", path, missing, unexpected)
    report.update(loaded=sorted(loadable), missing=missing, unexpected=unexpected)
    return report
