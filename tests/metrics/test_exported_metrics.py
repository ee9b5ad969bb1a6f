"""Known observations in, the exact Prometheus text out, through the real HTTP exporter."""

import math
import subprocess

import grpc
import numpy as np
import pytest

from server.metrics.buckets import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S, SCORE_BUCKETS
from server.metrics.latency_window import HDR_RELATIVE_PRECISION, WINDOW_QUANTILES
from server.served_model import GateVerdict, ModelFacts, Precision
from tests.metrics.conftest import hdr_rank_percentile, one_value, samples, scrape


def _cumulative_buckets(text: str, name: str, bounds: tuple[float, ...], **labels: str) -> list[float]:
    by_le = {s_labels["le"]: value for s_labels, value in samples(text, f"{name}_bucket", **labels)}
    assert len(by_le) == len(bounds) + 1, f"{name}{labels} has {len(by_le)} buckets"
    return [by_le[repr(b) if "e" in repr(b) else str(b)] for b in bounds] + [by_le["+Inf"]]


def _expected_cumulative(values: np.ndarray, bounds: tuple[float, ...]) -> list[float]:
    return [float(np.count_nonzero(values <= b)) for b in bounds] + [float(values.size)]


def test_latency_histograms_count_every_call_in_its_bucket(metrics, exporter):
    rng = np.random.default_rng(1)
    total = rng.lognormal(np.log(8e-4), 0.9, size=3000)  # spills below 25 µs and above 1 s rarely
    total[:5] = [1e-6, 2.5e-05, 0.001, 1.0, 3.0]  # below the first bound, exactly on bounds, above the last
    queue, inference = total * 0.2, total * 0.1
    for t, q, i in zip(total, queue, inference, strict=True):
        metrics.observe_call("fraud", "Score", grpc.StatusCode.OK, float(t), float(q), float(i))
    metrics.observe_call("fraud", "Score", "INVALID_ARGUMENT", 4e-5)  # rejected before the queue

    text = scrape(exporter.url)
    ok = {"model": "fraud", "method": "Score", "code": "OK"}
    for name, values in (
        ("riskserve_request_duration_seconds", total),
        ("riskserve_queue_wait_seconds", queue),
        ("riskserve_inference_duration_seconds", inference),
    ):
        assert _cumulative_buckets(text, name, LATENCY_BUCKETS_S, **ok) == _expected_cumulative(
            values, LATENCY_BUCKETS_S
        )
        assert one_value(text, f"{name}_sum", **ok) == pytest.approx(values.sum(), rel=1e-9)
    bad = {"model": "fraud", "method": "Score", "code": "INVALID_ARGUMENT"}
    assert one_value(text, "riskserve_request_duration_seconds_count", **bad) == 1
    assert not samples(text, "riskserve_queue_wait_seconds_count", **bad)  # phase not reached: not observed


def test_rolling_quantiles_match_numpy_within_hdr_precision(metrics, exporter):
    rng = np.random.default_rng(2)
    fraud = rng.lognormal(np.log(6e-4), 0.6, size=20_000)
    credit = rng.uniform(2e-3, 9e-3, size=5_000)
    for value in fraud:
        metrics.observe_call("fraud", "Score", "OK", float(value))
    for value in credit:
        metrics.observe_call("credit", "Assess", "OK", float(value))

    text = scrape(exporter.url)
    for model, method, values in (("fraud", "Score", fraud), ("credit", "Assess", credit)):
        for q in WINDOW_QUANTILES:
            exported = one_value(
                text, "riskserve_request_latency_window_seconds", model=model, method=method, quantile=str(q)
            )
            expected = hdr_rank_percentile(values, q)
            assert exported == pytest.approx(expected, rel=2 * HDR_RELATIVE_PRECISION), (model, q)
        assert one_value(text, "riskserve_request_latency_window_seconds_count", model=model) == values.size
        assert one_value(text, "riskserve_request_latency_window_seconds_sum", model=model) == pytest.approx(
            values.sum()
        )


def test_batches_scores_gauges_and_counters_are_exported(metrics, exporter):
    sizes = [1, 1, 3, 64, 64, 200, 5000]
    for size in sizes:
        metrics.observe_batch("fraud", size)
    scores = np.random.default_rng(3).beta(0.3, 20, size=(500, 1)).astype(np.float32)
    metrics.observe_scores("fraud", scores[:250])
    metrics.observe_scores("fraud", scores[250:])
    metrics.set_queue_depth("fraud", 12)
    metrics.count_rejected("fraud", "overload")
    metrics.count_rejected("fraud", "overload")
    metrics.count_rejected("credit", "deadline")
    metrics.count_failed("credit", "inference_error")

    with metrics.inflight("fraud", "Score"), metrics.inflight("fraud", "Score"):
        during = scrape(exporter.url)
    after = scrape(exporter.url)

    assert _cumulative_buckets(during, "riskserve_batch_size_rows", BATCH_SIZE_BUCKETS, model="fraud") == (
        _expected_cumulative(np.array(sizes), BATCH_SIZE_BUCKETS)
    )
    score_values = scores.astype(np.float64).ravel()
    assert _cumulative_buckets(during, "riskserve_model_score", SCORE_BUCKETS, model="fraud") == (
        _expected_cumulative(score_values, SCORE_BUCKETS)
    )
    assert one_value(during, "riskserve_queue_depth_rows", model="fraud") == 12
    assert one_value(during, "riskserve_inflight_requests", model="fraud", method="Score") == 2
    assert one_value(after, "riskserve_inflight_requests", model="fraud", method="Score") == 0
    assert one_value(after, "riskserve_requests_rejected_total", model="fraud", reason="overload") == 2
    assert one_value(after, "riskserve_requests_rejected_total", model="credit", reason="deadline") == 1
    assert one_value(after, "riskserve_requests_failed_total", model="credit", reason="inference_error") == 1


def test_model_facts_flag_an_fp32_fallback(metrics, exporter, tmp_path):
    metrics.set_model_facts(
        ModelFacts(
            name="fraud",
            version="3",
            task="fraud",
            precision=Precision.INT8,
            gate_verdict=GateVerdict.PASSED,
            metric_deltas={"roc_auc_delta": -0.0002, "psi": 4e-5},
        )
    )
    metrics.set_model_facts(
        ModelFacts(
            "credit",
            "7",
            "credit",
            Precision("fp32"),
            GateVerdict("failed"),
            metric_deltas={"roc_auc_delta": -0.004, "ks": math.nan},
        )
    )
    metrics.set_ready(True)

    text = scrape(exporter.url)
    assert (
        one_value(
            text, "riskserve_model_info", model="fraud", version="3", precision="int8", gate_verdict="passed"
        )
        == 1
    )
    assert (
        one_value(text, "riskserve_model_info", model="credit", precision="fp32", gate_verdict="failed") == 1
    )
    assert one_value(text, "riskserve_model_gate_passed", model="fraud") == 1
    assert one_value(text, "riskserve_model_gate_passed", model="credit") == 0
    assert one_value(text, "riskserve_model_fp32_fallback", model="fraud") == 0
    assert one_value(text, "riskserve_model_fp32_fallback", model="credit") == 1
    assert one_value(text, "riskserve_model_quantization_metric_delta", model="fraud", metric="psi") == 4e-5
    assert not samples(text, "riskserve_model_quantization_metric_delta", model="credit", metric="ks")
    assert one_value(text, "riskserve_server_ready") == 1
    metrics.set_ready(False)
    assert one_value(scrape(exporter.url), "riskserve_server_ready") == 0


def test_promtool_accepts_the_scraped_output(metrics, exporter):
    for i in range(200):
        code = grpc.StatusCode.OK if i % 7 else grpc.StatusCode.DEADLINE_EXCEEDED
        metrics.observe_call("fraud", "ScoreBatch", code, 1e-3 + i * 1e-5, 1e-4, 5e-4)
    metrics.observe_batch("fraud", 256)
    metrics.observe_scores("fraud", np.linspace(0, 1, 11))
    metrics.count_rejected("fraud", "overload")
    metrics.set_model_facts(
        ModelFacts(
            "fraud",
            "1",
            "fraud",
            Precision("int8"),
            GateVerdict("passed_with_fallback"),
            metric_deltas={"roc_auc_delta": -1e-4},
        )
    )
    metrics.set_ready(True)
    text = scrape(exporter.url)

    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "riskserve_request_latency_window_seconds{" in text
