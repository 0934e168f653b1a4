"""Atomic checkpoints: a crash or preemption mid-write never leaves a broken file behind."""
from __future__ import annotations

import os
from typing import Optional

import torch

LAST = "checkpoint.pth"


def save_atomic(state: dict, path: str) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_last(run_dir: str) -> Optional[dict]:
    path = os.path.join(run_dir, LAST)
    if not os.path.isfile(path):
        return None
    # Our own checkpoints hold only tensors, numbers, strings and dicts (no pickled objects).
    return torch.load(path, map_location="cpu", weights_only=True)


def model_weights(path: str) -> dict:
    """The model state dict of any of our checkpoints (or a plain state dict)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model_ema", "model", "state_dict", "model_state"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            return state[key] if key != "model_ema" or state[key] else state["model"]
    return state
