"""Published ``transformers`` classifiers (VideoMAE, AST, ViT, ...) as engine models.

Design: the engine runs the publisher's own implementation. A hub snapshot (``config.json`` plus
weights) is loaded with the ``transformers`` class its config names, and wrapped in a small
module that takes the engine's input layout and returns logits; ``tome.patch.transformers``
patches it. No weights are converted, so r=0 logits are the publisher's by construction
(``tests/launch/engine/test_hf_models.py`` checks the wrapper against the bare ``transformers`` model).

Sources: ``hf-hub:<org>/<name>`` (fetched into the Hugging Face cache) or a local directory
holding ``config.json``.
"""
from __future__ import annotations

import os

import torch

from .errors import ConfigError

HUB = "hf-hub:"
LAYOUTS = ("image", "video", "spectrogram")


def fetch(source: str) -> str:
    """A local directory for ``source``: a hub repository's snapshot, or the directory itself.

    Downloads go through ``launch.engine.weights`` (one cache, one process per node, offline afterwards).
    """
    if source.startswith(HUB):
        from launch.engine.weights import fetch as fetch_weights
        return fetch_weights(source)
    return source


def is_transformers_source(source) -> bool:
    """A hub repository, or a directory with a transformers ``config.json``."""
    if not isinstance(source, str) or not source:
        return False
    return source.startswith(HUB) or os.path.isfile(os.path.join(source, "config.json"))


class TransformersClassifier(torch.nn.Module):
    """Engine input in, logits out: video (B, C, T, H, W) -> VideoMAE's (B, T, C, H, W);
    spectrogram (B, 1, frames, mel) -> AST's (B, frames, mel); images as they are."""

    def __init__(self, net: torch.nn.Module, layout: str):
        super().__init__()
        if layout not in LAYOUTS:
            raise ConfigError(f"input layout {layout!r}; valid: {', '.join(LAYOUTS)}")
        self.net, self.layout = net, layout

    @property
    def num_classes(self) -> int:
        return self.net.config.num_labels

    def no_weight_decay(self) -> set:
        """Optimizer hook (launch/engine/optim.py): the class token trains without weight decay.

        No ``group_matcher``: every parameter sits in the top layer group (lr scale 1, no
        layer-wise decay), and position embeddings and AST's distillation token keep weight decay.
        These are the groups the engine has always given these models; the configs only evaluate
        them (``train.epochs: 0``), so fine-tuning one with layer decay needs a block map first.
        """
        return {name for name, _ in self.named_parameters() if name.rsplit(".", 1)[-1] == "cls_token"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "video":
            x = x.transpose(1, 2)
        elif self.layout == "spectrogram":
            x = x[:, 0]
        return self.net(x).logits


def load_classifier(source: str, layout: str, num_classes: int) -> TransformersClassifier:
    """Load a published transformers classifier; its label count must be ``num_classes``."""
    try:
        import transformers
    except ImportError:
        raise ConfigError(f"model.checkpoint {source!r} is a transformers model; "
                          "pip install transformers (pinned in requirements.txt)") from None
    path = fetch(source)
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ConfigError(f"model.checkpoint {source!r}: no config.json in {path}; expected a "
                          "transformers model directory or hf-hub:<org>/<name>")
    config = transformers.AutoConfig.from_pretrained(path)
    names = getattr(config, "architectures", None) or []
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise ConfigError(f"model.checkpoint {source!r}: config.json names architectures {names}, "
                          "none of them a transformers class")
    if config.num_labels != num_classes:
        raise ConfigError(f"model.checkpoint {source!r} has {config.num_labels} classes but "
                          f"model.num_classes={num_classes}")
    net = cls.from_pretrained(path, attn_implementation="sdpa")
    return TransformersClassifier(net.float().eval(), layout)
