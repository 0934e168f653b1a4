"""AugReg / big_vision JAX ``.npz`` checkpoints: timm's own converter loads them (it renames the
big_vision layout and resizes position embeddings itself), so they bypass the shared loader."""
from __future__ import annotations

from torch import nn

from launch.engine.errors import ConfigError


def load_npz(model: nn.Module, path: str, check_only: bool) -> dict:
    """Load a JAX .npz checkpoint with timm's converter and return a report shaped like
    `launch.engine.state_dict.load_checkpoint`'s (``check_only``: check the model can load it)."""
    if not hasattr(model, "load_pretrained") or not hasattr(model, "blocks"):
        raise ConfigError(f"{path!r} is a JAX .npz checkpoint, which only timm VisionTransformer "
                          f"models can load; got {type(model).__name__}")
    if not check_only:
        model.load_pretrained(path)  # timm converts the big_vision layout and resizes pos embeds
    return {"path": path, "family": "npz", "wrapper": "", "loaded": len(model.state_dict()), "missing": [],
            "unexpected": [], "dropped": [], "resized": {}, "head": "loaded", "head_init": None}
