"""Weight initialisations of the official from-scratch recipes.

DeiT trains from scratch with timm 0.3.2 (deit ``requirements.txt``), whose ``VisionTransformer``
draws ``pos_embed`` and ``cls_token`` from ``trunc_normal_(std=.02)``
(timm v0.3.2 ``timm/models/vision_transformer.py:241-242``). timm 1.0 draws ``cls_token`` from
``normal_(std=1e-6)``. Everything else (Linear weights trunc-normal std .02, zero biases,
LayerNorm at 1/0) is the same in both versions.
"""
from __future__ import annotations

import torch

INITS = ("timm", "deit")


@torch.no_grad()
def deit_init(model: torch.nn.Module) -> torch.nn.Module:
    """Re-draw the class / distillation tokens and position embedding as DeiT's timm 0.3.2 did."""
    found = False
    for name in ("cls_token", "dist_token", "pos_embed"):
        param = getattr(model, name, None)
        if isinstance(param, torch.Tensor):
            torch.nn.init.trunc_normal_(param, std=0.02)
            found = True
    if not found:
        raise ValueError(f"model.init=deit needs a timm ViT with cls_token/pos_embed, got "
                         f"{type(model).__name__}")
    return model


def apply_init(model: torch.nn.Module, init: str, checkpoint) -> torch.nn.Module:
    """``model.init`` for a model built from scratch; a checkpoint's weights replace any init."""
    if init not in INITS:
        raise ValueError(f"model.init must be one of {', '.join(INITS)}, got {init!r}")
    if init == "deit" and not checkpoint:
        deit_init(model)
    return model
