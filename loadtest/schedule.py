"""Open-loop arrival schedules: the intended send time of every request, computed before the run.

A schedule is warm-up plus the measured stages. Constant arrivals are evenly spaced; Poisson arrivals are
a (non-homogeneous) Poisson process, drawn by mapping unit-rate exponential gaps through the inverse of the
cumulative rate, so a ramp stays a ramp. Arrivals are dealt round-robin to workers, so each worker carries
1/N of the rate while the total follows the schedule exactly.
"""

import numpy as np

from loadtest.plan import Schedule
from loadtest.scenario import Arrival, Load, Stage


def _stage_times(stage: Stage, cumulative: np.ndarray) -> np.ndarray:
    """Invert the stage's cumulative arrival count Λ(t) = r0·t + (r1 - r0)·t²/(2D) at the given counts."""
    r0 = stage.rate
    r1 = stage.to_rate if stage.to_rate is not None else stage.rate
    if r1 == r0:
        return cumulative / r0
    a = (r1 - r0) / (2.0 * stage.duration_s)
    return (-r0 + np.sqrt(np.maximum(r0 * r0 + 4.0 * a * cumulative, 0.0))) / (2.0 * a)


def _expected(stage: Stage) -> float:
    r1 = stage.to_rate if stage.to_rate is not None else stage.rate
    return (stage.rate + r1) / 2.0 * stage.duration_s


def arrival_offsets(stages: tuple[Stage, ...], arrival: Arrival, rng: np.random.Generator) -> np.ndarray:
    """Intended send offsets in seconds for consecutive stages."""
    totals = np.array([_expected(stage) for stage in stages])
    boundaries = np.concatenate([[0.0], np.cumsum(totals)])
    if arrival is Arrival.CONSTANT:
        counts = np.arange(int(np.floor(boundaries[-1])), dtype=np.float64)
    else:
        draws = max(16, int(boundaries[-1] + 6 * np.sqrt(boundaries[-1]) + 16))
        counts = np.cumsum(rng.exponential(1.0, size=draws))
        counts = counts[counts < boundaries[-1]]
    offsets = np.empty_like(counts)
    start = 0.0
    for index, stage in enumerate(stages):
        in_stage = (counts >= boundaries[index]) & (counts < boundaries[index + 1])
        offsets[in_stage] = start + _stage_times(stage, counts[in_stage] - boundaries[index])
        start += stage.duration_s
    return offsets


def build_schedule(load: Load, mix_weights: list[float]) -> Schedule:
    """Warm-up at the first stage's starting rate, then the measured stages; each arrival gets a mix entry."""
    rng = np.random.default_rng(load.seed)
    stages = load.schedule
    if load.warmup_s > 0:
        stages = (Stage(duration_s=load.warmup_s, rate=stages[0].rate), *stages)
    offsets = arrival_offsets(stages, load.arrival, rng)
    weights = np.asarray(mix_weights, dtype=np.float64)
    calls = rng.choice(len(weights), size=len(offsets), p=weights / weights.sum()).astype(np.int16)
    return Schedule(offsets, calls, load.warmup_s, load.measured_s)


def worker_count(load: Load, cpu_count: int, rate_per_worker: float = 1500.0) -> int:
    """Generator processes: the scenario's number, else enough for the peak rate (at most the cores)."""
    if load.workers != "auto":
        return int(load.workers)
    if load.mode.value == "closed":
        wanted = int(np.ceil((load.concurrency or 1) / 64))
    else:
        wanted = int(np.ceil(load.peak_rate / rate_per_worker))
    return max(1, min(wanted, max(1, cpu_count)))
