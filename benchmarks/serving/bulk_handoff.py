"""Where a bulk call's ONNX Runtime run belongs: server CPU and rows/s of 256-row calls under each
`inference_handoff`, next to the ORT-inline floor, and what running bulk inline costs a lone caller.

    .venv/bin/python -m benchmarks.serving.bulk_handoff [--handoffs auto,inline,thread] [--base COMMIT]
        [--kinds score_batch,infer_batch] [--lone-calls 0]    # --lone-calls 0: the bulk phase alone
    .venv/bin/python -m benchmarks.serving.bulk_handoff --quick     # a smoke run: figures meaningless

Two phases, repeats interleaved target by target; medians, ratios as medians of per-repeat ratios:
- bulk: `ScoreBatch` and `ModelInfer` of 256 rows, closed loops of 1, 2 and 4 callers (benchmarks/serving/
  cpu_cost.py): server CPU per call from /proc, rows/s; ratios to the floor and to the first riskserve.
- lone next to bulk: one unary `Score` caller, a call every 2 ms (each one lone to the batcher), while
  `ScoreBatch(256)` calls go at a fixed rate from another process (`--bulk-rate`, the same work for every
  target); the lone caller's p50/p99/p99.9, and the same caller alone for reference. The hand-off exists
  so a bulk call's ONNX Runtime run does not hold the event loop; this is what holding it costs the caller
  next to it.

`--base COMMIT` adds that commit's server (exported with `git archive`, its default settings) as one more
target. Every server and both clients share the machine's cores: read ratios, not absolute figures.
"""

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
from hdrh.histogram import HdrHistogram

from benchmarks.server_process import RiskServe, ServerProcess
from benchmarks.serving.cpu_cost import closed_loop
from benchmarks.serving.payloads import build_payloads
from benchmarks.serving.revisions import export_commit
from benchmarks.serving.sequential import DIGITS, HIGHEST_US, LOWEST_US
from benchmarks.serving.targets import RISKSERVE_START_TIMEOUT_S, start_listening_ort_floor
from loadtest.plan import RequestPool

BULK_KINDS = ["score_batch", "infer_batch"]  # also: score_batch_columns (benchmarks/serving/payloads.py)
CONCURRENCY = (1, 2, 4)
FLOOR = "ORT-inline floor"
LONE_GAP_S = 2e-3  # between the lone caller's calls: far above the batcher's 300 µs "lone" gap
RESULTS = Path(__file__).with_name("results-bulk-handoff.json")


def _identity(data: bytes) -> bytes:
    return data


def _bulk_caller(target: str, pool: RequestPool, rate: float, seconds: float) -> None:
    """Bulk calls at `rate` calls/s for `seconds`, one at a time (late ones go at once), in their own
    process so they do not share the lone caller's GIL."""
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(pool.method_path, request_serializer=_identity)
        start = time.monotonic()
        for i in range(int(rate * seconds)):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            stub(pool.bodies[i % len(pool.bodies)], timeout=30)


def lone_latency(
    target: str, unary: RequestPool, calls: int, bulk: RequestPool | None, bulk_rate: float
) -> dict:
    """p50/p99/p99.9 (µs) of `calls` paced unary calls, with `bulk` calls at `bulk_rate` meanwhile."""
    neighbour = None
    with grpc.insecure_channel(target) as channel:
        stub = channel.unary_unary(unary.method_path, request_serializer=_identity)
        for body in unary.bodies[:50]:
            stub(body, timeout=10)
        if bulk is not None:
            seconds = calls * (LONE_GAP_S + 3e-3) + 5.0  # outlasts the paced calls
            neighbour = multiprocessing.get_context("spawn").Process(
                target=_bulk_caller, args=(target, bulk, bulk_rate, seconds), daemon=True
            )
            neighbour.start()
            time.sleep(1.5)  # the child imports grpc and starts looping
        histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        try:
            for i in range(calls):
                sent = time.perf_counter_ns()
                stub(unary.bodies[i % len(unary.bodies)], timeout=10)
                histogram.record_value(max(1, (time.perf_counter_ns() - sent) // 1000))
                time.sleep(LONE_GAP_S)
        finally:
            if neighbour is not None:
                neighbour.terminate()
                neighbour.join()
    return {f"p{p:g}_us": histogram.get_value_at_percentile(p) for p in (50, 99, 99.9)}


def start_targets(args: argparse.Namespace, scratch: Path) -> list[ServerProcess]:
    cache = scratch / "cache"
    servers: list[ServerProcess] = []
    quick_stop = {"models": "fraud", "drain_pause_s": 0, "grace_period_s": 2}
    for handoff in args.handoffs:
        server = RiskServe(
            cache_dir=cache,
            settings=quick_stop | {"inference_handoff": handoff},
            log_path=scratch / f"riskserve-{handoff}.log",
            label=f"riskserve {handoff}",
        )
        servers.append(server.start(timeout_s=RISKSERVE_START_TIMEOUT_S))
    if args.base:
        base = RiskServe(
            source_dir=export_commit(args.base, scratch),
            cache_dir=scratch / "cache-base",
            settings=quick_stop,
            log_path=scratch / "riskserve-base.log",
            label=f"riskserve at {args.base[:9]}",
        )
        servers.append(base.start(timeout_s=RISKSERVE_START_TIMEOUT_S))
    floor = start_listening_ort_floor(scratch, cache)
    floor.label = FLOOR
    return [floor, *servers]


def bulk_phase(
    servers: list[ServerProcess], pools: dict, calls: int, repeats: int, kinds: list[str] = BULK_KINDS
) -> dict:
    runs: dict[str, dict[str, list]] = {}
    for repeat in range(repeats):
        for kind in kinds:
            for concurrency in CONCURRENCY:
                for server in servers:
                    run = closed_loop(server.target, server.pid, pools[kind], calls, concurrency, 20)
                    row = runs.setdefault(f"{kind} c{concurrency}", {}).setdefault(server.label, [])
                    row.append({"server_us_per_call": run.server_us_per_call, "rows_per_s": run.rows_per_s})
                    print(
                        f"bulk {repeat + 1}/{repeats} {kind} c{concurrency} {server.label:28} "
                        f"{run.server_us_per_call:6.0f} µs/call {run.rows_per_s:8.0f} rows/s",
                        flush=True,
                    )
    return {case: _bulk_summary(by_label) for case, by_label in runs.items()}


def _bulk_summary(by_label: dict[str, list[dict]]) -> dict:
    """Medians, and medians of the per-repeat ratios (the targets of one repeat ran minutes apart at most,
    so a neighbour's burst moves them together)."""
    floor = by_label[FLOOR]
    first = next(rows for label, rows in by_label.items() if label != FLOOR)
    summary = {}
    for label, rows in by_label.items():
        summary[label] = {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {
            "rows_per_s_over_floor": statistics.median(
                r["rows_per_s"] / f["rows_per_s"] for r, f in zip(rows, floor, strict=True)
            ),
            "cpu_over_first": statistics.median(
                r["server_us_per_call"] / b["server_us_per_call"] for r, b in zip(rows, first, strict=True)
            ),
            "repeats": rows,
        }
    return summary


def lone_phase(servers: list[ServerProcess], pools: dict, calls: int, repeats: int, bulk_rate: float) -> dict:
    runs: dict[str, dict[str, list]] = {}
    for repeat in range(repeats):
        for server in servers:
            if server.label == FLOOR:
                continue
            cases = (("alone", None), (f"next to ScoreBatch(256) {bulk_rate:g}/s", pools["score_batch"]))
            for case, bulk in cases:
                figures = lone_latency(server.target, pools["score"], calls, bulk, bulk_rate)
                runs.setdefault(case, {}).setdefault(server.label, []).append(figures)
                print(f"lone {repeat + 1}/{repeats} {server.label:28} {case:24} {figures}", flush=True)
    return {
        case: {
            label: {key: statistics.median(r[key] for r in rows) for key in rows[0]} | {"repeats": rows}
            for label, rows in by_label.items()
        }
        for case, by_label in runs.items()
    }


def print_tables(result: dict) -> None:
    first = next(label for label in next(iter(result["bulk"].values())) if label != FLOOR)
    header = f"{'256 rows per call':22} {'target':28} {'µs/call':>8} {'rows/s':>8} {'/ floor':>8}"
    print(f"\n{header} {'CPU / ' + first}")
    for case, by_label in result["bulk"].items():
        for label, row in by_label.items():
            print(
                f"{case:22} {label:28} {row['server_us_per_call']:8.0f} {row['rows_per_s']:8.0f} "
                f"{row['rows_per_s_over_floor']:7.2f}x {row['cpu_over_first']:7.2f}x"
            )
    if not result["lone"]:
        return
    print(f"\n{'lone Score caller':30} {'target':28} {'p50 µs':>8} {'p99 µs':>8} {'p99.9 µs':>9}")
    for case, by_label in result["lone"].items():
        for label, row in by_label.items():
            print(f"{case:30} {label:28} {row['p50_us']:8.0f} {row['p99_us']:8.0f} {row['p99.9_us']:9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving.bulk_handoff",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--handoffs", type=lambda s: s.split(","), default=["auto", "inline", "thread"])
    parser.add_argument("--base", default=None, help="also serve this commit's code (default settings)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bulk-calls", type=int, default=300, help="256-row calls per target per repeat")
    parser.add_argument("--kinds", type=lambda s: s.split(","), default=BULK_KINDS, help="bulk payloads")
    parser.add_argument("--lone-calls", type=int, default=1000, help="paced unary calls per case (0: none)")
    parser.add_argument("--bulk-rate", type=float, default=100.0, help="the lone caller's neighbour, calls/s")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 40 bulk calls, 100 lone calls")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.bulk_calls, args.lone_calls = 1, 40, 100
    pools = build_payloads().pools()
    with tempfile.TemporaryDirectory(prefix="riskserve-bulk-handoff-") as scratch:
        servers = start_targets(args, Path(scratch))
        try:
            result = {
                "command": " ".join(["python -m benchmarks.serving.bulk_handoff", *sys.argv[1:]]),
                "bulk": bulk_phase(servers, pools, args.bulk_calls, args.repeats, args.kinds),
                "lone": (
                    lone_phase(servers, pools, args.lone_calls, args.repeats, args.bulk_rate)
                    if args.lone_calls
                    else {}
                ),
            }
        finally:
            for server in servers:
                server.stop()
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_tables(result)


if __name__ == "__main__":
    main()
