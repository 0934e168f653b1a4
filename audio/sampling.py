"""Class-balanced sampling for multi-label AudioSet training.

Audio-MAE fine-tunes on the unbalanced AudioSet-2M with a weighted sampler whose per-clip weight
is the sum, over the clip's labels, of ``1000 / (label count + 0.01)`` (its
``dataset/audioset/gen_weight.py``), so clips carrying rare labels are drawn more often.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from launch.engine.errors import ConfigError, DataError


def class_balanced_weights(items: Sequence[tuple[str, list[int]]], num_classes: int) -> torch.Tensor:
    """Per-clip sampling weights (float64, length N): sum of 1000 / (count + 0.01) over its labels."""
    if num_classes <= 0:
        raise ConfigError(f"num_classes={num_classes}; must be positive")
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for _, labels in items:
        for k in labels:
            if not 0 <= k < num_classes:
                raise DataError(f"label index {k} outside 0..{num_classes - 1}")
            counts[k] += 1
    # The 0.01 only keeps unused classes finite; scale is irrelevant to multinomial sampling.
    label_weight = 1000.0 / (counts + 0.01)
    weights = torch.tensor([float(label_weight[list(labels)].sum()) for _, labels in items],
                           dtype=torch.float64)
    if len(weights) and (weights <= 0).any():
        # A clip with no labels would otherwise never be drawn; treat it like a singleton class.
        weights[weights <= 0] = 1000.0 / (1 + 0.01)
    return weights
