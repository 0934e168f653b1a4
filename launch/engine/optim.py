"""AdamW with layer-wise lr decay (BEiT/MAE recipe); lr schedules (lr_schedule.py): MAE's per-step
half-cosine with warm-up, and DeiT's per-epoch timm cosine (``train.lr_schedule``)."""
from __future__ import annotations

import re

import torch

from .lr_schedule import half_cosine, lr_at_step, timm_epoch_cosine  # noqa: F401  (the options)

# How the optimizer groups ask the model (the hooks timm models already answer):
#   model.no_weight_decay() -> parameter names trained without weight decay (position embeddings,
#       class tokens). Every 1-d parameter (norm scales) and every bias goes without decay too, as
#       in MAE ``util/lr_decay.py`` ``param_groups_lrd``.
#   model.group_matcher(coarse=False) -> timm's dict of regular expressions: its ``stem`` patterns
#       are layer 0; a pattern capturing a block index i (``^blocks\.(\d+)``) is layer i + 1; every
#       other parameter (final norm, fc_norm, head) is layer num_layers + 1. The final norm thus
#       sits with the head, as in MAE ``util/lr_decay.py`` ``get_layer_id_for_vit`` (its final
#       ``else`` returns ``len(blocks) + 1``; timm's own layer decay puts the norm with the last
#       block instead); this is the BEiT/MAE recipe the configs reproduce.
# Models without these methods get them from their builders (image/model.py for torchvision ViTs,
# launch/engine/hf_models.py for transformers classifiers); a model without ``group_matcher``
# has no layer map: every parameter is in the head group (lr scale 1, no layer-wise decay).


def no_decay_names(model: torch.nn.Module) -> set:
    """The names ``model.no_weight_decay()`` answers (none when the model lacks the method)."""
    hook = getattr(model, "no_weight_decay", None)
    return set(hook()) if callable(hook) else set()


def _compiled_matcher(model: torch.nn.Module) -> list:
    """``[(regex, is_stem), ...]`` in the order timm tries them, from ``model.group_matcher()``."""
    hook = getattr(model, "group_matcher", None)
    if not callable(hook):
        return []
    compiled = []
    for group, spec in hook(coarse=False).items():
        if spec is None:
            continue
        specs = [s[0] for s in spec] if isinstance(spec, (list, tuple)) else [spec]
        compiled += [(re.compile(pattern), group == "stem") for pattern in specs]
    return compiled


def layer_ids(model: torch.nn.Module, num_layers: int) -> dict:
    """Parameter name -> layer id: 0 for embeddings, i + 1 for block i, num_layers + 1 for the rest."""
    matcher = _compiled_matcher(model)
    ids = {}
    for name, _ in model.named_parameters():
        ids[name] = num_layers + 1
        for pattern, is_stem in matcher:
            found = pattern.match(name)
            if found:
                if is_stem:
                    ids[name] = 0
                elif found.groups() and found.group(1) is not None:
                    ids[name] = int(found.group(1)) + 1
                break
    return ids


def param_groups(model: torch.nn.Module, weight_decay: float, layer_decay: float, num_layers: int):
    """AdamW groups, one per (layer id, decay?), ordered by layer then no-decay before decay; each
    carries its ``lr_scale`` = ``layer_decay ** (num_layers + 1 - layer id)`` and its ``names``."""
    skip_decay = no_decay_names(model)
    ids = layer_ids(model, num_layers)
    groups: dict = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = not (param.ndim == 1 or name.endswith(".bias") or name in skip_decay)
        lid = ids[name]
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
