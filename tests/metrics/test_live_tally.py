"""A LiveTally's figures add up: tallies of parts (time slices, serving processes) summed give the figures of
the whole, and its Pearson correlation is numpy's on the same scores."""

import math

import numpy as np
import pytest

from server.evaluation.score_comparison import binned_counts, psi_from_counts, quantile_edges
from server.metrics.live_window import LiveReference, LiveTally, live_figures


def _reference(scores: np.ndarray) -> LiveReference:
    edges = quantile_edges(scores, 10)
    return LiveReference(
        {"review": 0.3, "decline": 0.7}, 0.05, tuple(edges[1:-1]), tuple(binned_counts(scores, edges))
    )


def test_tallies_of_parts_sum_to_the_tally_of_the_whole():
    rng = np.random.default_rng(0)
    served = rng.beta(1.2, 4.0, 3000)
    shadow = np.clip(served + rng.normal(0.0, 0.05, served.size), 0.0, 1.0)
    reference = _reference(rng.beta(1.2, 4.0, 1000))
    whole = LiveTally.of(served, shadow, reference)
    summed = LiveTally()
    for part in np.array_split(np.arange(served.size), 7):
        summed.add(LiveTally.of(served[part], shadow[part], reference))
    assert summed.rows == whole.rows == served.size
    assert (
        summed.flips
        == whole.flips
        == {
            "review": int(np.sum((served >= 0.3) != (shadow >= 0.3))),
            "decline": int(np.sum((served >= 0.7) != (shadow >= 0.7))),
        }
    )
    assert (summed.served_bins, summed.shadow_bins) == (whole.served_bins, whole.shadow_bins)
    assert summed.pearson() == pytest.approx(whole.pearson(), abs=1e-12)
    assert summed.pearson() == pytest.approx(float(np.corrcoef(served, shadow)[0, 1]), abs=1e-12)
    psi = psi_from_counts(np.array(whole.shadow_bins), np.array(whole.served_bins))
    assert live_figures(summed, reference).psi == pytest.approx(psi)


def test_pearson_is_nan_without_two_rows_or_with_a_constant_score():
    reference = _reference(np.linspace(0.0, 1.0, 100))
    assert math.isnan(LiveTally().pearson())
    assert math.isnan(LiveTally.of(np.array([0.2]), np.array([0.4]), reference).pearson())
    assert math.isnan(LiveTally.of(np.full(5, 0.2), np.linspace(0.1, 0.5, 5), reference).pearson())
    anti = LiveTally.of(np.linspace(0.1, 0.5, 5), np.linspace(0.5, 0.1, 5), reference)
    assert anti.pearson() == pytest.approx(-1.0)
