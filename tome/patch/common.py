"""What every patch shares: class swapping, the block loop, and unpatching."""
from __future__ import annotations

import torch
import torch.utils.checkpoint

from ..export import export_problem
from ..merge import merge_step
from ..schedule import parse_r
from ..state import ToMeInfo, TokenState, wants_source


def swap_class(module: torch.nn.Module, mixin: type, registry: dict) -> None:
    """Give ``module`` a subclass of its own class that adds ``mixin``'s methods.

    The original class is remembered on the module so :func:`unpatch` can restore it.
    """
    original = type(module)
    if getattr(module, "_tome_original_class", None) is not None:
        return  # already patched
    key = (mixin, original)
    if key not in registry:
        registry[key] = type(f"ToMe{original.__name__}", (mixin, original), {})
    module.__class__ = registry[key]
    module._tome_original_class = original


class ScheduleProperty:
    """``model.r = 16`` (or a schedule) validates and stores the schedule in ``model._tome``."""

    @property
    def r(self):
        return self._tome.r

    @r.setter
    def r(self, value):
        parse_r(value, self._tome_num_layers())  # fail now, not at the next forward
        self._tome.r = value


def init_state(x: torch.Tensor, info: ToMeInfo) -> TokenState:
    """The token state entering the first block: sizes implicit (all ones), sources the identity."""
    # A plain (non-strict) torch.export of an option that cannot export. Under dynamo (torch.compile,
    # strict export) is_exporting() folds to True, so the check runs only outside dynamo.
    if torch.compiler.is_exporting() and not torch.compiler.is_dynamo_compiling():
        problem = export_problem(info)
        if problem is not None:
            raise ValueError(problem)
    batch, num_tokens = x.shape[:2]
    source = None
    if wants_source(info):
        source = torch.eye(num_tokens, device=x.device, dtype=x.dtype)[None].expand(batch, -1, -1)
    groups = None
    if info.groups is not None:
        if info.groups.shape[-1] != num_tokens:
            raise ValueError(f"ToMe groups label {info.groups.shape[-1]} tokens but the model has "
                             f"{num_tokens}")
        groups = info.groups.to(x.device).expand(batch, -1)
    return TokenState(None, source, groups, (), num_tokens)


def run_block(blk, x: torch.Tensor, state: TokenState, r: int, checkpointing: bool = False):
    """One patched block with its ``r``: returns the new tokens and the new state."""
    if checkpointing and torch.is_grad_enabled():
        x, size, source, groups = torch.utils.checkpoint.checkpoint(
            blk.tome_forward, x, state.size, state.source, state.groups, r, use_reentrant=False)
    else:
        x, size, source, groups = blk.tome_forward(x, state.size, state.source, state.groups, r)
    return x, TokenState(size, source, groups, state.tokens + (x.shape[1],), state.tokens_in)


def run_blocks(blocks, x: torch.Tensor, info: ToMeInfo, checkpointing: bool = False):
    """Run patched blocks with their per-layer ``r``: returns ``(x, TokenState)``."""
    state = init_state(x, info)
    for blk, r in zip(blocks, parse_r(info.r, len(blocks))):
        x, state = run_block(blk, x, state, r, checkpointing)
    return x, state


def unpatch(model: torch.nn.Module) -> torch.nn.Module:
    """Restore every module of a patched model to its original class and drop the ToMe state."""
    for module in model.modules():
        original = getattr(module, "_tome_original_class", None)
        if original is not None:
            module.__class__ = original
            del module._tome_original_class
        if "_tome" in module.__dict__:
            del module.__dict__["_tome"]
    return model


def merge_first(info: ToMeInfo, x: torch.Tensor, r: int, size, source, groups):
    """Metric ``x_pre`` (the paper's Table 1a X_pre): merge at the start of the block, comparing
    the input tokens themselves, so attention already runs on the merged tokens. Returns the new
    state and the ``r`` left to merge after attention (0 once merged here; ``r`` otherwise)."""
    if r <= 0 or info.metric != "x_pre":
        return x, size, source, groups, r
    x, size, source, groups = merge_step(x, x, r, size, source, groups, **info.merge_options())
    return x, size, source, groups, 0
