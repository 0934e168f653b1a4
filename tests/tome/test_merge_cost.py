"""What a merge must not pay for: layers that merge nothing compute no metric, sizes that are all
ones give no attention bias, and the cheaper argmax picks the same partner as the paper's max."""
import pytest
import torch

import tome
from tome.merge import bipartite_soft_matching
from tests.models import input_for, timm_model


def _spy_attention(model):
    """Record (want_metric, size is None) of every patched attention call."""
    calls = []
    for blk in model.blocks:
        def spy(x, size, prop_attn, metric, attn="sdpa", heads="mean", want_metric=True,
                _fn=blk.attn.tome_forward):
            calls.append((want_metric, size is None))
            return _fn(x, size, prop_attn, metric, attn, heads, want_metric=want_metric)
        blk.attn.tome_forward = spy
    return calls


@pytest.mark.parametrize("metric", ["k", "q"])
def test_layers_with_r0_compute_no_metric(metric):
    model = tome.patch.timm(timm_model("augreg").eval(), metric=metric)
    model.r = [2, 0, 3]
    calls = _spy_attention(model)
    with torch.no_grad():
        model(input_for("augreg"))
    assert [want for want, _ in calls] == [True, False, True]
    blk = model.blocks[1]
    x = blk.norm1(torch.randn(2, 17, 48))
    out, none = blk.attn.tome_forward(x, None, True, metric, want_metric=False)
    ref, _ = blk.attn.tome_forward(x, None, True, metric)
    assert none is None and torch.equal(out, ref)


def test_pruning_keeps_sizes_implicit_so_no_layer_gets_a_size_bias():
    """mode='keep' drops tokens without growing any: every size stays one, so attention runs
    without the log-size bias; wavg sizes grow, so layers after the first merge get it."""
    for mode, expected in (("keep", [True, True, True]), ("wavg", [True, False, False])):
        model = tome.patch.timm(timm_model("augreg").eval(), mode=mode)
        model.r = 2
        calls = _spy_attention(model)
        with torch.no_grad(), tome.trace() as t:
            model(input_for("augreg"))
        assert [none for _, none in calls] == expected
        if mode == "keep":
            assert (t.size == 1).all() and t.tokens == [15, 13, 11]


def test_partner_on_a_tie_is_the_first_best_b_token():
    # no protected token: A = positions 0, 2, 4; B = 1, 3, 5. A token 0 is equally close to B
    # tokens 3 and 5 (same direction) and closer to them than any other pair: it merges into 3,
    # the first of the two, at output position 2 - 1 + 1 = [unmerged A 2, 4 | B 1, 3, 5] -> 3.
    metric = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.2], [1.0, 0.0], [0.3, -1.0], [2.0, 0.0]]])
    m = bipartite_soft_matching(metric, 1, protected=0)
    assert m.src.tolist() == [[0]]
    assert m.keep.tolist() == [[2, 4, 1, 3, 5]]
    assert m.dst.tolist() == [[3]]  # output position of input token 3
