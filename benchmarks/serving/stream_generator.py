"""A cheap open-loop ScoreStream sender for the stream-vs-unary capacity trial.

loadtest's generator spends about as much CPU per streamed message as per unary call (an arrival object,
a queued item, a `wait_for` task per write, a semaphore, per-message histogram records), and on a shared
2-core box that CPU is taken from the server the trial measures. This sender does only what the open loop
needs: one process of its own (no GIL shared with the benchmark), one stream, the pre-serialized request
bytes written as they are (no serializer), intended times computed up front, and one float per message
stored per send and per answer in preallocated lists; latencies are computed after the run. Answers come
back in order (ScoreStream answers every message, first in first out), so the n-th answer is the n-th
message's. Timed from the intended send, like loadtest's open loop, with its precise timers.
"""

import asyncio
import gc
import multiprocessing
import time
from dataclasses import dataclass

import grpc
import numpy as np

from loadtest.open_loop import precise_timer_loop
from loadtest.worker import CHANNEL_OPTIONS

CONNECT_TIMEOUT_S = 10.0
SETTLE_S = 0.05  # from "connected" to the first intended send


@dataclass(frozen=True)
class StreamRun:
    """One open-loop stream trial, measured part only (messages intended after the warm-up)."""

    rate: float
    measured_s: float
    scheduled: int
    sent: int
    answered: int
    code: str  # the stream's final status ("OK" when it ended normally)
    latency_ms: np.ndarray  # per answered message, from its intended send
    uncorrected_ms: np.ndarray  # per answered message, from its actual send
    send_lag_ms: np.ndarray  # per sent message, how late it left
    cpu_s: float  # the sender process's CPU over the whole run (warm-up included) ...
    wall_s: float
    messages: int  # ... in which it wrote this many messages

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_s / max(1, self.messages) * 1e6

    @property
    def cpu_cores(self) -> float:
        return self.cpu_s / self.wall_s if self.wall_s else 0.0


async def _run(
    target: str,
    method: str,
    bodies: tuple[bytes, ...],
    rate: float,
    warmup_s: float,
    measured_s: float,
    timeout_s: float,
) -> dict:
    warmup_count = round(rate * warmup_s)
    count = warmup_count + round(rate * measured_s)
    sent, done = [0.0] * count, [0.0] * count
    code = "OK"
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        call = channel.stream_stream(method)(timeout=warmup_s + measured_s + timeout_s + 5.0)
        gc.collect()
        gc.freeze()  # a full collection mid-run would be charged to the server as latency
        start = time.monotonic() + SETTLE_S
        intended = (start + np.arange(count) / rate).tolist()
        cpu0, wall0 = time.process_time(), time.monotonic()
        answered = 0
        written = 0

        async def write() -> None:
            nonlocal written
            monotonic, sleep, size = time.monotonic, asyncio.sleep, len(bodies)
            for i, due in enumerate(intended):
                delay = due - monotonic()
                if delay > 0:
                    await sleep(delay)
                sent[i] = monotonic()
                await call.write(bodies[i % size])
                written += 1
            await call.done_writing()

        async def read() -> None:
            nonlocal answered
            monotonic = time.monotonic
            while (await call.read()) is not grpc.aio.EOF:
                done[answered] = monotonic()
                answered += 1

        try:
            await asyncio.gather(write(), read())
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        except asyncio.InvalidStateError:  # wrote after the server ended the stream
            code = (await call.code()).name
        cpu_s, wall_s = time.process_time() - cpu0, time.monotonic() - wall0
    return {
        "intended": intended,
        "sent": sent[:written],
        "done": done[:answered],
        "code": code,
        "cpu_s": cpu_s,
        "wall_s": wall_s,
        "warmup_count": warmup_count,
    }


def _sender(conn, *args) -> None:
    """Process entry point: run the stream, send the raw times back."""
    try:
        with asyncio.Runner(loop_factory=precise_timer_loop) as runner:
            conn.send(runner.run(_run(*args)))
    except Exception as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})


def run_stream(
    target: str,
    method: str,
    bodies: tuple[bytes, ...],
    rate: float,
    warmup_s: float,
    measured_s: float,
    timeout_s: float,
) -> StreamRun:
    """`rate` messages/s on one ScoreStream for `warmup_s` + `measured_s`, from a process of its own."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(
        target=_sender, args=(child, target, method, bodies, rate, warmup_s, measured_s, timeout_s)
    )
    process.start()
    raw = parent.recv()
    process.join()
    if "error" in raw:
        raise RuntimeError(f"stream sender failed: {raw['error']}")
    intended = np.asarray(raw["intended"])
    sent, done = np.asarray(raw["sent"]), np.asarray(raw["done"])
    measured = np.arange(intended.size) >= raw["warmup_count"]
    answered = done.size
    answered_measured = measured[:answered]
    first = int(np.argmax(measured)) if measured.any() else intended.size
    return StreamRun(
        rate=rate,
        measured_s=measured_s,
        scheduled=int(measured.sum()),
        sent=int(measured[: sent.size].sum()),
        answered=int(answered_measured.sum()),
        code=raw["code"],
        latency_ms=(done - intended[:answered])[answered_measured] * 1e3,
        uncorrected_ms=(done - sent[:answered])[answered_measured] * 1e3,
        send_lag_ms=(sent - intended[: sent.size])[first:] * 1e3,
        cpu_s=raw["cpu_s"],
        wall_s=raw["wall_s"],
        messages=int(sent.size),
    )


def main() -> None:
    """Both senders against one `riskserve serve`, rates interleaved: the sender's CPU per message and p99."""
    import argparse
    import statistics
    import tempfile
    from pathlib import Path

    from benchmarks.serving.openloop import LoadTarget, TrialTiming, loadtest_trial, run_trial
    from benchmarks.serving.payloads import build_payloads
    from benchmarks.serving.targets import start_riskserve

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.serving.stream_generator", description=main.__doc__
    )
    parser.add_argument("--rates", type=lambda s: [float(r) for r in s.split(",")], default=[500.0, 1000.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    pool = build_payloads().stream
    timing = TrialTiming(measured_s=args.seconds, warmup_s=0.5)
    senders = {"loadtest generator": loadtest_trial, "stream sender": run_trial}
    figures: dict[tuple[str, float], list] = {}
    with tempfile.TemporaryDirectory(prefix="riskserve-stream-sender-") as scratch:
        server = start_riskserve(Path(scratch), Path(scratch) / "cache")
        try:
            load = LoadTarget("riskserve ScoreStream", server.target, "stream", pool)
            for _ in range(args.repeats):
                for rate in args.rates:
                    for name, trial in senders.items():
                        result = trial(load, rate, 5.0, timing)
                        cpu_us = result.generator_cpu_cores / max(result.throughput_rps, 1.0) * 1e6
                        figures.setdefault((name, rate), []).append((cpu_us, result.p99_ms or float("nan")))
                        print(
                            f"{name:20} {rate:6g}/s {cpu_us:6.0f} µs/message p99 {result.p99_ms} ms",
                            flush=True,
                        )
        finally:
            server.stop()
    print(f"\n{'sender':20} {'rate':>7} {'CPU µs/message':>15} {'p99 ms':>7}  (medians of {args.repeats})")
    for (name, rate), rows in figures.items():
        cpu = statistics.median(r[0] for r in rows)
        print(f"{name:20} {rate:7g} {cpu:15.0f} {statistics.median(r[1] for r in rows):7.2f}")


if __name__ == "__main__":
    main()
