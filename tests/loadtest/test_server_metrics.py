"""The server's own p99, read from riskserve's real metrics exporter, before and after a run."""

import pytest

from loadtest.server_metrics import histogram_quantile, scrape, server_latencies
from server.metrics import ServingMetrics, start_metrics_http_server


@pytest.fixture
def exporter():
    metrics = ServingMetrics()
    handle = start_metrics_http_server(metrics, host="127.0.0.1", port=0)
    yield metrics, f"http://127.0.0.1:{handle.port}/metrics"
    handle.close()
    metrics.close()


def test_server_p99_covers_only_the_calls_between_the_scrapes(exporter) -> None:
    metrics, url = exporter
    for _ in range(200):  # before the run: slow calls that must not count
        metrics.observe_call("fraud", "Score", "OK", total_s=0.050)
    before = scrape(url)
    for index in range(1000):  # the run: 0.5 ms, with 1 % at 4 ms
        metrics.observe_call("fraud", "Score", "OK", total_s=0.004 if index % 100 == 0 else 0.0005)
        metrics.observe_call("credit", "Assess", "OK", total_s=0.002)
    after = scrape(url)
    (fraud,) = server_latencies(before, after, {("fraud", "Score")})
    assert fraud.requests == 1000
    assert 0.4 <= fraud.run_p99_ms <= 1.0  # 99 % of the run's calls took 0.5 ms (bucket resolution)
    # the rolling window still holds the slow calls from before the run; the run view does not
    assert fraud.window_p99_ms == pytest.approx(50, rel=0.05)


def test_an_unreachable_endpoint_gives_no_server_view() -> None:
    assert scrape("http://127.0.0.1:9/metrics", timeout_s=0.5) is None
    assert server_latencies(None, None, {("fraud", "Score")}) == []


def test_histogram_quantile_interpolates_like_promql() -> None:
    buckets = {0.001: 50.0, 0.002: 90.0, 0.004: 100.0, float("inf"): 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.001)
    assert histogram_quantile(0.7, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.003)
    assert histogram_quantile(0.99, {float("inf"): 0.0}) is None
