"""Token merging for spectrogram ViTs (Audio-MAE and friends).

Audio ViTs cut a (time x frequency) log-mel spectrogram into patches, row-major over (time, freq):
64 x 8 = 512 tokens for Audio-MAE's 1024 x 128 input. Merging runs as in the paper, with the class
token protected. For studying what merging does to sound, merges can be restricted to tokens of
the same frequency band and/or time window: tokens carry a band/window label, and the matching
only pairs equal labels (labels follow their tokens through every layer).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch

from .timm_vit import patch_timm
from ..paint import groups_on_grid, paint_groups


def band_labels(grid: Sequence[int], prefix: int, band: Optional[int] = None,
                window: Optional[int] = None, freq_major: bool = False) -> Optional[torch.Tensor]:
    """[prefix + time*freq] labels: tokens merge only with tokens of the same label.

    band: frequency patches per band; window: time patches per window. ``grid`` is (time, freq);
    tokens are ordered time-major (Audio-MAE: ``t * F + f``) or, with ``freq_major``,
    frequency-major (AST: ``f * T + t``). Every label must hold tokens of both sets of the
    even/odd split, or nothing in it could merge: on Audio-MAE's grid (8 frequency patches) a
    one-patch band fails that, so a band must span at least two frequency patches there.
    """
    if band is None and window is None:
        return None
    n_time, n_freq = grid
    for name, value, limit in (("band", band, n_freq), ("window", window, n_time)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= limit):
            raise ValueError(f"{name} must be an integer in [1, {limit}] patches, got {value!r}")
    t = torch.arange(n_time)[:, None].expand(n_time, n_freq)
    f = torch.arange(n_freq)[None, :].expand(n_time, n_freq)
    n_bands = -(-n_freq // band) if band else 1
    labels = (t // window if window else torch.zeros_like(t)) * n_bands + (f // band if band else 0)
    labels = labels.t().flatten() if freq_major else labels.flatten()
    parity = (torch.arange(labels.numel()) + prefix) % 2
    for label in labels.unique():
        if parity[labels == label].unique().numel() < 2:
            what = f"band={band}" if band is not None else f"window={window}"
            raise ValueError(f"{what} leaves a group of tokens all in one set of the even/odd split "
                             f"(no pair can merge); a band must span at least 2 frequency patches "
                             f"on this grid")
    return torch.cat([torch.full((prefix,), -1), labels])


def patch_audio(model, trace_source: bool = False, prop_attn: bool = True,
                band: Optional[int] = None, window: Optional[int] = None, **options):
    """Patch an audio ViT whose patch grid is (time, freq); optionally restrict merges."""
    grid = getattr(getattr(model, "patch_embed", None), "grid_size", None)
    if grid is None or len(grid) != 2:
        raise ValueError(f"tome.patch.audio expects a (time, freq) patch grid, got {grid!r}")
    patch_timm(model, trace_source=trace_source, prop_attn=prop_attn, **options)
    model._tome.groups = band_labels(grid, model.num_prefix_tokens, band, window)
    return model


def spectrogram_groups(source: torch.Tensor, grid: Sequence[int], prefix: int = 1) -> torch.Tensor:
    """One clip's source map [T_out, T_in] -> [time, freq] index of the token holding each patch."""
    return groups_on_grid(source, grid, prefix)


def paint_spectrogram(fbank: np.ndarray, groups: torch.Tensor, cmap: str = "magma") -> np.ndarray:
    """Merged groups over a [frames, mel] spectrogram, drawn with time left-to-right and low
    frequencies at the bottom: the spectrogram on top, its groups (mean colour, outlined) below.
    Returns an RGB uint8 image."""
    from matplotlib import colormaps

    fbank = np.asarray(fbank, dtype=np.float64)
    lo, hi = fbank.min(), fbank.max()
    rgb = (colormaps[cmap]((fbank - lo) / max(hi - lo, 1e-8))[..., :3] * 255).astype(np.uint8)
    painted = paint_groups(rgb, np.asarray(groups))  # [time, freq, 3]
    gap = np.full((2, rgb.shape[0], 3), 255, dtype=np.uint8)
    show = lambda a: a.transpose(1, 0, 2)[::-1]  # noqa: E731  (freq up, time right)
    return np.concatenate([show(rgb), gap, show(painted)], axis=0)
