"""Dense output: a ToMe-patched ViT's tokens spread back onto the patch grid.

A segmentation or saliency head reads one feature per patch. After merging, a token stands for
several patches; :func:`dense` gives each patch the token that holds it (the source map, see
:func:`tome.unmerge`), so the head runs unchanged on a merged backbone::

    grid = tome.dense(model, images)               # [B, C, h, w]: final normed tokens
    grids = tome.dense(model, images, indices=4)   # list: the last 4 blocks' tokens, each [B, C, h, w]

Prefix tokens (class, register tokens) are dropped. Tokens pruned away (``mode="keep"``) leave
zeros on their patches.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch

from .merge import unmerge
from .patch.common import init_state, run_block
from .state import record, trace

FORMATS = ("NCHW", "NLC")


def _grid_size(model, x: torch.Tensor) -> tuple:
    return tuple(model.patch_embed.dynamic_feat_size(tuple(x.shape[-2:])))


def _check(model, x: torch.Tensor, output_fmt: str) -> None:
    from timm.models.vision_transformer import VisionTransformer

    if not isinstance(model, VisionTransformer):
        raise ValueError(f"tome.dense supports timm VisionTransformer models, got {type(model).__name__}")
    if output_fmt not in FORMATS:
        raise ValueError(f"output_fmt must be one of {FORMATS}, got {output_fmt!r}")
    if x.ndim != 4:
        raise ValueError(f"tome.dense needs a [B, C, H, W] image batch, got shape {tuple(x.shape)}")


def _take(depth: int, indices) -> List[int]:
    """timm's convention: an int n takes the last n blocks, a sequence names blocks (negative
    counts from the end)."""
    if isinstance(indices, (bool, str)) or not isinstance(indices, (int, Sequence)):
        raise ValueError(f"indices must be an int (the last n blocks) or a list of block indices, "
                         f"got {indices!r}")
    if isinstance(indices, int):
        if not 1 <= indices <= depth:
            raise ValueError(f"indices={indices} asks for the last {indices} blocks; the model has "
                             f"{depth}, so use 1..{depth}")
        return list(range(depth - indices, depth))
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) or not -depth <= i < depth:
            raise ValueError(f"block index {i!r} is out of range for a {depth}-block model "
                             f"(valid: {-depth}..{depth - 1})")
        out.append(i % depth)
    return out


def _patched_tokens(model, x: torch.Tensor, take: List[int], norm: bool) -> List[torch.Tensor]:
    """Run the patched blocks with source tracking; unmerge the taken blocks' tokens."""
    info = model._tome
    prefix = model.num_prefix_tokens
    rs = info.layer_r(len(model.blocks))
    checkpointing = model.grad_checkpointing and model.training
    found = {}
    with trace(source=True):  # makes the blocks carry the source map for this call
        h = model._tome_embed(x)
        state = init_state(h, info)
        if state.source is None:  # torch.compile: sources are not tracked while compiling
            raise RuntimeError("tome.dense cannot run inside torch.compile: it needs the source map; "
                               "compile the dense head only, or call tome.dense eagerly")
        for i, (blk, r) in enumerate(zip(model.blocks[:max(take) + 1], rs)):
            h, state = run_block(blk, h, state, r, checkpointing)
            if i in take:
                y = model.norm(h) if norm else h
                # columns of the patches only: the prefix tokens are protected, never merged
                found[i] = unmerge(y, state.source[..., prefix:])
        record(h, state)
    return [found[i] for i in take]


def dense(model, x: torch.Tensor, indices: Optional[Union[int, Sequence[int]]] = None,
          norm: bool = True, output_fmt: str = "NCHW") -> Union[torch.Tensor, List[torch.Tensor]]:
    """Tokens of a timm ViT (ToMe-patched or not) on the patch grid.

    indices: None for the final tokens (one tensor); an int n for the last n blocks, or a list
        of block indices (a list of tensors, in the order asked).
    norm: pass the tokens through the model's final norm (as its ``forward_features`` does).
    output_fmt: ``"NCHW"`` ([B, C, h, w]) or ``"NLC"`` ([B, h*w, C], patches in raster order).
    Every patch receives the token it was merged into; nothing of the model changes.
    """
    _check(model, x, output_fmt)
    depth = len(model.blocks)
    take = [depth - 1] if indices is None else _take(depth, indices)
    if getattr(model, "_tome", None) is not None:
        tokens = _patched_tokens(model, x, take, norm)
    else:  # not patched: nothing merges, timm's own intermediates are already on the grid
        blocks = sorted(set(take))
        found = model.forward_intermediates(x, indices=blocks, norm=norm, output_fmt="NLC",
                                            intermediates_only=True, stop_early=True)
        tokens = [found[blocks.index(i)] for i in take]  # timm returns them in block order
    if output_fmt == "NCHW":
        h, w = _grid_size(model, x)
        tokens = [t.reshape(t.shape[0], h, w, t.shape[-1]).permute(0, 3, 1, 2) for t in tokens]
    return tokens[0] if indices is None else tokens

