"""The benchmark's cheap ScoreStream sender against the real `riskserve serve`: every message answered and
counted, and a server too slow for the p99 line is judged not sustained."""

from pathlib import Path

import pytest

from benchmarks.serving.openloop import LoadTarget, TrialTiming, run_trial
from benchmarks.serving.payloads import build_payloads
from tests.loadtest.real_server import RiskServeProcess

pytestmark = pytest.mark.timeout(300)


def test_stream_sender_counts_every_answer_and_catches_a_slow_server(tmp_path: Path):
    pool = build_payloads().stream
    with RiskServeProcess(tmp_path / "cache", tmp_path / "server.log", debug_delay_ms=10) as server:
        load = LoadTarget("riskserve ScoreStream", server.target, "stream", pool)
        trial = run_trial(load, 100, 5.0, TrialTiming(measured_s=1.5, warmup_s=0.3))
    assert trial.codes == {"OK": 150} and trial.error_rate == 0
    assert trial.throughput_rps == pytest.approx(100)
    assert trial.p50_ms is not None and trial.p50_ms >= 10  # every message waits for a 10 ms ORT call
    assert not trial.sustained and "p99 < 5 ms" in trial.failed_lines
    assert 0 < trial.generator_cpu_cores < 1
