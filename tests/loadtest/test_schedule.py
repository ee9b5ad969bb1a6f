"""Arrival schedules: constant spacing, Poisson rate, ramps and steps, and the split across workers."""

import numpy as np
import pytest

from loadtest.scenario import Load, Stage
from loadtest.schedule import build_schedule


def test_constant_rate_is_evenly_spaced_and_warmup_comes_first() -> None:
    schedule = build_schedule(Load(rate=100, duration_s=2, warmup_s=0.5), [1.0])
    assert len(schedule.offsets_s) == 250
    assert np.allclose(np.diff(schedule.offsets_s), 0.01)
    assert schedule.measured_count == 200
    assert schedule.offsets_s[-1] < 2.5


def test_poisson_arrivals_have_the_asked_rate_and_exponential_gaps() -> None:
    schedule = build_schedule(Load(arrival="poisson", rate=1000, duration_s=20, warmup_s=0), [1.0])
    gaps = np.diff(schedule.offsets_s)
    assert len(schedule.offsets_s) == pytest.approx(20_000, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential: CV 1 (constant: 0)


def test_step_and_ramp_put_the_right_number_of_arrivals_in_each_stage() -> None:
    stages = (
        Stage(rate=10, duration_s=2),
        Stage(rate=10, to_rate=50, duration_s=4),
        Stage(rate=100, duration_s=1),
    )
    offsets = build_schedule(Load(stages=stages, warmup_s=0), [1.0]).offsets_s
    assert np.count_nonzero(offsets < 2) == 20
    assert np.count_nonzero((offsets >= 2) & (offsets < 6)) == pytest.approx(120, abs=1)  # mean 30/s x 4 s
    assert np.count_nonzero(offsets >= 6) == pytest.approx(100, abs=1)
    ramp = offsets[(offsets >= 2) & (offsets < 6)]
    assert np.diff(ramp)[:5].mean() > 3 * np.diff(ramp)[-5:].mean()  # arrivals speed up along the ramp


def test_workers_share_the_schedule_without_gaps_or_overlap() -> None:
    schedule = build_schedule(Load(rate=300, duration_s=1, warmup_s=0), [3.0, 1.0])
    shares = [schedule.for_worker(i, 3) for i in range(3)]
    merged = np.sort(np.concatenate([s.offsets_s for s in shares]))
    assert np.array_equal(merged, schedule.offsets_s)
    assert all(len(s.offsets_s) == 100 for s in shares)
    assert np.mean(schedule.calls == 0) == pytest.approx(0.75, abs=0.08)
