"""Patches that add token merging to model families.

    import tome
    tome.patch.timm(model)          # timm VisionTransformer and subclasses
    tome.patch.torchvision(model)   # torchvision VisionTransformer (SWAG)
    tome.patch.transformers(model)  # transformers ViT, DeiT, ViTMAE, VideoMAE, AST, Whisper
    tome.patch.whisper(model)       # transformers Whisper (encoder merging, proportional cross-attention)
    tome.patch.video(model)         # space-time tokens of a video ViT
    tome.patch.audio(model, band=2) # spectrogram ViT, optionally merging within bands only
    model.r = 16                    # or (16, -1), or a per-layer list
    tome.unpatch(model)             # back to the original model
"""
from .common import unpatch
from .timm_vit import patch_timm as timm
from .transformers import patch_transformers as transformers
from .torchvision_vit import patch_torchvision as torchvision
from .spatiotemporal import patch_video as video
from .spectrogram import patch_audio as audio
from .whisper import patch_whisper as whisper

__all__ = ["timm", "torchvision", "transformers", "video", "audio", "whisper", "unpatch"]
