"""`riskserve serve` with workers=2: a supervisor and two SO_REUSEPORT serving processes on one port."""

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import service_pb2, service_pb2_grpc

from server.api.gen.riskserve.v1 import scoring_pb2_grpc
from server.metrics.snapshot import read_snapshots
from tests.e2e.requests import transaction
from tests.e2e.test_inference_protocol import FLOAT_INPUTS, STRING_INPUTS

SEPARATE_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]  # each channel its own TCP connection
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Each worker flushes its metrics snapshot every second; counts are polled up to this long (not slept on).
FLUSH_WAIT_S = 10
# After SIGTERM a worker keeps serving (health NOT_SERVING) for DRAIN_PAUSE_S, then stops listening:
# NOT_SERVING must be seen within NOT_SERVING_WITHIN_S, 1.5 s before the pause ends (was 0.5 s of 0.6 s).
DRAIN_PAUSE_S = 2.0
NOT_SERVING_WITHIN_S = 0.5


def _wait_for(predicate, timeout_s: float, what) -> None:
    """Poll `predicate` until true; `what` (a string, or a callable saying what was seen) on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        seen = what() if callable(what) else what
        assert time.monotonic() < deadline, f"{seen}: not reached in {timeout_s} s"
        time.sleep(0.05)


def _infer_request(t) -> service_pb2.ModelInferRequest:
    floats = {"amount": t.amount, "hour_of_day": float((t.timestamp // 3600) % 24)}
    floats |= {name: float(getattr(t.behaviour, name)) for name in FLOAT_INPUTS[2:]}
    tensors = [
        service_pb2.ModelInferRequest.InferInputTensor(
            name=name,
            datatype="FP32",
            shape=[1, 1],
            contents=service_pb2.InferTensorContents(fp32_contents=[v]),
        )
        for name, v in floats.items()
    ]
    tensors += [
        service_pb2.ModelInferRequest.InferInputTensor(
            name=name,
            datatype="BYTES",
            shape=[1, 1],
            contents=service_pb2.InferTensorContents(bytes_contents=[getattr(t, name).encode()]),
        )
        for name in STRING_INPUTS
    ]
    return service_pb2.ModelInferRequest(model_name="fraud", inputs=tensors)


def _metric(text: str, name: str, missing: float | None = None, **labels: str) -> float:
    """A sample's value; `missing` if it is not exported (None: that fails the test)."""
    for line in text.splitlines():
        if line.split("{")[0].split(" ")[0] == name and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    assert missing is not None, f"{name}{labels} not exported"
    return missing


def _score_counts_by_pid(shared_dir: Path) -> dict[int, float]:
    counts = {}
    for snap in read_snapshots(shared_dir):
        rows = snap.histograms.get("riskserve_request_duration_seconds", {})
        counts[snap.pid] = sum(sum(row[:-1]) for (_, method, _), row in rows.items() if method == "Score")
    return counts


def test_two_workers_share_the_port_merge_metrics_and_drain_on_sigterm(spawn_server, model_repo, tmp_path):
    shared_dir = tmp_path / "metrics"
    process = spawn_server(
        model_repo, workers=2, metrics_shared_dir=shared_dir, drain_pause_s=DRAIN_PAUSE_S, grace_period_s=5
    )
    pids = {int(p) for p in re.search(r"worker_pids=([\d,]+)", "".join(process.log))[1].split(",")}
    _wait_for(lambda: sum("event=serving" in line for line in process.log) == 2, 60, "both workers serving")

    latencies: list[float] = []
    channels: list[grpc.Channel] = []
    answered_by: set[int] = set()
    while answered_by != pids:  # a new connection lands on either worker; open more until both answered
        assert len(channels) < 64, f"64 connections all went to workers {answered_by} of {pids}"
        for _ in range(8):
            channel = grpc.insecure_channel(process.target, options=SEPARATE_CONNECTION)
            channels.append(channel)
            assert health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            ).status == (SERVING)
            fraud = scoring_pb2_grpc.FraudScoringStub(channel)
            infer = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for i in range(10):
                started = time.perf_counter()
                assert fraud.Score(transaction(f"t-{i}"), timeout=5).transaction_id == f"t-{i}"
                latencies.append(time.perf_counter() - started)
            response = infer.ModelInfer(_infer_request(transaction()), timeout=5)
            assert response.outputs[0].name == "probabilities" and response.model_name == "fraud"
        _wait_for(  # every call so far is in the workers' snapshots (flushed each second)
            lambda: sum(_score_counts_by_pid(shared_dir).values()) >= len(latencies),
            FLUSH_WAIT_S,
            lambda: f"{len(latencies)} Score calls flushed (snapshots: {_score_counts_by_pid(shared_dir)})",
        )
        answered_by = {pid for pid, count in _score_counts_by_pid(shared_dir).items() if count > 0}

    calls = len(latencies)
    pages: list[str] = []

    def merged_page_counts_every_call() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=5) as page:
            pages.append(page.read().decode())
        count = _metric(pages[-1], "riskserve_request_duration_seconds_count", 0.0, method="Score", code="OK")
        return count >= calls

    _wait_for(merged_page_counts_every_call, FLUSH_WAIT_S, "the merged /metrics page counting every call")
    text = pages[-1]
    assert _metric(text, "riskserve_request_duration_seconds_count", method="Score", code="OK") == calls
    assert _metric(text, "riskserve_request_duration_seconds_count", method="ModelInfer", code="OK") == len(
        channels
    )
    assert _metric(text, "riskserve_server_ready") == 1.0
    # Each call's server time is part of its client time, so the merged p99 cannot exceed the client p99
    # (HDR reports a bucket's upper edge: 0.1 % slack), and the client p50 bounds the server p50 the same way.
    server_p99 = _metric(text, "riskserve_request_latency_window_seconds", method="Score", quantile="0.99")
    ordered = np.sort(latencies)
    client_p99 = ordered[min(calls - 1, round(0.99 * calls))]
    assert 0 < server_p99 <= client_p99 * 1.002, (server_p99, client_p99)

    process.process.send_signal(signal.SIGTERM)
    health = health_pb2_grpc.HealthStub(channels[0])
    _wait_for(
        lambda: health.Check(health_pb2.HealthCheckRequest(), timeout=2).status == NOT_SERVING,
        NOT_SERVING_WITHIN_S,
        "NOT_SERVING after SIGTERM",
    )
    for channel in channels:
        channel.close()
    assert process.process.wait(20) == 0, "".join(process.log)
    _wait_for(
        lambda: sum("event=drain_finished inflight_left=0 clean=True" in x for x in process.log) == 2,
        2,
        "both workers drained cleanly",
    )


def test_a_dead_worker_is_logged_and_the_supervisor_exits_non_zero(spawn_server, model_repo):
    process = spawn_server(model_repo, workers=2, drain_pause_s=0, grace_period_s=1)
    pids = [int(p) for p in re.search(r"worker_pids=([\d,]+)", "".join(process.log))[1].split(",")]
    _wait_for(lambda: sum("event=serving" in line for line in process.log) == 2, 60, "both workers serving")
    os.kill(pids[0], signal.SIGKILL)
    assert process.process.wait(20) == 1, "".join(process.log)
    _wait_for(
        lambda: any("event=worker_exited" in x and f"pid={pids[0]}" in x for x in process.log), 2, "log"
    )


def measure_spread(repeats: int = 5, channel_counts: tuple[int, ...] = (2, 4, 8, 16)) -> dict[int, list]:
    """How SO_REUSEPORT spreads N client connections over 2 workers (docs/server.md "Processes"): the bundled
    fraud model, N channels of 20 Score calls each, counted per worker from the shared metrics directory."""
    import subprocess
    import sys
    import tempfile
    import threading

    from tests.e2e.conftest import REPO_ROOT

    shared_dir = Path(tempfile.mkdtemp(prefix="riskserve-spread-"))
    env = {**os.environ, "RISKSERVE_METRICS_SHARED_DIR": str(shared_dir), "RISKSERVE_DRAIN_PAUSE_S": "0"}
    command = [sys.executable, "-m", "server.cli.main", "serve", "--workers", "2", "--port", "0"]
    command += ["--metrics-port", "0", "--model", "fraud"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    while sum("event=serving" in line for line in log) < 2:
        line = process.stderr.readline()
        assert line, "".join(log)
        log.append(line)
    threading.Thread(target=lambda: process.stderr.read(), daemon=True).start()
    text = "".join(log)
    target = "127.0.0.1:" + re.search(r"event=listening address=\S+:(\d+)", text)[1]
    pids = [int(p) for p in re.search(r"worker_pids=([\d,]+)", text)[1].split(",")]
    results: dict[int, list] = {}
    try:
        for count in channel_counts:
            for _ in range(repeats):
                before = _score_counts_by_pid(shared_dir)
                channels = [grpc.insecure_channel(target, options=SEPARATE_CONNECTION) for _ in range(count)]
                for channel in channels:
                    fraud = scoring_pb2_grpc.FraudScoringStub(channel)
                    for i in range(20):
                        fraud.Score(transaction(f"t-{i}"), timeout=5)
                    channel.close()
                time.sleep(1.3)
                after = _score_counts_by_pid(shared_dir)
                per_worker = [round((after.get(p, 0) - before.get(p, 0)) / 20) for p in pids]
                results.setdefault(count, []).append(per_worker)
            print(f"{count:>3} channels: channels per worker, each repeat: {results[count]}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return results


if __name__ == "__main__":  # .venv/bin/python -m tests.e2e.test_workers [repeats]
    import sys

    measure_spread(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
