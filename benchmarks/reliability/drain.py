"""Scenario 1: SIGTERM in the middle of a steady open-loop stream of unary Score calls.

Each call is classified: OK; refused with UNAVAILABLE "shutting down" (expected after the drain pause);
not accepted because nothing listened any more (connection refused, after the process closed its port);
refused as overloaded (RESOURCE_EXHAUSTED, "deadline cannot be met"); timed out (the client's deadline);
anything else (CANCELLED, INTERNAL, a reset) is lost. Timeouts count as failures too; the phase (sent
before SIGTERM, during the pause, after it) tells a busy machine from the drain. A grpc.health.v1 Watch
on a second channel times NOT_SERVING.
"""

import asyncio
import os
import re
import statistics
import time
from collections import Counter
from datetime import datetime
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks.reliability.openloop import Record, open_loop, settle_gc
from benchmarks.reliability.payloads import SCORE, SCORE_BATCH, batch_bodies, holdout_transactions, unary
from benchmarks.server_process import RiskServe

SETTINGS = {"drain_pause_s": "2", "grace_period_s": "10"}
TIMEOUT_S = 2.0
AFTER_EXIT_S = 0.5
BATCH, BATCH_RATE = 256, 20.0  # a companion stream of ScoreBatch(256), so calls are in flight at the cut
NOT_LISTENING = ("failed to connect", "connection refused")


def classify(record: Record) -> str:
    if record.code is grpc.StatusCode.OK:
        return "ok"
    details = record.details.lower()
    if record.code is grpc.StatusCode.UNAVAILABLE and "shutting down" in details:
        return "refused_unavailable_draining"
    if record.code is grpc.StatusCode.UNAVAILABLE and any(s in details for s in NOT_LISTENING):
        return "not_accepted_port_closed"
    if record.code is grpc.StatusCode.RESOURCE_EXHAUSTED or (
        record.code is grpc.StatusCode.DEADLINE_EXCEEDED and "cannot be met" in details
    ):
        return "refused_overloaded"  # the server's fast load refusals: a busy machine, not the drain
    if record.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timed_out"  # the client's deadline ran out
    return "lost"  # CANCELLED, INTERNAL, UNKNOWN, a reset connection ...


async def _watch_health(target: str, events: list[tuple[float, str]]) -> None:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            async for answer in stub.Watch(
                health_pb2.HealthCheckRequest(service="riskserve.v1.FraudScoring")
            ):
                events.append((time.time(), health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)))
        except grpc.aio.AioRpcError as error:
            events.append((time.time(), f"stream ended {error.code().name}"))


def _log_time(line: str) -> float | None:
    found = re.match(r"ts=(\S+ \S+)", line)
    if not found:
        return None
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").astimezone().timestamp()


async def run(server: RiskServe, rate: float, before_s: float, seed: int) -> dict[str, Any]:
    rows = holdout_transactions(2000, seed)
    bodies = [t.SerializeToString() for t in rows]
    batches = batch_bodies(rows, BATCH)
    # sending stops AFTER_EXIT_S after the process exited; the schedule only bounds a server that never does
    longest_s = before_s + float(SETTINGS["drain_pause_s"]) + float(SETTINGS["grace_period_s"]) + 10.0
    health: list[tuple[float, str]] = []
    settle_gc()
    watcher = asyncio.create_task(_watch_health(server.target, health))
    marks: dict[str, float] = {}

    def keep_going(now: float) -> bool:
        return "exit" not in marks or now - marks["exit"] < AFTER_EXIT_S

    async def terminate() -> None:
        await asyncio.sleep(before_s)
        marks["sigterm"], marks["sigterm_wall"] = time.monotonic(), time.time()
        server.signal()
        await asyncio.to_thread(server.process.wait)
        marks["exit"] = time.monotonic()

    async with grpc.aio.insecure_channel(server.target) as channel:
        killer = asyncio.create_task(terminate())
        batch_run = asyncio.create_task(
            open_loop(unary(channel, SCORE_BATCH), batches, BATCH_RATE, longest_s, TIMEOUT_S, keep_going)
        )
        run_ = await open_loop(unary(channel, SCORE), bodies, rate, longest_s, TIMEOUT_S, keep_going)
        records = await run_.finish()
        batch_records = await (await batch_run).finish()
        await killer
    await asyncio.wait_for(watcher, 5)

    sigterm, pause = marks["sigterm"], float(SETTINGS["drain_pause_s"])
    phases: dict[str, Counter] = {
        "before_sigterm": Counter(),
        "during_pause": Counter(),
        "after_pause": Counter(),
    }
    for r in records:
        phase = (
            "before_sigterm"
            if r.sent < sigterm
            else "during_pause"
            if r.sent < sigterm + pause
            else "after_pause"
        )
        phases[phase][classify(r)] += 1
    batch_phases: dict[str, Counter] = {}
    for r in batch_records:
        phase = "before_pause_end" if r.sent < sigterm + pause else "after_pause"
        batch_phases.setdefault(phase, Counter())[classify(r)] += 1
    lost = [r for r in records + batch_records if classify(r) == "lost"]
    first_change = next(((t, s) for t, s in health if s != "SERVING"), None)
    finished = server.log_lines("drain_finished")
    finished_at = _log_time(finished[0]) if finished else None
    ok_before = sorted(
        r.latency_s * 1000 for r in records if r.sent < sigterm and r.code is grpc.StatusCode.OK
    )
    return {
        "settings": SETTINGS,
        "rate_per_s": rate,
        "sigterm_after_s": before_s,
        "calls": len(records),
        "outcomes": dict(Counter(classify(r) for r in records)),
        "by_phase": {k: dict(v) for k, v in phases.items()},
        "batch_calls": len(batch_records),
        "batch_outcomes": dict(Counter(classify(r) for r in batch_records)),
        "batch_by_phase": {k: dict(v) for k, v in batch_phases.items()},
        "lost_by_status": dict(Counter(f"{r.code.name}: {r.details[:80]}" for r in lost).most_common(10)),
        "exit_status": server.process.returncode,
        "load_avg_1min": os.getloadavg()[0],
        "sigterm_to_exit_s": round(marks["exit"] - sigterm, 3),
        "health_first_change": first_change[1] if first_change else None,
        "health_not_serving_ms_after_sigterm": (
            round((first_change[0] - marks["sigterm_wall"]) * 1000, 1) if first_change else None
        ),
        "drain_finished_log": finished[0].split("event=", 1)[1] if finished else None,
        "drain_finished_s_after_sigterm": (
            round(finished_at - marks["sigterm_wall"], 3) if finished_at is not None else None
        ),
        "ok_p99_ms_before_sigterm": round(ok_before[int(0.99 * (len(ok_before) - 1))], 2)
        if ok_before
        else None,
        "command": f"open-loop unary Score at {rate:g}/s, deadline {TIMEOUT_S:g} s, "
        f"plus ScoreBatch({BATCH}) at {BATCH_RATE:g}/s; SIGTERM after {before_s:g} s, sending until "
        f"{AFTER_EXIT_S:g} s after the process exited; health Watch on a second channel",
    }


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several drain runs (each on a fresh server) as one: counts summed, times as medians and maxima."""
    outcomes: Counter = Counter()
    batch_outcomes: Counter = Counter()
    phases: dict[str, Counter] = {}
    for r in runs:
        outcomes.update(r["outcomes"])
        batch_outcomes.update(r["batch_outcomes"])
        for phase, counts in r["by_phase"].items():
            phases.setdefault(phase, Counter()).update(counts)
    exits = [r["sigterm_to_exit_s"] for r in runs]
    health = [r["health_not_serving_ms_after_sigterm"] for r in runs]
    return {
        **{k: runs[0][k] for k in ("settings", "rate_per_s", "sigterm_after_s", "command")},
        "runs": len(runs),
        "calls": sum(r["calls"] for r in runs),
        "outcomes": dict(outcomes),
        "by_phase": {k: dict(v) for k, v in phases.items()},
        "batch_calls": sum(r["batch_calls"] for r in runs),
        "batch_outcomes": dict(batch_outcomes),
        "lost_by_status": dict(sum((Counter(r["lost_by_status"]) for r in runs), Counter()).most_common(10)),
        "load_avg_1min": [r["load_avg_1min"] for r in runs],
        "exit_statuses": [r["exit_status"] for r in runs],
        "sigterm_to_exit_s": {"median": statistics.median(exits), "max": max(exits)},
        "health_not_serving_ms_after_sigterm": (
            {"median": round(statistics.median(health), 1), "max": max(health)}
            if None not in health
            else None
        ),
        "drain_finished_logs": [r["drain_finished_log"] for r in runs],
        "ok_p99_ms_before_sigterm": [r["ok_p99_ms_before_sigterm"] for r in runs],
        "per_run": runs,
    }
