"""Run one scenario: build the requests, start the generator processes, collect and merge what they record.

Workers are separate processes (spawned, so no gRPC state is inherited across fork), each with its own
event loop and channel(s). They connect first; the run starts when all are ready, at one common
`time.monotonic()` instant (system-wide on Linux), so their shares of the schedule line up.
"""

import contextlib
import logging
import multiprocessing
import os
import queue
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from loadtest.errors import LoadTestError
from loadtest.plan import RequestPool, Schedule
from loadtest.recording import Progress, Recording
from loadtest.request_bodies import build_pool
from loadtest.scenario import LoadMode, Scenario
from loadtest.schedule import build_schedule, worker_count
from loadtest.server_metrics import ServerLatency, scrape, server_latencies
from loadtest.worker import WorkerSpec, closed_loop_sequence, worker_main

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
START_DELAY_S = 0.2
FINISH_GRACE_S = 30.0

ProgressSink = Callable[[float, Progress], None]  # (seconds since start, a worker's report)


@dataclass
class RunResult:
    """Everything a verdict and the reports need about one run."""

    scenario: Scenario
    recording: Recording
    workers: int
    pools: tuple[RequestPool, ...]
    started_at: str
    server: list[ServerLatency] = field(default_factory=list)
    server_metrics_scraped: bool = False
    parent_cpu_s: float = 0.0

    @property
    def open_loop(self) -> bool:
        return self.scenario.load.mode is LoadMode.OPEN

    @property
    def measured_s(self) -> float:
        return self.scenario.load.measured_s


SAMPLES_PER_SLICE = 200  # so a slice's p99 is not just its maximum


def slice_width(measured_s: float, rate: float | None) -> float:
    """Time resolution of the latency-over-time view: up to 60 slices of ~200 requests, at least 10."""
    width = measured_s / 60
    if rate:
        width = max(width, SAMPLES_PER_SLICE / rate)
    return round(min(max(width, 0.1), max(0.1, measured_s / 10)), 1)


def _worker_specs(scenario: Scenario, pools: tuple[RequestPool, ...], workers: int) -> list[WorkerSpec]:
    load = scenario.load
    weights = [entry.weight for entry in scenario.mix]
    common = {
        "target": scenario.target,
        "pools": pools,
        "timeout_s": load.timeout_ms / 1000.0,
        "channels": load.channels_per_worker,
        "connect_timeout_s": load.connect_timeout_s,
        "slice_s": slice_width(load.measured_s, load.peak_rate or None),
    }
    if load.mode is LoadMode.OPEN:
        schedule = build_schedule(load, weights)
        in_flight = max(1, load.max_in_flight // workers)
        return [
            WorkerSpec(
                worker=i,
                schedule=schedule.for_worker(i, workers),
                closed_loop=False,
                concurrency=0,
                max_in_flight=in_flight,
                **common,
            )
            for i in range(workers)
        ]
    concurrency = load.concurrency or 1
    specs = []
    for i in range(workers):
        sequence = closed_loop_sequence(weights, load.seed + i)
        schedule = Schedule(sequence.astype(float), sequence, load.warmup_s, load.measured_s)
        share = concurrency // workers + (i < concurrency % workers)
        specs.append(
            WorkerSpec(
                worker=i,
                schedule=schedule,
                closed_loop=True,
                concurrency=share,
                max_in_flight=share,
                **common,
            )
        )
    return [spec for spec in specs if spec.concurrency > 0 or not spec.closed_loop]


def _methods(scenario: Scenario, pools: tuple[RequestPool, ...]) -> set[tuple[str, str]]:
    return {
        (entry.model_name, pool.method_path.rsplit("/", 1)[-1])
        for entry, pool in zip(scenario.mix, pools, strict=True)
    }


def run_scenario(
    scenario: Scenario,
    *,
    on_progress: ProgressSink | None = None,
    models_dir: Path | None = None,
    pools: tuple[RequestPool, ...] | None = None,
) -> RunResult:
    """Run the scenario to completion and return the merged recording (raises LoadTestError if it cannot)."""
    pools = pools or tuple(build_pool(entry, models_dir) for entry in scenario.mix)
    workers = worker_count(scenario.load, os.cpu_count() or 1)
    specs = _worker_specs(scenario, pools, workers)
    parent_cpu = _cpu_seconds()
    scrapes: dict[str, str | None] = {}

    def scrape_before() -> None:  # at the end of the warm-up, so the server's view covers the measured time
        scrapes["before"] = scrape(scenario.metrics_url)

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    recording = _run_workers(specs, scenario, on_progress, scrape_before)
    after = scrape(scenario.metrics_url)
    before = scrapes.get("before")
    log.info(
        "event=run_done scenario=%s workers=%d requests=%d", scenario.name, len(specs), recording.requests
    )
    return RunResult(
        scenario=scenario,
        recording=recording,
        workers=len(specs),
        pools=pools,
        started_at=started_at,
        server=server_latencies(before, after, _methods(scenario, pools)),
        server_metrics_scraped=after is not None,
        parent_cpu_s=_cpu_seconds() - parent_cpu,
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_workers(
    specs: list[WorkerSpec],
    scenario: Scenario,
    on_progress: ProgressSink | None,
    at_measure_start: Callable[[], None],
) -> Recording:
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes, start_pipes = [], []
    for spec in specs:
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=worker_main,
            args=(spec, results, receiver),
            daemon=True,
            name=f"loadtest-worker-{spec.worker}",
        )
        process.start()
        processes.append(process)
        start_pipes.append(sender)
    load = scenario.load
    timer: threading.Timer | None = None
    try:
        _wait_ready(results, len(specs))
        start = time.monotonic() + START_DELAY_S
        for pipe in start_pipes:
            pipe.send(start)
        timer = threading.Timer(max(0.0, start + load.warmup_s - time.monotonic()), at_measure_start)
        timer.start()
        deadline = start + load.warmup_s + load.measured_s + load.timeout_ms / 1000 + FINISH_GRACE_S
        return _collect(results, len(specs), start, deadline, on_progress)
    except BaseException:
        for pipe in start_pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in processes:
            process.terminate()
        raise
    finally:
        if timer is not None:
            timer.cancel()
            timer.join()
        for process in processes:
            process.join(timeout=5)


def _wait_ready(results, expected: int) -> None:
    ready = 0
    deadline = time.monotonic() + READY_TIMEOUT_S
    while ready < expected:
        message = _next(results, deadline, "workers did not become ready")
        if message[0] == "error":
            raise LoadTestError(f"load generator worker {message[1]} failed to start: {message[2]}")
        ready += message[0] == "ready"


def _collect(
    results, expected: int, start: float, deadline: float, on_progress: ProgressSink | None
) -> Recording:
    recording = Recording()
    done = 0
    while done < expected:
        message = _next(results, deadline, "workers did not finish in time")
        kind = message[0]
        if kind == "progress" and on_progress is not None:
            on_progress(time.monotonic() - start, message[1])
        elif kind == "done":
            recording.add_encoded(message[2])
            done += 1
        elif kind == "error":
            raise LoadTestError(f"load generator worker {message[1]} failed: {message[2]}")
    return recording


def _next(results, deadline: float, what: str) -> tuple:
    try:
        return results.get(timeout=max(0.01, deadline - time.monotonic()))
    except queue.Empty as exc:
        raise LoadTestError(f"{what} (timeout); the machine may be overloaded") from exc
