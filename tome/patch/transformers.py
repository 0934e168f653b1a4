"""ToMe for Hugging Face ``transformers`` ViTs: ViT, DeiT, ViTMAE, VideoMAE and AST (Whisper:
``tome/patch/whisper.py``, reached through the same ``patch_transformers``).

    import tome
    model = transformers.VideoMAEForVideoClassification.from_pretrained(...)
    tome.patch.transformers(model)   # or a module that holds one such model (a wrapper)
    model.r = 16
    logits = model(pixel_values).logits
    tome.unpatch(model)

The contract is the timm patch's: the class token (and DeiT's and AST's distillation token) is
protected; attention adds ``log(size)`` through the fused ``scaled_dot_product_attention``; where
the model mean-pools (VideoMAE with ``use_mean_pooling``) the pool is size-weighted; sizes and
sources flow through the forward pass as values. The modules' own weights and submodules run as
before (layer norms, projections, MLPs, dropout). ``transformers`` is imported only when a model
is patched, so ``import tome`` does not need it.

What each family looks like (transformers 5.x):
  * ViT / DeiT / ViTMAE / AST layers: ``layernorm_before``, ``attention.{q,k,v,o}_proj``,
    ``dropout``, ``layernorm_after``, ``mlp``;
  * VideoMAE layers: ``attention.attention.{query,key,value}``, ``attention.output.dense``,
    ``intermediate``, ``output`` (BERT naming); no class token, so nothing is protected when the
    classifier mean-pools (with ``use_mean_pooling=False`` it reads token 0, which is protected).
  * AST's patches overlap (stride 10 on 16x16) and are ordered frequency-major: token
    ``2 + f * T' + t`` (1212 = 12 x 101 for 1024 frames x 128 mel bins). ``band``/``window``
    restrict merges to frequency bands / time windows on that grid.
  * ViTMAE shuffles its patches (random masking). With ``mask_ratio == 0`` and no ``noise``
    given, the patched model keeps them in patch order, so the bipartite split pairs neighbours
    (the unpatched model's order is random, its result the same up to that permutation).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.utils.checkpoint

from ..attention import attention, attention_metric, pick_metric
from ..matching import KMEANS_ITERS
from ..merge import merge_step
from ..state import ToMeInfo, record
from .common import ScheduleProperty, init_state, merge_first, run_block

_CLASSES: dict = {}
FAMILIES = ("vit", "deit", "vitmae", "videomae", "ast")


def _family_classes() -> dict:
    """Base encoder class of each family (imported lazily: transformers is optional)."""
    from transformers.models.audio_spectrogram_transformer import modeling_audio_spectrogram_transformer as ast
    from transformers.models.deit import modeling_deit as deit
    from transformers.models.videomae import modeling_videomae as videomae
    from transformers.models.vit import modeling_vit as vit
    from transformers.models.vit_mae import modeling_vit_mae as vitmae
    return {"vit": (vit.ViTModel, vit.ViTLayer), "deit": (deit.DeiTModel, deit.DeiTLayer),
            "vitmae": (vitmae.ViTMAEModel, vitmae.ViTMAELayer),
            "videomae": (videomae.VideoMAEModel, videomae.VideoMAELayer),
            "ast": (ast.ASTModel, ast.ASTLayer)}


# ------------------------------------------------------------------ attention and layers

def _heads(linear, x, head_dim: int) -> torch.Tensor:
    batch, tokens, _ = x.shape
    return linear(x).view(batch, tokens, -1, head_dim).transpose(1, 2)


def _self_attention(x, size, info, q_proj, k_proj, v_proj, head_dim, scale, dropout_p):
    q, k, v = (_heads(p, x, head_dim) for p in (q_proj, k_proj, v_proj))
    # the patch's one attention call: log(size) of the keys by the model's backend (info.attn)
    out = attention(q, k, v, size if info.prop_attn else None, info.attn, dropout_p, scale)
    out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    return out, pick_metric(attention_metric(info.metric, info.matching), x, q, k, v, info.heads,
                            size if info.prop_attn else None, scale)


def _merge(info, x, metric, r, size, source, groups):
    if r <= 0:
        return x, size, source, groups
    # metric None: the tokens themselves (metric "x")
    return merge_step(x, x if metric is None else metric, r, size, source, groups,
                      **info.merge_options())


class ToMeViTLayerMixin:
    """ViTLayer, DeiTLayer, ViTMAELayer, ASTLayer: pre-norm block with q/k/v/o projections."""

    def tome_forward(self, x, size, source, groups, r: int):
        info, att = self._tome, self.attention
        dropout_p = att.attention_dropout if self.training else 0.0
        x, size, source, groups, r = merge_first(info, x, r, size, source, groups)
        h, metric = _self_attention(self.layernorm_before(x), size, info, att.q_proj, att.k_proj,
                                    att.v_proj, att.head_dim, att.scaling, dropout_p)
        x = x + self.dropout(att.o_proj(h))
        x, size, source, groups = _merge(info, x, metric, r, size, source, groups)
        x = x + self.dropout(self.mlp(self.layernorm_after(x)))
        return x, size, source, groups


class ToMeVideoMAELayerMixin:
    """VideoMAELayer: the same block with BERT-style module names."""

    def tome_forward(self, x, size, source, groups, r: int):
        info, att = self._tome, self.attention.attention
        dropout_p = att.dropout_prob if self.training else 0.0
        x, size, source, groups, r = merge_first(info, x, r, size, source, groups)
        h, metric = _self_attention(self.layernorm_before(x), size, info, att.query, att.key,
                                    att.value, att.attention_head_size, att.scaling, dropout_p)
        x = x + self.attention.output.dropout(self.attention.output.dense(h))
        x, size, source, groups = _merge(info, x, metric, r, size, source, groups)
        return self.output(self.intermediate(self.layernorm_after(x)), x), size, source, groups


# ------------------------------------------------------------------ the encoder loop

def run_layers(layers, x: torch.Tensor, info: ToMeInfo):
    """Run the patched layers with their per-layer r; returns (x, size). Sizes and sources flow
    as values; the call's results go to any open ``tome.trace()``."""
    state = init_state(x, info)
    for layer, r in zip(layers, info.layer_r(len(layers))):
        checkpointing = getattr(layer, "gradient_checkpointing", False) and layer.training
        x, state = run_block(layer, x, state, r, checkpointing)
    record(x, state)
    return x, state.size


def size_weighted_mean(x: torch.Tensor, size: Optional[torch.Tensor], start: int = 0) -> torch.Tensor:
    """Mean over tokens ``start:`` as if every merged token were still its ``size`` patches."""
    x = x[:, start:]
    if size is None:
        return x.mean(dim=1)
    size = size[:, start:].to(x.dtype)
    return (x * size).sum(dim=1) / size.sum(dim=1)


def _refuse(attention_mask, kwargs) -> None:
    if attention_mask is not None:
        raise ValueError("ToMe-patched models do not take attention masks (tokens change per layer)")
    for name in ("output_attentions", "output_hidden_states"):
        if kwargs.get(name):
            raise ValueError(f"ToMe-patched models do not return per-layer outputs ({name}=True): "
                             f"the token count changes from layer to layer")


class ToMeEncoderMixin:
    """The base model (ViTModel, DeiTModel, ViTMAEModel, VideoMAEModel, ASTModel)."""

    def tome_encode(self, inputs, bool_masked_pos=None, interpolate_pos_encoding=None, noise=None):
        """Embed, run the merging layers, final norm: returns (tokens, sizes, extras)."""
        family, extras = self._tome_family, {}
        if family in ("vit", "deit"):
            inputs = inputs.to(self.embeddings.patch_embeddings.projection.weight.dtype)
            x = self.embeddings(inputs, bool_masked_pos=bool_masked_pos,
                                interpolate_pos_encoding=bool(interpolate_pos_encoding))
        elif family == "vitmae":
            if noise is None and self.config.mask_ratio == 0:
                n = self.embeddings.patch_embeddings.num_patches
                noise = torch.arange(n, device=inputs.device, dtype=torch.float32).expand(inputs.shape[0], -1)
            x, extras["mask"], extras["ids_restore"] = self.embeddings(
                inputs, noise=noise, interpolate_pos_encoding=bool(interpolate_pos_encoding))
        elif family == "videomae":
            x = self.embeddings(inputs, bool_masked_pos)
        else:  # ast
            x = self.embeddings(inputs)
        layers = self.encoder.layer if family == "videomae" else self.layers
        x, size = run_layers(layers, x, self._tome)
        if getattr(self, "layernorm", None) is not None:
            x = self.layernorm(x)
        return x, size, extras

    def forward(self, *args, attention_mask=None, **kwargs):
        from transformers import modeling_outputs as outs
        _refuse(attention_mask, kwargs)
        family = self._tome_family
        names = {"vit": ("pixel_values", "bool_masked_pos", "interpolate_pos_encoding"),
                 "deit": ("pixel_values", "bool_masked_pos", "interpolate_pos_encoding"),
                 "vitmae": ("pixel_values", "noise", "interpolate_pos_encoding"),
                 "videomae": ("pixel_values", "bool_masked_pos"), "ast": ("input_values",)}[family]
        values = dict(zip(names, args))
        values.update({k: kwargs[k] for k in names if k in kwargs})
        inputs = values.pop(names[0])
        x, size, extras = self.tome_encode(inputs, **values)
        if family == "vitmae":
            from transformers.models.vit_mae.modeling_vit_mae import ViTMAEModelOutput
            return ViTMAEModelOutput(last_hidden_state=x, **extras)
        if family == "videomae":
            return outs.BaseModelOutput(last_hidden_state=x)
        if family == "ast":
            return outs.BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=(x[:, 0] + x[:, 1]) / 2)
        pooled = self.pooler(x) if self.pooler is not None else None
        return outs.BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled)


class ToMeVideoMAEClassifierMixin:
    """VideoMAEForVideoClassification: its mean pool becomes size-weighted."""

    def forward(self, pixel_values=None, labels=None, **kwargs):
        from transformers.modeling_outputs import ImageClassifierOutput
        _refuse(kwargs.pop("attention_mask", None), kwargs)
        x, size, _ = self.videomae.tome_encode(pixel_values, kwargs.get("bool_masked_pos"))
        if self.fc_norm is not None:
            pooled = self.fc_norm(size_weighted_mean(x, size))
        else:
            pooled = x[:, 0]
        logits = self.classifier(pooled)
        loss = self.loss_function(labels, logits, self.config) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


class ToMeRootMixin(ScheduleProperty):
    """The module handed to the patch: ``model.r`` and what the engine asks of a patched model."""

    def _tome_num_layers(self) -> int:
        return len(_layers(_find(self)[1]))

    def _tome_dims(self):
        """(width, MLP hidden size, heads, patch projection, classifier) for the FLOP count."""
        family, base = _find(self)
        layer = _layers(base)[0]
        fc1 = layer.intermediate.dense if family == "videomae" else layer.mlp.fc1
        head = None
        for module in self.modules():
            if any(sub is base for sub in module.children()) and hasattr(module, "classifier"):
                head = module.classifier
                head = getattr(head, "dense", head)  # AST's classifier is LayerNorm + dense
        return (base.config.hidden_size, fc1.out_features, base.config.num_attention_heads,
                base.embeddings.patch_embeddings.projection,
                head if isinstance(head, torch.nn.Linear) else None)


# ------------------------------------------------------------------ patching

def _find(model, classes: Optional[dict] = None):
    """(family, base encoder) of the first supported transformers encoder inside ``model``."""
    classes = classes or _family_classes()
    for module in model.modules():
        base_cls = getattr(module, "_tome_original_class", type(module))
        for family, (cls, _) in classes.items():
            if issubclass(base_cls, cls):
                return family, module
    return None, None


def _layers(base):
    return base.encoder.layer if base._tome_family == "videomae" else base.layers


def _swap(module, mixins: tuple, attrs: dict) -> None:
    """Give ``module`` a subclass of its own class with ``mixins`` (and class attributes
    ``attrs``); :func:`tome.unpatch` restores the original class."""
    original = getattr(module, "_tome_original_class", type(module))
    key = (mixins, original, tuple(sorted(attrs.items())))
    if key not in _CLASSES:
        _CLASSES[key] = type(f"ToMe{original.__name__}", (*mixins, original), dict(attrs))
    module.__class__ = _CLASSES[key]
    module._tome_original_class = original


def _protected(family: str, base) -> int:
    if family in ("deit", "ast"):
        return 2  # class and distillation tokens
    if family == "videomae":
        # No class token: the classifier mean-pools every token (nothing to protect) or reads token 0.
        return 0 if base.config.use_mean_pooling else 1
    return 1


def ast_grid(base) -> tuple:
    """AST's (time, freq) patch grid: (101, 12) for 1024 frames, 128 mel bins, stride 10."""
    freq, time = base.embeddings.get_shape(base.config)
    return time, freq


def patch_transformers(model: torch.nn.Module, trace_source: bool = False, prop_attn: bool = True,
                       metric: str = "k", mode: str = "wavg", matching: str = "bipartite",
                       distance: str = "cosine", attn: str = "sdpa", band: Optional[int] = None,
                       window: Optional[int] = None, heads: str = "mean",
                       partition: str = "alternating",
                       kmeans_iters: int = KMEANS_ITERS) -> torch.nn.Module:
    """Patch a transformers ViT / DeiT / ViTMAE / VideoMAE / AST model (or a module holding one)
    in place; then set ``model.r``. ``band``/``window`` (AST only) keep merges inside frequency
    bands / time windows of that many patches; the other options are those of
    :class:`tome.ToMeInfo`. Returns the model. Whisper models go to :func:`tome.patch.whisper`
    (``window`` in encoder tokens; no ``band``; heads, partition, kmeans_iters at their defaults)."""
    from .whisper import find_encoder, patch_whisper
    if find_encoder(model) is not None:
        if band is not None:
            raise ValueError(f"band={band!r}: Whisper's encoder tokens are frames over all mel bins; "
                             f"only window= restricts its merges")
        for name, value, default in (("heads", heads, "mean"), ("partition", partition, "alternating"),
                                     ("kmeans_iters", kmeans_iters, KMEANS_ITERS)):
            if value != default:
                raise ValueError(f"{name}={value!r}: the Whisper patch merges with the paper's "
                                 f"{name}={default!r} only")
        return patch_whisper(model, trace_source=trace_source, prop_attn=prop_attn, metric=metric,
                             mode=mode, matching=matching, distance=distance, attn=attn,
                             window=window)
    classes = _family_classes()
    family, base = _find(model, classes)
    if base is None:
        names = ", ".join(cls.__name__ for cls, _ in classes.values())
        raise ValueError(f"tome.patch.transformers supports models built on {names}; "
                         f"{type(model).__name__} holds none of them")
    layer_cls = classes[family][1]
    layers = base.encoder.layer if family == "videomae" else base.layers
    for i, layer in enumerate(layers):
        if not isinstance(layer, layer_cls):
            raise ValueError(f"tome.patch.transformers: layer {i} is {type(layer).__name__}, "
                             f"expected {layer_cls.__name__}")
    groups = None
    if band is not None or window is not None:
        if family != "ast":
            raise ValueError(f"band/window need a spectrogram model (AST); this model is {family}")
        from .spectrogram import band_labels
        groups = band_labels(ast_grid(base), 2, band, window, freq_major=True)
    old = getattr(model, "_tome", None)
    info = ToMeInfo(r=old.r if old else 0, protected=_protected(family, base), prop_attn=prop_attn,
                    trace_source=trace_source, metric=metric, mode=mode, matching=matching,
                    distance=distance, attn=attn, groups=groups, heads=heads, partition=partition,
                    kmeans_iters=kmeans_iters)
    # The VideoMAE classifier pools: it gets its own forward (size-weighted mean).
    head = next((m for m in model.modules() if getattr(m, "videomae", None) is base
                 and hasattr(m, "fc_norm")), None)
    mixins = {id(base): [ToMeEncoderMixin]}
    if head is not None:
        mixins.setdefault(id(head), []).append(ToMeVideoMAEClassifierMixin)
    mixins.setdefault(id(model), []).insert(0, ToMeRootMixin)
    for module in {id(m): m for m in (base, head, model) if m is not None}.values():
        _swap(module, tuple(mixins[id(module)]), {"_tome_family": family})
        module._tome = info
    layer_mixin = ToMeVideoMAELayerMixin if family == "videomae" else ToMeViTLayerMixin
    for layer in layers:
        _swap(layer, (layer_mixin,), {})
        layer._tome = info
    return model
