"""Load local image-model checkpoints into timm or torchvision ViTs.

Handles the layouts the ToMe experiments meet: timm state dicts (.pth / .safetensors), AugReg
.npz files (through timm's own converter), DeiT / MAE / ToMe training checkpoints (weights under
"model"), and torchvision SWAG state dicts. Position embeddings are resampled when the patch grid
differs; a classifier with a different class count is left at its fresh initialisation.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Dict

import torch
from torch import nn

from launch.errors import ConfigError

log = logging.getLogger(__name__)

# Wrappers that training scripts put around the weights, in the order we look for them.
WRAPPER_KEYS = ("model", "state_dict", "model_ema", "state_dict_ema")
# Prefixes added by DistributedDataParallel and torch.compile.
STRIP_PREFIXES = ("module.", "_orig_mod.")
# Top-level modules that hold the classifier, for timm (head, head_dist) and torchvision (heads).
HEAD_MODULES = ("head", "head_dist", "heads")
POS_EMBED_KEYS = ("pos_embed", "encoder.pos_embedding")


def _read_file(path: Path, trusted: bool) -> dict:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path), device="cpu")
    try:
        # DeiT/MAE checkpoints also pickle their argparse options; allow that one class.
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=not trusted)
    except Exception as err:  # pickle errors come in many types
        hint = "" if trusted else "; if you trust the file, pass trusted=True"
        raise ConfigError(f"cannot read checkpoint {str(path)!r} ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}){hint}") from None


def extract_state_dict(obj, path: str = "checkpoint") -> Dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint object, without DDP/compile prefixes."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ConfigError(f"{path!r} holds no state dict; expected a dict of tensors, optionally "
                          f"under one of {list(WRAPPER_KEYS)}")
    state = {}
    for key, value in obj.items():
        if not torch.is_tensor(value):
            continue  # e.g. bookkeeping values stored next to the weights
        for prefix in STRIP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    if not state:
        raise ConfigError(f"{path!r} holds no tensors; expected model weights")
    return state


def _layout(keys) -> str:
    keys = list(keys)
    if any(k.startswith("encoder.layers.") or k == "conv_proj.weight" for k in keys):
        return "torchvision"
    if any(k.startswith("blocks.") or k.startswith("patch_embed.") for k in keys):
        return "timm"
    return "unknown"


def _is_head(key: str) -> bool:
    return key.split(".", 1)[0] in HEAD_MODULES


def _pos_embed_prefix(model: nn.Module, model_tokens: int) -> int:
    """How many leading pos-embed rows belong to class/distillation tokens, not patches."""
    if getattr(model, "no_embed_class", False):
        return 0
    if hasattr(model, "num_prefix_tokens"):
        return int(model.num_prefix_tokens)
    if hasattr(model, "class_token"):  # torchvision
        return 1
    grid = math.isqrt(model_tokens)
    return model_tokens - grid * grid


def _resample_pos_embed(model: nn.Module, key: str, ck: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    from timm.layers import resample_abs_pos_embed

    if ck.dim() != 3 or ck.shape[-1] != target.shape[-1]:
        raise ConfigError(f"checkpoint {key} has shape {tuple(ck.shape)} but the model needs "
                          f"{tuple(target.shape)}; only the number of positions may differ")
    prefix = _pos_embed_prefix(model, target.shape[1])
    old_side, new_side = math.isqrt(ck.shape[1] - prefix), math.isqrt(target.shape[1] - prefix)
    if old_side ** 2 != ck.shape[1] - prefix or new_side ** 2 != target.shape[1] - prefix:
        raise ConfigError(f"checkpoint {key} has shape {tuple(ck.shape)} and the model "
                          f"{tuple(target.shape)}; only square patch grids can be resampled")
    out = resample_abs_pos_embed(ck.float(), new_size=[new_side, new_side], old_size=[old_side, old_side],
                                 num_prefix_tokens=prefix, interpolation="bicubic", antialias=True)
    return out.to(target.dtype)


def _load_npz(model: nn.Module, path: Path) -> dict:
    if not hasattr(model, "load_pretrained") or not hasattr(model, "blocks"):
        raise ConfigError(f"{str(path)!r} is a JAX .npz checkpoint, which only timm "
                          f"VisionTransformer models can load; got {type(model).__name__}")
    model.load_pretrained(str(path))  # timm converts the big_vision layout and resizes pos embeds
    return {"path": str(path), "layout": "npz", "loaded": len(model.state_dict()), "missing": [],
            "unexpected": [], "dropped": [], "skipped_head": [], "resampled": {}}


def load_image_checkpoint(model: nn.Module, path, trusted: bool = False,
                          allow_missing: bool = False) -> dict:
    """Load the weights at path into model and return a report of what happened.

    Report keys: path, layout, loaded (tensor count), missing, unexpected, dropped (final-norm
    keys ignored because the model pools through fc_norm), skipped_head ("key: ckpt -> model"
    shapes), resampled ({key: (old_shape, new_shape)}). Missing keys other than the classifier
    and fc_norm raise ConfigError unless allow_missing is set.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; expected a local .pth, "
                          ".safetensors or .npz file (this machine cannot download weights)")
    if path.suffix == ".npz":
        return _load_npz(model, path)
    state = extract_state_dict(_read_file(path, trusted), str(path))
    own = model.state_dict()
    ck_layout, model_layout = _layout(state), _layout(own)
    if ck_layout != "unknown" and model_layout != "unknown" and ck_layout != model_layout:
        raise ConfigError(f"checkpoint {str(path)!r} is in {ck_layout} layout but the model is a "
                          f"{model_layout} model; build the matching architecture")

    report = {"path": str(path), "layout": ck_layout, "missing": [], "unexpected": [],
              "dropped": [], "skipped_head": [], "resampled": {}}
    # MAE fine-tuning pools patch tokens through fc_norm and deletes the final norm; a
    # pre-training checkpoint still carries it, and it must not be mistaken for fc_norm.
    uses_fc_norm = isinstance(getattr(model, "norm", None), nn.Identity) and \
        not isinstance(getattr(model, "fc_norm", nn.Identity()), nn.Identity)
    to_load = {}
    for key, value in state.items():
        if uses_fc_norm and key.split(".", 1)[0] == "norm":
            report["dropped"].append(key)
            continue
        if key in own and value.shape != own[key].shape:
            if key in POS_EMBED_KEYS:
                report["resampled"][key] = (tuple(value.shape), tuple(own[key].shape))
                value = _resample_pos_embed(model, key, value, own[key])
            elif _is_head(key):
                report["skipped_head"].append(f"{key}: {tuple(value.shape)} -> {tuple(own[key].shape)}")
                continue
            else:
                raise ConfigError(f"checkpoint {key} has shape {tuple(value.shape)} but the model "
                                  f"needs {tuple(own[key].shape)}; build the matching architecture")
        to_load[key] = value

    result = model.load_state_dict(to_load, strict=False)
    report["missing"] = list(result.missing_keys)
    report["unexpected"] = list(result.unexpected_keys)
    report["loaded"] = len(own) - len(report["missing"])
    if report["loaded"] == 0:
        raise ConfigError(f"no tensor in {str(path)!r} matches the model's parameter names "
                          f"(checkpoint keys start {sorted(state)[:3]}); wrong checkpoint for this model?")
    serious = [k for k in report["missing"] if not _is_head(k) and not k.startswith("fc_norm.")]
    if serious and not allow_missing:
        raise ConfigError(f"checkpoint {str(path)!r} lacks {len(serious)} model tensors (first: "
                          f"{serious[0]}); pass allow_missing=True to keep them freshly initialised")
    _log_report(report)
    return report


def _log_report(report: dict) -> None:
    log.info("loaded %d tensors from %s (%s layout)", report["loaded"], report["path"], report["layout"])
    for name in ("missing", "unexpected", "dropped", "skipped_head"):
        if report[name]:
            log.warning("checkpoint %s: %s %s", report["path"], name, report[name])
    for key, (old, new) in report["resampled"].items():
        log.info("checkpoint %s: resampled %s %s -> %s", report["path"], key, old, new)

