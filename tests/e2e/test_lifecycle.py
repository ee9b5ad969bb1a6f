"""Health transitions and SIGTERM drain of a real `riskserve serve` process."""

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from tests.e2e.conftest import REPO_ROOT
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
DELAY_S = 0.7  # artificial inference delay: warm-up at batch sizes 1, 2, 4 takes about 2.1 s
# The SIGTERM drain test: the pause, and in-flight calls scoring (batches of 1, 4, 4, 4, 1 at DELAY_S) well
# past it. A call sent PAUSE_S + 0.8 s after SIGTERM lands 0.8 s after the pause and ~1.2 s before the work
# ends (was 0.4 s and ~0.7 s); NOT_SERVING must be seen within NOT_SERVING_WITHIN_S, 0.5 s before the pause
# ends.
PAUSE_S = 1.5
IN_FLIGHT = 14
NOT_SERVING_WITHIN_S = 1.0


def _status(channel, service: str = "") -> int:
    return (
        health_pb2_grpc.HealthStub(channel)
        .Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        .status
    )


def _in_flight(metrics_port: int) -> float:
    """Score calls the server is handling now (riskserve_inflight_requests)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith("riskserve_inflight_requests{") and 'method="Score"' in line:
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _wait_for(predicate, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_health_transitions_and_sigterm_drain_under_in_flight_load(spawn_server, tmp_path):
    write_model(tmp_path / "fraud", "fraud", batching={"max_batch_size": 4, "max_queue_delay_us": 0})
    process = spawn_server(
        tmp_path,
        models="fraud",
        debug_inference_delay_ms=DELAY_S * 1000,
        drain_pause_s=PAUSE_S,
        grace_period_s=10,
    )
    with grpc.insecure_channel(process.target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        # listening but still warming up: not serving, and calls are refused as unavailable
        assert _status(channel) == NOT_SERVING
        assert _status(channel, "riskserve.v1.FraudScoring") == NOT_SERVING
        with pytest.raises(grpc.RpcError) as error:
            fraud.Score(transaction(), timeout=2)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        _wait_for(lambda: _status(channel) == SERVING, 30)
        assert _status(channel, "inference.GRPCInferenceService") == SERVING

        in_flight = [fraud.Score.future(transaction(f"f-{i}"), timeout=20) for i in range(IN_FLIGHT)]
        def all_reached_the_server() -> bool:  # handled there now, or answered already
            return _in_flight(process.metrics_port) + sum(f.done() for f in in_flight) >= IN_FLIGHT

        _wait_for(all_reached_the_server, 10)
        process.terminate()
        signalled = time.monotonic()
        _wait_for(lambda: _status(channel) == NOT_SERVING, NOT_SERVING_WITHIN_S)  # at once
        time.sleep(max(0.0, signalled + PAUSE_S + 0.8 - time.monotonic()))  # past the pause
        with pytest.raises(grpc.RpcError) as error:
            fraud.Score(transaction("too-late"), timeout=2)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "shutting down" in error.value.details()
        assert [f.result().transaction_id for f in in_flight] == [f"f-{i}" for i in range(IN_FLIGHT)]
    assert process.process.wait(20) == 0, "".join(process.log)
    _wait_for(lambda: any("event=drain_finished inflight_left=0 clean=True" in x for x in process.log), 2)


def test_bad_settings_exit_2_naming_the_setting(tmp_path):
    def serve(*args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "server.cli.main", "serve", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = serve("--models-dir", str(tmp_path / "nowhere"), "--port", "0", "--metrics-port", "0")
    assert done.returncode == 2 and "models_dir: not a directory" in done.stderr
    done = serve(RISKSERVE_GRACE_PERIOD_S="soon")
    assert (
        done.returncode == 2 and "grace_period_s" in done.stderr and "RISKSERVE_GRACE_PERIOD_S" in done.stderr
    )


def test_open_stream_is_ended_unavailable_once_a_drain_refuses_calls(start_server, model_repo):
    # A 1.5 s pause (was 0.3 s): the call sent during it has that long to be answered.
    running = start_server(model_repo, drain_pause_s=1.5, grace_period_s=5).wait_ready()
    outgoing: queue.Queue = queue.Queue()
    requests = iter(outgoing.get, None)
    with grpc.insecure_channel(running.target) as channel:
        answers = scoring_pb2_grpc.FraudScoringStub(channel).ScoreStream(requests, timeout=10)
        outgoing.put(transaction("s-0"))
        assert next(answers).transaction_id == "s-0"
        drained = asyncio.run_coroutine_threadsafe(running.server.drain(), running.loop)
        outgoing.put(transaction("s-1"))  # during the pause: still answered
        assert next(answers).transaction_id == "s-1"
        _wait_for(lambda: running.server.drain_state.refusing, 10)  # the pause is over (was a 0.5 s sleep)
        outgoing.put(transaction("s-2"))  # after the pause: the stream ends, the client reconnects
        with pytest.raises(grpc.RpcError) as error:
            next(answers)
        assert error.value.code() is grpc.StatusCode.UNAVAILABLE
        outgoing.put(None)
    assert drained.result(10) is True  # the stream let go, so the drain finished cleanly


def test_a_drain_under_overload_answers_every_call_ok_or_unavailable(spawn_server, tmp_path):
    """Calls waiting inside gRPC when the drain starts (an overloaded event loop has not even read them
    yet) are refused with UNAVAILABLE, which clients retry elsewhere; stopping the server while they wait
    would have gRPC cancel them. The client behaves like one that fails over: it stops sending to this
    server once told it is shutting down."""
    write_model(tmp_path / "fraud", "fraud", batching={"max_batch_size": 1, "max_queue_delay_us": 0})
    process = spawn_server(
        tmp_path,
        models="fraud",
        drain_pause_s=0.3,
        grace_period_s=5,
        inference_handoff="inline",  # each call blocks the loop: calls pile up inside gRPC
        debug_inference_delay_ms=4,
        max_pending_rpcs=0,  # gRPC's own (large) bound, so the pile is not shed on arrival
        max_concurrent_rpcs=0,
    )
    told_to_leave = threading.Event()

    def on_done(future: grpc.Future) -> None:
        if future.exception() is not None and future.code() is grpc.StatusCode.UNAVAILABLE:
            told_to_leave.set()

    with grpc.insecure_channel(process.target) as channel:
        _wait_for(lambda: _status(channel) == SERVING, 30)
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        pending = []
        started = time.monotonic()
        for i in range(3000):  # open loop at 500 calls/s, about twice what the server can score
            time.sleep(max(0.0, started + i / 500 - time.monotonic()))
            if i == 250:
                process.terminate()
            if told_to_leave.is_set():
                break
            future = fraud.Score.future(transaction(f"d-{i}"), timeout=20)
            future.add_done_callback(on_done)
            pending.append(future)
        codes = [f.code() for f in pending]
    assert process.process.wait(20) == 0, "".join(process.log)
    counts = {code.name: codes.count(code) for code in set(codes)}
    assert set(counts) == {"OK", "UNAVAILABLE"}, counts
