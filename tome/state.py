"""The state a patched model carries: merge options, the schedule, and what the last pass produced."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from .attention import BACKENDS, METRICS
from .merge import MATCHINGS, MERGE_MODES
from .schedule import Schedule, parse_r, token_counts


@dataclass
class ToMeInfo:
    """Attached to a patched model as ``model._tome``.

    After each forward pass:
      ``size``   [B, T_out, 1]: how many input tokens each output token stands for (None if r=0);
      ``source`` [B, T_out, T_in]: 0/1 map of which input tokens (prefix included) each output token
                 holds, when ``trace_source`` is on;
      ``tokens`` the token count leaving each block.
    """
    r: Schedule = 0
    protected: int = 1
    prop_attn: bool = True
    trace_source: bool = False
    metric: str = "k"
    mode: str = "wavg"
    matching: str = "bipartite"
    attn: str = "sdpa"  # attention backend, one of tome.attention.BACKENDS
    # Optional [T] integer label per input token (prefix included): merges stay within a label.
    groups: Optional[torch.Tensor] = None
    size: Optional[torch.Tensor] = field(default=None, repr=False)
    source: Optional[torch.Tensor] = field(default=None, repr=False)
    tokens: list = field(default_factory=list)

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name, value, valid in (("metric", self.metric, METRICS), ("mode", self.mode, MERGE_MODES),
                                   ("matching", self.matching, MATCHINGS),
                                   ("attn", self.attn, BACKENDS)):
            if value not in valid:
                raise ValueError(f"ToMe {name} must be one of {valid}, got {value!r}")
        for name in ("prop_attn", "trace_source"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ToMe {name} must be True or False, got {getattr(self, name)!r}")

    def layer_r(self, num_layers: int) -> list[int]:
        return parse_r(self.r, num_layers)

    def expected_tokens(self, num_tokens: int, num_layers: int) -> list[int]:
        """Token counts per layer this schedule gives for an input of ``num_tokens`` tokens."""
        return token_counts(num_tokens, self.protected, self.layer_r(num_layers))


def tome_info(model) -> ToMeInfo:
    info = getattr(model, "_tome", None)
    if info is None:
        raise ValueError(f"{type(model).__name__} is not patched with ToMe; call tome.patch.timm(model) first")
    return info
