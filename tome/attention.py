"""Proportional attention: ``softmax(q k^T / sqrt(d) + log s)`` where ``s`` is each key's size.

A key that stands for ``s`` merged tokens then gets the attention weight those ``s`` tokens would
have had together. Three backends compute it (``attention(..., backend=...)``):

- ``"sdpa"``: the fused ``scaled_dot_product_attention`` with ``log s`` as an additive float mask
  (built once per layer, ``[B, 1, 1, T]``). A float mask keeps SDPA off its flash kernel on a GPU.
- ``"flex"``: ``torch.nn.attention.flex_attention`` with a ``score_mod`` that adds ``log s`` of the
  key to each logit inside the kernel; nothing is materialised. The log sizes are fp32 whatever
  the activations' dtype (flex scores are fp32). Flex attention is only fused when compiled: inside
  ``torch.compile(model)`` the call is traced into the model's graph; called outside a compiled
  region it goes through one module-level ``torch.compile(flex_attention)``, created on first use
  (on the CPU with ``dynamic=False``: inductor's CPU flex kernel fails to build with a symbolic
  sequence length in torch 2.9, so each token count compiles once). On the CPU, inductor's flex
  kernel is inference-only in torch 2.9: a CPU call that needs gradients runs flex's unfused
  implementation, and training inside ``torch.compile`` on the CPU fails in inductor.
  ``COMPILE_FLEX = False`` makes calls outside torch.compile use the unfused implementation.
  Flex has no attention dropout: a training call with ``dropout_p > 0`` is an error.
- ``"eager"``: the explicit ``softmax(q k^T * scale + log s) v``, the reference.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

METRICS = ("x_pre", "x", "q", "k", "v")
HEADS = ("mean", "concat")
BACKENDS = ("sdpa", "flex", "eager")
# Metrics that are the block's token features rather than a projection inside attention: the
# patched blocks supply them (tome/patch/common.py), pick_metric returns None for them.
TOKEN_METRICS = ("x_pre", "x")
CLASS_ATTENTION = "class_attention"  # what attn_prune ranks by (see attention_metric)


def size_bias(size: Optional[torch.Tensor], dtype: torch.dtype) -> Optional[torch.Tensor]:
    """[B, T, 1] sizes -> [B, 1, 1, T] additive attention bias (None when nothing merged yet).

    The log is taken in fp32 (sizes are fp32 counts), then cast to the attention dtype."""
    if size is None:
        return None
    return size.float().log().to(dtype).reshape(size.shape[0], 1, 1, -1)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: Optional[torch.Tensor],
           dropout_p: float = 0.0, fused: bool = True, scale: Optional[float] = None) -> torch.Tensor:
    """Multi-head attention on [B, H, T, D] tensors with an optional additive bias."""
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p,
                                              scale=scale)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    attn = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    attn = attn.softmax(dim=-1)
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


# Calls outside torch.compile use a compiled flex_attention (the fused kernel). False runs flex's
# unfused reference implementation instead: the same score_mod, no compilation (CPU tests, debugging).
COMPILE_FLEX = True
_COMPILED_FLEX: dict = {}


@torch.library.custom_op("tome::log_size", mutates_args=())
def _log_size_op(size: torch.Tensor) -> torch.Tensor:
    """[B, T] fp32 log sizes as an opaque op: its output is always a realised buffer. Inductor's
    CPU flex kernel (torch 2.9) fails to build when the score_mod captures a fused pointwise result
    ("NoValidChoicesError"), so on the CPU the log is computed by this op."""
    return size.log()


@_log_size_op.register_fake
def _(size):
    return torch.empty_like(size)


def _flex_function(q: torch.Tensor):
    """Which flex_attention runs this call (see the module docstring)."""
    from torch.nn.attention.flex_attention import flex_attention
    if torch.compiler.is_compiling():
        return flex_attention  # traced into the caller's graph
    device = q.device.type
    if not COMPILE_FLEX or (device == "cpu" and torch.is_grad_enabled() and q.requires_grad):
        return flex_attention  # unfused; inductor's CPU flex kernel is inference-only (torch 2.9)
    fn = _COMPILED_FLEX.get(device)
    if fn is None:
        fn = torch.compile(flex_attention, dynamic=False if device == "cpu" else None)
        _COMPILED_FLEX[device] = fn
    return fn


def _flex(q, k, v, size, scale):
    if size is None:
        score_mod = None
    else:
        size = size.reshape(size.shape[0], -1).to(torch.float32)
        log_size = _log_size_op(size) if q.device.type == "cpu" else size.log()  # [B, T] fp32

        def score_mod(score, b, h, q_idx, kv_idx):
            return score + log_size[b, kv_idx]
    if q.device.type == "cpu":
        # Inductor's CPU kernel refuses q, k, v that are views of one buffer (the qkv projection).
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    fn = _flex_function(q)
    if torch.compiler.is_compiling():
        return fn(q, k, v, score_mod=score_mod, scale=scale)
    # Outside a compiled model every layer's token count is a new shape of the shared compiled
    # function: allow one entry per count (a ViT has at most a few dozen) instead of dynamo's 8.
    with torch._dynamo.config.patch(recompile_limit=256):
        return fn(q, k, v, score_mod=score_mod, scale=scale)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, size: Optional[torch.Tensor] = None,
              backend: str = "sdpa", dropout_p: float = 0.0,
              scale: Optional[float] = None) -> torch.Tensor:
    """Attention on [B, H, T, D] with ``log(size)`` of each key added to its logits.

    ``size``: [B, T, 1] or [B, T] token sizes (None: plain attention). ``backend``: one of
    BACKENDS (see the module docstring). ``scale``: logit scale, default ``D ** -0.5``.
    """
    if backend == "sdpa":
        return attend(q, k, v, size_bias(size, q.dtype), dropout_p, fused=True, scale=scale)
    if backend == "eager":
        return attend(q, k, v, size_bias(size, q.dtype), dropout_p, fused=False, scale=scale)
    if backend == "flex":
        if dropout_p > 0.0:
            raise ValueError(f"ToMe attn='flex' has no attention dropout, got dropout p={dropout_p} "
                             f"in training; use attn='sdpa' or 'eager', or set attention dropout to 0")
        return _flex(q, k, v, size, scale)
    raise ValueError(f"ToMe attn must be one of {BACKENDS}, got {backend!r}")


def attention_metric(metric: str, matching: str) -> str:
    """What the attention of a patched block hands to the matching: ``metric``, or the class
    token's attention when the matching is attention-based pruning."""
    return CLASS_ATTENTION if matching == "attn_prune" else metric


def class_attention(q: torch.Tensor, k: torch.Tensor, size: Optional[torch.Tensor] = None,
                    scale: Optional[float] = None) -> torch.Tensor:
    """[B, T, 1]: how much the class token (position 0) attends to each token, averaged over heads:
    ``softmax(q_0 k^T * scale + log s)`` of q, k [B, H, T, D] (``size`` None: no size bias)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    logits = (q[:, :, :1].float() * scale) @ k.float().transpose(-2, -1)  # [B, H, 1, T]
    bias = size_bias(size, torch.float32)
    if bias is not None:
        logits = logits + bias
    return logits.softmax(dim=-1).mean(dim=1).transpose(1, 2)


def _heads(t: torch.Tensor, heads: str) -> torch.Tensor:
    """[B, H, T, D] per-head features -> [B, T, D] (mean) or [B, T, H * D] (concat, head by head)."""
    if heads == "mean":
        return t.mean(1)
    if heads == "concat":
        return t.transpose(1, 2).flatten(2)
    raise ValueError(f"heads must be one of {HEADS}, got {heads!r}")


def pick_metric(name: str, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                v: torch.Tensor, heads: str = "mean", size: Optional[torch.Tensor] = None,
                scale: Optional[float] = None) -> Optional[torch.Tensor]:
    """The feature the matching compares, from inside attention: q, k or v, averaged over heads
    (``heads="mean"``, the paper's) or concatenated (``"concat"``, Table 1c); the class token's
    attention for ``CLASS_ATTENTION`` (``size``: the sizes the layer's attention used, ``scale``
    its logit scale). None for the token metrics ``x_pre`` and ``x``: the block supplies those."""
    if name == "k":
        return _heads(k, heads)
    if name in TOKEN_METRICS:
        return None
    if name == "q":
        return _heads(q, heads)
    if name == "v":
        return _heads(v, heads)
    if name == CLASS_ATTENTION:
        return class_attention(q, k, size, scale)
    raise ValueError(f"metric must be one of {METRICS}, got {name!r}")
