"""The hot path's inlined HDR count equals the library's record_value, and a call's record is complete."""

import numpy as np

from server.metrics import ServingMetrics
from server.metrics import serving_metrics as sm
from server.metrics.latency_window import HDR_HIGHEST_NS, new_hdr_histogram
from server.runtime.prediction import Prediction


def test_inlined_hdr_count_equals_record_value():
    rng = np.random.default_rng(3)
    values = [0, 1, 2, 1023, 1024, 2047, 2048, HDR_HIGHEST_NS, *rng.integers(0, HDR_HIGHEST_NS, 20_000)]
    values += [int(v) for v in 10 ** rng.uniform(0, 10.7, 20_000)]
    ours, theirs = new_hdr_histogram(), new_hdr_histogram()
    for value in values:
        sm._hdr_record(ours, int(value))
        theirs.record_value(int(value))
    assert list(ours.counts) == list(theirs.counts)
    assert (ours.total_count, ours.min_value, ours.max_value) == (
        theirs.total_count,
        theirs.min_value,
        theirs.max_value,
    )


def test_a_recorded_call_lands_in_every_histogram_and_the_window():
    metrics = ServingMetrics()
    try:
        prediction = Prediction(np.zeros((1, 2), np.float32), [0.01], [333], [1], None, 2e-5, 4e-5)
        for _ in range(3):
            metrics.observe_prediction("fraud", "Score", "OK", 0.0004, prediction)
        snap = metrics.snapshot()
        key = ("fraud", "Score", "OK")
        for name in ("riskserve_request_duration_seconds", "riskserve_queue_wait_seconds"):
            assert sum(snap.histograms[name][key][:-1]) == 3
        assert sum(snap.histograms["riskserve_model_score"][("fraud", "unknown")][:-1]) == 3  # no facts set
        (window,) = snap.windows[("fraud", "Score")].values()
        assert window.total_count == 3
    finally:
        metrics.close()
