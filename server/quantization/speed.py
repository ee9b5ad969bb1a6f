"""In-process latency and throughput of models at several batch sizes, under the serving session options
and served as the server serves them (one call per batch, or fixed chunks: server/batch_invariance.py).

Models are timed side by side: rounds alternate between them, so a neighbour's load on the shared cores
slows both alike; a speed ratio is the median of the per-round ratios, and their spread says how noisy the
cores were.
"""

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from server.batch_invariance import chunked
from server.ort_session import create_session, latency_session_options
from server.quantization.calibration_data import FeatureTable

ROUNDS = 5
MIN_REPEATS_PER_ROUND = 3
WARMUP_RUNS = 3


@dataclass(frozen=True)
class BatchTiming:
    batch_size: int
    repeats: int
    median_latency_ms: float
    rows_per_second: float  # batch_size / median latency
    round_latency_ms: tuple[float, ...] = ()  # each round's median, for per-round ratios

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class SpeedRatio:
    """Candidate's speed over the reference's at one batch size (> 1: candidate faster)."""

    batch_size: int
    median: float  # median over rounds of reference round latency / candidate round latency
    low: float  # 25th percentile of the per-round ratios
    high: float  # 75th percentile
    noise: float  # max(tolerance, half the interquartile range): a difference smaller is not real

    @property
    def faster(self) -> bool:
        return self.median - self.noise > 1.0

    @property
    def not_slower(self) -> bool:
        return self.median + self.noise >= 1.0


def time_models(
    models: dict[str, Path],
    table: FeatureTable,
    output_name: str,
    batch_sizes: tuple[int, ...],
    seconds: float,
    intra_op_threads: int = 1,
    chunk_rows: dict[str, int | None] | None = None,
) -> dict[str, dict[int, BatchTiming]]:
    """Median latency of each named model per batch size, spending about `seconds` per model and size;
    `chunk_rows` (model name -> rows per call) runs a model as served, in fixed chunks."""
    options = latency_session_options(intra_op_threads)
    runs = {}
    for name, path in models.items():
        session = create_session(path, options)
        run = (lambda s: lambda feeds: s.run([output_name], feeds)[0])(session)
        runs[name] = chunked(run, (chunk_rows or {}).get(name))
    timings: dict[str, dict[int, BatchTiming]] = {name: {} for name in models}
    for batch_size in batch_sizes:
        feeds = _tiled_batch(table, batch_size)
        samples: dict[str, list[list[float]]] = {name: [] for name in models}
        for run in runs.values():
            for _ in range(WARMUP_RUNS):
                run(feeds)
        for _ in range(ROUNDS):
            for name, run in runs.items():
                deadline = time.perf_counter() + seconds / ROUNDS
                values: list[float] = []
                while len(values) < MIN_REPEATS_PER_ROUND or time.perf_counter() < deadline:
                    start = time.perf_counter()
                    run(feeds)
                    values.append(time.perf_counter() - start)
                samples[name].append(values)
        for name, rounds in samples.items():
            median = float(np.median(np.concatenate(rounds)))
            per_round = tuple(float(np.median(r)) * 1e3 for r in rounds)
            count = sum(len(r) for r in rounds)
            timings[name][batch_size] = BatchTiming(
                batch_size, count, median * 1e3, batch_size / median, per_round
            )
    return timings


def speedup(reference: dict[int, BatchTiming], candidate: dict[int, BatchTiming]) -> dict[int, float]:
    """Throughput of `candidate` over `reference` per batch size (> 1: candidate is faster)."""
    return {size: candidate[size].rows_per_second / reference[size].rows_per_second for size in reference}


def speed_ratio(reference: BatchTiming, candidate: BatchTiming, tolerance: float) -> SpeedRatio:
    """The per-round ratios of `reference` latency over `candidate` latency, summarized."""
    ratios = np.array(reference.round_latency_ms) / np.array(candidate.round_latency_ms)
    low, median, high = (float(v) for v in np.percentile(ratios, [25, 50, 75]))
    return SpeedRatio(reference.batch_size, median, low, high, max(tolerance, (high - low) / 2))


def _tiled_batch(table: FeatureTable, batch_size: int) -> dict[str, np.ndarray]:
    rows = np.arange(batch_size) % table.rows
    return {name: values[rows] for name, values in table.feeds.items()}
