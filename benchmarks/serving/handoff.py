"""Measure where ONNX Runtime should run: inline on the event loop, on the model's batcher thread, or auto.

    .venv/bin/python -m benchmarks.serving.handoff [--models-dir models] [--repeats 3]
    .venv/bin/python -m benchmarks.serving.handoff --quick    # a smoke run: it works, figures meaningless

For each repeat, the three modes are started as `riskserve serve` subprocesses (one after the other, same
payloads, same client) and measured: sequential unary Score (p50/p99), 16 concurrent unary callers, and
4 concurrent ScoreBatch(256) callers next to 8 unary callers (does a big batch stall small calls?).
Prints medians over repeats. By default the model is the small fraud MLP the end-to-end tests serve
(tests/e2e/model_factory.py, FP32), and the requests are theirs too (tests/e2e/requests.py).
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from benchmarks.server_process import RiskServe
from benchmarks.serving.sequential import run_sequential
from loadtest.plan import RequestPool
from loadtest.request_bodies import METHOD_PATHS
from loadtest.scenario import CallKind
from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

MODES = ("inline", "thread", "auto")
SEQUENTIAL_WARMUP_CALLS = 200


def start(models_dir: Path, handoff: str, cache: Path) -> RiskServe:
    settings = {"inference_handoff": handoff, "drain_pause_s": 0, "models": "fraud"}
    label = f"riskserve inference_handoff={handoff}"
    return RiskServe(models_dir=models_dir, cache_dir=cache, settings=settings, label=label).start()


def sequential(target: str, calls: int) -> tuple[float, float]:
    """p50 and p99 in µs of sequential unary Score calls on one connection (benchmarks.serving's client)."""
    pool = RequestPool(
        label="fraud.score",
        method_path=METHOD_PATHS[CallKind.FRAUD_SCORE],
        streaming=False,
        rows_per_request=1,
        bodies=(transaction().SerializeToString(),),
    )
    latency = run_sequential(target, pool, calls, warmup_calls=SEQUENTIAL_WARMUP_CALLS)
    return latency.p50_us, latency.p99_us


async def concurrent(target: str, unary_callers: int, batch_callers: int, seconds: float) -> dict:
    async with grpc.aio.insecure_channel(target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        request = transaction()
        batch = scoring_pb2.TransactionBatch(transactions=[transaction(f"b{i}") for i in range(256)])
        unary, batched = [], []
        stop = time.perf_counter() + seconds

        async def unary_caller():
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await fraud.Score(request)
                unary.append(time.perf_counter() - started)

        async def batch_caller():
            while time.perf_counter() < stop:
                started = time.perf_counter()
                await fraud.ScoreBatch(batch)
                batched.append(time.perf_counter() - started)

        await asyncio.gather(
            *[unary_caller() for _ in range(unary_callers)], *[batch_caller() for _ in range(batch_callers)]
        )
    return {"unary": unary, "batch": batched, "seconds": seconds}


def summary(latencies: list[float]) -> tuple[float, float]:
    return float(np.percentile(latencies, 50) * 1e6), float(np.percentile(latencies, 99) * 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving.handoff",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="default: a small generated test model")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 300 sequential calls, 0.5 s loads")
    args = parser.parse_args()
    calls, seconds = (300, 0.5) if args.quick else (2000, 3.0)
    if args.quick:
        args.repeats = 1
    scratch = Path(tempfile.mkdtemp(prefix="riskserve-handoff-"))
    models_dir = args.models_dir
    if models_dir is None:
        models_dir = scratch / "models"
        write_model(models_dir / "fraud", "fraud", batching={"max_batch_size": 256, "max_queue_delay_us": 0})
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeats):
        for handoff in MODES:
            server = start(models_dir, handoff, scratch / "cache")
            target = server.target
            try:
                row = results.setdefault(handoff, {})
                p50, p99 = sequential(target, calls)
                row.setdefault("seq_p50", []).append(p50)
                row.setdefault("seq_p99", []).append(p99)
                load = asyncio.run(concurrent(target, 16, 0, seconds))
                p50, p99 = summary(load["unary"])
                row.setdefault("c16_p50", []).append(p50)
                row.setdefault("c16_p99", []).append(p99)
                row.setdefault("c16_rps", []).append(len(load["unary"]) / load["seconds"])
                mixed = asyncio.run(concurrent(target, 8, 4, seconds))
                p50, p99 = summary(mixed["unary"])
                row.setdefault("mixed_unary_p50", []).append(p50)
                row.setdefault("mixed_unary_p99", []).append(p99)
                row.setdefault("mixed_batch_p99", []).append(summary(mixed["batch"])[1])
            finally:
                server.stop()
    keys = list(results["inline"])
    print(f"models: {models_dir}; medians over {args.repeats} repeats; latencies in µs, rps in calls/s")
    print(
        f"{'metric':<18}" + "".join(f"{m:>10}" for m in MODES) + f"{'thread/inline':>15}{'auto/inline':>13}"
    )
    for key in keys:
        value = {m: statistics.median(results[m][key]) for m in MODES}
        print(
            f"{key:<18}"
            + "".join(f"{value[m]:>10.0f}" for m in MODES)
            + f"{value['thread'] / value['inline']:>15.2f}{value['auto'] / value['inline']:>13.2f}"
        )


if __name__ == "__main__":
    main()
