"""AdamW with layer-wise lr decay (BEiT/MAE recipe); lr schedules (lr_schedule.py): MAE's per-step
half-cosine with warm-up, and DeiT's per-epoch timm cosine (``train.lr_schedule``)."""
from __future__ import annotations

import torch

from .lr_schedule import half_cosine, lr_at_step, timm_epoch_cosine  # noqa: F401  (the options)

# Parameters of these names (and every 1-d tensor: biases, norms) get no weight decay.
NO_DECAY = ("cls_token", "dist_token", "reg_token", "pos_embed", "pos_embed_spatial",
            "pos_embed_temporal", "pos_embed_class", "class_token", "pos_embedding")


def layer_id(name: str, num_layers: int) -> int:
    """0 for embeddings, i + 1 for block i, num_layers + 1 for the head and final norms."""
    stem = name.split(".")[0]
    if stem in NO_DECAY or stem in ("patch_embed", "conv_proj"):
        return 0
    for prefix in ("blocks.", "encoder.layers.encoder_layer_"):
        if name.startswith(prefix):
            return int(name[len(prefix):].split(".")[0].split("_")[-1]) + 1
    if name.startswith("encoder.pos_embedding"):
        return 0
    return num_layers + 1


def param_groups(model: torch.nn.Module, weight_decay: float, layer_decay: float, num_layers: int):
    groups: dict = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim == 1 or name.split(".")[-1] in NO_DECAY or
                     name.split(".")[0] in NO_DECAY or name.endswith(".bias"))
        lid = layer_id(name, num_layers)
        key = (lid, decay)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": weight_decay if decay else 0.0,
                           "lr_scale": layer_decay ** (num_layers + 1 - lid), "names": []}
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    return [dict(g) for _, g in sorted(groups.items())]


def build_optimizer(model, cfg_train, num_layers: int, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg_train.weight_decay, cfg_train.layer_decay, num_layers)
    for g in groups:
        g.pop("names")
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999))


def lr_at(epoch_float: float, base_lr: float, min_lr: float, warmup: float, epochs: int) -> float:
    """Linear warm-up then half-cycle cosine to min_lr, evaluated at a fractional epoch (MAE).
    The DeiT per-epoch schedule and the dispatch on ``train.lr_schedule`` are in lr_schedule.py."""
    return half_cosine(epoch_float, base_lr, min_lr, warmup, epochs)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
