"""The rolling window forgets old calls slice by slice, and merging slices equals recording the union."""

import math
import time

import numpy as np
import pytest

from server.metrics import ServingMetrics
from server.metrics.latency_window import (
    HDR_RELATIVE_PRECISION,
    RollingLatencyWindow,
    merge_window,
    window_quantiles,
)
from tests.metrics.conftest import hdr_rank_percentile


def _window_p50(recorder: ServingMetrics) -> float:
    family = next(
        f for f in recorder.collector.collect() if f.name == "riskserve_request_latency_window_seconds"
    )
    return next(s.value for s in family.samples if s.labels.get("quantile") == "0.5")


def test_slices_older_than_the_window_stop_counting():
    window = RollingLatencyWindow(window_s=60.0, slices=6)
    start = 1_000_000.0  # a slice boundary (multiple of 10 s)
    window.record(("fraud", "Score"), 0.010, now=start + 1)  # slice 0
    window.record(("fraud", "Score"), 0.001, now=start + 25)  # slice 2
    per_slice = window.live_slices(now=start + 59)[("fraud", "Score")]
    assert len(per_slice) == 2
    merged = merge_window([per_slice], window.slice_index(start + 59), window.slices)
    assert merged.get_total_count() == 2

    later = start + 61  # slice 6: slice 0 has left the window, slice 2 has not
    per_slice = window.live_slices(now=later)[("fraud", "Score")]
    quantiles = window_quantiles(merge_window([per_slice], window.slice_index(later), window.slices))
    assert quantiles[0.999] == pytest.approx(0.001, rel=HDR_RELATIVE_PRECISION)
    window.drop_expired(now=later)
    assert window.live_slices(now=start + 85)[("fraud", "Score")] == {}


def test_merging_slices_of_two_recorders_gives_the_quantiles_of_the_union():
    rng = np.random.default_rng(4)
    fast, slow = rng.uniform(2e-4, 6e-4, 9_000), rng.uniform(3e-3, 8e-3, 1_000)
    first, second = RollingLatencyWindow(), RollingLatencyWindow()
    now = 2_000_000.0
    for i, value in enumerate(fast):
        first.record(("fraud", "Score"), float(value), now=now + i * 0.005)  # spread over several slices
    for i, value in enumerate(slow):
        second.record(("fraud", "Score"), float(value), now=now + i * 0.04)
    end = now + 45
    slice_sets = [w.live_slices(now=end)[("fraud", "Score")] for w in (first, second)]
    encoded = [{i: h.encode() for i, h in s.items()} for s in slice_sets]  # as written to the shared dir
    merged = merge_window(encoded, first.slice_index(end), first.slices)

    union = np.concatenate([fast, slow])
    for q, value in window_quantiles(merged).items():
        assert value == pytest.approx(hdr_rank_percentile(union, q), rel=2 * HDR_RELATIVE_PRECISION)


def test_a_real_recorder_forgets_calls_after_its_window():
    recorder = ServingMetrics(window_s=1.5, sub_windows=3)  # 0.5 s slices: a call stays 1 to 1.5 s
    try:
        recorder.observe_call("fraud", "Score", "OK", 5e-4)
        assert _window_p50(recorder) == pytest.approx(5e-4, rel=HDR_RELATIVE_PRECISION)
        deadline = time.monotonic() + 5
        while not math.isnan(_window_p50(recorder)):
            assert time.monotonic() < deadline, "the call never aged out of a 1.5 s window"
            time.sleep(0.05)
        recorder.observe_call("fraud", "Score", "OK", 2e-3)
        assert _window_p50(recorder) == pytest.approx(2e-3, rel=HDR_RELATIVE_PRECISION)
        family = next(f for f in recorder.collector.collect() if f.name.endswith("latency_window_seconds"))
        assert next(s.value for s in family.samples if s.name.endswith("_count")) == 2  # totals never age
    finally:
        recorder.close()


def test_fast_quantiles_equal_the_hdr_library_walk():
    rng = np.random.default_rng(8)
    window = RollingLatencyWindow()
    for value in np.concatenate([rng.lognormal(np.log(5e-4), 1.0, 5_000), [0.0, 120.0]]):  # incl. clamped
        window.record(("fraud", "Score"), float(value), now=0.0)
    histogram = window.live_slices(now=0.0)[("fraud", "Score")][0]
    percents = [50, 90, 99, 99.9, 100]
    expected = histogram.get_percentile_to_value_dict(percents)
    ours = window_quantiles(histogram, [p / 100 for p in percents])
    assert [ours[p / 100] for p in percents] == [expected[p] / 1e9 for p in percents]
