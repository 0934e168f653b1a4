"""The audio modality for the engine: AudioSet lists, Kaldi fbank, Audio-MAE ViTs, multi-label
training (BCE) and mAP / AUC / d-prime."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch

import tome
from launch.engine.errors import ConfigError
from launch.engine.tasks import Task, check_checkpoint, required_lists, tome_options


@dataclass
class AudioData:
    root: str = ""                       # audio files (AudioSet CSV lists look up <YTID>.wav here)
    train_list: str = ""                 # AudioSet segments CSV or Audio-MAE JSON list
    val_list: str = ""
    label_csv: Optional[str] = None      # class_labels_indices.csv (default: beside the list)
    target_length: int = 1024            # fbank frames (10 ms each)
    mel_bins: int = 128
    freq_mask: int = 48                  # SpecAugment (training only)
    time_mask: int = 192
    noise: bool = False
    roll: bool = False                   # Audio-MAE roll_mag_aug: gain Beta(10,10)+0.5 (its shift is 0)
    wave_mixup: float = 0.0              # Audio-MAE mixup: P(mix a clip's waveform with a random one's)
    weighted_sampler: bool = False       # class-balanced sampling with replacement (AS-2M)
    epoch_samples: Optional[int] = None  # samples per epoch with the weighted sampler
    demo: bool = False                   # generate the synthetic multi-label clips into root
    demo_classes: int = 8
    demo_clips: int = 480


@dataclass
class AudioModel:
    variant: str = "b"                   # micro | tiny | s | b | l
    checkpoint: Optional[str] = None     # Audio-MAE pretrained / fine-tuned .pth, ours, or a
                                         # transformers AST: hf-hub:<org>/<name> or its directory
    num_classes: int = 527
    patch: int = 16
    drop_path: float = 0.1
    mask_t_prob: float = 0.0             # Audio-MAE fine-tuning: drop this fraction of time rows
    mask_f_prob: float = 0.0             # ... and of frequency columns of tokens (training only)

    @property
    def name(self) -> str:
        return f"audio_vit_{self.variant}"


class AudioTask(Task):
    name = "audio"
    data_schema = AudioData
    model_schema = AudioModel
    primary_metric = "map"
    multilabel = True
    fp32_scores = True   # mAP / AUC / d' rank the scores: bf16 ties them (#14), so never autocast
    positive_data_fields = ("target_length", "mel_bins", "demo_classes", "demo_clips",
                            "epoch_samples")

    def prepare(self, cfg, dry_run: bool = False) -> None:
        d = cfg.data
        if not 0.0 <= d.wave_mixup <= 1.0:
            raise ConfigError(f"data.wave_mixup={d.wave_mixup}; it is a probability, valid range [0, 1]")
        t = cfg.train
        if d.wave_mixup > 0 and (t.mixup > 0 or t.cutmix > 0) and t.mixup_prob > 0 and t.epochs > 0:
            raise ConfigError(f"data.wave_mixup={d.wave_mixup} with batch mixup (train.mixup={t.mixup}, "
                              f"cutmix={t.cutmix}); Audio-MAE mixes waveforms only (its batch Mixup is "
                              "built but never applied), so set train.mixup=0 and train.cutmix=0")
        if d.demo:
            if not d.root:
                raise ConfigError("data.root is empty; the demo needs a folder to write audio into")
            from audio.data import write_demo_audio
            if not dry_run:
                write_demo_audio(d.root, num_classes=d.demo_classes, clips=d.demo_clips)  # when changed
            elif not (d.train_list and os.path.isfile(d.train_list)):
                check_checkpoint(cfg.model.checkpoint, cfg, self)  # the real submission writes the demo set
                return
        if not os.path.isdir(d.root):
            raise ConfigError(f"data.root {d.root!r} is not a directory of audio files")
        from audio.data import load_audio_list
        for _, path in required_lists(cfg, "an AudioSet segments CSV or an Audio-MAE JSON list"):
            _, num_classes = load_audio_list(path, d.root, d.label_csv)
            if num_classes != cfg.model.num_classes:
                raise ConfigError(f"model.num_classes={cfg.model.num_classes} but {path} has "
                                  f"{num_classes} classes")
        masking = cfg.model.mask_t_prob or cfg.model.mask_f_prob
        if masking and cfg.train.epochs > 0 and (cfg.tome.band or cfg.tome.window):
            raise ConfigError("tome.band/window label the full token grid; they cannot be combined "
                              "with model.mask_t_prob/mask_f_prob while training")
        from launch.engine.hf_models import is_transformers_source
        if not is_transformers_source(cfg.model.checkpoint):  # a transformers model directory
            check_checkpoint(cfg.model.checkpoint, cfg, self)

    def load_checkpoint(self, model, source, check_only: bool = False):
        from audio.checkpoint import load_audiomae_checkpoint
        return load_audiomae_checkpoint(model, source, check_only=check_only)

    def build_dataset(self, cfg, train: bool):
        from audio.data import AudioClipDataset
        d = cfg.data
        return AudioClipDataset(d.train_list if train else d.val_list, d.root, d.label_csv, train=train,
                                target_length=d.target_length, mel_bins=d.mel_bins,
                                freq_mask=d.freq_mask, time_mask=d.time_mask,
                                noise=d.noise and train, roll=d.roll and train,
                                wave_mixup=d.wave_mixup if train else 0.0)

    def train_sampling(self, dataset, cfg) -> tuple:
        if not cfg.data.weighted_sampler:
            return None, None
        from audio.data import class_balanced_weights
        weights = torch.as_tensor(class_balanced_weights(dataset.items, dataset.num_classes))
        return weights, cfg.data.epoch_samples

    def build_model(self, cfg):
        from audio.model import build_audio_vit, load_audiomae_checkpoint
        m, d = cfg.model, cfg.data
        from launch.engine.hf_models import is_transformers_source, load_classifier
        if is_transformers_source(m.checkpoint):  # a published AST: the publisher's module
            return load_classifier(m.checkpoint, "spectrogram", m.num_classes)
        model = build_audio_vit(m.variant, num_classes=m.num_classes, target_length=d.target_length,
                                mel_bins=d.mel_bins, patch=m.patch, drop_path=m.drop_path,
                                mask_t_prob=m.mask_t_prob, mask_f_prob=m.mask_f_prob)
        if m.checkpoint:
            load_audiomae_checkpoint(model, m.checkpoint)
        return model

    def patch(self, model, cfg):
        t = cfg.tome
        from launch.engine.hf_models import TransformersClassifier
        patch = tome.patch.transformers if isinstance(model, TransformersClassifier) else tome.patch.audio
        return patch(model, **tome_options(cfg), band=t.band, window=t.window)

    def input_shape(self, cfg) -> tuple:
        return (1, cfg.data.target_length, cfg.data.mel_bins)

    def paint(self, x, source, model, path: str) -> str:
        from PIL import Image
        from tome.patch.spectrogram import paint_spectrogram, spectrogram_groups
        groups = spectrogram_groups(source, model.patch_embed.grid_size, model._tome.protected)
        picture = Image.fromarray(paint_spectrogram(x[0].numpy(), groups.numpy()))
        picture.resize((picture.width * 2, picture.height * 2), Image.NEAREST).save(path)
        return path

    def metrics(self, scores, targets, groups) -> dict:
        from audio.metrics import multilabel_metrics
        # Rank the fp32 logits themselves: float32 sigmoid rounds every logit above ~16.6 to 1.0,
        # tying them, and the order (all that AP / AUC use) is the same.
        scores = scores.float()
        m = multilabel_metrics(scores, targets)
        out = {"map": 100.0 * m["mAP"], "mauc": 100.0 * m["mAUC"], "d_prime": m["d_prime"]}
        out.update({f"map_{k}": v for k, v in map_bootstrap(scores, targets).items()})
        out["n"] = len(targets)
        return out


def map_bootstrap(scores: torch.Tensor, targets: torch.Tensor) -> dict:
    """Bootstrap over clips of the mAP (percent): ``se``, and the 95% interval ``lo``..``hi``.
    200 resamples (50 on AudioSet-sized sets, where the interval is narrow anyway)."""
    import math

    import numpy as np

    from audio.metrics import average_precision
    from launch.engine.stats import bootstrap
    s, t = scores.double().numpy(), targets.numpy() > 0.5

    def mean_ap(index):
        aps = [average_precision(s[index, k], t[index, k]) for k in range(s.shape[1])]
        aps = [a for a in aps if not math.isnan(a)]
        return 100.0 * float(np.mean(aps)) if aps else math.nan
    return bootstrap(mean_ap, len(s), resamples=200 if s.size <= 2_000_000 else 50)
