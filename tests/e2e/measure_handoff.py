"""Measure where ONNX Runtime should run: inline on the event loop, on the model's batcher thread, or auto.

    .venv/bin/python -m tests.e2e.measure_handoff [--models-dir models] [--repeats 3]

For each repeat, the three modes are started as `riskserve serve` subprocesses (one after the other, same
payloads, same client) and measured: sequential unary Score (p50/p99), 16 concurrent unary callers, and
4 concurrent ScoreBatch(256) callers next to 8 unary callers (does a big batch stall small calls?).
Prints medians over repeats. Not a test: speed is never asserted by tests.
"""

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from server.api.gen.riskserve.v1 import scoring_pb2, scoring_pb2_grpc
from tests.e2e.model_factory import write_model
from tests.e2e.requests import transaction

REPO_ROOT = Path(__file__).resolve().parents[2]
MODES = ("inline", "thread", "auto")


def start(models_dir: Path, handoff: str, cache: Path) -> tuple[subprocess.Popen, str]:
    env = {
        **os.environ,
        "RISKSERVE_INFERENCE_HANDOFF": handoff,
        "RISKSERVE_CACHE_DIR": str(cache),
        "RISKSERVE_DRAIN_PAUSE_S": "0",
        "RISKSERVE_LOG_LEVEL": "WARNING",
        "RISKSERVE_MODELS": "fraud",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli.main",
            "serve",
            "--models-dir",
            str(models_dir),
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--log-level",
            "INFO",
        ],
        cwd=REPO_ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    port = None
    for line in process.stderr:
        if match := re.search(r"event=listening address=\S+:(\d+)", line):
            port = match[1]
        if "event=serving" in line:
            break
    threading_drain(process)
    return process, f"127.0.0.1:{port}"


def threading_drain(process: subprocess.Popen) -> None:
    import threading

    threading.Thread(target=lambda: [None for _ in process.stderr], daemon=True).start()


def sequential(target: str, calls: int) -> list[float]:
    with grpc.insecure_channel(target) as channel:
        fraud = scoring_pb2_grpc.FraudScoringStub(channel)
        request = transaction()
        for _ in range(200):
            fraud.Score(request)
        latencies = []
        for _ in range(calls):
            started = time.perf_counter()
            fraud.Score(request)
            latencies.append(time.perf_counter() - started)
    return latencies


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
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models-dir", type=Path, default=None, help="default: a small generated test model")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="riskserve-handoff-"))
    models_dir = args.models_dir
    if models_dir is None:
        models_dir = scratch / "models"
        write_model(models_dir / "fraud", "fraud", batching={"max_batch_size": 256, "max_queue_delay_us": 0})
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.repeats):
        for handoff in MODES:
            process, target = start(models_dir, handoff, scratch / "cache")
            try:
                row = results.setdefault(handoff, {})
                p50, p99 = summary(sequential(target, 2000))
                row.setdefault("seq_p50", []).append(p50)
                row.setdefault("seq_p99", []).append(p99)
                load = asyncio.run(concurrent(target, 16, 0, 3.0))
                p50, p99 = summary(load["unary"])
                row.setdefault("c16_p50", []).append(p50)
                row.setdefault("c16_p99", []).append(p99)
                row.setdefault("c16_rps", []).append(len(load["unary"]) / load["seconds"])
                mixed = asyncio.run(concurrent(target, 8, 4, 3.0))
                p50, p99 = summary(mixed["unary"])
                row.setdefault("mixed_unary_p50", []).append(p50)
                row.setdefault("mixed_unary_p99", []).append(p99)
                row.setdefault("mixed_batch_p99", []).append(summary(mixed["batch"])[1])
            finally:
                process.terminate()
                process.wait(30)
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
