"""Rounds that alternate between targets in one run: sequential unary p50/p99, back-to-back bulk rows/s and
server CPU per unary call from /proc; medians over rounds. What the side-by-side serving comparisons share
(benchmarks/serving/feature_maps.py, revisions.py)."""

import statistics
import time
from dataclasses import dataclass

import grpc

from benchmarks.reliability.process_stats import cpu_seconds
from benchmarks.serving.sequential import run_sequential
from loadtest.plan import RequestPool

WARMUP_CALLS = 300


@dataclass(frozen=True)
class Target:
    """One server under comparison and the requests it gets (the same bytes for every target)."""

    label: str
    address: str
    pid: int
    unary: RequestPool
    bulk: RequestPool


def bulk_rate(address: str, pool: RequestPool, seconds: float) -> float:
    """Rows/s of back-to-back bulk calls for `seconds` on one channel."""
    with grpc.insecure_channel(address) as channel:
        stub = channel.unary_unary(pool.method_path)
        for body in pool.bodies:
            stub(body, timeout=10)  # warm
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            stub(pool.bodies[calls % len(pool.bodies)], timeout=10)
            calls += 1
        return calls * pool.rows_per_request / (time.perf_counter() - started)


def compare(targets: list[Target], rounds: int, calls: int, bulk_seconds: float) -> dict:
    """Per target, the median over `rounds` of: unary p50/p99 (µs), server CPU per unary call (µs), bulk
    rows/s; the order of targets flips every round."""
    figures = {
        t.label: {"p50_us": [], "p99_us": [], "cpu_us_per_call": [], "bulk_rows_per_s": []} for t in targets
    }
    for round_index in range(rounds):
        for target in targets if round_index % 2 == 0 else list(reversed(targets)):
            row = figures[target.label]
            cpu = cpu_seconds(target.pid)
            latency = run_sequential(target.address, target.unary, calls, warmup_calls=WARMUP_CALLS)
            row["cpu_us_per_call"].append((cpu_seconds(target.pid) - cpu) / (calls + WARMUP_CALLS) * 1e6)
            row["p50_us"].append(latency.p50_us)
            row["p99_us"].append(latency.p99_us)
            row["bulk_rows_per_s"].append(bulk_rate(target.address, target.bulk, bulk_seconds))
    medians = {label: {k: statistics.median(v) for k, v in row.items()} for label, row in figures.items()}
    return {
        "rounds": rounds,
        "calls_per_round": calls,
        "bulk_seconds": bulk_seconds,
        "note": "client and servers share the 2 cores; medians over rounds, order flipped each round",
        "medians": medians,
        "per_round": figures,
    }


def print_medians(result: dict) -> None:
    for label, row in result["medians"].items():
        print(
            f"{label:12s} unary p50 {row['p50_us']:7.0f} us  p99 {row['p99_us']:7.0f} us  "
            f"server CPU {row['cpu_us_per_call']:5.0f} us/call  bulk {row['bulk_rows_per_s']:9.0f} rows/s"
        )
