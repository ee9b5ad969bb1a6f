"""Calls that never send their body, and idle streams, cannot lock other callers out (real sockets).

The door is checked in the handler's call scope (server/api/calls.py), so a unary call holds a slot only
once its request has arrived; ScoreStreams have their own slots, bounded per client address."""

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import generate_latest

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

HELD = 300
SCORE = "/riskserve.v1.FraudScoring/Score"
STREAM = "/riskserve.v1.FraudScoring/ScoreStream"


@pytest.fixture()
def running(start_server, tmp_path):
    write_model(tmp_path / "fraud", "fraud", batching={"max_batch_size": 8, "max_queue_delay_us": 0})
    return start_server(tmp_path, models=("fraud",), max_concurrent_rpcs=256, max_streams_per_client=16)


def _gauge(running, method: str) -> float:
    for line in generate_latest(running.server.metrics.registry).decode().splitlines():
        if line.startswith("riskserve_inflight_requests{") and f'method="{method}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _rejected(running, reason: str) -> float:
    for line in generate_latest(running.server.metrics.registry).decode().splitlines():
        if line.startswith("riskserve_requests_rejected_total{") and f'reason="{reason}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _hold(target: str, method: str, count: int, streaming: bool, check) -> list:
    """Open `count` calls whose request stream never sends (a unary method: the body never comes), run
    `check()` while they are held, then cancel them; returns what each held call ended with."""
    never = asyncio.Event()

    async def nothing():
        await never.wait()
        yield b""  # never reached

    channels = [grpc.aio.insecure_channel(target) for _ in range(4)]
    try:
        calls = []
        for i in range(count):
            channel = channels[i % len(channels)]
            if streaming:
                call = channel.stream_stream(method)(nothing(), timeout=30)
            else:
                call = channel.stream_unary(method)(nothing(), timeout=30)
            calls.append(call)
            if i % 50 == 49:
                await asyncio.sleep(
                    0.1
                )  # in waves: a burst of 300 at once would overflow core's pending bound
        await asyncio.sleep(1.0)  # every call has reached the server
        await asyncio.to_thread(check)

        async def ended(call):  # those refused have their status by now; the held ones are cancelled
            try:
                return await asyncio.wait_for(asyncio.shield(call.code()), 1.0)
            except TimeoutError:
                call.cancel()
                return None

        return await asyncio.gather(*map(ended, calls))
    finally:
        for channel in channels:
            await channel.close()


def _others_are_served(running) -> None:
    with grpc.insecure_channel(running.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        for i in range(5):
            assert fraud.Score(transaction(f"ok-{i}"), timeout=5).transaction_id == f"ok-{i}"
        batch = scoring_pb2.TransactionBatch(transactions=[transaction("b-0"), transaction("b-1")])
        assert len(fraud.ScoreBatch(batch, timeout=5).scores) == 2
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_calls_that_never_send_their_body_hold_no_slot(running):
    running.wait_ready()
    seen = {}

    def check():
        _others_are_served(running)
        seen["gauge"] = _gauge(running, "Score")

    ended = asyncio.run(_hold(running.target, SCORE, HELD, False, check))
    assert seen["gauge"] == 0  # nothing holds a slot: the gauge says so
    assert grpc.StatusCode.RESOURCE_EXHAUSTED not in ended
    assert _rejected(running, "concurrency_limit") == 0


def test_idle_streams_are_bounded_per_client_and_never_lock_unary_calls_out(running):
    running.wait_ready()
    seen = {}

    def check():
        _others_are_served(running)
        seen["gauge"] = _gauge(running, "ScoreStream")

    ended = asyncio.run(_hold(running.target, STREAM, HELD, True, check))
    assert seen["gauge"] == 16  # the streams that hold slots: this client's 16
    refused = ended.count(grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert refused == HELD - 16
    assert _rejected(running, "concurrency_limit") == HELD - 16
    assert _gauge(running, "ScoreStream") == 0  # given back when the streams ended
