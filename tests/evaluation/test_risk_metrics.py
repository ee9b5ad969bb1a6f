"""Risk metrics agree with their definitions on data where the answer is known."""

import numpy as np
import pytest

from server.evaluation.risk_metrics import recall_at_fpr, risk_metrics
from server.evaluation.score_comparison import decision_flip_rate, population_stability_index


def test_perfect_and_inverted_rankings() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    perfect = risk_metrics(labels, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert perfect.roc_auc == 1.0 and perfect.ks == 1.0 and perfect.recall_at_1pct_fpr == 1.0
    inverted = risk_metrics(labels, np.array([0.9, 0.8, 0.7, 0.2, 0.1]))
    assert inverted.roc_auc == 0.0 and inverted.recall_at_1pct_fpr == 0.0


def test_random_scores_have_auc_near_half_and_brier_matches_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(20_000) < 0.1
    scores = rng.random(20_000)
    metrics = risk_metrics(labels, scores)
    assert metrics.roc_auc == pytest.approx(0.5, abs=0.02)
    assert metrics.brier == pytest.approx(np.mean((scores - labels) ** 2))
    assert metrics.positives == labels.sum() and metrics.distinct_scores == 20_000


def test_recall_at_fpr_counts_only_reachable_thresholds() -> None:
    labels = np.array([0] * 100 + [1] * 10)
    scores = np.r_[np.linspace(0, 0.5, 99), 0.95, np.linspace(0.6, 0.99, 10)]
    # One negative (0.95) outranks 9 of 10 positives: allowing one false positive in 100 reaches all of
    # them, allowing none reaches only the positive at 0.99.
    assert recall_at_fpr(labels, scores, 0.01) == pytest.approx(1.0)
    assert recall_at_fpr(labels, scores, 0.0) == pytest.approx(0.1)


def test_psi_is_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=50_000)
    assert population_stability_index(base, base) == pytest.approx(0.0, abs=1e-9)
    assert population_stability_index(base, rng.normal(size=50_000)) < 0.01
    assert population_stability_index(base, rng.normal(1.0, size=50_000)) > 0.25


def test_flip_rate_and_bad_input() -> None:
    flips = decision_flip_rate(np.array([0.1, 0.5, 0.7]), np.array([0.1, 0.4, 0.7]), 0.45)
    assert flips == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="both classes"):
        risk_metrics(np.zeros(3), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="NaN"):
        risk_metrics(np.array([0, 1]), np.array([0.1, np.nan]))
