"""ToMe for timm's ``VisionTransformer`` and its subclasses (AugReg, DeiT, DeiT-distilled, MAE, ...).

The patch swaps the classes of the model, its ``Block``s and their ``Attention``s for subclasses
that merge tokens between attention and MLP. Everything else in the block is timm's own module and
runs as before: LayerScale, q/k norm, gates, drop path, dropout.
"""
from __future__ import annotations

import torch
from torch import nn
from timm.models.vision_transformer import Attention, Block, VisionTransformer

from ..attention import attention, pick_metric
from ..merge import merge_step
from ..state import ToMeInfo
from .common import ScheduleProperty, run_blocks, swap_class

_CLASSES: dict = {}
_POOLS = ("", "token", "avg", "max", "avgmax")


class ToMeAttentionMixin:
    def tome_forward(self, x: torch.Tensor, size, prop_attn: bool, metric: str, attn: str = "sdpa"):
        batch, num_tokens, _ = x.shape
        gate = self.gate(x).sigmoid() if self.gate is not None else None
        qkv = self.qkv(x).reshape(batch, num_tokens, 3, self.num_heads, self.head_dim)
        # Head-averaged keys straight from the projection's layout (one cheap pass); with a
        # key norm, average the normed keys instead.
        fast_metric = metric == "k" and isinstance(self.k_norm, nn.Identity)
        key_metric = qkv[:, :, 1].mean(dim=2) if fast_metric else None
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
        return out, key_metric if fast_metric else pick_metric(metric, x, q, k, v)


class ToMeBlockMixin:
    def tome_forward(self, x, size, source, groups, r: int):
        info = self._tome
        h, metric = self.attn.tome_forward(self.norm1(x), size, info.prop_attn, info.metric, info.attn)
        x = x + self.drop_path1(self.ls1(h))
        if r > 0:
            x, size, source, groups = merge_step(x, metric, r, size, source, groups,
                                                 protected=info.protected, mode=info.mode,
                                                 matching=info.matching)
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, size, source, groups


class ToMeVisionTransformerMixin(ScheduleProperty):
    def _tome_num_layers(self) -> int:
        return len(self.blocks)

    def forward_features(self, x, attn_mask=None, is_causal: bool = False):
        if attn_mask is not None or is_causal:
            raise ValueError("ToMe-patched models do not take attention masks (tokens change per layer)")
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        x = run_blocks(self.blocks, x, self._tome, self.grad_checkpointing and self.training)
        return self.norm(x)

    def pool(self, x: torch.Tensor, pool_type=None) -> torch.Tensor:
        pool_type = self.global_pool if pool_type is None else pool_type
        size = self._tome.size
        if size is None or pool_type not in ("avg", "avgmax"):
            return super().pool(x, pool_type)
        # A merged token stands for `size` patches: average as if they were all still there.
        if not self.pool_include_prefix:
            x, size = x[:, self.num_prefix_tokens:], size[:, self.num_prefix_tokens:]
        size = size.to(x.dtype)
        avg = (x * size).sum(dim=1) / size.sum(dim=1)
        if pool_type == "avgmax":
            return 0.5 * (x.amax(dim=1) + avg)
        return avg


def _check_supported(model) -> None:
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"tome.patch.timm supports timm VisionTransformer models, got "
                         f"{type(model).__name__}")
    if getattr(model, "attn_pool", None) is not None:
        raise ValueError("tome.patch.timm: attention-pooling ('map') heads are not supported")
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
               attn: str = "sdpa") -> VisionTransformer:
    """Patch a timm ViT in place; then set ``model.r``. Returns the model.

    ``attn``: the attention backend, "sdpa" | "flex" | "eager" (see ``tome.attention``).

    After a forward pass ``model._tome.size`` holds the final token sizes and, with
    ``trace_source=True``, ``model._tome.source`` the map of input patches per output token.
    """
    _check_supported(model)
    old = getattr(model, "_tome", None)
    info = ToMeInfo(r=old.r if old else 0, protected=model.num_prefix_tokens, prop_attn=prop_attn,
                    trace_source=trace_source, metric=metric, mode=mode, matching=matching,
                    attn=attn)
    swap_class(model, ToMeVisionTransformerMixin, _CLASSES)
    model._tome = info
    for blk in model.blocks:
        swap_class(blk, ToMeBlockMixin, _CLASSES)
        swap_class(blk.attn, ToMeAttentionMixin, _CLASSES)
        blk._tome = info
    return model
