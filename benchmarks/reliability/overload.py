"""Scenario 3: ScoreBatch(256) at about twice what the server can score, then recovery.

First the server's capacity is measured (closed loop, CAPACITY_CALLERS callers), then batches are sent
open-loop at OVERLOAD_FACTOR times that for `load_s` with a 1 s deadline while the server's RSS is
sampled. After the last send, sequential unary Score calls probe in windows of PROBE_WINDOW_S until a
window's p99 is under 10 ms.
"""

import asyncio
import time
from collections import Counter
from typing import Any

import grpc
import numpy as np

from benchmarks.reliability.openloop import open_loop, settle_gc
from benchmarks.reliability.payloads import SCORE, SCORE_BATCH, batch_bodies, holdout_transactions, unary
from benchmarks.reliability.process_stats import RssSampler, cpu_seconds, rss_kb
from benchmarks.server_process import RiskServe

BATCH = 256
CAPACITY_CALLERS = 4
OVERLOAD_FACTOR = 2.0
TIMEOUT_S = 1.0
PROBE_WINDOW_S = 0.25
RECOVERED_P99_MS = 10.0
PROBE_LIMIT_S = 30.0


def _bodies(seed: int) -> tuple[list[bytes], list[bytes]]:
    rows = holdout_transactions(BATCH * 16, seed)
    return batch_bodies(rows, BATCH), [t.SerializeToString() for t in rows[:512]]


async def _capacity(call, bodies: list[bytes], seconds: float) -> float:
    done = 0
    stop_at = time.monotonic() + seconds

    async def caller(offset: int) -> None:
        nonlocal done
        i = offset
        while time.monotonic() < stop_at:
            await call(bodies[i % len(bodies)], timeout=10)
            done += 1
            i += CAPACITY_CALLERS

    began = time.monotonic()
    await asyncio.gather(*(caller(i) for i in range(CAPACITY_CALLERS)))
    return done / (time.monotonic() - began)


def _outcome(code: grpc.StatusCode, details: str) -> str:
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        # the client's own deadline says "Deadline Exceeded"; the server's fast refusal explains itself
        return (
            "DEADLINE_EXCEEDED (client deadline ran out)"
            if details == "Deadline Exceeded"
            else ("DEADLINE_EXCEEDED (server refused at once)")
        )
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return f"RESOURCE_EXHAUSTED ({details.split(':')[0][:60]})"
    return code.name


async def _recovery(score, bodies: list[bytes], load_stopped: float) -> dict[str, Any]:
    windows = []
    i = 0
    while time.monotonic() - load_stopped < PROBE_LIMIT_S:
        latencies, window_end = [], time.monotonic() + PROBE_WINDOW_S
        while time.monotonic() < window_end:
            began = time.monotonic()
            try:
                await score(bodies[i % len(bodies)], timeout=2)
                latencies.append((time.monotonic() - began) * 1000)
            except grpc.aio.AioRpcError:
                latencies.append(float("inf"))
            i += 1
        p99 = float(np.percentile(latencies, 99)) if latencies else float("inf")
        windows.append(
            {"at_s": round(time.monotonic() - load_stopped, 3), "calls": len(latencies), "p99_ms": p99}
        )
        if p99 < RECOVERED_P99_MS:
            return {"recovered_after_s": windows[-1]["at_s"], "windows": windows}
    return {"recovered_after_s": None, "windows": windows}


async def run(server: RiskServe, load_s: float, capacity_s: float, seed: int) -> dict[str, Any]:
    batches, singles = _bodies(seed)
    settle_gc()
    async with grpc.aio.insecure_channel(server.target) as channel:
        score_batch, score = unary(channel, SCORE_BATCH), unary(channel, SCORE)
        capacity = await _capacity(score_batch, batches, capacity_s)
        rate = OVERLOAD_FACTOR * capacity
        await asyncio.sleep(1.0)
        rss_before = rss_kb(server.pid)
        with RssSampler(server.pid) as sampler:
            cpu = cpu_seconds(server.pid), time.process_time(), time.monotonic()
            run_ = await open_loop(score_batch, batches, rate, load_s, TIMEOUT_S)
            cpu = cpu_seconds(server.pid) - cpu[0], time.process_time() - cpu[1], time.monotonic() - cpu[2]
            recovery = await _recovery(score, singles, run_.last_sent)
            records = await run_.finish()
            await asyncio.sleep(2.0)
        rss_after = rss_kb(server.pid)
    sent = len(records)
    outcomes = Counter(_outcome(r.code, r.details) for r in records)
    ok = [r.latency_s * 1000 for r in records if r.code is grpc.StatusCode.OK]
    return {
        "batch_size": BATCH,
        "capacity_batches_per_s": round(capacity, 1),
        "offered_batches_per_s": round(rate, 1),
        "achieved_send_rate_per_s": round(sent / max(1e-9, run_.last_sent - run_.start), 1),
        "load_s": load_s,
        "calls": sent,
        "outcomes": dict(outcomes.most_common()),
        "ok_latency_ms": {
            "p50": round(float(np.percentile(ok, 50)), 1) if ok else None,
            "p99": round(float(np.percentile(ok, 99)), 1) if ok else None,
        },
        "rss_kb": {"before": rss_before, "peak": sampler.peak_kb, "after": rss_after},
        "cores_busy_during_load": {
            "server": round(cpu[0] / cpu[2], 2),
            "generator": round(cpu[1] / cpu[2], 2),
        },
        "server_alive": server.alive(),
        "recovery": recovery,
        "command": f"capacity: {CAPACITY_CALLERS} closed-loop ScoreBatch({BATCH}) callers "
        f"for {capacity_s:g} s; then open loop at {OVERLOAD_FACTOR:g}x capacity for {load_s:g} s, "
        f"deadline {TIMEOUT_S:g} s; "
        f"recovery: sequential Score in {PROBE_WINDOW_S:g} s windows until p99 < {RECOVERED_P99_MS:g} ms",
    }
