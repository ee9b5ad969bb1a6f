"""Scenario: latency in the first minute after a start, beside the steady state, in one run.

Each start is a fresh `riskserve serve`: cold (an empty quantization cache: it quantizes and gates both
models first), warm (the cache filled), and warm with `startup_gc_freeze=false` (as before the fix). As
soon as health says SERVING a steady mixed open-loop load starts (benchmarks/reliability/mixed_load.py)
and runs `first_s` + `steady_s`; the first `first_s` are compared with the last `steady_s`, latency from
the intended send time. The server's `event=gc_pause` lines (collections of 10 ms or more) are counted
per window.
"""

import re
import shutil
from pathlib import Path
from typing import Any

from benchmarks.reliability import mixed_load
from benchmarks.reliability.openloop import settle_gc
from benchmarks.reliability.process_stats import CpuSampler
from benchmarks.server_process import RiskServe
from server.app.gc_tuning import GcPauseLog

STARTS = (
    ("cold", True, {}),
    ("warm", False, {}),
    ("warm, startup_gc_freeze off", False, {"startup_gc_freeze": "false"}),
)
GC_PAUSE = re.compile(r"event=gc_pause generation=(\d) pause_ms=([\d.]+)")


def _gc_pauses(server: RiskServe, since_line: int) -> list[tuple[int, float]]:
    return [
        (int(m[1]), float(m[2]))
        for line in server.log[since_line:]
        if (m := GC_PAUSE.search(line)) is not None
    ]


async def one_start(
    name: str,
    cache: Path,
    settings: dict,
    work_dir: Path,
    source: Path | None,
    rate: float,
    first_s: float,
    steady_s: float,
    seed: int,
) -> dict[str, Any]:
    log_path = work_dir / f"server-first-minute-{name.split(',')[0]}{'-nofreeze' if settings else ''}.log"
    server = RiskServe(cache_dir=cache, settings=settings, log_path=log_path, source_dir=source, label=name)
    pools = mixed_load.bodies(seed)  # before the start: the load begins the moment health says SERVING
    server.start()
    serving_line = len(server.log)
    settle_gc()  # the generator's own setup garbage, before its pauses are watched
    client_gc = GcPauseLog(threshold_ms=5.0)
    client_gc.install()
    try:
        with CpuSampler(server.pid) as cpu:
            calls = await mixed_load.run(server.target, rate, first_s + steady_s, pools)
        pauses = _gc_pauses(server, serving_line)
    finally:
        client_gc.remove()
        server.stop()
    began = mixed_load.start_of(calls)
    first = mixed_load.latency_ms(calls, began, began + first_s)
    steady = mixed_load.latency_ms(calls, began + first_s, began + first_s + steady_s)
    ratio = round(first["p999"] / steady["p999"], 2) if first["p999"] and steady["p999"] else None
    frozen = [line.split("event=", 1)[1].strip() for line in server.log if "event=startup_gc_frozen" in line]
    gc_stats = [line.split("event=gc_stats", 1)[1].strip() for line in server.log if "event=gc_stats" in line]
    per_5s = [
        (mixed_load.latency_ms(calls, began + t, began + t + 5), cpu.others_cores(began + t, began + t + 5))
        for t in range(0, int(first_s + steady_s), 5)
    ]
    return {
        "start": name,
        "per_5s_p99_max_ms_other_jobs_cores": [(w["p99"], w["max"], others) for w, others in per_5s],
        "other_jobs_cores": {
            "first": cpu.others_cores(began, began + first_s),
            "steady": cpu.others_cores(began + first_s, began + first_s + steady_s),
        },
        "startup_s": round(server.start_seconds, 1),
        "first": first,
        "steady": steady,
        "p999_first_over_steady": ratio,
        "gc_pauses_10ms_or_more": {
            "count": len(pauses),
            "gen2": sum(g == 2 for g, _ in pauses),
            "longest_ms": max((ms for _, ms in pauses), default=0.0),
        },
        "startup_gc_frozen": frozen[0] if frozen else None,
        "server_gc_stats": gc_stats[0] if gc_stats else None,
        "generator_gc_longest_ms": [round(x * 1e3, 1) for x in client_gc.longest_s],
    }


async def run(
    work_dir: Path, source: Path | None, extra: dict, rate: float, first_s: float, steady_s: float, seed: int
) -> dict[str, Any]:
    results = []
    cache = work_dir / "cache-first-minute"  # emptied for the cold start, which fills it for the warm ones
    for name, cold, settings in STARTS:
        if cold:
            shutil.rmtree(cache, ignore_errors=True)
        results.append(
            await one_start(
                name, cache, {**extra, **settings}, work_dir, source, rate, first_s, steady_s, seed
            )
        )
    return {
        "rate_per_s": rate,
        "first_s": first_s,
        "steady_s": steady_s,
        "starts": results,
        "command": f"mixed open loop at {rate:g}/s ({_mix()}) from the moment health says SERVING, for "
        f"{first_s:g} s + {steady_s:g} s; the first {first_s:g} s against the last {steady_s:g} s",
    }


def _mix() -> str:
    names = {
        mixed_load.SCORE: "Score",
        mixed_load.SCORE_BATCH: "ScoreBatch(16)",
        mixed_load.ASSESS: "Assess",
        mixed_load.MODEL_INFER: "ModelInfer(4)",
    }
    return ", ".join(f"{share:.0%} {names[m]}" for m, share in mixed_load.MIX.items())
