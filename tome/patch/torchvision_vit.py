"""ToMe for torchvision's ``VisionTransformer`` (the SWAG models are this class with SWAG weights).

torchvision's blocks use ``nn.MultiheadAttention``; the patch reads its fused in-projection weights
and runs the same attention through scaled_dot_product_attention, with the log-size bias.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import EncoderBlock, VisionTransformer

from ..attention import attention, attention_metric, pick_metric
from ..matching import KMEANS_ITERS
from ..merge import merge_step
from ..state import ToMeInfo, record
from .common import ScheduleProperty, merge_first, run_blocks, swap_class

_CLASSES: dict = {}


def _mha_forward(mha: torch.nn.MultiheadAttention, x: torch.Tensor, size, prop_attn: bool,
                 metric: str, training: bool, attn: str = "sdpa", heads_option: str = "mean"):
    batch, num_tokens, dim = x.shape
    heads = mha.num_heads
    qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.reshape(batch, num_tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4).unbind(0)
    out = attention(q, k, v, size if prop_attn else None, attn, mha.dropout if training else 0.0)
    out = F.linear(out.transpose(1, 2).reshape(batch, num_tokens, dim), mha.out_proj.weight,
                   mha.out_proj.bias)
    return out, pick_metric(metric, x, q, k, v, heads_option, size if prop_attn else None)


class ToMeEncoderBlockMixin:
    def tome_forward(self, x, size, source, groups, r: int):
        info = self._tome
        x, size, source, groups, r = merge_first(info, x, r, size, source, groups)
        h, metric = _mha_forward(self.self_attention, self.ln_1(x), size, info.prop_attn,
                                 attention_metric(info.metric, info.matching), self.training,
                                 info.attn, info.heads)
        x = x + self.dropout(h)
        if r > 0:  # metric None: the tokens themselves (metric "x")
            x, size, source, groups = merge_step(x, x if metric is None else metric, r, size, source,
                                                 groups, **info.merge_options())
        return x + self.mlp(self.ln_2(x)), size, source, groups


class ToMeEncoderMixin:
    def _tome_run(self, input: torch.Tensor):
        x, state = run_blocks(self.layers, self.dropout(input + self.pos_embedding), self._tome)
        return self.ln(x), state

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x, state = self._tome_run(input)
        record(x, state)
        return x


class ToMeTorchvisionViTMixin(ScheduleProperty):
    def _tome_num_layers(self) -> int:
        return len(self.encoder.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._process_input(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x, state = self.encoder._tome_run(x)
        record(x, state)
        return self.heads(x[:, 0])  # the class token: sizes do not enter the head


def patch_torchvision(model: VisionTransformer, trace_source: bool = False, prop_attn: bool = True,
                      metric: str = "k", mode: str = "wavg",
                      matching: str = "bipartite", distance: str = "cosine",
                      attn: str = "sdpa", heads: str = "mean", partition: str = "alternating",
                      kmeans_iters: int = KMEANS_ITERS) -> VisionTransformer:
    """Patch a torchvision ViT in place; then set ``model.r``. Options are in ``model._tome``;
    read a call's sizes and sources with ``tome.trace()``.

    ``attn``: the attention backend, "sdpa" | "flex" | "eager" (see ``tome.attention``); the
    other options are the paper's ablation options (:class:`tome.ToMeInfo`).
    """
    if not isinstance(model, VisionTransformer):
        raise ValueError(f"tome.patch.torchvision supports torchvision VisionTransformer, got "
                         f"{type(model).__name__}")
    for i, blk in enumerate(model.encoder.layers):
        if getattr(blk, "_tome_original_class", type(blk)) is not EncoderBlock:
            raise ValueError(f"tome.patch.torchvision: layer {i} is {type(blk).__name__}, "
                             f"expected EncoderBlock")
    old = getattr(model, "_tome", None)
    info = ToMeInfo(r=old.r if old else 0, protected=1, prop_attn=prop_attn,
                    trace_source=trace_source, metric=metric, mode=mode, matching=matching,
                    distance=distance, attn=attn, heads=heads, partition=partition,
                    kmeans_iters=kmeans_iters)
    swap_class(model, ToMeTorchvisionViTMixin, _CLASSES)
    swap_class(model.encoder, ToMeEncoderMixin, _CLASSES)
    model._tome = info
    model.encoder._tome = info
    for blk in model.encoder.layers:
        swap_class(blk, ToMeEncoderBlockMixin, _CLASSES)
        blk._tome = info
    return model
