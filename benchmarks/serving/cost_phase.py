"""Server CPU per call (from /proc, benchmarks/serving/cpu_cost.py) for every target, bulk rows/s at
concurrency 1, 2 and 4, and ScoreStream messages: repeats interleaved target by target, medians."""

import statistics
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.server_process import ServerProcess
from benchmarks.serving.cpu_cost import CostRun, closed_loop, stream_loop
from benchmarks.serving.goals import FLOOR, FLOOR_UVLOOP
from benchmarks.serving.targets import start_listening_ort_floor
from loadtest.plan import RequestPool

BULK_CONCURRENCY = (1, 2, 4)


@dataclass(frozen=True)
class CostTarget:
    label: str  # e.g. "riskserve"
    target: str
    pid: int
    kinds: tuple[str, ...]  # payload kinds it answers


def _summary(runs: list[CostRun]) -> dict:
    return {
        "server_us_per_call": statistics.median(r.server_us_per_call for r in runs),
        "server_us_per_row": statistics.median(r.server_cpu_s / r.rows * 1e6 for r in runs),
        "rows_per_s": statistics.median(r.rows_per_s for r in runs),
        "calls_per_s": statistics.median(r.calls_per_s for r in runs),
        "client_us_per_call": statistics.median(r.client_cpu_s / r.calls * 1e6 for r in runs),
        "repeats": len(runs),
        "per_repeat_us_per_call": [round(r.server_us_per_call, 1) for r in runs],
    }


def run_costs(
    targets: list[CostTarget],
    pools: dict[str, RequestPool],
    unary_calls: int,
    bulk_calls: int,
    stream_messages: int,
    repeats: int,
    log: Callable[[str], None],
) -> dict:
    """{"unary": {kind: {label: summary}}, "bulk": {kind: {concurrency: {label: summary}}}, "stream": ...}."""
    unary: dict[str, dict[str, list[CostRun]]] = {}
    bulk: dict[str, dict[int, dict[str, list[CostRun]]]] = {}
    stream: dict[str, list[CostRun]] = {}
    for repeat in range(repeats):
        for kind in ("score", "infer"):
            for t in targets:
                if kind in t.kinds:
                    run = closed_loop(t.target, t.pid, pools[kind], unary_calls)
                    unary.setdefault(kind, {}).setdefault(t.label, []).append(run)
                    log(
                        f"cost {repeat + 1}/{repeats} {kind:6} {t.label:28} "
                        f"{run.server_us_per_call:6.0f} µs/call"
                    )
        for kind in ("score_batch", "score_batch_columns", "infer_batch"):
            for concurrency in BULK_CONCURRENCY:
                for t in targets:
                    if kind in t.kinds:
                        run = closed_loop(
                            t.target, t.pid, pools[kind], bulk_calls, concurrency, warmup_calls=20
                        )
                        bulk.setdefault(kind, {}).setdefault(concurrency, {}).setdefault(t.label, []).append(
                            run
                        )
                        log(
                            f"bulk {repeat + 1}/{repeats} {kind} c{concurrency} {t.label:28} "
                            f"{run.rows_per_s:8.0f} rows/s, {run.server_cpu_s / run.rows * 1e6:5.2f} µs/row"
                        )
        for t in targets:
            if "stream" in t.kinds:
                run = stream_loop(t.target, t.pid, pools["stream"], stream_messages)
                stream.setdefault(t.label, []).append(run)
                log(f"stream {repeat + 1}/{repeats} {t.label:28} {run.server_us_per_call:6.0f} µs/message")
    return {
        "unary": {k: {label: _summary(runs) for label, runs in v.items()} for k, v in unary.items()},
        "bulk": {
            k: {str(c): {label: _summary(runs) for label, runs in by.items()} for c, by in v.items()}
            for k, v in bulk.items()
        },
        "stream": {label: _summary(runs) for label, runs in stream.items()},
    }


def unary_costs_against_floor(
    starters: Sequence[tuple[str, Callable[[], ServerProcess]]],
    work_dir: Path,
    cache_dir: Path,
    pools: dict[str, RequestPool],
    calls: int,
    repeats: int,
    log: Callable[[str], None],
) -> dict:
    """Start each (label, start) server in order, then the ORT-inline floor on the INT8 file riskserve
    wrote to `cache_dir`, on the standard event loop (FLOOR) and on uvloop (FLOOR_UVLOOP, riskserve's
    default); measure server CPU per unary call of every kind in `pools` (repeats interleaved) and stop them
    all, whatever happens. {kind: {label: summary}}, the floors first."""
    kinds = tuple(pools)
    with ExitStack() as running:
        targets = []
        for label, start in starters:
            server = start()
            running.callback(server.stop)
            targets.append(CostTarget(label, server.target, server.pid, kinds))
        for position, (label, loop) in enumerate(((FLOOR, "asyncio"), (FLOOR_UVLOOP, "uvloop"))):
            floor = start_listening_ort_floor(work_dir, cache_dir, loop)
            running.callback(floor.stop)
            targets.insert(position, CostTarget(label, floor.target, floor.pid, kinds))
        log(f"server CPU per unary call, {repeats} repeats of {calls} calls, interleaved")
        return run_costs(targets, pools, calls, 0, 0, repeats, log)["unary"]
