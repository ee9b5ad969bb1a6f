"""Issue 7's check end to end: a real riskserve (real ONNX Runtime sessions, gRPC on 127.0.0.1) under light
load, scraped by a real Prometheus with the shipped config and rules. Prometheus's histogram_quantile over
the server's buckets agrees with the server's exported rolling-window p99 within one bucket."""

from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.metrics.buckets import LATENCY_BUCKETS_S
from tests.e2e.conftest import ServerThread, test_settings
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction
from tests.metrics.conftest import one_value, scrape
from tests.metrics.prometheus_server import running_prometheus

SCRAPE_TIMEOUT_S = 20
CALLS = 400


@pytest.fixture
def riskserve(tmp_path: Path) -> Iterator[ServerThread]:
    write_model(tmp_path / "models" / "fraud", "fraud")
    running = ServerThread(test_settings(tmp_path / "models", tmp_path / "cache")).wait_ready()
    yield running
    running.close()


def _bucket_width(seconds: float) -> float:
    index = min(bisect_left(LATENCY_BUCKETS_S, seconds), len(LATENCY_BUCKETS_S) - 1)
    return LATENCY_BUCKETS_S[index] - (LATENCY_BUCKETS_S[index - 1] if index else 0.0)


def test_prometheus_p99_of_a_live_server_agrees_with_its_exported_p99(riskserve, tmp_path):
    metrics_url = f"http://127.0.0.1:{riskserve.server.metrics_port}/metrics"
    with (
        grpc.insecure_channel(riskserve.target) as channel,
        running_prometheus(tmp_path, riskserve.server.metrics_port) as prom,
    ):
        score = scoring_pb2_grpc.FraudScoringStub(channel).Score
        score(transaction("warm-up"), timeout=10)  # creates the series before Prometheus measures a rate
        prom.wait_until(
            lambda: prom.query('riskserve_request_duration_seconds_count{model="fraud",method="Score"} == 1'),
            SCRAPE_TIMEOUT_S, "the first scrape of the live server",
        )  # fmt: skip
        for i in range(CALLS):
            score(transaction(f"t-{i}", amount=10.0 + i), timeout=10)
        prom.wait_until(
            lambda: prom.query(
                f'riskserve_request_duration_seconds_count{{model="fraud",method="Score"}} == {CALLS + 1}'
            ),
            SCRAPE_TIMEOUT_S, "the loaded server to be scraped",
        )  # fmt: skip

        buckets = 'riskserve_request_duration_seconds_bucket{model="fraud",method="Score"}'
        prometheus_p99 = float(
            prom.query(f"histogram_quantile(0.99, sum by (le) (rate({buckets}[1m])))")[0]["value"][1]
        )
        text = scrape(metrics_url)

    exported_p99 = one_value(
        text, "riskserve_request_latency_window_seconds", model="fraud", method="Score", quantile="0.99"
    )
    assert one_value(
        text, "riskserve_request_latency_window_seconds_count", model="fraud", method="Score"
    ) == (CALLS + 1)
    assert 0 < exported_p99 < 1.0
    assert abs(prometheus_p99 - exported_p99) <= _bucket_width(exported_p99), (prometheus_p99, exported_p99)
    # The server exports what the rules and dashboard need for this model.
    assert one_value(text, "riskserve_server_ready") == 1
    assert one_value(text, "riskserve_model_info", model="fraud") == 1
    assert one_value(text, "riskserve_batch_size_rows_count", model="fraud") >= 1
