import math
from statistics import NormalDist

import numpy as np
import pytest
import torch

from audio.metrics import average_precision, multilabel_metrics, roc_auc
from launch.engine.errors import DataError

# Three classes, five clips. Worked by hand:
#  class 0: ranking 0.9+ 0.8- 0.7+ 0.6- 0.5-      AP = 1/2*1 + 1/2*2/3 = 5/6
#           AUC: positive pairs won 3 + 2 of 6      = 5/6
#  class 1: 0.9- {0.5+, 0.5-} 0.2- 0.1+ (a tie)   AP = 1/2*(1/3) + 1/2*(2/5) = 11/30
#           AUC: (0.5 tie + 1) + 0 of 6            = 1/4
#  class 2: no positive -> left out of both means
SCORES = np.array([[0.9, 0.5, 0.3],
                   [0.8, 0.5, 0.2],
                   [0.7, 0.2, 0.9],
                   [0.6, 0.9, 0.1],
                   [0.5, 0.1, 0.4]])
TARGETS = np.array([[1, 1, 0],
                    [0, 0, 0],
                    [1, 0, 0],
                    [0, 0, 0],
                    [0, 1, 0]])


def test_ap_auc_and_d_prime_match_a_hand_worked_example():
    assert average_precision(SCORES[:, 0], TARGETS[:, 0]) == pytest.approx(5 / 6)
    assert average_precision(SCORES[:, 1], TARGETS[:, 1]) == pytest.approx(11 / 30)
    assert roc_auc(SCORES[:, 1], TARGETS[:, 1]) == pytest.approx(1 / 4)
    m = multilabel_metrics(SCORES, TARGETS)
    assert m["mAP"] == pytest.approx((5 / 6 + 11 / 30) / 2)
    assert m["mAUC"] == pytest.approx((5 / 6 + 1 / 4) / 2)
    assert m["d_prime"] == pytest.approx(math.sqrt(2) * NormalDist().inv_cdf(13 / 24))
    torch_m = multilabel_metrics(torch.from_numpy(SCORES).float(), torch.from_numpy(TARGETS))
    assert torch_m == pytest.approx(m)


def _pairwise_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    diff = pos[:, None] - neg[None]
    return ((diff > 0) + 0.5 * (diff == 0)).mean()


def _ap_by_rank(s, y):
    # Without ties: mean over positives of precision at that positive's rank.
    order = np.argsort(-s)
    hits = y[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(s) + 1)
    return precision_at[hits == 1].mean()


def test_ap_and_auc_equal_their_rank_and_pairwise_definitions_on_random_data():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, size=40)
        y[:2] = [0, 1]
        s = rng.normal(size=40) + y
        assert average_precision(s, y) == pytest.approx(_ap_by_rank(s, y))
        tied = np.round(s)  # many ties
        assert roc_auc(tied, y) == pytest.approx(_pairwise_auc(tied, y))


def test_perfect_one_sided_and_malformed_inputs_give_their_defined_results():
    perfect = multilabel_metrics(np.array([[0.9, 0.1], [0.1, 0.9]]), np.eye(2))
    assert perfect["mAP"] == 1 and perfect["mAUC"] == 1 and perfect["d_prime"] == math.inf
    # A class with only positives has AP 1 but no AUC.
    m = multilabel_metrics(np.array([[0.2, 0.9], [0.3, 0.1]]), np.array([[1, 1], [1, 0]]))
    assert m["mAP"] == pytest.approx(1.0) and m["mAUC"] == pytest.approx(1.0)
    assert math.isnan(multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 2)))["mAP"])
    with pytest.raises(DataError, match=r"scores shape \(3, 2\) != targets shape \(3, 3\)"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(DataError, match="NaN"):
        multilabel_metrics(np.full((2, 2), np.nan), np.eye(2))


def test_map_on_saturating_logits_equals_sklearn_on_the_logits():
    from sklearn.metrics import average_precision_score, roc_auc_score
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(300, 4))
    y[:2] = [[0] * 4, [1] * 4]
    # Logits 15..40: float32 sigmoid maps almost all of them to exactly 1.0.
    logits = torch.from_numpy(18 + 6 * rng.normal(size=(300, 4)) + 4 * y).float()
    assert (torch.sigmoid(logits) == 1.0).float().mean() > 0.5
    from audio.task import AudioTask
    got = AudioTask().metrics(logits, torch.from_numpy(y).float(), torch.arange(300))
    want_ap = np.mean([average_precision_score(y[:, k], logits[:, k].numpy()) for k in range(4)])
    want_auc = np.mean([roc_auc_score(y[:, k], logits[:, k].numpy()) for k in range(4)])
    assert got["map"] == pytest.approx(100 * want_ap, abs=1e-9)
    assert got["mauc"] == pytest.approx(100 * want_auc, abs=1e-9)
    # The saturated probabilities give another, lower number: the defect this guards against.
    sat = multilabel_metrics(torch.sigmoid(logits), torch.from_numpy(y))["mAP"]
    assert abs(100 * sat - got["map"]) > 1


def test_ties_are_handled_as_sklearn_handles_them():
    from sklearn.metrics import average_precision_score, roc_auc_score
    rng = np.random.default_rng(4)
    for _ in range(20):
        y = rng.integers(0, 2, size=50)
        y[:2] = [0, 1]
        s = np.round(rng.normal(size=50) + y, 0)  # a handful of distinct values: many ties
        assert average_precision(s, y) == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert roc_auc(s, y) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
