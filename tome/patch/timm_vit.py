"""ToMe for timm's ``VisionTransformer`` and its subclasses (AugReg, DeiT, DeiT-distilled, MAE, ...).

The patch swaps the classes of the model, its ``Block``s and their ``Attention``s for subclasses
that merge tokens between attention and MLP. Everything else in the block is timm's own module and
runs as before: LayerScale, q/k norm, gates, drop path, dropout.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models._features import feature_take_indices
from timm.models.vision_transformer import Attention, Block, VisionTransformer

from ..attention import attention, attention_metric, pick_metric
from ..matching import KMEANS_ITERS
from ..merge import merge_step
from ..threads import calling_thread
from ..state import ToMeInfo, recalled, record, remember
from .common import ScheduleProperty, init_state, merge_first, run_block, run_blocks, swap_class

_CLASSES: dict = {}
_POOLS = ("", "token", "avg", "max", "avgmax")


class ToMeAttentionMixin:
    def tome_forward(self, x: torch.Tensor, size, prop_attn: bool, metric: str, attn: str = "sdpa",
                     heads: str = "mean", want_metric: bool = True):
        """Attention with the log-size bias; returns ``(out, metric)``, the metric None when
        ``want_metric`` is False (a layer that merges nothing computes none)."""
        batch, num_tokens, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, self.head_dim)
        # Head-averaged keys straight from the projection's layout (one cheap pass); with a
        # key norm, average the normed keys instead.
        fast_metric = want_metric and metric == "k" and heads == "mean" and isinstance(self.k_norm, nn.Identity)
        key_metric = None
        if fast_metric:
            with calling_thread(x, elements=x.numel()):  # small: no OpenMP barrier (tome/threads.py)
                key_metric = qkv[:, :, 1].mean(dim=2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout_p = self.attn_drop.p if self.training else 0.0
        # timm's own switch to explicit attention (fused_attn=False) holds for the sdpa default.
        backend = "eager" if attn == "sdpa" and not self.fused_attn else attn
        out = attention(q, k, v, size if prop_attn else None, backend, dropout_p,
                        scale=None if backend == "sdpa" else self.scale)
        out = self.norm(out.transpose(1, 2).reshape(batch, num_tokens, self.attn_dim))
        if gate is not None:
            out = out * gate
        out = self.proj_drop(self.proj(out))
        if not want_metric:
            return out, None
        if fast_metric:
            return out, key_metric
        return out, pick_metric(metric, x, q, k, v, heads, size if prop_attn else None, self.scale)


class ToMeBlockMixin:
    def tome_forward(self, x, size, source, groups, r: int):
        info = self._tome
        x, size, source, groups, r = merge_first(info, x, r, size, source, groups)
        # A layer that merges nothing (r = 0) costs what the unpatched block costs: no metric.
        h, metric = self.attn.tome_forward(self.norm1(x), size, info.prop_attn,
                                           attention_metric(info.metric, info.matching), info.attn,
                                           info.heads, want_metric=r > 0)
        x = x + self.drop_path1(self.ls1(h))
        if r > 0:  # metric None: the tokens themselves (metric "x")
            x, size, source, groups = merge_step(x, x if metric is None else metric, r, size, source,
                                                 groups, **info.merge_options())
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, size, source, groups


def _no_mask(attn_mask, is_causal) -> None:
    if attn_mask is not None or is_causal:
        raise ValueError("ToMe-patched models do not take attention masks (tokens change per layer)")


class ToMeVisionTransformerMixin(ScheduleProperty):
    """The patched model. ``forward`` passes the token state from the blocks straight to pooling;
    the public ``forward_features`` / ``forward_intermediates`` remember it for their returned
    tensor so that ``forward_head`` of that tensor pools with the right sizes."""

    def _tome_num_layers(self) -> int:
        return len(self.blocks)

    def _tome_embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        return self.norm_pre(x)

    def _tome_features(self, x: torch.Tensor):
        x = self._tome_embed(x)
        x, state = run_blocks(self.blocks, x, self._tome, self.grad_checkpointing and self.training)
        return self.norm(x), state

    def _tome_pool(self, x: torch.Tensor, size, pool_type=None) -> torch.Tensor:
        pool_type = self.global_pool if pool_type is None else pool_type
        if size is None or pool_type not in ("avg", "avgmax"):
            return super().pool(x, pool_type)
        # A merged token stands for `size` patches: average as if they were all still there.
        if not self.pool_include_prefix:
            x, size = x[:, self.num_prefix_tokens:], size[:, self.num_prefix_tokens:]
        weight = size.float() / size.float().sum(dim=1, keepdim=True)
        avg = (x.float() * weight).sum(dim=1).to(x.dtype)
        if pool_type == "avgmax":
            return 0.5 * (x.amax(dim=1) + avg)
        return avg

    def _tome_head(self, x: torch.Tensor, size, pre_logits: bool = False):
        original = self._tome_original_class
        if original.forward_head is not VisionTransformer.forward_head:
            # the subclass's own head (DeiT-distilled: class and distillation tokens, no pooling)
            return original.forward_head(self, x, pre_logits)
        x = self._tome_pool(x, size)
        x = self.fc_norm(x)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def _tome_recalled_size(self, x: torch.Tensor, pool_type):
        """Sizes of a tensor returned by forward_features / forward_intermediates."""
        state = recalled(x)
        if state is not None:
            return state.size
        pool_type = self.global_pool if pool_type is None else pool_type
        if pool_type not in ("avg", "avgmax") or not any(self._tome.layer_r(len(self.blocks))):
            return None
        full = None if getattr(self, "dynamic_img_size", False) else \
            self.patch_embed.num_patches + self.num_prefix_tokens
        if full is None or x.shape[1] != full:
            raise ValueError(f"ToMe: no token sizes recorded for these {x.shape[1]}-token features; "
                             f"{pool_type!r} pooling needs them: pass the tensor returned by "
                             f"forward_features / forward_intermediates itself, or call model(x)")
        return None

    def forward(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False):
        _no_mask(attn_mask, is_causal)
        x, state = self._tome_features(x)
        record(x, state)
        return self._tome_head(x, state.size)

    def forward_features(self, x: torch.Tensor, attn_mask=None, is_causal: bool = False) -> torch.Tensor:
        _no_mask(attn_mask, is_causal)
        x, state = self._tome_features(x)
        record(x, state)
        remember(x, state)
        return x

    def pool(self, x: torch.Tensor, pool_type=None) -> torch.Tensor:
        return self._tome_pool(x, self._tome_recalled_size(x, pool_type), pool_type)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        return self._tome_head(x, self._tome_recalled_size(x, None), pre_logits)

    def forward_intermediates(self, x: torch.Tensor, indices=None, return_prefix_tokens: bool = False,
                              norm: bool = False, stop_early: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False, output_dict: bool = False,
                              attn_mask=None, is_causal: bool = False):
        """timm's ``forward_intermediates`` with merging: each block merges with its ``r``.

        Merged intermediates have fewer tokens than the patch grid, so they come back in ``NLC``;
        ``NCHW`` works only while no block up to the last one taken merges.
        """
        _no_mask(attn_mask, is_causal)
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        rs = self._tome.layer_r(len(self.blocks))
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        reshape = output_fmt == "NCHW"
        if reshape and any(rs[:max_index + 1]):
            raise ValueError(f"forward_intermediates(output_fmt='NCHW') needs intermediates on the "
                             f"patch grid, but ToMe merges tokens (r={self._tome.r!r}); use "
                             f"output_fmt='NLC'")
        if reshape and x.ndim != 4:
            raise ValueError(f"output_fmt='NCHW' needs a [B, C, H, W] image input, got shape "
                             f"{tuple(x.shape)}; use output_fmt='NLC'")
        batch, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        x = self._tome_embed(x)
        state = init_state(x, self._tome)
        checkpointing = self.grad_checkpointing and self.training
        blocks = self.blocks[:max_index + 1] if stop_early else self.blocks
        intermediates = []
        for i, (blk, r) in enumerate(zip(blocks, rs)):
            x, state = run_block(blk, x, state, r, checkpointing)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm else x)
        prefix = self.num_prefix_tokens
        prefix_tokens = [y[:, :prefix] for y in intermediates] if prefix else None
        if prefix:
            intermediates = [y[:, prefix:] for y in intermediates]
        if reshape:
            h, w = self.patch_embed.dynamic_feat_size((height, width))
            intermediates = [y.reshape(batch, h, w, -1).permute(0, 3, 1, 2).contiguous()
                             for y in intermediates]
        record(x, state)
        if output_dict:
            result = {"image_intermediates": intermediates}
            if prefix_tokens is not None and return_prefix_tokens:
                result["image_intermediates_prefix"] = prefix_tokens
            if not intermediates_only:
                result["image_features"] = self.norm(x)
                remember(result["image_features"], state)
            return result
        if return_prefix_tokens and prefix_tokens is not None:
            intermediates = list(zip(intermediates, prefix_tokens))
        if intermediates_only:
            return intermediates
        x = self.norm(x)
        remember(x, state)
        return x, intermediates


def _check_supported(model) -> None:
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"tome.patch.timm supports timm VisionTransformer models, got "
                         f"{type(model).__name__}")
    if getattr(model, "attn_pool", None) is not None:
        raise ValueError("tome.patch.timm: attention-pooling ('map') heads are not supported")
    original = getattr(model, "_tome_original_class", type(model))
    if original.forward_head is not VisionTransformer.forward_head and model.global_pool in ("avg", "avgmax"):
        raise ValueError(f"tome.patch.timm: {original.__name__} has its own forward_head; with "
                         f"global_pool {model.global_pool!r} it would pool merged tokens unweighted")
    if model.global_pool not in _POOLS:
        raise ValueError(f"tome.patch.timm: global_pool {model.global_pool!r} not supported, "
                         f"expected one of {_POOLS}")
    for i, blk in enumerate(model.blocks):
        base = getattr(blk, "_tome_original_class", type(blk))
        attn = getattr(blk, "attn", None)
        attn_base = getattr(attn, "_tome_original_class", type(attn))
        if base is not Block or attn_base is not Attention:
            raise ValueError(f"tome.patch.timm: block {i} is {base.__name__} with "
                             f"{attn_base.__name__}; only timm Block with Attention is supported")


def patch_timm(model: VisionTransformer, trace_source: bool = False, prop_attn: bool = True,
               metric: str = "k", mode: str = "wavg", matching: str = "bipartite",
               distance: str = "cosine", attn: str = "sdpa", heads: str = "mean",
               partition: str = "alternating", kmeans_iters: int = KMEANS_ITERS) -> VisionTransformer:
    """Patch a timm ViT in place; then set ``model.r``. Returns the model.

    ``model._tome`` holds these options only. The sizes, token counts and (with
    ``trace_source=True``) source maps of a call are read with ``tome.trace()``.
    ``attn``: the attention backend, "sdpa" | "flex" | "eager" (see ``tome.attention``).
    ``metric``, ``heads``, ``distance``, ``mode``, ``partition``, ``matching``, ``kmeans_iters``:
    the paper's ablation options (:class:`tome.ToMeInfo`, docs/api_options.md).
    """
    _check_supported(model)
    old = getattr(model, "_tome", None)
    info = ToMeInfo(r=old.r if old else 0, protected=model.num_prefix_tokens, prop_attn=prop_attn,
                    trace_source=trace_source, metric=metric, mode=mode, matching=matching,
                    distance=distance, attn=attn, heads=heads, partition=partition,
                    kmeans_iters=kmeans_iters)
    swap_class(model, ToMeVisionTransformerMixin, _CLASSES)
    model._tome = info
    for blk in model.blocks:
        swap_class(blk, ToMeBlockMixin, _CLASSES)
        swap_class(blk.attn, ToMeAttentionMixin, _CLASSES)
        blk._tome = info
    return model
