"""The video modality for the engine: Kinetics lists decoded with decord, Spatiotemporal MAE ViTs,
clip-level and multi-view (temporal clips x spatial crops) top-1/top-5."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

import tome
from launch.engine.errors import ConfigError
from launch.engine.tasks import Task, check_checkpoint, required_lists, tome_options, topk_accuracy


@dataclass
class VideoData:
    root: str = ""                       # videos; list paths are relative to it
    train_list: str = ""                 # CSV "path label" (Kinetics train.csv)
    val_list: str = ""
    num_frames: int = 16
    sampling_rate: int = 4
    target_fps: Optional[float] = 30.0   # null: step through the file's own frames
    crop_size: int = 224
    num_temporal_clips: int = 7          # test views: clips x crops, scores averaged per video
    num_spatial_crops: int = 3
    rand_augment: Optional[str] = "rand-m7-n4-mstd0.5-inc1"
    repeat_aug: int = 2
    hflip: bool = True
    crop_scale: Optional[list] = None    # training crop's area fraction [low, high]; null: the
                                         # dataset's default, MAE-ST's [0.08, 1.0]
    random_erase: float = 0.0            # training: probability of erasing one box through the clip
    random_erase_mode: str = "pixel"     # pixel | rand | const (fill of the erased box)
    random_erase_count: int = 1          # at most this many boxes (1..count drawn per clip)
    mean: Optional[list] = None          # per-channel normalisation (null: MAE-ST's 0.45)
    std: Optional[list] = None           # (null: MAE-ST's 0.225)
    demo: bool = False                   # generate the synthetic moving-shapes set into root
    demo_classes: int = 4
    demo_train_per_class: int = 16
    demo_val_per_class: int = 8


@dataclass
class VideoModel:
    variant: str = "l"                   # micro | tiny | b | l | h
    checkpoint: Optional[str] = None     # MAE-ST .pyth (pretrained or fine-tuned), our checkpoint, or a
                                         # transformers model: hf-hub:<org>/<name> or its directory
    num_classes: int = 400
    tubelet: int = 2
    patch: int = 16
    drop_path: float = 0.2
    head_drop: float = 0.5

    @property
    def name(self) -> str:
        return f"video_vit_{self.variant}"


class VideoTask(Task):
    name = "video"
    data_schema = VideoData
    model_schema = VideoModel
    primary_metric = "acc1"
    positive_data_fields = ("num_frames", "sampling_rate", "crop_size", "num_temporal_clips",
                            "num_spatial_crops", "repeat_aug", "demo_classes")

    def prepare(self, cfg, dry_run: bool = False) -> None:
        d = cfg.data
        if d.demo:
            if not d.root:
                raise ConfigError("data.root is empty; the demo needs a folder to write videos into")
            from video.data import write_demo_videos
            if not dry_run:
                write_demo_videos(d.root, num_classes=d.demo_classes,  # rewritten when settings change
                                  videos_per_class=(d.demo_train_per_class, d.demo_val_per_class))
            elif not (os.path.isfile(os.path.join(d.root, "train.csv")) and
                      os.path.isfile(os.path.join(d.root, "val.csv"))):
                check_checkpoint(cfg.model.checkpoint, cfg, self)  # the real submission writes the demo set
                return
        if not os.path.isdir(d.root):
            raise ConfigError(f"data.root {d.root!r} is not a directory of videos")
        from video.data import load_video_list
        for _, path in required_lists(cfg, "a Kinetics CSV of 'path label' lines"):
            load_video_list(path, d.root)  # missing file: ConfigError; empty list or bad line: DataError
        from launch.engine.hf_models import is_transformers_source
        if not is_transformers_source(cfg.model.checkpoint):  # a transformers model directory
            check_checkpoint(cfg.model.checkpoint, cfg, self)

    def load_checkpoint(self, model, source, check_only: bool = False):
        from video.checkpoint import load_mae_st_checkpoint
        return load_mae_st_checkpoint(model, source, check_only=check_only)

    def build_dataset(self, cfg, train: bool):
        from video.data import VideoClipDataset
        d = cfg.data
        common = dict(num_frames=d.num_frames, sampling_rate=d.sampling_rate, crop_size=d.crop_size,
                      target_fps=d.target_fps,
                      **{k: getattr(d, k) for k in ("mean", "std") if getattr(d, k) is not None})
        if train:
            return VideoClipDataset(d.train_list, d.root, True, rand_augment=d.rand_augment,
                                    repeat_aug=d.repeat_aug, hflip=d.hflip,
                                    random_erase=d.random_erase, random_erase_mode=d.random_erase_mode,
                                    random_erase_count=d.random_erase_count,
                                    **({} if d.crop_scale is None else {"scale": tuple(d.crop_scale)}),
                                    **common)
        return VideoClipDataset(d.val_list, d.root, False, num_temporal_clips=d.num_temporal_clips,
                                num_spatial_crops=d.num_spatial_crops, **common)

    def build_model(self, cfg):
        from video.model import build_video_vit, load_mae_st_checkpoint
        m, d = cfg.model, cfg.data
        from launch.engine.hf_models import is_transformers_source, load_classifier
        if is_transformers_source(m.checkpoint):  # a published VideoMAE: the publisher's module
            return load_classifier(m.checkpoint, "video", m.num_classes)
        model = build_video_vit(m.variant, m.num_classes, num_frames=d.num_frames, img_size=d.crop_size,
                                tubelet=m.tubelet, patch=m.patch, drop_path=m.drop_path,
                                head_drop=m.head_drop)
        if m.checkpoint:
            load_mae_st_checkpoint(model, m.checkpoint)
        return model

    def patch(self, model, cfg):
        from launch.engine.hf_models import TransformersClassifier
        if isinstance(model, TransformersClassifier):
            return tome.patch.transformers(model, **tome_options(cfg))
        return tome.patch.video(model, **tome_options(cfg))

    def input_shape(self, cfg) -> tuple:
        return (3, cfg.data.num_frames, cfg.data.crop_size, cfg.data.crop_size)

    def repeated_views(self, cfg) -> int:
        return cfg.data.repeat_aug  # MAE-ST main_finetune.py:457-458 counts them in the batch

    def interim_eval_config(self, cfg):
        """Between epochs: one temporal clip x one spatial crop per video (the full
        num_temporal_clips x num_spatial_crops views are evaluated at the end)."""
        import dataclasses
        data = dataclasses.replace(cfg.data, num_temporal_clips=1, num_spatial_crops=1)
        return dataclasses.replace(cfg, data=data)

    def paint(self, x, source, model, path: str) -> str:
        from tome.vis import to_uint8
        from tome.patch.spatiotemporal import paint_video, save_video_groups, video_groups
        groups = video_groups(source, model.patch_embed.grid_size, model._tome.protected)
        frames = to_uint8(x.permute(1, 2, 3, 0))  # (C, T, H, W) -> (T, H, W, C)
        painted = paint_video(frames, groups.numpy())
        both = [np.concatenate([f, p], axis=1) for f, p in zip(frames, painted)]
        return save_video_groups(both, path, columns=2)

    def metrics(self, scores, targets, groups) -> dict:
        from video.data import aggregate_views
        per_view = topk_accuracy(scores, targets, (1,))
        video_scores, ids = aggregate_views(scores, groups)  # groups: the video of each view
        # every view of a video carries the video's label; take one per video
        labels = {int(i): int(t) for i, t in zip(groups, targets)}
        video_targets = torch.tensor([labels[int(i)] for i in ids])
        out = topk_accuracy(video_scores, video_targets, (1, 5))
        out["view_acc1"] = per_view["acc1"]
        out["videos"] = len(ids)
        return out
