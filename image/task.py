"""The image modality for the engine: ImageNet-style folders, timm / torchvision ViTs, top-1/top-5."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
from typing import Optional

from torchvision.models.vision_transformer import VisionTransformer as TorchvisionViT

import tome
from launch.engine.errors import ConfigError
from launch.engine.tasks import Task, check_checkpoint, tome_options, topk_accuracy


@dataclass
class ImageData:
    root: str = ""                       # ImageFolder root with train/ and val/
    train_split: str = "train"
    val_split: str = "val"
    family: str = "augreg"               # evaluation transform: augreg | deit | mae | swag | demo
    img_size: int = 224
    crop_pct: Optional[float] = None
    rand_augment: Optional[str] = "rand-m9-mstd0.5-inc1"
    re_prob: float = 0.25
    train_scale: list = field(default_factory=lambda: [0.08, 1.0])  # random-resized-crop area
    repeated_aug: int = 1                # DeiT RASampler copies per image (deit main.py: 3)
    demo: bool = False                   # generate the synthetic demo set into root if missing
    demo_classes: int = 8
    demo_train_per_class: int = 60
    demo_val_per_class: int = 20
    demo_size: int = 64


@dataclass
class ImageModel:
    name: str = "vit_base_patch16_224"   # timm name, torchvision:vit_b_16, demo_vit_tiny, ...
    checkpoint: Optional[str] = None     # local weights (nothing is downloaded)
    num_classes: int = 1000
    drop_path: float = 0.1
    kwargs: dict = field(default_factory=dict)  # extra constructor arguments (depth=..., ...)
    init: str = "timm"                   # from-scratch init: timm (1.0) | deit (timm 0.3.2, image/init.py)


class ImageTask(Task):
    name = "image"
    data_schema = ImageData
    model_schema = ImageModel
    primary_metric = "acc1"
    positive_data_fields = ("img_size", "demo_classes", "demo_train_per_class",
                            "demo_val_per_class", "demo_size")

    def prepare(self, cfg, dry_run: bool = False) -> None:
        from image.data import check_has_images
        d = cfg.data
        if not d.root:
            raise ConfigError("data.root is empty; set it to an ImageFolder root (train/, val/)")
        check_checkpoint(cfg.model.checkpoint, cfg, self)
        from image.init import INITS
        if cfg.model.init not in INITS:
            raise ConfigError(f"model.init must be one of {', '.join(INITS)}, got {cfg.model.init!r}")
        if d.repeated_aug < 1:
            raise ConfigError(f"data.repeated_aug must be >= 1, got {d.repeated_aug}")
        if d.demo:
            if dry_run:  # the real submission generates (or refreshes) the demo set
                return
            from image.demo import write_demo_images
            write_demo_images(d.root, d.demo_classes, d.demo_train_per_class, d.demo_val_per_class,
                              d.demo_size, seed=0)
        splits = ([d.train_split] if cfg.train.epochs > 0 else []) + [d.val_split]
        for split in splits:
            if not os.path.isdir(os.path.join(d.root, split)):
                raise ConfigError(f"data split folder {os.path.join(d.root, split)!r} does not exist "
                                  f"(data.root={d.root!r}, expected <root>/{split}/<class>/<image>)")
            check_has_images(os.path.join(d.root, split))

    def load_checkpoint(self, model, source, check_only: bool = False):
        from image.checkpoint import load_image_checkpoint
        return load_image_checkpoint(model, source, check_only=check_only)

    def build_dataset(self, cfg, train: bool):
        from image.data import ImageFolderDataset
        from image.transforms import eval_settings, eval_transform, train_transform
        d = cfg.data
        if train:
            # Train with the normalisation the family's weights (and its evaluation) expect.
            stats = eval_settings(d.family, d.img_size)
            transform = train_transform(d.img_size, d.rand_augment, d.re_prob, mean=stats["mean"],
                                        std=stats["std"], scale=tuple(d.train_scale))
            return ImageFolderDataset(d.root, d.train_split, transform)
        return ImageFolderDataset(d.root, d.val_split, eval_transform(d.family, d.img_size, d.crop_pct))

    def build_model(self, cfg):
        from image.model import build_image_model
        from image.init import apply_init
        m = cfg.model
        model = build_image_model(m.name, num_classes=m.num_classes, img_size=cfg.data.img_size,
                                  drop_path=m.drop_path, checkpoint=m.checkpoint, **m.kwargs)
        return apply_init(model, m.init, m.checkpoint)

    def sampler_repeats(self, cfg) -> int:
        return cfg.data.repeated_aug

    def patch(self, model, cfg):
        options = tome_options(cfg)
        if isinstance(model, TorchvisionViT):
            return tome.patch.torchvision(model, **options)
        return tome.patch.timm(model, **options)

    def input_shape(self, cfg) -> tuple:
        return (3, cfg.data.img_size, cfg.data.img_size)

    def paint(self, x, source, model, path: str) -> str:
        from PIL import Image
        from tome.vis import to_uint8
        from tome.paint import groups_on_grid, paint_groups
        grid = model.patch_embed.grid_size if hasattr(model, "patch_embed") else \
            (x.shape[-2] // model.patch_size, x.shape[-1] // model.patch_size)
        groups = groups_on_grid(source, grid, model._tome.protected)
        image = to_uint8(x.permute(1, 2, 0))
        picture = Image.fromarray(np.concatenate([image, paint_groups(image, groups.numpy())], axis=1))
        scale = max(1, 256 // image.shape[0])  # small demo images are drawn larger
        picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST).save(path)
        return path

    def metrics(self, scores, targets, groups) -> dict:
        return topk_accuracy(scores, targets, (1, 5))
