"""The one checkpoint loader of every modality: read -> unwrap -> rename -> resize -> load.

A modality describes its checkpoint family with a :class:`Family` (renaming and
position-embedding hooks); everything else is shared:

1. **read** the file a source resolves to (:func:`launch.engine.weights.fetch`): ``.safetensors``
   through safetensors, anything else through ``torch.load(weights_only=True)`` with an
   allow-list of the plain non-tensor types official training scripts pickle next to the
   weights (:data:`SAFE_GLOBALS`). Any other object is refused: the file is never unpickled in
   full.
2. **unwrap** the state dict from the first of :data:`WRAPPER_KEYS` that holds one, drop
   non-tensor entries and the ``module.`` / ``_orig_mod.`` prefixes of DDP and torch.compile.
3. **rename** (family hook): e.g. fuse MAE-ST's separate q/k/v, drop MAE decoders.
4. **resize** (family hook) position tables whose number of positions differs.
5. **load** with a report of missing, unexpected, dropped and resized keys. A classifier head
   of another shape is skipped; a model whose head the checkpoint did not fill gets the
   family's fine-tuning initialisation (MAE, MAE-ST and Audio-MAE:
   ``trunc_normal_(head.weight, std=2e-5)``). Any other mismatch is a one-line ConfigError.

``check_only=True`` runs steps 1-4 without reading the bulk of the tensors (memory-mapped, or
shapes only) and loads nothing: it is the submission-time key/shape check, and works on a model
built on the ``meta`` device.
"""
from __future__ import annotations

import argparse
import logging
import os
import pickle
import zipfile
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import nn

from .errors import ConfigError

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "model_state", "state_dict", "model_ema", "state_dict_ema", "module")
STRIP_PREFIXES = ("module.", "_orig_mod.")


def _numpy_globals() -> list:
    """numpy scalars (and their dtypes) as pickled by numpy 1.x and 2.x."""
    import numpy as np

    out = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = __import__(module, fromlist=["scalar", "_reconstruct"])
        except ImportError:
            continue
        out += [getattr(mod, "scalar"), getattr(mod, "_reconstruct")]
    out += [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return out


# What official checkpoints hold beside tensors and plain containers: MAE / Audio-MAE / mae_st
# `util/misc.py save_model` pickles the run's argparse.Namespace (`args`) and the AMP scaler's
# state; numpy scalars appear in such args and in timm/DeiT-era training states.
SAFE_GLOBALS = [argparse.Namespace] + _numpy_globals()


@dataclass
class Family:
    """How one checkpoint family maps onto the project's models."""

    name: str
    # Top-level modules that hold the classifier (skipped when their shape differs).
    head_modules: Sequence[str] = ("head",)
    # Model keys a checkpoint may lack without error (besides the head), e.g. "fc_norm.".
    optional: Sequence[str] = ()
    # Keys whose position count may differ; their values are read even in check_only mode.
    pos_embed_keys: Sequence[str] = ("pos_embed",)
    # The official fine-tuning's initialisation of a head the checkpoint does not provide.
    head_init_std: Optional[float] = None
    # (state, model, report) -> state: renames, fusions and dropped keys ("dropped" in report).
    rename: Callable = lambda state, model, report: state
    # (key, value, target_tensor, model, report) -> resized value, or raise ConfigError.
    resize: Optional[Callable] = None

    def is_head(self, key: str) -> bool:
        return key.split(".", 1)[0] in self.head_modules


def read_file(path: str, mmap: bool = False):
    """The object in a checkpoint file, unpickled only as far as the allow-list goes."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file
        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # safetensors raises its own error types
            raise ConfigError(f"checkpoint {str(path)!r} is not a readable safetensors file "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:120]})") from None
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            mmap = mmap and zipfile.is_zipfile(path)  # mmap needs the zip format (torch >= 1.6)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        text = str(err).lower()
        if "unsupported global" not in text and "unsupported class" not in text:
            first = next((line for line in str(err).splitlines() if "Unsupported" in line),
                         type(err).__name__).strip()[:160]
            raise ConfigError(f"checkpoint {str(path)!r} is not a readable torch file ({first}); "
                              f"expected a torch.save or .safetensors file") from None
        found = ""
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
            found = ", ".join(g for g in unsafe if g not in allowed)
        except Exception:
            pass
        what = f" ({found})" if found else ""
        raise ConfigError(f"checkpoint {str(path)!r} holds objects other than tensors and the allowed "
                          f"plain types{what}; it is not unpickled in full: re-save just its state "
                          f"dict (torch.save(ckpt['model'], path))") from None
    except (RuntimeError, OSError, EOFError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise ConfigError(f"checkpoint {str(path)!r} is not a readable torch file ({first}); "
                          f"expected a torch.save or .safetensors file") from None


def unwrap(obj, path: str) -> tuple[Dict[str, torch.Tensor], str]:
    """(state dict without DDP/compile prefixes, the wrapper key it was under or "")."""
    wrapper = ""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict) and obj[key]:
                obj, wrapper = obj[key], key
                break
    if not isinstance(obj, dict):
        raise ConfigError(f"checkpoint {path!r} holds a {type(obj).__name__}, not a state dict; "
                          f"expected a dict of tensors, optionally under one of {list(WRAPPER_KEYS)}")
    state = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            continue  # bookkeeping stored next to the weights (epoch, args, ...)
        for prefix in STRIP_PREFIXES:
            key = key.removeprefix(prefix)
        state[key] = value
    if not state:
        raise ConfigError(f"checkpoint {path!r} holds no tensors; expected model weights, optionally "
                          f"under one of {list(WRAPPER_KEYS)}")
    return state, wrapper


def _shapes_only(state: dict, keep: Sequence[str]) -> dict:
    return {k: v if k in keep else torch.empty(v.shape, dtype=v.dtype, device="meta")
            for k, v in state.items()}


def load_checkpoint(model: nn.Module, source, family: Family, *, check_only: bool = False,
                    strict_head: bool = False, allow_missing: bool = False) -> dict:
    """Load ``source`` into ``model`` through the pipeline above and return the report.

    Report: ``path``, ``family``, ``wrapper`` (the key the weights were under), ``loaded`` (count),
    ``missing`` (model keys left as initialised), ``unexpected`` (always empty: an unexpected key
    is an error), ``dropped`` (checkpoint keys the family ignores), ``resized``
    ({key: (old shape, new shape)}), ``head`` ("loaded", "skipped: ...", "absent", "none" for a
    headless model) and ``head_init`` (the std the head was initialised with, or None).
    """
    from .weights import fetch

    path = fetch(source)
    if os.path.isdir(path):
        raise ConfigError(f"checkpoint {source!r} is a directory; name one weights file in it")
    state, wrapper = unwrap(read_file(path, mmap=check_only), path)
    if check_only:
        state = _shapes_only(state, family.pos_embed_keys)
    report = {"path": path, "family": family.name, "wrapper": wrapper, "loaded": 0, "missing": [],
              "unexpected": [], "dropped": [], "resized": {}, "head": "", "head_init": None}
    state = family.rename(state, model, report)
    own = model.state_dict()

    to_load, skipped_head = {}, []
    for key, value in state.items():
        if key not in own:
            if family.is_head(key):
                report["dropped"].append(key)  # a classifier the model does not have
                continue
            raise ConfigError(f"checkpoint {path!r}: key {key!r} {tuple(value.shape)} has no place in "
                              f"the {type(model).__name__} (model keys start {sorted(own)[:3]}); build the "
                              f"architecture the checkpoint was trained with")
        if value.shape != own[key].shape:
            if key in family.pos_embed_keys and family.resize is not None:
                old = tuple(value.shape)
                value = family.resize(key, value, own[key], model, report)
                report["resized"][key] = (old, tuple(value.shape))
            elif family.is_head(key):
                skipped_head.append(f"{key} {tuple(value.shape)} vs model {tuple(own[key].shape)}")
                continue
            else:
                raise ConfigError(f"checkpoint {path!r}: {key} has shape {tuple(value.shape)} but the "
                                  f"model needs {tuple(own[key].shape)}; build the matching architecture")
        to_load[key] = value

    head_keys = [k for k in own if family.is_head(k)]
    if not head_keys:
        report["head"] = "none"
    elif skipped_head:
        report["head"] = "skipped: " + "; ".join(skipped_head)
        if strict_head:
            raise ConfigError(f"checkpoint {path!r}: head {report['head'][9:]}; pass strict_head=False "
                              f"to start a new head")
    elif all(k in to_load for k in head_keys):
        report["head"] = "loaded"
    else:
        report["head"] = "absent"
    missing = [k for k in own if k not in to_load]
    report["missing"] = missing
    serious = [k for k in missing if not family.is_head(k) and not k.startswith(tuple(family.optional))]
    if serious and not allow_missing:
        hint = "" if to_load else f" (checkpoint keys start {sorted(state)[:3]})"
        raise ConfigError(f"checkpoint {path!r} lacks {len(serious)} model tensors, first {serious[0]!r}"
                          f"{hint}; build the architecture the checkpoint was trained with")
    report["loaded"] = len(to_load)
    if check_only:
        return report

    model.load_state_dict(to_load, strict=False)
    head_weight = next((k for k in head_keys if k.endswith("weight")), None)
    if report["head"] != "loaded" and head_weight and family.head_init_std is not None:
        with torch.no_grad():
            nn.init.trunc_normal_(model.get_parameter(head_weight), std=family.head_init_std)
        report["head_init"] = family.head_init_std
    _log(report)
    return report


def _log(report: dict) -> None:
    log.info("loaded %d tensors from %s (%s%s)", report["loaded"], report["path"], report["family"],
             f", under {report['wrapper']!r}" if report["wrapper"] else "")
    for name in ("missing", "dropped"):
        if report[name]:
            log.info("checkpoint %s: %s %s", report["path"], name, report[name])
    for key, (old, new) in report["resized"].items():
        log.info("checkpoint %s: resized %s %s -> %s", report["path"], key, old, new)
    if report["head"] not in ("loaded", "none"):
        log.warning("checkpoint %s: head %s%s", report["path"], report["head"],
                    f"; initialised with trunc_normal(std={report['head_init']})" if report["head_init"] else "")


# -- the submission-time check --------------------------------------------------------------------

_CHECKED: dict = {}
_NOTED: set = set()


def check_fits(source, cfg, task) -> None:
    """Before submission: ``model.checkpoint`` exists (or is a remote source) and, where the file
    is at hand (local, or already in the cache), its keys and shapes fit the model the run builds.

    The model is built on the ``meta`` device and the checkpoint read shapes-only, so nothing of
    the size of the weights is allocated. A checkpoint an earlier stage of the experiment writes
    (under ``launch.out_dir``) is checked when that stage ends (:mod:`launch.runs.stage_check`). A
    remote source that is not cached yet is not downloaded here (a dry run writes nothing): one
    note says how to prefetch it, and the job downloads it.
    """
    import dataclasses
    import sys

    from .weights import cached, is_remote

    if not source:
        return
    produced = os.path.abspath(str(source)).startswith(os.path.abspath(cfg.launch.out_dir) + os.sep)
    if produced and not os.path.exists(source):
        return
    path = cached(source)
    if path is None:
        if not is_remote(source):
            raise ConfigError(f"model.checkpoint {source!r} does not exist; expected a local file, an "
                              f"http(s) URL, hf-hub:<org>/<repo>[@rev][/<file>], timm:<model>.<tag> or "
                              f"torchvision:<WeightsEnum>.<MEMBER>")
        if source not in _NOTED:
            _NOTED.add(source)
            print(f"note: model.checkpoint {source} is not in the cache yet; the job downloads it "
                  f"(to prefetch: python -m launch.weights {source})", file=sys.stderr)
        return
    if os.path.isdir(path) or getattr(task, "load_checkpoint", None) is None:
        return
    bare = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, checkpoint=None))
    key = (path, os.path.getmtime(path), repr(bare.model), repr(bare.data), cfg.task)
    if key in _CHECKED:
        return
    with torch.device("meta"):
        model = task.build_model(bare)
    if task.load_checkpoint(model, path, check_only=True) is not None:
        _CHECKED[key] = True
