"""Scenario: memory under a steady mixed load, then idle.

A steady mixed open-loop load (benchmarks/reliability/mixed_load.py) for `load_s`, the server's RSS (its
processes summed, /proc) sampled every `sample_s`; then `idle_s` without calls, sampled likewise. After
`warmup_s` RSS should stay flat: the figures are the growth from the first sample after the warm-up to the
last one under load (goal: within 5 %), the least-squares slope under load (KiB/min, and per call), and the
slope while idle (the rolling window's expired histograms used to add 5-7 MiB a minute there).
"""

import asyncio
import time
from typing import Any

import numpy as np

from benchmarks.reliability import mixed_load
from benchmarks.reliability.process_stats import rss_kb
from benchmarks.server_process import RiskServe

GOAL_GROWTH_PCT = 5.0


async def _sample(pid: int, every_s: float, began: float, samples: list[tuple[float, int]]) -> None:
    while True:
        samples.append((round(time.monotonic() - began, 1), rss_kb(pid)))
        await asyncio.sleep(every_s - (time.monotonic() - began) % every_s)


def _slope_kib_per_min(samples: list[tuple[float, int]]) -> float | None:
    if len(samples) < 2:
        return None
    t, kb = np.asarray(samples, dtype=float).T
    return round(float(np.polyfit(t, kb, 1)[0]) * 60, 1)


async def run(
    server: RiskServe, rate: float, load_s: float, idle_s: float, sample_s: float, warmup_s: float, seed: int
) -> dict[str, Any]:
    samples: list[tuple[float, int]] = []
    pools = mixed_load.bodies(seed)
    began = time.monotonic()
    sampler = asyncio.create_task(_sample(server.pid, sample_s, began, samples))
    calls = await mixed_load.run(server.target, rate, load_s, pools)
    load_ended = time.monotonic() - began
    await asyncio.sleep(idle_s)
    sampler.cancel()
    samples.append((round(time.monotonic() - began, 1), rss_kb(server.pid)))
    loaded = [s for s in samples if warmup_s <= s[0] <= load_ended + 0.5]
    idle = [s for s in samples if s[0] >= load_ended + 1.0]
    start_kb, end_kb = (loaded[0][1], loaded[-1][1]) if loaded else (None, None)
    growth = round((end_kb - start_kb) / start_kb * 100, 2) if loaded else None
    slope = _slope_kib_per_min(loaded)
    windows = []
    for at in np.arange(0.0, load_s, sample_s):
        figures = mixed_load.latency_ms(calls, began + at, began + at + sample_s)
        windows.append({"from_s": float(at), "p99_ms": figures["p99"], "errors": figures["errors"]})
    return {
        "rate_per_s": rate,
        "load_s": load_s,
        "idle_s": idle_s,
        "warmup_s": warmup_s,
        "sample_s": sample_s,
        "calls": len(calls),
        "errors": sum(c.record.code.name != "OK" for c in calls),
        "rss_kb": samples,
        "rss_after_warmup_kb": start_kb,
        "rss_end_of_load_kb": end_kb,
        "growth_after_warmup_pct": growth,
        "goal_growth_pct": GOAL_GROWTH_PCT,
        "slope_under_load_kib_per_min": slope,
        "bytes_per_call": round(slope * 1024 / 60 / rate, 1) if slope is not None else None,
        "slope_idle_kib_per_min": _slope_kib_per_min(idle),
        "latency_windows": windows,
        "server_alive": server.alive(),
        "command": f"mixed open loop at {rate:g}/s for {load_s:g} s, then {idle_s:g} s idle; RSS every "
        f"{sample_s:g} s; growth and slope after a {warmup_s:g} s warm-up",
    }
