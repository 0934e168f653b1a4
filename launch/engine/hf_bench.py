"""The benchmark's three models for transformers video and audio classifiers (random weights).

    python launch/bench.py --model hf:videomae_b --r 50 --batch 2 --device cpu
    python launch/bench.py --model hf:ast --r 20 --batch 4 --device cpu

The architectures are the published ones (transformers config defaults, which are the base
models: VideoMAE ViT-B/16 at 16 x 224 x 224, 1568 tokens; AST with stride-10 patches over
1024 x 128, 1214 tokens), built with random weights so nothing is downloaded.
"""
from __future__ import annotations

import copy

import torch

import tome
from tome.schedule import clamp_r, parse_r

from .hf_models import TransformersClassifier

NAMES = ("videomae_b", "videomae_l", "ast")


def _network(name: str):
    import transformers
    if name == "videomae_b":
        return transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(num_labels=400)), "video"
    if name == "videomae_l":
        config = transformers.VideoMAEConfig(num_labels=400, hidden_size=1024, num_hidden_layers=24,
                                             num_attention_heads=16, intermediate_size=4096)
        return transformers.VideoMAEForVideoClassification(config), "video"
    if name == "ast":
        return transformers.ASTForAudioClassification(transformers.ASTConfig(num_labels=527)), "spectrogram"
    raise ValueError(f"--model hf:{name} is unknown; valid: {', '.join('hf:' + n for n in NAMES)}")


def _limit_forward(layer, r: int, protected: int, videomae: bool):
    """The layer with its merge replaced by dropping the last tokens (no matching, no merging)."""
    def forward(x, *args, **kwargs):
        h = layer.layernorm_before(x)
        if videomae:
            x = x + layer.attention(h)
        else:
            x = x + layer.dropout(layer.attention(h)[0])
        x = x[:, : x.shape[1] - clamp_r(r, x.shape[1], protected)]
        if videomae:
            return layer.output(layer.intermediate(layer.layernorm_after(x)), x)
        return x + layer.dropout(layer.mlp(layer.layernorm_after(x)))
    return forward


def build(args, device):
    """(models {unmerged, merged, limit}, merged model, per-layer r); sets ``args.input_shape``
    and ``args.tokens_in`` for the benchmark."""
    name = args.model[len("hf:"):]
    net, layout = _network(name)
    base = TransformersClassifier(net.eval(), layout).to(device)
    videomae = layout == "video"
    config = net.config
    if videomae:
        layers = net.videomae.encoder.layer
        args.input_shape = (3, config.num_frames, config.image_size, config.image_size)
    else:
        layers = net.audio_spectrogram_transformer.layers
        args.input_shape = (1, config.max_length, config.num_mel_bins)
    args.img_size = None
    r = (args.r, args.inflection) if args.inflection is not None else args.r
    rs = parse_r(r, len(layers))
    merged = tome.patch.transformers(copy.deepcopy(base))
    merged.r = r
    protected = merged._tome.protected
    with torch.no_grad(), tome.trace() as t:
        merged(torch.zeros(1, *args.input_shape, device=device))
    args.tokens_in = t.tokens_in
    limit = copy.deepcopy(base)
    limit_layers = limit.net.videomae.encoder.layer if videomae else limit.net.audio_spectrogram_transformer.layers
    for layer, layer_r in zip(limit_layers, rs):
        layer.forward = _limit_forward(layer, layer_r, protected, videomae)
    return {"unmerged": base, "merged": merged, "limit": limit}, merged, rs
