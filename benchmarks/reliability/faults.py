"""Scenario: faults under load, counted call by call.

- `worker_kill`: `workers=2`, open-loop unary Score over several connections (so both workers serve), then
  kill -9 of one worker. The supervisor logs it, drains the other and exits 1 (docs/server.md, Processes);
  the benchmark then does what the orchestrator would, starting `riskserve serve` again on the same port,
  and keeps sending until calls are answered again. Each call is classified by outcome and phase.
- `batcher_fault`: one exception injected where a batch is concatenated (benchmarks/reliability/
  fault_server.py), the fault that used to wedge the model for good: the calls it fails, how fast, and when
  calls are answered again.
- `hung_inference`: one ONNX Runtime call that hangs 15 s: when the watchdog turns `liveness` NOT_SERVING,
  what the calls meanwhile get, and when all is back.
- `grpc_shed`: a burst of concurrent calls beyond `max_pending_rpcs`: gRPC core ends the excess CANCELLED
  before Python sees it; counted on the client and compared with what the server's metrics saw.
"""

import asyncio
import itertools
import os
import re
import signal
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.reliability.fault_server import FAULT_VARIABLE
from benchmarks.reliability.openloop import Record, open_loop, settle_gc
from benchmarks.reliability.payloads import SCORE, holdout_transactions, unary
from benchmarks.server_process import RiskServe, free_port

SEPARATE_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
CHANNELS = 8
TIMEOUT_S = 2.0
KILL_SETTINGS = {"workers": "2", "drain_pause_s": "2", "grace_period_s": "10"}
NOT_LISTENING = ("failed to connect", "connection refused", "connections to all backends failing")


def _outcome(record: Record) -> str:
    """A call's outcome class: its status and, where one status has several causes, which."""
    code, details = record.code, record.details.lower()
    if code is grpc.StatusCode.OK:
        return "ok"
    if code is grpc.StatusCode.UNAVAILABLE:
        if "shutting down" in details:
            return "UNAVAILABLE draining"
        if "not making progress" in details:
            return "UNAVAILABLE model stalled"
        if any(s in details for s in NOT_LISTENING):
            return "UNAVAILABLE not listening"
        if "reset" in details or "socket closed" in details or "stream removed" in details:
            return "UNAVAILABLE connection reset"
        return "UNAVAILABLE other"
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timed out" if record.details == "Deadline Exceeded" else "DEADLINE_EXCEEDED refused at once"
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED busy"
    if code is grpc.StatusCode.INTERNAL and "batcher failed" in details:
        return "INTERNAL batcher failed"
    return code.name


def _spread_call(channels: list[grpc.aio.Channel]):
    """One callable sending each call on the next channel (each its own connection)."""
    calls = itertools.cycle([unary(c, SCORE) for c in channels])
    return lambda body, timeout: next(calls)(body, timeout=timeout)


def _bodies(seed: int) -> list[bytes]:
    return [t.SerializeToString() for t in holdout_transactions(2000, seed)]


def _serving_workers(server: RiskServe) -> int:
    return sum("event=serving" in line for line in server.log)


async def _wait(predicate, timeout_s: float) -> bool:
    until = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > until:
            return False
        await asyncio.sleep(0.05)
    return True


async def worker_kill(work_dir: Path, cache: Path, source: Path | None, extra: dict, rate: float, seed: int):
    port = free_port()

    def serve(label: str) -> RiskServe:
        settings = {**extra, **KILL_SETTINGS}
        log_path = work_dir / f"server-faults-{label}.log"
        return RiskServe(cache_dir=cache, settings=settings, log_path=log_path, source_dir=source, port=port)

    first = serve("kill").start()
    await _wait(lambda: _serving_workers(first) == 2, 60)
    marks: dict[str, float] = {}
    servers = [first]

    async def fault() -> None:
        await asyncio.sleep(3.0)
        pids = [int(p) for p in re.search(r"worker_pids=([\d,]+)", "".join(first.log))[1].split(",")]
        marks["kill"] = time.monotonic()
        os.kill(pids[0], signal.SIGKILL)
        marks["exit_status"] = await asyncio.to_thread(first.process.wait)
        marks["exit"] = time.monotonic()
        again = serve("kill-restarted")
        servers.append(again)
        await asyncio.to_thread(again.start)
        await _wait(lambda: _serving_workers(again) == 2, 60)
        marks["serving_again"] = time.monotonic()

    def keep_going(now: float) -> bool:
        return "serving_again" not in marks or now - marks["serving_again"] < 5.0

    channels = [grpc.aio.insecure_channel(first.target, options=SEPARATE_CONNECTION) for _ in range(CHANNELS)]
    bodies = _bodies(seed)
    settle_gc()
    try:
        killer = asyncio.create_task(fault())
        run = await open_loop(_spread_call(channels), bodies, rate, 120.0, TIMEOUT_S, keep_going)
        records = await run.finish()
        await killer
    finally:
        for channel in channels:
            await channel.close()
        for server in servers:
            server.stop()
    phases = {
        "before kill": Counter(),
        "kill to exit": Counter(),
        "exit to serving": Counter(),
        "after": Counter(),
    }
    for r in records:
        phase = (
            "before kill"
            if r.sent < marks["kill"]
            else "kill to exit"
            if r.sent < marks["exit"]
            else "exit to serving"
            if r.sent < marks["serving_again"]
            else "after"
        )
        phases[phase][_outcome(r)] += 1
    after_kill = sorted((r for r in records if r.sent >= marks["kill"]), key=lambda r: r.sent)
    first_ok_after = next(
        (r.ended for r in after_kill if r.sent >= marks["exit"] and r.code is grpc.StatusCode.OK), None
    )
    all_ok_from = _all_ok_from(after_kill)
    exited = [line.split("event=", 1)[1].strip() for line in first.log if "event=worker_exited" in line]
    return {
        "rate_per_s": rate,
        "channels": CHANNELS,
        "settings": KILL_SETTINGS,
        "calls": len(records),
        "outcomes": dict(Counter(_outcome(r) for r in records)),
        "by_phase": {k: dict(v) for k, v in phases.items()},
        "supervisor_log": exited[0] if exited else None,
        "exit_status": marks["exit_status"],
        "kill_to_exit_s": round(marks["exit"] - marks["kill"], 2),
        "exit_to_serving_again_s": round(marks["serving_again"] - marks["exit"], 2),
        "kill_to_first_ok_on_new_server_s": round(first_ok_after - marks["kill"], 2)
        if first_ok_after
        else None,
        "kill_to_all_ok_s": round(all_ok_from - marks["kill"], 2) if all_ok_from else None,
        "command": f"workers=2, open-loop unary Score at {rate:g}/s over {CHANNELS} connections, deadline "
        f"{TIMEOUT_S:g} s; kill -9 of one worker after 3 s; `riskserve serve` started again on the same port "
        "once the supervisor exited (as the orchestrator would); sending until 5 s after it served again",
    }


def _all_ok_from(records: list[Record]) -> float | None:
    """The send time from which every later call was answered OK."""
    last_bad = max((r.sent for r in records if r.code is not grpc.StatusCode.OK), default=None)
    later_ok = [
        r.sent for r in records if r.code is grpc.StatusCode.OK and (last_bad is None or r.sent > last_bad)
    ]
    return min(later_ok) if later_ok else None


def _fault_server(work_dir: Path, cache: Path, source: Path | None, settings: dict, fault: str, label: str):
    server = RiskServe(
        cache_dir=cache,
        settings=settings,
        log_path=work_dir / f"server-faults-{label}.log",
        source_dir=source,
        label=label,
    )
    server.command[2] = "benchmarks.reliability.fault_server"  # python -m <this> serve ...
    server.env[FAULT_VARIABLE] = fault
    return server.start()


async def _watch_health(target: str, service: str, events: list[tuple[float, str]], stop: asyncio.Event):
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        last = None
        while not stop.is_set():
            try:
                answer = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
            except grpc.aio.AioRpcError as error:
                status = error.code().name
            if status != last:
                events.append((time.monotonic(), status))
                last = status
            await asyncio.sleep(0.05)


async def _faulty_run(server: RiskServe, rate: float, seconds: float, seed: int, service: str):
    health: list[tuple[float, str]] = []
    bodies = _bodies(seed)
    settle_gc()
    stop = asyncio.Event()
    watcher = asyncio.create_task(_watch_health(server.target, service, health, stop))
    async with grpc.aio.insecure_channel(server.target) as channel:
        run = await open_loop(unary(channel, SCORE), bodies, rate, seconds, TIMEOUT_S)
        records = await run.finish()
    stop.set()
    await watcher
    return records, health


def _failure_figures(records: list[Record]) -> dict[str, Any]:
    failed = [r for r in records if r.code is not grpc.StatusCode.OK]
    first_bad = min((r.sent for r in failed), default=None)
    all_ok = _all_ok_from(sorted(records, key=lambda r: r.sent))
    return {
        "calls": len(records),
        "outcomes": dict(Counter(_outcome(r) for r in records).most_common()),
        "failed_answered_within_ms": round(max((r.ended - r.sent for r in failed), default=0.0) * 1000, 1),
        "first_failure_to_all_ok_s": round(all_ok - first_bad, 2) if first_bad and all_ok else None,
    }


def _metric_lines(server: RiskServe, *names: str) -> list[str]:
    with urllib.request.urlopen(server.metrics_url, timeout=5) as answer:
        text = answer.read().decode()
    return [line for line in text.splitlines() if line.startswith(names)]


async def batcher_fault(
    work_dir: Path, cache: Path, source: Path | None, extra: dict, rate: float, seed: int
):
    settings = {**extra, "inference_handoff": "thread"}  # every call through the worker (none inline)
    server = _fault_server(work_dir, cache, source, settings, "raise:fraud:500", "batcher-fault")
    try:
        records, health = await _faulty_run(server, rate, 8.0, seed, "model/fraud")
        metrics = _metric_lines(
            server, "riskserve_batcher_failures_total{", "riskserve_requests_failed_total{"
        )
        logged = [line.split("event=", 1)[1][:160].strip() for line in server.log_lines("batcher_failed")]
    finally:
        server.stop()
    return {
        **_failure_figures(records),
        "model_health_seen": [s for _, s in health],
        "server_log": logged,
        "server_metrics": metrics,
        "command": f"inference_handoff=thread; open-loop unary Score at {rate:g}/s for 8 s, deadline "
        f"{TIMEOUT_S:g} s; the 500th fraud batch raises before its ONNX Runtime call (once); model/fraud "
        "health polled every 50 ms",
    }


async def hung_inference(
    work_dir: Path, cache: Path, source: Path | None, extra: dict, rate: float, seed: int
):
    settings = {**extra, "watchdog_stall_s": "3", "inference_handoff": "thread"}
    server = _fault_server(work_dir, cache, source, settings, "hang:fraud:500:15", "hung-inference")
    try:
        records, health = await _faulty_run(server, rate, 25.0, seed, "liveness")
        logged = [line.split("event=", 1)[1][:160].strip() for line in server.log if "event=model_" in line]
    finally:
        server.stop()
    hang_start = min((r.sent for r in records if r.code is not grpc.StatusCode.OK), default=None)
    down = next((t for t, s in health if s == "NOT_SERVING"), None)
    up = next((t for t, s in health if s == "SERVING" and down and t > down), None)
    return {
        **_failure_figures(records),
        "liveness_seen": [s for _, s in health],
        "first_failed_call_to_liveness_not_serving_s": round(down - hang_start, 2)
        if down and hang_start
        else None,
        "liveness_not_serving_for_s": round(up - down, 2) if up and down else None,
        "server_log": logged,
        "command": f"watchdog_stall_s=3, inference_handoff=thread; open-loop unary Score at {rate:g}/s for "
        "25 s, deadline 2 s; the 500th fraud ONNX Runtime call hangs 15 s; health `liveness` polled every "
        "50 ms",
    }


async def grpc_shed(server: RiskServe, burst: int, seed: int) -> dict[str, Any]:
    """`burst` concurrent unary calls at once against the running server."""
    before = _counted(server)
    bodies = _bodies(seed)
    async with grpc.aio.insecure_channel(server.target) as channel:
        call = unary(channel, SCORE)

        async def one(body: bytes) -> str:
            try:
                await call(body, timeout=10)
                return "OK"
            except grpc.aio.AioRpcError as error:
                return error.code().name

        codes = Counter(await asyncio.gather(*(one(bodies[i % len(bodies)]) for i in range(burst))))
    await asyncio.sleep(1.5)  # a scrape sees every answer
    after = _counted(server)
    seen = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "burst": burst,
        "client_codes": dict(codes.most_common()),
        "server_counted_by_code": {k: int(v) for k, v in seen.items() if v},
        "not_in_any_server_metric": burst - int(sum(seen.values())),
        "command": f"{burst} concurrent unary Score calls sent at once on one channel (default settings: "
        "max_pending_rpcs=128, max_concurrent_rpcs=256); the server's request counts scraped before and "
        "after",
    }


def _counted(server: RiskServe) -> dict[str, float]:
    """riskserve_request_duration_seconds_count for fraud Score and for calls refused at the door, by code."""
    counts: Counter = Counter()
    for line in _metric_lines(server, "riskserve_request_duration_seconds_count{"):
        if 'method="Score"' in line:
            code = re.search(r'code="(\w+)"', line)[1]
            counts[code] += float(line.rsplit(" ", 1)[1])
    return dict(counts)
