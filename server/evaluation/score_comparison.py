"""Two score vectors compared without labels: PSI and decision flips. The startup gate and the live check
(server/monitoring/live_check.py) both use these, so a live figure means what the gate's means. numpy only:
the serving path imports it.
"""

import numpy as np


def quantile_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """PSI's bin edges: the distinct `bins`-quantiles of `reference`, the outer ones opened to +-infinity."""
    reference = np.asarray(reference, dtype=np.float64).ravel()
    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def binned_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """How many of `values` fall in each bin of `edges` (quantile_edges)."""
    return np.histogram(np.asarray(values, dtype=np.float64).ravel(), edges)[0]


def psi_from_counts(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of the `actual` bin counts against the `expected` ones (the same bins)."""
    eps = 1e-6
    expected_share = np.asarray(expected, dtype=np.float64) / max(float(np.sum(expected)), 1.0) + eps
    actual_share = np.asarray(actual, dtype=np.float64) / max(float(np.sum(actual)), 1.0) + eps
    return float(np.sum((actual_share - expected_share) * np.log(actual_share / expected_share)))


def population_stability_index(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of `actual` against `expected`, with quantile bins of `expected` (the usual credit-risk form).

    Conventional reading: below 0.1 stable, 0.1 to 0.25 a shift worth a look, above 0.25 a real shift.
    """
    edges = quantile_edges(expected, bins)
    return psi_from_counts(binned_counts(expected, edges), binned_counts(actual, edges))


def decision_flips(reference: np.ndarray, candidate: np.ndarray, threshold: float) -> int:
    """Rows on different sides of `threshold` under the two score vectors."""
    reference = np.asarray(reference).ravel()
    candidate = np.asarray(candidate).ravel()
    return int(np.sum((reference >= threshold) != (candidate >= threshold)))


def decision_flip_rate(reference: np.ndarray, candidate: np.ndarray, threshold: float) -> float:
    """Share of rows on different sides of `threshold` under the two score vectors."""
    return decision_flips(reference, candidate, threshold) / np.asarray(reference).size
