"""Health, reflection, deadlines and the metrics endpoint of a running server."""

import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from prometheus_client.parser import text_string_to_metric_families

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.app.health import SERVICE_NAMES
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

SERVING = health_pb2.HealthCheckResponse.SERVING


def _status(channel, service: str) -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        .status
    )


def test_every_service_is_serving_once_models_are_ready(channel):
    assert len(SERVICE_NAMES) == 4
    for service in SERVICE_NAMES:
        assert _status(channel, service) == SERVING, service


def test_reflection_lists_every_service(channel):
    services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
    assert {
        "riskserve.v1.FraudScoring",
        "riskserve.v1.CreditScoring",
        "inference.GRPCInferenceService",
        "grpc.health.v1.Health",
    } <= services
    database = ProtoReflectionDescriptorDatabase(channel)
    assert database.FindFileContainingSymbol("riskserve.v1.Transaction").name.endswith("scoring.proto")


def _scrape(port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


# The slow model's ONNX Runtime call, and the late call's deadline: the late call may be sent anywhere in
# the first ~700 ms of the running call (was ~250 ms of 400 ms) and still expire in the queue behind it.
SLOW_INFERENCE_MS = 1000
LATE_TIMEOUT_S = 0.3
_FRAUD = (("model", "fraud"),)


def _batches_cut(port: int) -> tuple[float, float]:
    """(batches, rows) the fraud batcher has handed to ONNX Runtime (counted as each batch starts)."""
    samples = _scrape(port)
    return (
        samples.get(("riskserve_batch_size_rows_count", _FRAUD), 0.0),
        samples.get(("riskserve_batch_size_rows_sum", _FRAUD), 0.0),
    )


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_deadline_passed_in_the_queue_is_not_run(start_server, tmp_path, loop):
    """A slow model keeps the batcher busy; a call whose deadline passes while queued is never run. On
    either event loop: the expiry reads the deadlines' clock, not the loop's (uvloop's is libuv's)."""
    # Batches of at most 2 rows: warm-up runs the slow model at 2 sizes (not 7), keeping the start short.
    write_model(tmp_path / "fraud", "fraud", batching={"max_batch_size": 2})
    slow = start_server(tmp_path, debug_inference_delay_ms=SLOW_INFERENCE_MS, event_loop=loop).wait_ready()
    assert slow.loop.__class__.__module__.startswith("uvloop") == (loop == "uvloop")
    port = slow.server.metrics_port
    with grpc.insecure_channel(slow.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        first = fraud.Score.future(transaction("first"), timeout=10)
        deadline = time.monotonic() + 5
        while _batches_cut(port) != (1, 1):  # until `first` runs (instead of sleeping a guess)
            assert time.monotonic() < deadline, "the first call never started running"
            time.sleep(0.01)
        with pytest.raises(grpc.RpcError) as error:
            fraud.Score(transaction("late"), timeout=LATE_TIMEOUT_S)
        assert error.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert first.result().transaction_id == "first"
        # The batcher is FIFO: once a call sent now is answered, the late one was cut (and dropped) before it.
        assert fraud.Score(transaction("after"), timeout=10).transaction_id == "after"
    assert _batches_cut(port) == (2, 2), "the late request must not reach ONNX Runtime"


def test_metrics_endpoint_reports_p99_consistent_with_client_latency(start_server, model_repo):
    """Known traffic to a fresh server: the exported p99 (server side) lies below the p99 the client saw,
    and not absurdly far below it."""
    fresh = start_server(model_repo).wait_ready()
    with grpc.insecure_channel(fresh.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        client = []
        for i in range(200):
            started = time.perf_counter()
            fraud.Score(transaction(f"m-{i}"), timeout=5)
            client.append(time.perf_counter() - started)
    samples = _scrape(fresh.server.metrics_port)
    p99 = samples[
        (
            "riskserve_request_latency_window_seconds",
            (("method", "Score"), ("model", "fraud"), ("quantile", "0.99")),
        )
    ]
    assert (
        samples[("riskserve_request_latency_window_seconds_count", (("method", "Score"), ("model", "fraud")))]
        == 200
    )
    assert 0 < p99 <= np.percentile(client, 99) * 1.05
    assert p99 >= np.percentile(client, 50) * 0.05  # server time is part of client time
    assert samples[("riskserve_server_ready", ())] == 1
    info = [k for k in samples if k[0] == "riskserve_model_info" and ("model", "fraud") in k[1]]
    assert info and ("precision", "fp32") in info[0][1] and ("gate_verdict", "disabled") in info[0][1]
