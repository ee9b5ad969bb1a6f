"""Two real serving processes write snapshots to a shared directory; a third process exports the merge."""

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from server.metrics import ServingMetrics, reset_shared_dir, start_metrics_http_server
from server.metrics.latency_window import HDR_RELATIVE_PRECISION, WINDOW_QUANTILES
from tests.metrics.conftest import hdr_rank_percentile, one_value, scrape

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT_S = 30
WORKER_FLUSH_INTERVAL_S = 0.4  # stale, i.e. counted as gone, after 5 intervals: 2 s


def _start_worker(shared_dir: Path, latencies: np.ndarray, name: str) -> subprocess.Popen:
    path = shared_dir.parent / f"{name}.npy"
    np.save(path, latencies)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.metrics.metrics_worker", str(shared_dir), str(path), "--flush-interval",
         str(WORKER_FLUSH_INTERVAL_S)],
        cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_flushed(worker: subprocess.Popen) -> None:
    """The worker prints one line as soon as its snapshot is on disk."""
    readable, _, _ = select.select([worker.stdout], [], [], WORKER_START_TIMEOUT_S)
    assert readable, f"worker printed nothing within {WORKER_START_TIMEOUT_S} s"
    line = worker.stdout.readline()
    assert line.strip() == "flushed", f"worker exited with {worker.poll()} before flushing"


def _eventually(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def shared_dir(tmp_path: Path) -> Path:
    return reset_shared_dir(tmp_path / "metrics")


@pytest.fixture
def workers(shared_dir: Path) -> Iterator[list]:
    started: list[subprocess.Popen] = []
    yield started
    for worker in started:
        if worker.poll() is None:
            worker.kill()
        worker.wait(timeout=10)


def test_two_processes_merge_into_the_quantiles_of_the_union(shared_dir, workers):
    rng = np.random.default_rng(5)
    fast = rng.uniform(3e-4, 7e-4, size=8_000)  # one process mostly fast ...
    slow = rng.uniform(2e-3, 6e-3, size=400)  # ... the other slow: the union's p99 is in the slow tail
    exporter_own = rng.uniform(5e-4, 9e-4, size=600)  # the exporting process serves too
    workers.append(_start_worker(shared_dir, fast, "fast"))
    workers.append(_start_worker(shared_dir, slow, "slow"))
    for worker in workers:
        _wait_flushed(worker)

    metrics = ServingMetrics(shared_dir=shared_dir, flush_interval_s=0.1)
    handle = start_metrics_http_server(metrics, "127.0.0.1", 0)
    try:
        for value in exporter_own:
            metrics.observe_call("fraud", "Score", "OK", float(value))
        text = scrape(handle.url)

        union = np.concatenate([fast, slow, exporter_own])
        for q in WINDOW_QUANTILES:
            exported = one_value(
                text, "riskserve_request_latency_window_seconds", method="Score", quantile=str(q)
            )
            assert exported == pytest.approx(hdr_rank_percentile(union, q), rel=2 * HDR_RELATIVE_PRECISION), q
        p99 = one_value(text, "riskserve_request_latency_window_seconds", method="Score", quantile="0.99")
        averaged = np.mean([hdr_rank_percentile(part, 0.99) for part in (fast, slow, exporter_own)])
        assert abs(averaged - p99) / p99 > 0.2  # averaging percentiles would have been visibly wrong

        ok = {"model": "fraud", "method": "Score", "code": "OK"}
        assert one_value(text, "riskserve_request_duration_seconds_count", **ok) == union.size
        assert one_value(text, "riskserve_queue_wait_seconds_count", **ok) == fast.size + slow.size
        assert one_value(text, "riskserve_requests_rejected_total", reason="overload") == 2
        assert one_value(text, "riskserve_batch_size_rows_count") == 2
        assert one_value(text, "riskserve_inflight_requests", method="Score") == 2
        assert one_value(text, "riskserve_queue_depth_rows") == 6
        assert one_value(text, "riskserve_model_info", precision="int8") == 1
        assert one_value(text, "riskserve_server_ready") == 1

        # A crashed process (no final snapshot) keeps its totals but its gauges drop out once stale
        # (5 flush intervals of 0.4 s without a new snapshot).
        workers[1].send_signal(signal.SIGKILL)
        workers[1].wait(timeout=10)
        _eventually(
            lambda: one_value(scrape(handle.url), "riskserve_inflight_requests", method="Score") == 1,
            timeout_s=10, what="the killed worker's in-flight gauge to drop out",
        )  # fmt: skip
        text = scrape(handle.url)
        assert one_value(text, "riskserve_request_duration_seconds_count", **ok) == union.size
        assert one_value(text, "riskserve_queue_depth_rows") == 3

        # A clean shutdown writes a final snapshot with nothing in flight.
        workers[0].stdin.close()
        assert workers[0].wait(timeout=10) == 0
        text = scrape(handle.url)
        assert one_value(text, "riskserve_inflight_requests", method="Score") == 0

        # Once no serving process is alive any more, the replica is not ready (the exporter itself serves
        # nothing and never reported readiness).
        _eventually(
            lambda: one_value(scrape(handle.url), "riskserve_server_ready") == 0,
            timeout_s=10, what="readiness to drop once every worker is gone",
        )  # fmt: skip
        assert one_value(scrape(handle.url), "riskserve_request_duration_seconds_count", **ok) == union.size
    finally:
        handle.close()
        metrics.close()
    assert sorted(p.name for p in shared_dir.iterdir()) == sorted(
        f"riskserve-{pid}.json" for pid in (workers[0].pid, workers[1].pid, os.getpid())
    )
