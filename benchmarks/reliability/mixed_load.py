"""A steady mixed open-loop load: unary Score, ScoreBatch(16), credit Assess and ModelInfer(4) at fixed
shares of one total rate, each its own open loop (benchmarks/reliability/openloop.py) on one channel, every
call kept with its kind, its intended send time and its outcome."""

import asyncio
from dataclasses import dataclass

import grpc
import numpy as np

from benchmarks.reliability.openloop import Record, open_loop, settle_gc
from benchmarks.reliability.payloads import (
    ASSESS,
    MODEL_INFER,
    SCORE,
    SCORE_BATCH,
    batch_bodies,
    holdout_applications,
    holdout_transactions,
    infer_request,
    unary,
)

MIX = {SCORE: 0.7, SCORE_BATCH: 0.1, ASSESS: 0.1, MODEL_INFER: 0.1}  # shares of the total rate
TIMEOUT_S = 2.0
MAX_IN_FLIGHT = 2000


def bodies(seed: int) -> dict[str, list[bytes]]:
    rows = holdout_transactions(2000, seed)
    return {
        SCORE: [t.SerializeToString() for t in rows],
        SCORE_BATCH: batch_bodies(rows, 16),
        ASSESS: [a.SerializeToString() for a in holdout_applications(200)],
        MODEL_INFER: [infer_request(rows[i : i + 4], raw=True).SerializeToString() for i in range(0, 800, 4)],
    }


def timed_out(record: Record) -> bool:
    """The client's own deadline ran out (the server's fast refusals explain themselves)."""
    return record.code is grpc.StatusCode.DEADLINE_EXCEEDED and record.details == "Deadline Exceeded"


@dataclass(frozen=True)
class Call:
    method: str
    record: Record


async def run(target: str, rate: float, seconds: float, pools: dict[str, list[bytes]]) -> list[Call]:
    """`rate` calls/s in all for `seconds` (request `bodies` per method); returns every call once answered
    (or timed out)."""
    settle_gc()
    async with grpc.aio.insecure_channel(target) as channel:
        runs = await asyncio.gather(
            *(
                open_loop(unary(channel, method), pools[method], rate * share, seconds, TIMEOUT_S)
                for method, share in MIX.items()
            )
        )
        finished = [await r.finish() for r in runs]
    return [Call(method, record) for method, records in zip(MIX, finished, strict=True) for record in records]


def start_of(calls: list[Call]) -> float:
    """When the load began: the first intended send (monotonic)."""
    return min(c.record.intended for c in calls)


def latency_ms(calls: list[Call], start: float, end: float) -> dict[str, float | int | None]:
    """OK and timed-out calls intended in [start, end) (monotonic): quantiles from the intended send time,
    and how many calls failed otherwise."""
    inside = [c.record for c in calls if start <= c.record.intended < end]
    waited = [r.latency_s * 1000 for r in inside if r.code is grpc.StatusCode.OK or timed_out(r)]
    if not waited:
        return {
            "calls": len(inside),
            "p50": None,
            "p99": None,
            "p999": None,
            "max": None,
            "errors": len(inside),
        }
    values = np.asarray(waited)
    return {
        "calls": len(inside),
        "p50": round(float(np.percentile(values, 50)), 2),
        "p99": round(float(np.percentile(values, 99)), 2),
        "p999": round(float(np.percentile(values, 99.9)), 2),
        "max": round(float(values.max()), 2),
        "errors": sum(r.code is not grpc.StatusCode.OK for r in inside),
    }
