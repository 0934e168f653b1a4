"""What a patched model carries (options only) and what one forward pass produces (values).

``model._tome`` is a :class:`ToMeInfo`: the merge options and the schedule, nothing that changes
from one call to the next. Token sizes, sources and group labels of a pass travel through it as a
:class:`TokenState` value, so one model can serve several threads, DataParallel replicas and
``torch.compile`` without any per-call attribute.

To see what a call produced, use :func:`trace` (or :func:`forward_with_info`)::

    with tome.trace() as t:
        logits = model(x)
    t.size, t.source, t.tokens      # of the last call; t.calls holds every call inside the block
"""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch.utils.weak import WeakTensorKeyDictionary

from .attention import BACKENDS, HEADS, METRICS, TOKEN_METRICS
from .matching import DISTANCES, KMEANS_ITERS, MATCHINGS
from .merge import MERGE_MODES, PARTITIONS
from .schedule import Schedule, parse_r, token_counts


@dataclass
class ToMeInfo:
    """The options of a patched model, attached as ``model._tome`` (read it with :func:`tome_info`).

    ``groups`` is an optional static [T] integer label per input token (prefix included): merges
    stay within a label (the audio patch's frequency bands / time windows).

    The options of the paper's ablations (Tables 1 and 2; docs/api_options.md):
    ``metric`` the feature compared: ``k`` (default), ``q``, ``v`` (inside attention), ``x`` (the
    tokens after attention, where they merge) or ``x_pre`` (the block's input tokens, merging
    *before* attention); ``heads`` how per-head q/k/v become one feature: ``mean`` (default) or
    ``concat``; ``distance`` cosine | euclidean | dot | softmax (tome/distance.py); ``mode`` how
    merged tokens combine; ``partition`` the A/B split of bipartite matching: ``alternating``
    (default), ``sequential``, ``random``; ``matching`` the algorithm (tome/matching.py);
    ``kmeans_iters`` the Lloyd steps of ``matching="kmeans"``.
    """
    r: Schedule = 0
    protected: int = 1
    prop_attn: bool = True
    trace_source: bool = False
    metric: str = "k"
    mode: str = "wavg"
    matching: str = "bipartite"
    distance: str = "cosine"
    attn: str = "sdpa"  # attention backend, one of tome.attention.BACKENDS
    groups: Optional[torch.Tensor] = None
    heads: str = "mean"
    partition: str = "alternating"
    kmeans_iters: int = KMEANS_ITERS

    def __post_init__(self):
        self.validate()

    def validate(self):
        for name, value, valid in (("metric", self.metric, METRICS), ("mode", self.mode, MERGE_MODES),
                                   ("matching", self.matching, MATCHINGS),
                                   ("distance", self.distance, DISTANCES),
                                   ("attn", self.attn, BACKENDS), ("heads", self.heads, HEADS),
                                   ("partition", self.partition, PARTITIONS)):
            if value not in valid:
                raise ValueError(f"ToMe {name} must be one of {valid}, got {value!r}")
        for name in ("prop_attn", "trace_source"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ToMe {name} must be True or False, got {getattr(self, name)!r}")
        iters = self.kmeans_iters
        if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
            raise ValueError(f"ToMe kmeans_iters must be a positive integer, got {iters!r}")
        if self.heads == "concat" and self.metric in TOKEN_METRICS:
            raise ValueError(f"ToMe heads='concat' joins per-head q, k or v; metric {self.metric!r} "
                             f"has no heads: use heads='mean' or metric q, k or v")
        if self.partition != "alternating" and self.matching != "bipartite":
            raise ValueError(f"ToMe partition {self.partition!r} splits the tokens of bipartite "
                             f"matching; matching {self.matching!r} has no partition: use "
                             f"matching='bipartite' or partition='alternating'")
        if self.matching == "attn_prune" and self.metric == "x_pre":
            raise ValueError("ToMe matching='attn_prune' needs the layer's attention, which metric "
                             "'x_pre' (merging before attention) has not computed yet: use another metric")

    def merge_options(self) -> dict:
        """The keyword arguments of ``tome.merge.merge_step`` these options give."""
        return dict(protected=self.protected, mode=self.mode, matching=self.matching,
                    distance=self.distance, partition=self.partition, kmeans_iters=self.kmeans_iters)

    def layer_r(self, num_layers: int) -> list[int]:
        return parse_r(self.r, num_layers)

    def expected_tokens(self, num_tokens: int, num_layers: int) -> list[int]:
        """Token counts per layer this schedule gives for an input of ``num_tokens`` tokens."""
        return token_counts(num_tokens, self.protected, self.layer_r(num_layers))


def tome_info(model) -> ToMeInfo:
    """The options of a patched model (raises if the model is not patched)."""
    info = getattr(model, "_tome", None)
    if info is None:
        raise ValueError(f"{type(model).__name__} is not patched with ToMe; call tome.patch.timm(model) first")
    return info


class TokenState(NamedTuple):
    """The per-pass values that flow through the patched blocks.

    size:   [B, T, 1] float32, how many input tokens each token stands for (None: all ones);
    source: [B, T, T_in] 0/1 map of the input tokens each token holds (None unless traced);
    groups: [B, T] merge-group labels (None unless the model restricts merges);
    tokens: the token count leaving each block so far;
    tokens_in: the token count entering the first block.
    """
    size: Optional[torch.Tensor]
    source: Optional[torch.Tensor]
    groups: Optional[torch.Tensor]
    tokens: tuple
    tokens_in: int


@dataclass
class CallInfo:
    """What one forward pass of a patched model produced (one entry of :attr:`Trace.calls`)."""
    size: torch.Tensor           # [B, T_out, 1] float32 (ones where nothing merged)
    source: Optional[torch.Tensor]  # [B, T_out, T_in] 0/1, or None without source tracing
    tokens: list                 # tokens leaving each block
    tokens_in: int               # tokens entering the first block


class Trace:
    """Collects the :class:`CallInfo` of every patched forward pass run inside ``tome.trace()``.

    ``size``, ``source``, ``tokens`` and ``tokens_in`` are those of the last call; ``calls`` holds
    every call in order.
    """

    def __init__(self, source: bool = False, keep: Optional[int] = None):
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"trace keep must be a positive integer or None (all calls), got {keep!r}")
        self.want_source = bool(source)
        self.keep = keep
        self.calls: list = []

    def _add(self, call: CallInfo) -> None:
        self.calls.append(call)
        if self.keep is not None and len(self.calls) > self.keep:
            del self.calls[0]

    def last(self) -> CallInfo:
        if not self.calls:
            raise RuntimeError("tome.trace recorded no call: run a ToMe-patched model inside the "
                               "block (calls compiled with torch.compile are not recorded)")
        return self.calls[-1]

    @property
    def size(self) -> torch.Tensor:
        return self.last().size

    @property
    def source(self) -> Optional[torch.Tensor]:
        return self.last().source

    @property
    def tokens(self) -> list:
        return self.last().tokens

    @property
    def tokens_in(self) -> int:
        return self.last().tokens_in

    def __repr__(self):
        return f"Trace({len(self.calls)} calls)"


# The traces open in this thread / asyncio task (innermost last). A ContextVar, so concurrent
# callers never see each other's records.
_TRACES: contextvars.ContextVar[tuple] = contextvars.ContextVar("tome_traces", default=())


@contextlib.contextmanager
def trace(source: bool = False, keep: Optional[int] = None):
    """Record sizes, token counts (and, with ``source=True``, source maps) of every patched call
    made in this block, in this thread or asyncio task only. ``keep=N`` keeps only the last N
    calls (for long loops).

        with tome.trace(source=True) as t:
            model(x)
        t.size, t.source, t.tokens, t.calls
    """
    t = Trace(source=source, keep=keep)
    token = _TRACES.set(_TRACES.get() + (t,))
    try:
        yield t
    finally:
        _TRACES.reset(token)


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def wants_source(info: ToMeInfo) -> bool:
    """Track sources in this pass: the model option, or an open ``trace(source=True)``."""
    if info.trace_source:
        return True
    if _compiling():
        return False
    return any(t.want_source for t in _TRACES.get())


def record(x: torch.Tensor, state: TokenState) -> None:
    """Hand a finished pass to the open traces (nothing to do, or under torch.compile, if none)."""
    if _compiling():
        return
    traces = _TRACES.get()
    if not traces:
        return
    size = state.size
    if size is None:
        size = torch.ones(x.shape[0], x.shape[1], 1, device=x.device, dtype=torch.float32)
    call = CallInfo(size=size.detach(), source=None if state.source is None else state.source.detach(),
                    tokens=list(state.tokens), tokens_in=state.tokens_in)
    for t in traces:
        t._add(call)


# Final token state of tensors returned by the public ``forward_features`` /
# ``forward_intermediates``, so that ``forward_head(forward_features(x))`` pools with the right
# sizes. Keyed weakly by the tensor object: an entry lives as long as the tensor does.
_FEATURES = WeakTensorKeyDictionary()


def remember(x: torch.Tensor, state: TokenState) -> None:
    if not _compiling():
        _FEATURES[x] = state


def recalled(x: torch.Tensor) -> Optional[TokenState]:
    if _compiling():
        return None
    return _FEATURES.get(x)


def forward_with_info(model, x, *args, source: bool = False, **kwargs):
    """``(model(x), info)``: the output and the :class:`CallInfo` of that call (sizes, tokens,
    and the source map when ``source=True`` or the model traces sources)."""
    with trace(source=source) as t:
        out = model(x, *args, **kwargs)
    return out, t.last()
