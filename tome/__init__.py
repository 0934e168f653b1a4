"""Token Merging (ToMe, Bolya et al., ICLR 2023) for ViTs on images, video and audio."""
from . import export, patch
from .budget import FlopTarget, r_for_flops
from .grid import dense
from .merge import bipartite_soft_matching, merge_source, merge_tokens, token_groups, unmerge
from .patch import unpatch
from .schedule import parse_r, token_counts
from .state import CallInfo, ToMeInfo, TokenState, Trace, forward_with_info, tome_info, trace

__all__ = ["patch", "unpatch", "dense", "bipartite_soft_matching", "merge_tokens", "merge_source", "unmerge",
           "token_groups", "parse_r", "token_counts", "ToMeInfo", "tome_info", "trace", "Trace",
           "CallInfo", "TokenState", "forward_with_info", "export", "r_for_flops", "FlopTarget"]
__version__ = "0.1.0"
