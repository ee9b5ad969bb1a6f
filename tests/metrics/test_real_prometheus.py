"""A real Prometheus (Debian's `prometheus` binary) scrapes the exporter with the shipped config and rules;
its histogram_quantile over our buckets agrees with the exported HDR p99 within one bucket."""

from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.metrics.buckets import LATENCY_BUCKETS_S
from server.metrics.latency_window import HDR_RELATIVE_PRECISION
from server.served_model import GateVerdict, ModelFacts, Precision
from tests.metrics.conftest import hdr_rank_percentile, one_value, scrape
from tests.metrics.dashboard_queries import as_sent_by_grafana, panel_queries
from tests.metrics.prometheus_server import PrometheusServer, running_prometheus

SCRAPE_TIMEOUT_S = 20


@pytest.fixture
def prometheus_scraping(tmp_path: Path, exporter) -> Iterator[PrometheusServer]:
    with running_prometheus(tmp_path, exporter.port) as server:
        yield server


def test_prometheus_histogram_quantile_agrees_with_the_exported_window_p99(
    metrics, exporter, prometheus_scraping
):
    prom = prometheus_scraping
    warm_up = 6e-4
    metrics.observe_call("fraud", "Score", "OK", warm_up)  # so every bucket series exists before the load
    metrics.set_model_facts(
        ModelFacts(
            "fraud",
            "1",
            "fraud",
            Precision("int8"),
            GateVerdict("passed"),
            metric_deltas={"roc_auc_delta": -1e-4},
        )
    )
    metrics.set_ready(True)
    prom.wait_until(
        lambda: prom.query('riskserve_request_duration_seconds_count{model="fraud"} == 1'),
        SCRAPE_TIMEOUT_S, "the first scrape",
    )  # fmt: skip

    latencies = np.random.default_rng(6).lognormal(np.log(6e-4), 0.5, size=5_000)
    for value in latencies:
        metrics.observe_call("fraud", "Score", "OK", float(value), float(value) * 0.2, float(value) * 0.1)
    total = latencies.size + 1
    prom.wait_until(
        lambda: prom.query(f'riskserve_request_duration_seconds_count{{model="fraud"}} == {total}'),
        SCRAPE_TIMEOUT_S, "the loaded histogram to be scraped",
    )  # fmt: skip

    buckets = 'riskserve_request_duration_seconds_bucket{model="fraud"}'
    promql = f"histogram_quantile(0.99, sum by (le) (rate({buckets}[1m])))"
    prometheus_p99 = float(prom.query(promql)[0]["value"][1])
    exported_p99 = one_value(
        scrape(exporter.url), "riskserve_request_latency_window_seconds", quantile="0.99"
    )
    exact_p99 = hdr_rank_percentile(np.append(latencies, warm_up), 0.99)

    bucket = bisect_left(LATENCY_BUCKETS_S, exact_p99)  # the bucket (lower, upper] holding the true p99
    lower, upper = LATENCY_BUCKETS_S[bucket - 1], LATENCY_BUCKETS_S[bucket]
    assert lower < prometheus_p99 <= upper, (prometheus_p99, lower, upper)
    assert exported_p99 == pytest.approx(exact_p99, rel=2 * HDR_RELATIVE_PRECISION)
    assert abs(prometheus_p99 - exported_p99) <= upper - lower

    # The shipped rules loaded and evaluate against real data.
    groups = prom.get("/api/v1/rules")["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert {r["name"] for r in rules} >= {"RiskserveP99AboveSLA", "RiskserveModelServedAsFP32"}
    assert all(r["health"] in ("ok", "unknown") for r in rules), [
        (r["name"], r.get("lastError")) for r in rules
    ]
    prom.wait_until(
        lambda: prom.query('model_method:riskserve_request_duration_seconds:p99_rate1m{model="fraud"}'),
        SCRAPE_TIMEOUT_S, "the p99 recording rule",
    )  # fmt: skip
    recorded = float(prom.query("model_method:riskserve_request_duration_seconds:p99_rate1m")[0]["value"][1])
    assert lower < recorded <= upper

    # Every Grafana panel query parses and evaluates in a real Prometheus; the latency panels have data.
    for promql in panel_queries():
        body = prom.get("/api/v1/query", query=as_sent_by_grafana(promql))
        assert body["status"] == "success", (promql, body)
    p99_panel = next(
        q for q in panel_queries() if q.startswith("histogram_quantile(0.99") and "request_dur" in q
    )
    assert prom.query(as_sent_by_grafana(p99_panel))
