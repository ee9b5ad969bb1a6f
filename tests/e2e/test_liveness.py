"""Liveness and supervision on a real server: a wedged model turns `liveness` NOT_SERVING within the
watchdog's period and refuses calls at once (and all is back once it moves), a drain never does, a batcher
that keeps failing gives its model up (UNAVAILABLE, health NOT_SERVING, counted), and a silent event loop
is logged with its stack."""

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.app.health import LIVENESS_SERVICE
from tests.e2e.requests import transaction

STALL_S = 0.5  # the watchdog's threshold in these tests (it looks every 0.05 s)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(channel: grpc.Channel, service: str, timeout: float = 2.0) -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        .status
    )


def _wait_for(predicate, within_s: float) -> float:
    """Seconds until `predicate()` held (AssertionError if it did not within `within_s`)."""
    started = time.monotonic()
    while not predicate():
        assert time.monotonic() - started < within_s, f"not within {within_s} s"
        time.sleep(0.02)
    return time.monotonic() - started


def _wedge(running, model: str = "fraud") -> threading.Event:
    """Make the model's ONNX Runtime call block until the returned event is set (a hung session)."""
    release = threading.Event()
    batcher = running.server.repository.get(model).batcher
    real = batcher._run_batch

    def hung(feeds):
        release.wait(30)
        return real(feeds)

    batcher._run_batch = hung
    return release


def test_a_wedged_model_fails_liveness_within_the_watchdog_period_and_recovers(start_server, model_repo):
    running = start_server(model_repo, watchdog_stall_s=STALL_S, inference_handoff="thread").wait_ready()
    with grpc.insecure_channel(running.target) as channel:
        assert _status(channel, LIVENESS_SERVICE) == SERVING
        release = _wedge(running)
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        stuck = stub.Score.future(transaction("wedged"), timeout=20)
        took = _wait_for(lambda: _status(channel, LIVENESS_SERVICE) == NOT_SERVING, STALL_S + 1.0)
        assert took >= STALL_S * 0.8  # not before the threshold
        assert _status(channel, "model/fraud") == NOT_SERVING
        assert _status(channel, "") == NOT_SERVING  # strict readiness: out of rotation too
        assert _status(channel, "model/credit") == SERVING
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:  # refused at once, not left to its deadline
            stub.Score(transaction("while-stalled"), timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE and time.monotonic() - started < 1
        assert "not making progress" in refused.value.details()
        release.set()
        assert stuck.result(timeout=10).transaction_id == "wedged"
        _wait_for(lambda: _status(channel, LIVENESS_SERVICE) == SERVING, 2.0)
        assert _status(channel, "") == SERVING


def test_a_drain_keeps_liveness_serving(start_server, model_repo):
    running = start_server(
        model_repo, watchdog_stall_s=STALL_S, drain_pause_s=1.0, grace_period_s=1.0
    ).wait_ready()
    with grpc.insecure_channel(running.target) as channel:
        draining = asyncio.run_coroutine_threadsafe(running.server.drain(), running.loop)
        _wait_for(lambda: _status(channel, "") == NOT_SERVING, 1.0)
        for _ in range(5):  # throughout the drain pause
            assert _status(channel, LIVENESS_SERVICE) == SERVING
            time.sleep(0.1)
        draining.result(10)


def test_a_batcher_that_keeps_failing_gives_its_model_up(start_server, model_repo):
    running = start_server(model_repo, inference_handoff="thread").wait_ready()

    def failing_observer(rows: int, queued: int) -> None:
        raise RuntimeError("injected: the observer fails every batch")

    running.server.repository.get("fraud").batcher._on_batch = failing_observer
    with grpc.insecure_channel(running.target) as channel:
        stub = scoring_pb2_grpc.FraudScoringStub(channel)
        codes = []
        for index in range(5):
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as failed:
                stub.Score(transaction(f"t{index}"), timeout=5)
            codes.append((failed.value.code(), failed.value.details()))
            assert time.monotonic() - started < 1.0, "failed fast, not at the deadline"
            time.sleep(0.05)
        assert [c for c, _ in codes[:4]] == [grpc.StatusCode.INTERNAL] * 4
        assert all("fraud" in d for _, d in codes[:4])
        assert codes[4][0] is grpc.StatusCode.UNAVAILABLE and "batcher failed" in codes[4][1]
        _wait_for(lambda: _status(channel, "model/fraud") == NOT_SERVING, 1.0)
        assert _status(channel, "") == NOT_SERVING and _status(channel, LIVENESS_SERVICE) == SERVING
        with pytest.raises(grpc.RpcError) as refused:  # the repository no longer routes calls to it
            stub.Score(transaction("after"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert refused.value.details().startswith("model 'fraud' is unavailable: batcher_failed")
    scraped = running.server.metrics.snapshot()
    assert scraped.counters["riskserve_batcher_failures_total"] == {
        ("fraud", "restart"): 3,
        ("fraud", "give_up"): 1,
    }
    assert scraped.counters["riskserve_requests_failed_total"][("fraud", "batcher_failed")] == 4
    assert scraped.gauges["riskserve_model_unavailable"][("fraud", "batcher_failed")] == 1


def _blocking_callback() -> None:
    """A callback that blocks the event loop (as a handler calling something synchronous and slow would)."""
    time.sleep(3 * STALL_S)


def test_a_silent_event_loop_is_logged_with_its_stack_and_fails_the_probe(start_server, model_repo, caplog):
    running = start_server(model_repo, watchdog_stall_s=STALL_S).wait_ready()
    with grpc.insecure_channel(running.target) as channel, caplog.at_level("ERROR", "server.app.watchdog"):
        assert _status(channel, LIVENESS_SERVICE) == SERVING
        running.loop.call_soon_threadsafe(_blocking_callback)
        time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as probe:
            _status(channel, LIVENESS_SERVICE, timeout=STALL_S)
        assert probe.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        _wait_for(lambda: _status(channel, LIVENESS_SERVICE) == SERVING, 3.0)
    (stalled,) = [r.getMessage() for r in caplog.records if "event=event_loop_stalled" in r.getMessage()]
    assert "_blocking_callback" in stalled  # where the loop was stuck: its Python frames, on either loop
