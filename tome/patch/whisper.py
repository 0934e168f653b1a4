"""ToMe for Hugging Face ``transformers`` Whisper: merging in the encoder, proportional
cross-attention in the decoder.

    import tome
    model = transformers.WhisperForConditionalGeneration(...)   # or a WhisperModel / WhisperEncoder
    tome.patch.whisper(model)        # tome.patch.transformers(model) does the same
    model.r = 100                    # per encoder layer, or a schedule
    ids = model.generate(input_features)
    tome.unpatch(model)

Whisper's encoder turns 3000 log-mel frames into 1500 time-ordered tokens (two convolutions, the
second with stride 2), adds sinusoidal positions once, and runs pre-norm layers. The patch merges
``r`` tokens after each layer's self-attention, as in every other patch, with these differences:

* no class token: nothing is protected;
* tokens stay in time order (``time_order=True``): after a merge the tokens keep their order in
  the sequence and a merged pair sits where its B token was, so the next layer's alternating A/B
  split keeps pairing neighbours in time. The published layout (unmerged A first, then B) is
  ``time_order=False``;
* ``window=w`` keeps merges inside windows of ``w`` encoder tokens (20 ms each);
* the encoder returns its tokens with their sizes (``output.token_sizes``, [B, T, 1]), and every
  decoder layer's cross-attention adds ``log(size)`` of the encoder tokens to its logits
  (``prop_cross=True``): each merged token gets the attention its inputs had together. The sizes
  ride on the encoder output object, so ``generate`` (which encodes once and expands the output
  for beams) carries them; an encoder output tensor handed straight to the decoder finds its sizes
  too, as long as the tensor object is alive. A merged encoder output without sizes is an error,
  never a silent fall-back to plain attention.

Sizes are per sample: in a batch every clip merges its own pairs (the same count ``r``).
"""
from __future__ import annotations

import contextvars
from typing import Optional

import torch
import torch.nn.functional as F
from torch.utils.weak import WeakTensorKeyDictionary

from ..attention import size_bias
from ..matching import match
from ..merge import Matching, merge_groups, merge_source, merge_tokens
from ..state import ToMeInfo
from ..threads import calling_thread
from .common import ScheduleProperty
from .transformers import _refuse, _self_attention, _swap, run_layers

# Sizes of the encoder output that the decoder running in this thread / task cross-attends to.
_CROSS_SIZES: contextvars.ContextVar = contextvars.ContextVar("tome_whisper_cross_sizes", default=None)
# Encoder output tensor -> its sizes, for callers that hand the tensor to the decoder themselves.
_ENCODED = WeakTensorKeyDictionary()
_OUTPUT_CLASS: list = []


def _whisper():
    from transformers.models.whisper import modeling_whisper
    return modeling_whisper


def encoder_output_class():
    """``BaseModelOutput`` with ``token_sizes`` (a ModelOutput: generate expands every tensor in it)."""
    if not _OUTPUT_CLASS:
        from dataclasses import dataclass

        from transformers.modeling_outputs import BaseModelOutput

        @dataclass
        class ToMeWhisperEncoderOutput(BaseModelOutput):
            token_sizes: Optional[torch.FloatTensor] = None

        _OUTPUT_CLASS.append(ToMeWhisperEncoderOutput)
    return _OUTPUT_CLASS[0]


# ------------------------------------------------------------------ merging in time order

def time_ordered(m: Matching) -> Matching:
    """The same merges with the output tokens sorted by their input position: ``keep`` sorted and
    ``dst`` renumbered to the sorted output."""
    order = m.keep.argsort(dim=1)
    where = order.argsort(dim=1)  # old output position -> new one
    return Matching(m.keep.gather(1, order), m.src, where.gather(1, m.dst))


def merge_whisper(info: ToMeInfo, time_order: bool, x, metric, r: int, size, source, groups):
    """One layer's merge (nothing protected), optionally keeping time order."""
    if r <= 0:
        return x, size, source, groups
    with calling_thread(x):
        m = match(metric, r, 0, info.matching, groups, info.distance)
        if m is None:
            return x, size, source, groups
        if time_order:
            m = time_ordered(m)
        x, size = merge_tokens(m, x, size, info.mode)
        if source is not None:
            source = merge_source(m, source, info.mode)
        if groups is not None:
            groups = merge_groups(m, groups)
    return x, size, source, groups


class ToMeWhisperEncoderLayerMixin:
    """WhisperEncoderLayer: pre-norm self-attention (with log(size)), merge, pre-norm MLP."""

    def tome_forward(self, x, size, source, groups, r: int):
        info, att = self._tome, self.self_attn
        dropout_p = att.dropout if self.training else 0.0
        h, metric = _self_attention(self.self_attn_layer_norm(x), size, info, att.q_proj, att.k_proj,
                                    att.v_proj, att.head_dim, att.scaling, dropout_p)
        x = x + F.dropout(att.out_proj(h), p=self.dropout, training=self.training)
        x, size, source, groups = merge_whisper(info, self._tome_time_order, x, metric, r, size,
                                                source, groups)
        h = self.activation_fn(self.fc1(self.final_layer_norm(x)))
        h = F.dropout(h, p=self.activation_dropout, training=self.training)
        x = x + F.dropout(self.fc2(h), p=self.dropout, training=self.training)
        if x.dtype == torch.float16:  # as the unpatched layer: keep fp16 activations finite
            limit = torch.finfo(x.dtype).max - 1000
            x = x.clamp(min=-limit, max=limit)
        return x, size, source, groups


class ToMeWhisperEncoderMixin:
    """WhisperEncoder: convolutions and positions as before, then the merging layers."""

    def forward(self, input_features, attention_mask=None, **kwargs):
        _refuse(None, kwargs)
        if self.training and self.layerdrop > 0:
            raise ValueError(f"ToMe-patched Whisper has no encoder layerdrop in training "
                             f"(encoder_layerdrop={self.layerdrop}); set it to 0")
        frames = self.config.max_source_positions * self.conv1.stride[0] * self.conv2.stride[0]
        if input_features.shape[-1] != frames:
            raise ValueError(f"Whisper expects {frames} mel frames, got {input_features.shape[-1]}")
        x = F.gelu(self.conv1(input_features))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        x = x + self.embed_positions.weight[: x.shape[1]]
        x = F.dropout(x, p=self.dropout, training=self.training)
        x, size = run_layers(self.layers, x, self._tome)
        x = self.layer_norm(x)
        if size is not None and not torch.compiler.is_compiling():
            _ENCODED[x] = size
        return encoder_output_class()(last_hidden_state=x, token_sizes=size)


def encoder_sizes(encoder_outputs) -> Optional[torch.Tensor]:
    """The token sizes of an encoder output (a ToMe output, a ModelOutput or a tuple), or None."""
    if encoder_outputs is None:
        return None
    size = getattr(encoder_outputs, "token_sizes", None)
    if size is not None:
        return size
    hidden = encoder_outputs[0] if isinstance(encoder_outputs, (tuple, list)) else \
        getattr(encoder_outputs, "last_hidden_state", None)
    return _ENCODED.get(hidden) if isinstance(hidden, torch.Tensor) else None


class ToMeWhisperModelMixin:
    """WhisperModel: hands the encoder output's sizes to the decoder's cross-attention."""

    def forward(self, input_features=None, attention_mask=None, decoder_input_ids=None,
                encoder_outputs=None, **kwargs):
        if encoder_outputs is None:
            features = self._mask_input_features(input_features, attention_mask=attention_mask)
            encoder_outputs = self.encoder(features)
        token = _CROSS_SIZES.set(encoder_sizes(encoder_outputs))
        try:
            return super().forward(input_features=input_features, attention_mask=attention_mask,
                                   decoder_input_ids=decoder_input_ids,
                                   encoder_outputs=encoder_outputs, **kwargs)
        finally:
            _CROSS_SIZES.reset(token)


class ToMeWhisperDecoderLayerMixin:
    """WhisperDecoderLayer: the cross-attention gets ``log(size)`` of the encoder tokens."""

    def forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, *args, **kwargs):
        if encoder_hidden_states is not None and encoder_attention_mask is None:
            encoder_attention_mask = self._tome_cross_bias(encoder_hidden_states, hidden_states.dtype)
        return super().forward(hidden_states, attention_mask, encoder_hidden_states,
                               encoder_attention_mask, *args, **kwargs)

    def _tome_cross_bias(self, encoder_hidden_states, dtype):
        size = _CROSS_SIZES.get()
        if size is None and not torch.compiler.is_compiling():
            size = _ENCODED.get(encoder_hidden_states)
        batch, tokens = encoder_hidden_states.shape[:2]
        if size is None:
            if tokens != self._tome_full_tokens:
                raise ValueError(f"the decoder got {tokens} encoder tokens (merged; the unmerged "
                                 f"encoder gives {self._tome_full_tokens}) but not their sizes: pass "
                                 f"the patched encoder's output object (encoder_outputs=...), which "
                                 f"carries token_sizes")
            return None
        if tuple(size.shape[:2]) != (batch, tokens):
            raise ValueError(f"encoder token sizes {tuple(size.shape)} do not match the encoder "
                             f"output {tuple(encoder_hidden_states.shape)}")
        return size_bias(size, dtype) if self._tome_prop_cross else None


class ToMeWhisperRootMixin(ScheduleProperty):
    """The module handed to the patch: ``model.r`` (per encoder layer)."""

    def _tome_num_layers(self) -> int:
        return len(find_encoder(self).layers)


# ------------------------------------------------------------------ patching

def find_encoder(model: torch.nn.Module):
    """The first WhisperEncoder inside ``model`` (patched or not), or None."""
    try:
        cls = _whisper().WhisperEncoder
    except ImportError:
        return None
    for module in model.modules():
        if issubclass(getattr(module, "_tome_original_class", type(module)), cls):
            return module
    return None


def window_labels(num_tokens: int, window: int) -> torch.Tensor:
    """[T] labels ``t // window``: tokens merge only within a window of ``window`` tokens."""
    if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= num_tokens:
        raise ValueError(f"window must be an integer in [2, {num_tokens}] encoder tokens "
                         f"(a window needs an even and an odd token), got {window!r}")
    return torch.arange(num_tokens) // window


def patch_whisper(model: torch.nn.Module, trace_source: bool = False, prop_attn: bool = True,
                  metric: str = "k", mode: str = "wavg", matching: str = "bipartite",
                  distance: str = "cosine", attn: str = "sdpa", window: Optional[int] = None,
                  prop_cross: bool = True, time_order: bool = True) -> torch.nn.Module:
    """Patch a transformers Whisper model (WhisperForConditionalGeneration, WhisperModel, a bare
    WhisperEncoder, or a module holding one) in place; then set ``model.r``. ``prop_attn``: the
    encoder's self-attention adds log(size); ``prop_cross``: so does the decoder's
    cross-attention. Returns the model."""
    encoder = find_encoder(model)
    if encoder is None:
        raise ValueError(f"tome.patch.whisper needs a transformers Whisper model; "
                         f"{type(model).__name__} holds no WhisperEncoder")
    for name, value in (("prop_cross", prop_cross), ("time_order", time_order)):
        if not isinstance(value, bool):
            raise ValueError(f"tome.patch.whisper: {name} must be True or False, got {value!r}")
    w = _whisper()
    for i, layer in enumerate(encoder.layers):
        if not isinstance(layer, w.WhisperEncoderLayer):
            raise ValueError(f"tome.patch.whisper: encoder layer {i} is {type(layer).__name__}, "
                             f"expected WhisperEncoderLayer")
    tokens = encoder.config.max_source_positions
    groups = window_labels(tokens, window) if window is not None else None
    old = getattr(model, "_tome", None)
    info = ToMeInfo(r=old.r if old else 0, protected=0, prop_attn=prop_attn,
                    trace_source=trace_source, metric=metric, mode=mode, matching=matching,
                    distance=distance, attn=attn, groups=groups)
    # The WhisperModel that owns this encoder feeds the decoder (absent for a bare encoder).
    owner = next((m for m in model.modules() if getattr(m, "encoder", None) is encoder
                  and hasattr(m, "decoder")), None)
    mixins = {id(encoder): [ToMeWhisperEncoderMixin]}
    if owner is not None:
        mixins.setdefault(id(owner), []).append(ToMeWhisperModelMixin)
    mixins.setdefault(id(model), []).insert(0, ToMeWhisperRootMixin)
    for module in {id(m): m for m in (encoder, owner, model) if m is not None}.values():
        _swap(module, tuple(mixins[id(module)]), {})
        module._tome = info
    for layer in encoder.layers:
        _swap(layer, (ToMeWhisperEncoderLayerMixin,), {"_tome_time_order": time_order})
        layer._tome = info
    if owner is not None:
        for layer in owner.decoder.layers:
            _swap(layer, (ToMeWhisperDecoderLayerMixin,),
                  {"_tome_prop_cross": prop_cross, "_tome_full_tokens": tokens})
    return model
