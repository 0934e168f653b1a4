"""Patches that add token merging to model families.

    import tome
    tome.patch.timm(model)          # timm VisionTransformer and subclasses
    tome.patch.torchvision(model)   # torchvision VisionTransformer (SWAG)
    model.r = 16                    # or (16, -1), or a per-layer list
    tome.unpatch(model)             # back to the original model
"""
from .common import unpatch
from .timm_vit import patch_timm as timm
from .torchvision_vit import patch_torchvision as torchvision

__all__ = ["timm", "torchvision", "unpatch"]
