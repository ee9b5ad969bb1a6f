"""Is this box usable for open-loop p99? A plain grpc.aio client sends unary `Score` at a constant rate to a
bare server (the echo floor, or the ORT-inline floor on either event loop) and times each call from its
intended send; it prints the percentiles and when the slow calls happened.

    .venv/bin/python -m benchmarks.serving.jitter_probe [--rate 100] [--seconds 8] [--slow-ms 8]

No load tester, no riskserve: if even the echo floor misses the benchmark's 10 ms p99 at 100 req/s, or its
slow calls come in bursts at regular intervals, the open-loop trials of that hour measure the machine's
scheduling, not a server. The client freezes its setup objects out of the garbage collector first, as the
load tester's workers do.
"""

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from benchmarks.server_process import ServerProcess
from benchmarks.serving.payloads import build_payloads
from benchmarks.serving.targets import start_echo, start_listening_ort_floor, start_riskserve, wait_listening

SCORE = "/riskserve.v1.FraudScoring/Score"


def _identity(data: bytes) -> bytes:
    return data


async def open_loop(target: str, bodies: list[bytes], rate: float, seconds: float) -> np.ndarray:
    """[intended send offset s, latency from the intended send s] of every call, in send order."""
    async with grpc.aio.insecure_channel(target) as channel:
        await channel.channel_ready()
        call = channel.unary_unary(SCORE, request_serializer=_identity, response_deserializer=_identity)
        for body in bodies[:50]:  # warm
            await call(body, timeout=5)
        results: list[tuple[float, float]] = []
        start = time.perf_counter() + 0.1

        async def one(index: int, intended: float) -> None:
            await call(bodies[index % len(bodies)], timeout=5)
            results.append((intended - start, time.perf_counter() - intended))

        tasks = []
        for index in range(int(rate * seconds)):
            intended = start + index / rate
            wait = intended - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(index, intended)))
        await asyncio.gather(*tasks)
    return np.array(sorted(results))


def report(label: str, calls: np.ndarray, slow_ms: float) -> str:
    latency_ms = calls[:, 1] * 1e3
    slow = calls[latency_ms > slow_ms]
    bursts = []  # runs of slow calls less than 100 ms apart: one stall delays the calls around it
    for offset, _ in slow:
        if bursts and offset - bursts[-1][-1] < 0.1:
            bursts[-1].append(offset)
        else:
            bursts.append([offset])
    gaps = np.diff([b[0] for b in bursts])
    every = f", about every {np.median(gaps):.2f} s" if len(gaps) else ""
    return (
        f"{label}: p50 {np.percentile(latency_ms, 50):.2f} ms, p99 {np.percentile(latency_ms, 99):.2f} ms, "
        f"max {latency_ms.max():.1f} ms; {len(slow)} calls over {slow_ms:g} ms in {len(bursts)} bursts{every}"
        + (f" (at {', '.join(f'{b[0]:.2f}' for b in bursts[:12])} s)" if bursts else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--slow-ms", type=float, default=8.0, help="a call slower than this counts as slow")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "riskserve-infer-cost-cache"
    )
    args = parser.parse_args(argv)
    bodies = list(build_payloads().score.bodies)
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="riskserve-jitter-") as scratch:
        work = Path(scratch)
        riskserve = start_riskserve(work, args.cache_dir)  # writes the INT8 file the floors serve
        riskserve.stop()
        echo = start_echo(work)
        if not wait_listening(echo):
            echo.stop()
            raise SystemExit(f"the echo floor did not start; see {echo.log_path}")
        servers: list[tuple[str, ServerProcess]] = [("echo floor", echo)]
        try:
            for loop in ("asyncio", "uvloop"):
                floor = start_listening_ort_floor(work, args.cache_dir, loop)
                servers.append((floor.label, floor))
            for label, server in servers:
                calls = asyncio.run(open_loop(server.target, bodies, args.rate, args.seconds))
                print(report(f"{label}, {args.rate:g} req/s", calls, args.slow_ms), flush=True)
        finally:
            for _, server in servers:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
