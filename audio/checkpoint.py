"""Loading published Audio-MAE checkpoints into the timm-based AudioViT.

Audio-MAE (facebookresearch/AudioMAE) saves ``{"model": state_dict, ...}`` (plus optimizer,
epoch, scaler and an ``argparse.Namespace`` of args in training snapshots):

* pre-trained (``models_mae.MaskedAutoencoderViT``): encoder ``patch_embed.proj.*``,
  ``cls_token``, ``pos_embed`` (fixed sin-cos), ``blocks.N.*``, the encoder's final ``norm.*``,
  and the decoder: ``mask_token``, ``decoder_embed.*``, ``decoder_pos_embed``,
  ``decoder_blocks.N.*``, ``decoder_norm.*``, ``decoder_pred.*``. No head, no ``fc_norm``.
* fine-tuned (``models_vit.VisionTransformer`` with ``global_pool=True``): the same encoder keys,
  ``fc_norm.*`` and ``head.*`` (527 classes); ``norm`` is deleted from that model.

Block keys (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``) are the
same in timm 0.3.2 (used by Audio-MAE) and current timm, so they load one to one. Decoder keys
are dropped. A pre-trained ``norm.*`` is not used by an average-pooling model (Audio-MAE's own
fine-tuning also drops it and starts ``fc_norm`` fresh). A head of another shape is skipped and
reported; any other unexpected, missing or mis-shaped key is a ConfigError. A position table for
another grid is regenerated exactly when it is Audio-MAE's sin-cos table, else interpolated.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import torch
from torch import nn
from timm.layers import resample_abs_pos_embed

from launch.errors import ConfigError

from .pos_embed import sincos_pos_embed

_DECODER_PREFIXES = ("decoder_", "mask_token")
_MAY_BE_MISSING = ("head.", "fc_norm.")


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        # Training snapshots pickle their argparse args; that one plain class is safe to allow.
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"checkpoint {str(path)!r} holds objects other than tensors and plain "
                          f"containers ({first}); re-save just its state dict") from None
    except (RuntimeError, OSError, EOFError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ConfigError(f"checkpoint {str(path)!r} could not be read ({type(err).__name__}: {first}); "
                          "expected a torch.save file") from None
    state = raw
    if isinstance(raw, dict):
        for wrapper in ("model", "state_dict", "module"):
            if isinstance(raw.get(wrapper), dict):
                state = raw[wrapper]
                break
    if not isinstance(state, dict) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ConfigError(f"checkpoint {str(path)!r} has no state dict of tensors under 'model' "
                          "(Audio-MAE layout) or at the top level")
    # DistributedDataParallel snapshots prefix every key.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _pos_embed(model: nn.Module, table: torch.Tensor, report: dict) -> torch.Tensor:
    want = model.pos_embed.shape
    if table.shape == want:
        report["pos_embed"] = "loaded"
        return table
    grid = tuple(model.patch_embed.grid_size)
    tokens = table.shape[1] - 1
    if table.dim() != 3 or table.shape[2] != want[2] or tokens % grid[1]:
        raise ConfigError(f"pos_embed shape {tuple(table.shape)} cannot map to the model's "
                          f"{tuple(want)} (grid {grid} + class token)")
    # Audio-MAE varies only the time length (ESC-50: 512 frames), so keep the frequency rows.
    old_grid = (tokens // grid[1], grid[1])
    if torch.allclose(table, sincos_pos_embed(want[2], old_grid), atol=1e-4):
        report["pos_embed"] = f"regenerated sin-cos for grid {grid} (checkpoint grid {old_grid})"
        return sincos_pos_embed(want[2], grid)
    report["pos_embed"] = f"interpolated from grid {old_grid} to {grid} (not a sin-cos table)"
    return resample_abs_pos_embed(table, list(grid), list(old_grid), num_prefix_tokens=1)


def load_audiomae_checkpoint(model: nn.Module, path) -> dict:
    """Load Audio-MAE weights into a timm ViT and return a report.

    Report keys: ``path``; ``kind`` ("pretrained" or "finetuned"); ``loaded`` (number of tensors
    copied); ``dropped_decoder`` (number of MAE decoder tensors ignored); ``skipped``
    ({key: reason} for checkpoint tensors not used); ``initialised`` (model keys the checkpoint
    did not provide, left as they were); ``pos_embed`` (how the position table was set).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {str(path)!r} does not exist; expected an Audio-MAE "
                          "pretrained.pth / finetuned.pth")
    state = _read_state(path)
    report = {"path": str(path), "kind": "", "loaded": 0, "dropped_decoder": 0, "skipped": {},
              "initialised": [], "pos_embed": ""}
    decoder = [k for k in state if k.startswith(_DECODER_PREFIXES)]
    report["kind"] = "pretrained" if decoder or "head.weight" not in state else "finetuned"
    report["dropped_decoder"] = len(decoder)
    for k in decoder:
        del state[k]

    own = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key not in own:
            if key.startswith("norm.") and isinstance(getattr(model, "norm", None), nn.Identity):
                report["skipped"][key] = "encoder's final norm; this model pools first, then fc_norm"
                continue
            raise ConfigError(f"checkpoint key {key!r} {tuple(value.shape)} has no place in the model; "
                              "is this an Audio-MAE checkpoint of the same architecture?")
        if key == "pos_embed":
            new_state[key] = _pos_embed(model, value, report)
        elif value.shape == own[key].shape:
            new_state[key] = value
        elif key.startswith("head."):
            report["skipped"][key] = (f"head shape {tuple(value.shape)} != model's "
                                      f"{tuple(own[key].shape)}; kept the model's head")
        else:
            raise ConfigError(f"checkpoint key {key!r} has shape {tuple(value.shape)} but the model "
                              f"expects {tuple(own[key].shape)}; pick the matching variant/geometry")

    for key in (k for k in own if k not in state):
        if key == "pos_embed":
            report["pos_embed"] = "not in checkpoint; kept the model's own table"
        elif not key.startswith(_MAY_BE_MISSING):
            raise ConfigError(f"checkpoint lacks model key {key!r} {tuple(own[key].shape)}; "
                              "is the model deeper or of another layout than the checkpoint?")
    report["initialised"] = [k for k in own if k not in new_state and k != "pos_embed"]
    result = model.load_state_dict(new_state, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # filtered above
    report["loaded"] = len(new_state)
    return report
