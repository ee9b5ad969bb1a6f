"""The paired intervals agree with their definitions: DeLong with a row bootstrap, the point estimates with
scikit-learn, Wilson's interval with its closed form."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from server.evaluation.paired_intervals import flip_rate_interval, pr_auc_difference, roc_auc_difference


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = (rng.random(6000) < 0.05).astype(int)
    reference = rng.normal(size=labels.size) + 1.5 * labels
    candidate = np.round(reference + rng.normal(scale=0.05, size=labels.size), 2)  # ties, like 8-bit
    return labels, reference, candidate


def test_delong_matches_the_auc_difference_and_a_row_bootstrap(scores) -> None:
    labels, reference, candidate = scores
    interval = roc_auc_difference(labels, reference, candidate)
    exact = roc_auc_score(labels, candidate) - roc_auc_score(labels, reference)
    assert interval.estimate == pytest.approx(exact, abs=1e-12)
    rng = np.random.default_rng(1)
    boot = []
    for _ in range(800):
        rows = rng.integers(0, labels.size, labels.size)
        boot.append(
            roc_auc_score(labels[rows], candidate[rows]) - roc_auc_score(labels[rows], reference[rows])
        )
    low, high = np.percentile(boot, [2.5, 97.5])
    assert interval.low == pytest.approx(low, abs=0.12 * (high - low))
    assert interval.high == pytest.approx(high, abs=0.12 * (high - low))


def test_identical_scores_give_a_zero_width_auc_interval(scores) -> None:
    labels, reference, _ = scores
    assert roc_auc_difference(labels, reference, reference).width == 0.0


def test_pr_auc_difference_estimate_is_average_precision_and_the_interval_holds_it(scores) -> None:
    labels, reference, candidate = scores
    interval = pr_auc_difference(labels, reference, candidate)
    exact = average_precision_score(labels, candidate) - average_precision_score(labels, reference)
    assert interval.estimate == pytest.approx(exact, abs=1e-12)
    assert interval.low < interval.estimate < interval.high


def test_wilson_interval_for_zero_and_one_flip_of_300_rows() -> None:
    zero, one = flip_rate_interval(0, 300), flip_rate_interval(1, 300)
    assert zero.low == 0.0 and zero.high == pytest.approx(1.96**2 / (300 + 1.96**2), rel=1e-3)
    assert one.estimate == pytest.approx(1 / 300) and one.low > 0 and one.high > 0.005  # wider than 0.5 %
