"""In-process latency and throughput of models at several batch sizes, under the serving session options.

Models are timed side by side: rounds alternate between them, so a neighbour's load on the shared cores
slows both alike and the ratio stays meaningful.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from server.ort_session import create_session, latency_session_options
from server.quantization.calibration_data import FeatureTable

ROUNDS = 3
MIN_REPEATS_PER_ROUND = 3
WARMUP_RUNS = 3


@dataclass(frozen=True)
class BatchTiming:
    batch_size: int
    repeats: int
    median_latency_ms: float
    rows_per_second: float  # batch_size / median latency

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def time_models(
    models: dict[str, Path],
    table: FeatureTable,
    output_name: str,
    batch_sizes: tuple[int, ...],
    seconds: float,
    intra_op_threads: int = 1,
) -> dict[str, dict[int, BatchTiming]]:
    """Median latency of each named model per batch size, spending about `seconds` per model and size."""
    options = latency_session_options(intra_op_threads)
    sessions = {name: create_session(path, options) for name, path in models.items()}
    timings: dict[str, dict[int, BatchTiming]] = {name: {} for name in models}
    for batch_size in batch_sizes:
        feeds = _tiled_batch(table, batch_size)
        samples: dict[str, list[float]] = {name: [] for name in models}
        for session in sessions.values():
            for _ in range(WARMUP_RUNS):
                session.run([output_name], feeds)
        for _ in range(ROUNDS):
            for name, session in sessions.items():
                deadline = time.perf_counter() + seconds / ROUNDS
                count = 0
                while count < MIN_REPEATS_PER_ROUND or time.perf_counter() < deadline:
                    start = time.perf_counter()
                    session.run([output_name], feeds)
                    samples[name].append(time.perf_counter() - start)
                    count += 1
        for name, values in samples.items():
            median = float(np.median(values))
            timings[name][batch_size] = BatchTiming(
                batch_size, len(values), median * 1e3, batch_size / median
            )
    return timings


def speedup(reference: dict[int, BatchTiming], candidate: dict[int, BatchTiming]) -> dict[int, float]:
    """Throughput of `candidate` over `reference` per batch size (> 1: candidate is faster)."""
    return {size: candidate[size].rows_per_second / reference[size].rows_per_second for size in reference}


def _tiled_batch(table: FeatureTable, batch_size: int) -> dict[str, np.ndarray]:
    rows = np.arange(batch_size) % table.rows
    return {name: values[rows] for name, values in table.feeds.items()}
