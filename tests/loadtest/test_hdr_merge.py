"""Percentiles come from merged HDR histograms of the recorded values, never from averaged percentiles."""

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from loadtest.figures import compute_figures
from loadtest.recording import Recording
from loadtest.runner import RunResult
from loadtest.scenario import parse_scenario
from loadtest.sla import evaluate

SCENARIO = parse_scenario(
    {
        "name": "hdr",
        "mix": [{"call": "fraud.score"}],
        "load": {"rate": 1000, "duration_s": 3},
        "sla": {"p99_ms": 20},
    }
)


def worker_recordings(rng: np.random.Generator) -> tuple[list[Recording], np.ndarray]:
    """Three workers with different latency distributions (one saw a slow spell)."""
    samples = [
        rng.lognormal(np.log(2e-3), 0.3, 1000),
        rng.lognormal(np.log(3e-3), 0.3, 1000),
        np.concatenate([rng.lognormal(np.log(2e-3), 0.3, 950), rng.uniform(0.05, 0.2, 50)]),
    ]
    recordings = []
    for latencies in samples:
        rec = Recording()
        for value in latencies:
            rec.record(0, value, min(value, 5e-3))  # the actual-send view missed the slow spell
            rec.codes["OK"] += 1
        recordings.append(rec)
    return recordings, np.concatenate(samples)


def test_run_percentiles_equal_hdr_percentiles_of_all_recorded_values() -> None:
    recordings, values = worker_recordings(np.random.default_rng(7))
    merged = Recording()
    for rec in recordings:
        merged.add_encoded(rec.encode())  # the trip a worker's recording makes to the parent
    figures = compute_figures(RunResult(SCENARIO, merged, 3, (), "now"))

    reference = HdrHistogram(1, 3_600_000_000, 3)
    for value in values:
        reference.record_value(int(value * 1e6))
    for key, percentile in (("p50", 50), ("p90", 90), ("p99", 99), ("p999", 99.9)):
        assert figures.latency_ms[key] == reference.get_value_at_percentile(percentile) / 1000
        rank = max(1, int(percentile / 100 * len(values) + 0.5))  # HDR's rank rule
        exact = np.sort(values)[rank - 1] * 1000
        assert figures.latency_ms[key] == pytest.approx(exact, rel=2e-3)  # 3 significant digits
    assert figures.requests == 3000

    averaged_p99 = np.mean([r.corrected.get_value_at_percentile(99) for r in recordings]) / 1000
    assert abs(averaged_p99 - figures.latency_ms["p99"]) > 10  # why percentiles are never averaged


def test_the_verdict_judges_the_corrected_figure() -> None:
    recordings, _ = worker_recordings(np.random.default_rng(7))
    merged = Recording()
    for rec in recordings:
        merged.add_encoded(rec.encode())
    merged.scheduled = merged.sent = 3000
    merged.send_lag.record_value(800)  # 0.8 ms behind schedule at worst: on time
    figures = compute_figures(RunResult(SCENARIO, merged, 3, (), "now"))
    assert figures.uncorrected_latency_ms["p99"] < 20 < figures.latency_ms["p99"]
    assert evaluate(SCENARIO.sla, figures).failed_lines == ["p99 latency (from intended send)"]
