"""Paired 95 % confidence intervals for how a candidate's scores differ from a reference's on the same rows.

- ROC-AUC difference: DeLong's method (DeLong, DeLong & Clarke-Pearson 1988, in Sun & Xu's fast form): the
  two AUCs' structural components per row give the variance of their difference, no resampling.
- PR-AUC (average precision) difference: a paired Poisson bootstrap over rows (every row weighted by a
  Poisson(1) count, the same weights for both score vectors), percentile interval.
- Decision flip rate (share of rows on different sides of a threshold): Wilson's score interval for k
  flips of n rows. A bootstrap would give [0, 0] for zero observed flips, as if that were certain.
"""

from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 400
BOOTSTRAP_CHUNK = 100
BOOTSTRAP_SEED = 20240601


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95 % confidence interval."""

    estimate: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low


def _midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their mean rank."""
    order = np.argsort(values, kind="mergesort")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(values.size)
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)
    return ranks


def roc_auc_difference(labels: np.ndarray, reference: np.ndarray, candidate: np.ndarray) -> Interval:
    """AUC(candidate) - AUC(reference) with DeLong's paired 95 % interval."""
    positive = np.asarray(labels).ravel() == 1
    m, n = int(positive.sum()), int((~positive).sum())
    aucs, v01, v10 = [], [], []
    for scores in (np.asarray(reference, np.float64).ravel(), np.asarray(candidate, np.float64).ravel()):
        x, y = scores[positive], scores[~positive]
        tx, ty, tz = _midranks(x), _midranks(y), _midranks(np.concatenate([x, y]))
        aucs.append((tz[:m].sum() - m * (m + 1) / 2.0) / (m * n))
        v01.append((tz[:m] - tx) / n)
        v10.append(1.0 - (tz[m:] - ty) / m)
    covariance = np.cov(np.array(v01)) / m + np.cov(np.array(v10)) / n
    variance = max(float(covariance[0, 0] + covariance[1, 1] - 2.0 * covariance[0, 1]), 0.0)
    delta = float(aucs[1] - aucs[0])
    half = Z_95 * variance**0.5
    return Interval(delta, delta - half, delta + half)


def _average_precision(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's step-wise definition) under each row of `weights` [B, n]."""
    order = np.argsort(-scores, kind="mergesort")
    ordered = scores[order]
    ends = np.r_[np.flatnonzero(np.diff(ordered)), ordered.size - 1]  # last row of each tied group
    w = weights[:, order]
    true_positives = np.cumsum(w * labels[order], axis=1)[:, ends]
    predicted = np.cumsum(w, axis=1)[:, ends]
    recall_steps = np.diff(true_positives, axis=1, prepend=0.0) / true_positives[:, -1:]
    return np.sum(recall_steps * true_positives / np.maximum(predicted, 1e-300), axis=1)


def pr_auc_difference(
    labels: np.ndarray,
    reference: np.ndarray,
    candidate: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """AP(candidate) - AP(reference) with a paired Poisson-bootstrap 95 % percentile interval."""
    labels = np.asarray(labels, np.float64).ravel()
    reference = np.asarray(reference, np.float64).ravel()
    candidate = np.asarray(candidate, np.float64).ravel()
    ones = np.ones((1, labels.size))
    delta = float(
        (_average_precision(candidate, labels, ones) - _average_precision(reference, labels, ones))[0]
    )
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        weights = rng.poisson(1.0, (min(BOOTSTRAP_CHUNK, resamples - start), labels.size)).astype(np.float64)
        weights = weights[(weights * labels).sum(axis=1) > 0]  # a resample needs a positive
        deltas.append(
            _average_precision(candidate, labels, weights) - _average_precision(reference, labels, weights)
        )
    low, high = np.percentile(np.concatenate(deltas), [2.5, 97.5])
    return Interval(delta, float(low), float(high))


def flip_rate_interval(flips: int, rows: int) -> Interval:
    """Wilson's 95 % score interval for `flips` of `rows`."""
    p = flips / rows
    z2 = Z_95 * Z_95
    centre = (p + z2 / (2 * rows)) / (1 + z2 / rows)
    half = Z_95 * (p * (1 - p) / rows + z2 / (4 * rows * rows)) ** 0.5 / (1 + z2 / rows)
    low = 0.0 if flips == 0 else max(0.0, centre - half)
    return Interval(p, low, min(1.0, centre + half))
