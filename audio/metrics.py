"""Multi-label clip metrics as reported for AudioSet: mAP, mean ROC AUC and d-prime.

Per class, average precision follows scikit-learn's ``average_precision_score`` (no
interpolation): AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds in decreasing
order, tied scores forming one threshold. ROC AUC is the trapezoidal area under the ROC curve
built on the same thresholds (= scikit-learn's ``roc_auc_score``; ties count one half).
mAP averages AP over classes with at least one positive; mAUC averages AUC over classes with at
least one positive and one negative; d' = sqrt(2) * Phi^-1(mAUC) (AST / Audio-MAE convention,
infinite when mAUC is 1). A mean over no scorable class is NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from launch.engine.errors import DataError


def _as_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise DataError(f"{name} has shape {x.shape}; expected (num_clips, num_classes)")
    return x


def _curve(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true/false positives at each distinct threshold, highest score first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    # The last index of each run of tied scores is where that threshold's counts are read.
    last_of_tie = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]
    tps = np.cumsum(positive)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps, fps


def average_precision(scores, positive) -> float:
    """Step-wise AP of one class (scikit-learn's definition); NaN when there is no positive."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive) > 0.5
    if not positive.any():
        return math.nan
    tps, fps = _curve(scores, positive)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(scores, positive) -> float:
    """Area under the ROC curve of one class; NaN unless both classes are present."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive) > 0.5
    if positive.all() or not positive.any():
        return math.nan
    tps, fps = _curve(scores, positive)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def d_prime(auc: float) -> float:
    """sqrt(2) * inverse standard normal CDF of the AUC."""
    if math.isnan(auc):
        return math.nan
    return math.sqrt(2.0) * float(torch.special.ndtri(torch.tensor(auc, dtype=torch.float64)))


def multilabel_metrics(scores, targets) -> dict[str, float]:
    """{"mAP", "mAUC", "d_prime"} of scores (N, K) against 0/1 targets (N, K).

    Scores are ranked in float64, so pass logits: they order clips as the sigmoid does, without
    the ties float32 sigmoid makes above a logit of ~16.6 (every such probability rounds to 1.0).
    Targets above 0.5 count as positive, so mixup-softened targets still work.
    """
    scores, targets = _as_numpy(scores, "scores"), _as_numpy(targets, "targets")
    if scores.shape != targets.shape:
        raise DataError(f"scores shape {scores.shape} != targets shape {targets.shape}; "
                          "both must be (num_clips, num_classes)")
    if not np.isfinite(scores).all():
        raise DataError("scores hold NaN or infinite values; metrics need finite scores")
    aps = [average_precision(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    aucs = [roc_auc(scores[:, k], targets[:, k]) for k in range(scores.shape[1])]
    aps = [a for a in aps if not math.isnan(a)]
    aucs = [a for a in aucs if not math.isnan(a)]
    mean_ap = float(np.mean(aps)) if aps else math.nan
    mean_auc = float(np.mean(aucs)) if aucs else math.nan
    return {"mAP": mean_ap, "mAUC": mean_auc, "d_prime": d_prime(mean_auc)}
