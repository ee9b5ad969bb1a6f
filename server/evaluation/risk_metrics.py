"""Binary-classifier metrics for risk models, computed on a holdout set.

sklearn computes the curves; this module adds the figures credit and fraud teams report on top of them
(KS, recall at a fixed false-positive rate) and keeps them in one typed record. PSI and decision flips, which
need no labels, are in server/evaluation/score_comparison.py.
"""

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from server.evaluation.figures import RiskMetrics

__all__ = ["RiskMetrics", "ks_statistic", "recall_at_fpr", "risk_metrics"]


def _check(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    if len(np.unique(labels)) != 2:
        raise ValueError("labels must contain both classes (0 and 1)")
    return labels.astype(np.int8), scores


def recall_at_fpr(labels: np.ndarray, scores: np.ndarray, max_fpr: float) -> float:
    """The largest true-positive rate reachable with a false-positive rate of at most `max_fpr`."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())


def ks_statistic(labels: np.ndarray, scores: np.ndarray) -> float:
    """Kolmogorov-Smirnov separation: the largest gap between the positives' and negatives' score CDFs."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.max(tpr - fpr))


def risk_metrics(labels: np.ndarray, scores: np.ndarray) -> RiskMetrics:
    """All metrics of one score vector against 0/1 labels."""
    labels, scores = _check(labels, scores)
    return RiskMetrics(
        rows=int(labels.size),
        positives=int(labels.sum()),
        roc_auc=float(roc_auc_score(labels, scores)),
        pr_auc=float(average_precision_score(labels, scores)),
        ks=ks_statistic(labels, scores),
        brier=float(brier_score_loss(labels, scores)),
        recall_at_1pct_fpr=recall_at_fpr(labels, scores, 0.01),
        distinct_scores=int(np.unique(scores).size),
        share_scores_exactly_0_or_1=float(np.mean((scores == 0.0) | (scores == 1.0))),
    )
