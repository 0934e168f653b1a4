"""Batch-level mixup / cutmix with label smoothing, for images, clips and spectrograms.

Cutmix cuts a box over the last two input dimensions (H, W for images and each frame of a clip),
so the same code serves [B, C, H, W] and [B, C, T, H, W]. Multi-label targets mix their multi-hot
vectors; class-id targets become smoothed one-hot vectors first.

A :class:`Mixup` holds only its settings: every call draws from the generator it is handed, so one
instance serves a whole run and each step's draws depend on that step's seed alone (a resumed run
mixes exactly as the uninterrupted one).
"""
from __future__ import annotations

import math

import numpy as np
import torch


def one_hot(targets: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    off = smoothing / num_classes
    out = torch.full((targets.shape[0], num_classes), off, device=targets.device)
    return out.scatter_(1, targets[:, None], 1.0 - smoothing + off)


class Mixup:
    """Mix a batch with its reverse (``x.flip(0)``): mixup with probability ``prob``, as cutmix
    instead with probability ``switch_prob`` when both are on; ``lam`` from Beta(alpha, alpha)."""

    def __init__(self, mixup: float, cutmix: float, prob: float, switch_prob: float,
                 smoothing: float, num_classes: int, multilabel: bool):
        self.mixup, self.cutmix, self.prob, self.switch_prob = mixup, cutmix, prob, switch_prob
        self.smoothing, self.num_classes, self.multilabel = smoothing, num_classes, multilabel

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup > 0 or self.cutmix > 0)

    def targets(self, targets: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return targets.float()
        return one_hot(targets, self.num_classes, self.smoothing)

    def __call__(self, x: torch.Tensor, targets: torch.Tensor, rng: np.random.Generator):
        """``(mixed inputs, soft targets)``; every random draw comes from ``rng``."""
        soft = self.targets(targets)
        if not self.active or rng.random() > self.prob:
            return x, soft
        use_cutmix = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < self.switch_prob)
        if use_cutmix:
            lam = float(rng.beta(self.cutmix, self.cutmix))
            h, w = x.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            x = x.clone()
            x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the area actually cut
        else:
            lam = float(rng.beta(self.mixup, self.mixup))
            x = x * lam + x.flip(0) * (1.0 - lam)
        return x, soft * lam + soft.flip(0) * (1.0 - lam)
